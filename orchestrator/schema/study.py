"""A study's config: the ablations, their training per family, evaluation, trials, Ray, MLflow;
and a sweep file's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.schema.data import DataConfig
from orchestrator.schema.stage import OptimConfig, TrainConfig


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
    ``max_concurrent``: trials at once (0: as many as the resources allow). ``workers``: each
    stage's data-parallel workers (:class:`~orchestrator.schema.stage.StageTrial`; a stage's own
    ``trial.workers`` in ``overrides`` wins); above 1, ``cpu`` and ``gpu`` are per worker.
    """

    cpu: float = 1.0
    gpu: float | None = None
    custom: dict[str, float] = field(default_factory=dict)
    max_failures: int = 2
    storage: str = ""
    report_every: int = 10
    tile_cache_mb: int = 1024
    max_concurrent: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow. ``uri`` empty: ``sqlite:///<cwd>/mlflow.db``; relative paths are made absolute.
    ``wait_s``: how long a finished stage waits for an unreachable tracking server before its
    trial fails (metrics and checkpoints are queued meanwhile, never dropped)."""

    enabled: bool = True
    uri: str = ""
    experiment: str = "noise-correlation"
    wait_s: float = 600.0


@dataclass(frozen=True)
class ClassicalOptions:
    """Settings of the classical reference rows (``orchestrator/study/references.py``); their
    scores are cached by them.

    ``sigma``: how the noise level is estimated from each noisy image alone: ``pd``, the wavelet
    estimate averaged over the pixel-shuffle sub-images of stride ``sigma_stride`` (spatially
    correlated real noise, the default), or ``wavelet`` on the image itself (white noise).
    ``nlm_h``: non-local means' strength as a multiple of sigma. ``bm3d_step``, ``bm3d_window``:
    BM3D's reference-block step and block-matching search window, both stages (the bm3d package's
    own: 3 and 39; larger steps and smaller windows are faster, ``docs/BENCHMARKS.md``).
    """

    sigma: Literal["pd", "wavelet"] = "pd"
    sigma_stride: int = 4
    nlm_h: float = 0.8
    bm3d_step: int = 3
    bm3d_window: int = 39

    def __post_init__(self) -> None:
        if self.sigma_stride < 1:
            raise ValueError(f"sigma_stride must be >= 1, got {self.sigma_stride}")
        if self.nlm_h <= 0:
            raise ValueError(f"nlm_h must be positive, got {self.nlm_h}")
        if self.bm3d_step < 1:
            raise ValueError(f"bm3d_step must be >= 1, got {self.bm3d_step}")
        if self.bm3d_window < 8:
            raise ValueError(f"bm3d_window must be >= 8 (BM3D's block side), got {self.bm3d_window}")


@dataclass(frozen=True)
class EvalConfig:
    """How a study scores its models (``docs/METRICS.md``).

    ``select`` > 0: checkpoint selection without leakage. In each evaluation source the images
    whose index is a multiple of ``select`` form the selection subset, the others the reported
    subset; trials validate on the first source's selection subset every ``train.eval_every``
    steps and keep the best checkpoint by PSNR, which is reported on the reported subset beside the
    last one. 0: no selection; the last checkpoint is scored on every block.
    ``blocks`` > 0: only the first ``blocks`` reported blocks (named ``val<n>_*``); 0: all.
    ``references``: classical rows scored beside the models (``noisy input``, ``nlm``, ``bm3d``);
    ``classical``: the settings of ``nlm`` and ``bm3d`` (:class:`ClassicalOptions`).
    ``resamples``: of the bootstrap intervals (95 %, seeded). ``samples``: blocks shown per model
    (the most textured). ``batch``: blocks per evaluation batch. ``cost_blocks``: 256x256 blocks
    timed per row for ``ms_per_block`` (median, after a warm-up; 0: not timed).
    """

    blocks: int = 0
    samples: int = 4
    batch: int = 8
    select: int = 0
    references: tuple[Literal["noisy input", "nlm", "bm3d"], ...] = ("noisy input", "nlm", "bm3d")
    classical: ClassicalOptions = ClassicalOptions()
    resamples: int = 2000
    cost_blocks: int = 3

    def __post_init__(self) -> None:
        if self.select < 0 or self.select == 1:
            raise ValueError(f"select must be 0 (off) or >= 2 (one image in select), got {self.select}")
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {self.resamples}")
        if self.cost_blocks < 0:
            raise ValueError(f"cost_blocks must be >= 0, got {self.cost_blocks}")


@dataclass(frozen=True)
class PriorConfig:
    """What every blind network of a study hides, from its training images' own noise
    (``docs/CORRELATION.md``, "Noisy images alone"; ``orchestrator/study/prior.py``).

    ``measure``: before planning, run the correlation job's ``residual`` statistic on the training
    source (no clean image needed; ``OUT/prior/``) and hide the offsets connected to the centre
    whose coefficient exceeds ``threshold``, within ``max_radius`` of it. ``hidden``: those offsets
    (dy, dx), set by the measurement or by hand (empty, and ``measure`` off: each network keeps its
    own, the published ones). Each blind network takes the region its own way
    (``models.registry.fit_region``): LG-BPN's masks hide it exactly, SSID's BNN hides the smallest
    square holding it, AP-BSN shuffles pixels with a stride one more than its radius. The region
    fills the networks' arguments that the ablation and ``overrides`` leave unset, before
    ``models.<name>``; it enters every stage key through them.
    """

    measure: bool = False
    threshold: float = 0.2
    max_radius: int = 4
    hidden: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.max_radius <= 10:
            raise ValueError(f"max_radius must be in [1, 10], got {self.max_radius}")


def _paper_train() -> dict[str, TrainConfig]:
    ssid = TrainConfig(steps=400_000, batch=8, patch=256, optim=OptimConfig(lr=3e-4, schedule="cosine"))
    step = OptimConfig(lr=1e-4, schedule="step", decay_epochs=8)
    lg = TrainConfig(epochs=20, batch=8, patch=256, optim=step)
    ap = TrainConfig(epochs=20, batch=8, patch=120, augment=("hflip", "rot90"), optim=step)
    # the distilled student: SSID's stage-3 recipe, with flips and rotations as AT-BSN(D) and APR-RD
    student = dataclasses.replace(ssid, steps=100_000, augment=("hflip", "rot90"))
    return {"ssid": ssid, "lgbpn": lg, "apbsn": ap, "distill": student}


@dataclass(frozen=True)
class StudyConfig:
    """A set of ablations trained under one profile.

    ``ablations``: catalogue names (empty: all). ``train``: per family. ``models``: default keyword
    arguments per registered model name. ``overrides``: per ablation, nested stage values.
    ``custom``: extra ablations, each ``{family, description, overrides}`` like a catalogue entry.
    ``stages``: train only these stage names (empty: all); the others must already be finished.
    ``pretrained``: ``<ablation>: {<stage>: <a finished model.pt>}`` used instead of training it
    (``--set pretrained.ssid.bnn=runs/stages/bnn-.../model.pt``). ``seeds``: train every chosen
    ablation with this many seeds (``train.seed``, ``train.seed + 1``, ...): distinct stage keys,
    and the table's mean, std and interval over them (``--seeds``). ``distill``: a registered
    model name (``--distill [MODEL]``, default ``ssid_unet``); every chosen ablation ``X`` gets a row
    ``X+D``: its stages, then a ``distill`` stage training that model with L1 to X's final
    inference output (R3 included), under ``train.distill``; empty: none. ``distill_kwargs``: the
    student's arguments, over ``models.<MODEL>``. ``prior``: the blind region of every blind
    network, measured on the training images (:class:`PriorConfig`).
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
    seeds: int = 1
    distill: str = ""
    distill_kwargs: dict[str, Any] = field(default_factory=dict)
    prior: PriorConfig = PriorConfig()
    name: str = ""
    trial: TrialConfig = TrialConfig()
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="")

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")

    @property
    def study_name(self) -> str:
        """The MLflow experiment and Tune experiment prefix: ``name``, else ``ablations-<profile>``."""
        return self.name or f"ablations-{self.profile}"

    @property
    def experiment(self) -> str:
        """The MLflow experiment the study's runs go to: ``tracking.experiment``, else its name."""
        return self.tracking.experiment or self.study_name


@dataclass(frozen=True)
class AshaConfig:
    """Asynchronous successive halving over each stage trial's reported ``metric`` (``loss`` is
    reported every ``trial.report_every`` steps; ``val<n>_psnr`` every ``eval_every``, and
    ``sel_psnr`` (the selection subset) with ``eval.select``)."""

    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    grace_period: int = 10
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class SweepConfig:
    """A sweep file (``jobs/sweep.py --space``): ablations, a search space over dotted keys, the
    number of random draws, and optional early stopping (:mod:`orchestrator.study.sweep`).
    ``select``: the ``eval.select`` a sweep runs with unless ``--set eval.select=...`` says
    otherwise: the best configuration is chosen on the selection subset and reported on the rest
    (0: chosen on the reported blocks themselves, which the verdict then says)."""

    ablations: tuple[str, ...] = ()
    select: int = 4
    samples: int = 1
    seed: int = 0
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    asha: AshaConfig | None = None
