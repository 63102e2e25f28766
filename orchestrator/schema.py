"""Every config a user can set: the dataclasses that ``--config`` and ``--set`` reach.

Each job builds one of the top-level configs here (:class:`StudyConfig`, :class:`CorrelationConfig`,
:class:`EvaluateConfig`, :class:`DenoiseConfig`, :class:`SweepConfig`) through the engine in
:mod:`orchestrator.config`; the nested ones (data, train, eval, trial, ray, tracking, ...) are shared.
This module holds data only: no I/O, no imports from the rest of the project but the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.config import ConfigError

NOISY = "noisy"  # a stage target: the noisy input itself
CAMERA_CODES = ("GP", "IP", "S6", "N6", "G4")  # SIDD's five cameras (orchestrator.data.camera)

# ------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SyntheticSpec:
    """Synthetic SIDD-like data (:mod:`orchestrator.data.synthetic`).

    Args:
        seed: everything is a deterministic function of it.
        scenes: number of scene folders in SIDD_Medium_Srgb (each holds frames 010 and 011).
        size: (H, W) of each medium image.
        val_images, val_blocks, block_size: validation blocks array is
            (val_images, val_blocks, block_size, block_size, 3); the real SIDD has 40 x 32 x 256.
        bench_images, bench_blocks: the benchmark array likewise (noisy only).
        cameras: camera codes to draw from (all five by default).
        zoom: scene content is drawn at 1/zoom the size and enlarged (1: as drawn).
        noise_gain: multiplies the analogue gain of the noise model (1: the cameras' calibrated
            levels; 2: the noise of twice the recorded ISO). Folder names keep the recorded ISO.
    """

    seed: int = 0
    scenes: int = 8
    size: tuple[int, int] = (384, 512)
    val_images: int = 4
    val_blocks: int = 8
    block_size: int = 64
    bench_images: int = 2
    bench_blocks: int = 8
    cameras: tuple[str, ...] = CAMERA_CODES
    noise_gain: float = 1.0
    zoom: float = 1.0

    def __post_init__(self) -> None:
        h, w = self.size
        if min(self.scenes, self.val_images, self.val_blocks, self.block_size) < 1:
            raise ValueError("scenes, val_images, val_blocks and block_size must be >= 1")
        if self.zoom < 1:
            raise ValueError(f"zoom must be >= 1, got {self.zoom}")
        if self.noise_gain <= 0:
            raise ValueError(f"noise_gain must be positive, got {self.noise_gain}")
        if h < 16 or w < 16:
            raise ValueError(f"size {self.size} too small; need at least 16x16")
        unknown = [c for c in self.cameras if c not in CAMERA_CODES]
        if unknown:
            raise ValueError(f"unknown camera code(s) {unknown}; known: {sorted(CAMERA_CODES)}")


@dataclass(frozen=True)
class DataConfig:
    """Where the SIDD data is. ``root`` empty: generate synthetic data under ``cache_dir``."""

    root: str = ""
    cache_dir: str = "data"
    synthetic: SyntheticSpec = SyntheticSpec()
    check_images: bool = True


# ---------------------------------------------------------------------- cluster, tracking, trials


@dataclass(frozen=True)
class RayConfig:
    """Where Ray runs. ``address`` empty: ``RAY_ADDRESS`` if set (as under ``ray job submit``),
    else an embedded local Ray with ``num_cpus`` CPUs (0: all of this machine's)."""

    address: str = ""
    num_cpus: int = 0


@dataclass(frozen=True)
class TrialConfig:
    """How each stage runs as a Ray Tune trial.

    ``cpu``/``gpu``: resources of one trial (``gpu`` unset: 1 when the cluster has GPUs, else 0;
    fractions share a device). ``custom``: extra Ray resources, e.g. ``{accelerator_h100: 1}``.
    ``max_failures``: retries of a failed trial, each from its last checkpoint. ``storage``: Tune's
    storage path, shared by every node on a cluster (empty: ``<out>/ray_results``).
    ``report_every``: steps between two results reported to Tune (and buffered for MLflow, which
    receives them at each checkpoint). ``tile_cache_mb``: tiles a trial keeps in memory.
    ``max_concurrent``: trials at once (0: as many as the resources allow).
    """

    cpu: float = 1.0
    gpu: float | None = None
    custom: dict[str, float] = field(default_factory=dict)
    max_failures: int = 2
    storage: str = ""
    report_every: int = 10
    tile_cache_mb: int = 1024
    max_concurrent: int = 0


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow. ``uri`` empty: ``sqlite:///<cwd>/mlflow.db``; relative paths are made absolute.
    ``wait_s``: how long a finished stage waits for an unreachable tracking server before its
    trial fails (metrics and checkpoints are queued meanwhile, never dropped)."""

    enabled: bool = True
    uri: str = ""
    experiment: str = "noise-correlation"
    wait_s: float = 600.0


# ------------------------------------------------------------------------------------- one stage


@dataclass(frozen=True)
class MaskConfig:
    """A blind region for a blind-patch network.

    ``diamond``: LG-BPN's, L1 distance <= ``radius``. ``from_correlation``: derived from a measured
    map; ``source`` is a ``mask.npz``, a correlation job's output folder, a ``pooled_map.npy`` (then
    ``threshold`` applies), or an MLflow run (``runs:/<run_id>``).
    """

    kind: Literal["diamond", "from_correlation"] = "diamond"
    radius: int = 4
    source: str = ""
    threshold: float = 0.02


@dataclass(frozen=True)
class ModelSpec:
    """A registered model and its builder's keyword arguments. ``mask``: the blind region handed
    to the builder as ``blind`` (LG-BPN family), e.g. ``kind: from_correlation``."""

    name: str = "ssid_bnn"
    kwargs: dict[str, Any] = field(default_factory=dict)
    mask: MaskConfig | None = None


@dataclass(frozen=True)
class OptimConfig:
    """Adam and its schedule. ``cosine`` anneals to 0 over the stage's steps (SSID); ``step``
    multiplies by ``gamma`` every ``decay_epochs`` epochs, or every ``decay_every`` steps when
    that is set (AP-BSN, LG-BPN: x0.1 every 8 epochs)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine", "step"] = "constant"
    decay_epochs: int = 0
    decay_every: int = 0
    gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """How a stage trains.

    ``epochs`` > 0 sets the length in epochs of ``steps_per_epoch`` steps (0: derived from the data,
    tiles of ``epoch_tile`` at ``epoch_stride`` over the training images, divided by ``batch``);
    otherwise ``steps``. ``eval_every`` (0: only at the end) evaluates on the first ``eval_blocks``
    validation blocks. ``threads``: torch CPU threads (0: leave as is). ``precision``: ``fp32``, or
    ``bf16`` to run forward passes under bfloat16 autocast (mixed precision: weights and optimizer
    stay float32; about 2x faster where the hardware has bfloat16 arithmetic, see
    ``docs/MODELS.md``). ``channels_last``: keep the model and its inputs in NHWC memory layout
    (same function; faster convolutions on CPU). ``reuse_memory``: keep freed memory in malloc's
    heap for the rest of the process (:func:`models.runtime.reuse_freed_memory`; same function,
    faster on CPU, resident memory stays at its high-water mark).
    """

    steps: int = 400_000
    epochs: int = 0
    steps_per_epoch: int = 0
    epoch_tile: int = 512
    epoch_stride: int = 384
    batch: int = 8
    patch: int = 256
    augment: tuple[Literal["hflip", "vflip", "transpose", "rot90"], ...] = ("hflip", "vflip", "transpose")
    seed: int = 0
    optim: OptimConfig = OptimConfig()
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    eval_every: int = 10_000
    eval_blocks: int = 64
    threads: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    reuse_memory: bool = False


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``loss(model(x), *targets)`` where each target is ``noisy`` or an upstream stage."""

    name: str = "bsn"
    model: ModelSpec = ModelSpec()
    loss: str = "l1"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = (NOISY,)
    train: TrainConfig = TrainConfig()

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t != NOISY)


# ------------------------------------------------------------------------------------------ study


@dataclass(frozen=True)
class EvalConfig:
    """Final evaluation on the validation blocks: ``blocks`` 0 means all of them (the result);
    ``samples`` blocks are saved as images."""

    blocks: int = 0
    samples: int = 4
    batch: int = 8


def _paper_train() -> dict[str, TrainConfig]:
    ssid = TrainConfig(steps=400_000, batch=8, patch=256, optim=OptimConfig(lr=3e-4, schedule="cosine"))
    step = OptimConfig(lr=1e-4, schedule="step", decay_epochs=8)
    lg = TrainConfig(epochs=20, batch=8, patch=256, optim=step)
    ap = TrainConfig(epochs=20, batch=8, patch=120, augment=("hflip", "rot90"), optim=step)
    return {"ssid": ssid, "lgbpn": lg, "apbsn": ap}


@dataclass(frozen=True)
class StudyConfig:
    """A set of ablations trained under one profile.

    ``ablations``: catalogue names (empty: all). ``train``: per family. ``models``: default keyword
    arguments per registered model name. ``overrides``: per ablation, nested stage values.
    ``custom``: extra ablations, each ``{family, description, overrides}`` like a catalogue entry.
    ``stages``: train only these stage names (empty: all); the others must already be finished.
    ``pretrained``: ``<ablation>: {<stage>: <a finished model.pt>}`` used instead of training it
    (``--set pretrained.ssid.bnn=runs/stages/bnn-.../model.pt``).
    ``name``: the study's name (MLflow experiment). ``trial``: resources and retries of each stage's
    Tune trial. ``ray``: where Ray runs. ``tracking``: MLflow (``experiment`` empty: the name).
    """

    profile: str = "paper"
    ablations: tuple[str, ...] = ()
    out: str = "runs"
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    train: dict[str, TrainConfig] = field(default_factory=_paper_train)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    pretrained: dict[str, dict[str, str]] = field(default_factory=dict)
    name: str = ""
    trial: TrialConfig = TrialConfig()
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="")

    @property
    def study_name(self) -> str:
        """The MLflow experiment and Tune experiment prefix: ``name``, else ``ablations-<profile>``."""
        return self.name or f"ablations-{self.profile}"


@dataclass(frozen=True)
class AshaConfig:
    """Asynchronous successive halving over each stage trial's reported ``metric`` (``loss`` is
    reported every ``trial.report_every`` steps; ``val<n>_psnr`` every ``eval_every``)."""

    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    grace_period: int = 10
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class SweepConfig:
    """A sweep file (``jobs/sweep.py --space``): ablations, a search space over dotted keys, the
    number of random draws, and optional early stopping (:mod:`orchestrator.study.sweep`)."""

    ablations: tuple[str, ...] = ()
    samples: int = 1
    seed: int = 0
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    asha: AshaConfig | None = None


# ------------------------------------------------------------------------------------ correlation


@dataclass(frozen=True)
class CorrelationFigures:
    """What the correlation report looks at.

    ``offsets``: (dy, dx) offsets whose distribution across images is plotted (the paper's Fig. 7);
    empty: (0, 1), (2, 2), (0, 5), (7, 3), those within the map's radius.
    An image is an outlier when its coefficient exceeds ``outlier_threshold`` at some offset outside
    the central (2*``inner_radius``+1)^2 square (9x9 by default; the paper saw values above 0.2).
    ``reference``: a map drawn beside the pooled one: ``sidd`` (the authors' real SIDD Medium map),
    a ``.npy`` path, or '' for none.
    """

    offsets: tuple[tuple[int, int], ...] = ()
    outlier_threshold: float = 0.2
    inner_radius: int = 4
    log_floor: float = 1e-3
    reference: str = "sidd"


@dataclass(frozen=True)
class CorrelationConfig:
    """The Ray Data noise-correlation job (``jobs/correlation.py``).

    ``workers``: concurrent per-pair tasks (0: one per CPU of the cluster). ``threads``: FFT threads
    in each task (each task reserves that many CPUs). ``strict``: stop on any bad dataset file
    instead of leaving it out with its reason. ``resume``: reuse per-image results already in
    ``out`` for the same radius, statistic and unchanged files.
    """

    data: DataConfig = DataConfig()
    out: str = "correlation_out"
    radius: int = 10
    statistic: Literal["rgb_pearson", "pearson"] = "rgb_pearson"
    workers: int = 0
    threads: int = 1
    max_pairs: int = 0
    strict: bool = False
    resume: bool = True
    figures: CorrelationFigures = CorrelationFigures()
    mask_threshold: float = 0.02
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        for name, low in (("radius", 1), ("workers", 0), ("threads", 1), ("max_pairs", 0)):
            if getattr(self, name) < low:
                raise ConfigError(name, f"must be >= {low}, got {getattr(self, name)}")


# ------------------------------------------------------------------------------------------ tools


@dataclass(frozen=True)
class DenoiseConfig:
    """``jobs/denoise.py``: ``tile`` > 0 is the tile core side; 0: chosen from ``memory_mb`` (0 as
    well: whole images). ``margin``: context around each tile; ``blend``: the blending band.
    ``device``: ``cuda``, ``cpu`` ('' : CUDA when there is one). ``seed``: random inference (R3)."""

    out: str = "denoised"
    tile: int = 0
    memory_mb: float = 2048.0
    margin: int = 160
    blend: int = 16
    device: str = ""
    seed: int = 0
    tracking: TrackingConfig = TrackingConfig(experiment="")


@dataclass(frozen=True)
class EvaluateConfig:
    """``jobs/evaluate.py``: ``blocks`` 0 scores every validation block; ``workers`` 0 is one actor
    per GPU of the cluster, else per CPU; ``gpus_per_worker`` unset: 1 with GPUs, else 0.
    ``experiment``: the study whose ablation ``--ablation`` names ('': the newest finished run of
    that ablation in any experiment)."""

    data: DataConfig = DataConfig()
    out: str = "evaluation"
    blocks: int = 0
    batch: int = 8
    workers: int = 0
    gpus_per_worker: float | None = None
    seed: int = 0
    benchmark: bool = False
    method_name: str = ""
    experiment: str = ""
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="evaluations")


@dataclass(frozen=True)
class DemoConfig:
    """The end-to-end data-layer demo (``jobs/demo.py``)."""

    data: DataConfig = DataConfig()
    correlation_radius: int = 10
    max_pairs: int = 8
