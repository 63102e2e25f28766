"""One stage's config: its model, loss, targets and training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

NOISY = "noisy"  # a stage target: the noisy input itself


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
    that is set (AP-BSN, LG-BPN: x0.1 every 8 epochs). ``warmup`` > 0: the learning rate rises
    linearly over the first ``warmup`` steps (step k uses ``(k + 1) / warmup`` of it), the schedule
    applying on top."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine", "step"] = "constant"
    decay_epochs: int = 0
    decay_every: int = 0
    gamma: float = 0.1
    warmup: int = 0


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
    faster on CPU, resident memory stays at its high-water mark). ``init_output_bias``: before the
    first step, shift the bias of the network's output convolution so that its mean output on the
    first batch equals that batch's per-channel mean (a data-dependent initialisation: the network
    starts at the data's intensity instead of near 0; its function is unchanged). ``compile``:
    ``torch.compile`` the network for training (same function; not part of the stage key).
    ``cache_targets``: compute the upstream stages' outputs once per training image at the stage's
    start (R3 included, rounded to 8 bits as the metrics score them) and crop them with the noisy
    crops, instead of running the upstream networks on every batch (``docs/TRAINING.md``,
    distillation).
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
    init_output_bias: bool = False
    compile: bool = False
    cache_targets: bool = False


@dataclass(frozen=True)
class StageTrial:
    """How a stage's trial trains. ``workers``: data-parallel training processes (Ray Train
    workers, DistributedDataParallel), each holding the study's ``trial.cpu`` and ``trial.gpu``
    and training on ``train.batch / workers`` of each step's crops (``docs/ORCHESTRATION.md``).
    Set for every stage with ``--set trial.workers=N``, for one with ``overrides``. It changes
    where a stage computes, not what: it is not part of the stage key."""

    workers: int = 1


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``loss(model(x), *targets)`` where each target is ``noisy`` or an upstream stage."""

    name: str = "bsn"
    model: ModelSpec = ModelSpec()
    loss: str = "l1"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = (NOISY,)
    train: TrainConfig = TrainConfig()
    trial: StageTrial = StageTrial()

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t != NOISY)
