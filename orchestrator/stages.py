"""One training stage: a model built from config, a loss against named targets, frozen upstream
stages, a deterministic crop stream, an optimizer and schedule, evaluation and checkpoints.

SSID is three stages (``bnn`` -> ``lan`` -> ``unet``); LG-BPN and AP-BSN are one (``bsn``). A
stage's ``targets`` say what its loss compares the output with: ``noisy`` (the input itself) or the
inference output of an upstream stage, by name. The loop is plain PyTorch; Ray and MLflow call it.

Determinism: the model is initialised from ``torch.manual_seed(train.seed)``, batch k is a function
of (seed, k) only, evaluation forks the RNG, and a checkpoint holds the model, optimizer, scheduler
and RNG states. Resuming from any checkpoint therefore continues exactly as an uninterrupted run.

A stage folder holds ``checkpoints/step_<k>.pt`` while it trains and ``model.pt`` (weights and a
metadata header: content key, resolved config, upstream keys, metrics) once it has finished.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from models.losses import create_loss, list_losses
from models.precision import autocast
from models.registry import create_model, is_model, list_models, model_arguments
from models.runtime import reuse_freed_memory
from orchestrator.config import ConfigError, MaskConfig, flatten, from_dict, to_dict, to_yaml
from orchestrator.data.crops import CropSampler, tiles_per_image
from orchestrator.evaluation import device_for, evaluate, infer, to_tensor
from orchestrator.progress import Progress

NOISY = "noisy"
FORMAT = 1  # of model.pt and checkpoints


# ----------------------------------------------------------------------------------------- config


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


# Fields that change how a run is watched, not what it computes: left out of content keys.
# The memory layout changes only the order of floating-point additions, like the thread count.
_NOT_IN_KEY = (
    "checkpoint_every",
    "keep_checkpoints",
    "eval_every",
    "eval_blocks",
    "threads",
    "channels_last",
    "reuse_memory",
)


def key_config(cfg: StageConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    for k in _NOT_IN_KEY:
        d["train"].pop(k)
    if d["train"]["precision"] == "fp32":  # the default is left out: keys from before it stay valid
        d["train"].pop("precision")
    return d


def check_stage(cfg: StageConfig, *, where: str) -> None:
    """Model, kwargs and loss exist; raises :class:`ConfigError` naming ``where.<key>``."""
    if not is_model(cfg.model.name):
        raise ConfigError(f"{where}.model.name", f"unknown model {cfg.model.name!r}; known: {list_models()}")
    accepted = model_arguments(cfg.model.name)
    for k in cfg.model.kwargs:
        if k not in accepted:
            raise ConfigError(
                f"{where}.model.kwargs.{k}", f"not an argument of {cfg.model.name!r} ({accepted})"
            )
    if cfg.model.mask is not None and "blind" not in accepted:
        raise ConfigError(f"{where}.model.mask", f"{cfg.model.name!r} takes no blind region")
    if cfg.loss not in list_losses():
        raise ConfigError(f"{where}.loss", f"unknown loss {cfg.loss!r}; known: {list_losses()}")
    if not cfg.targets:
        raise ConfigError(f"{where}.targets", "a stage needs at least one target")
    t = cfg.train
    for key, value in (("batch", t.batch), ("patch", t.patch), ("checkpoint_every", t.checkpoint_every)):
        if value < 1:
            raise ConfigError(f"{where}.train.{key}", f"must be >= 1, got {value}")
    if t.epochs <= 0 and t.steps < 1:
        raise ConfigError(f"{where}.train.steps", f"must be >= 1 when epochs is 0, got {t.steps}")
    if t.optim.lr <= 0:
        raise ConfigError(f"{where}.train.optim.lr", f"must be positive, got {t.optim.lr}")
    if t.optim.schedule == "step" and t.optim.decay_every <= 0 and t.optim.decay_epochs <= 0:
        raise ConfigError(f"{where}.train.optim", "schedule 'step' needs decay_every or decay_epochs > 0")


def build_model(spec: ModelSpec, *, seed: int) -> nn.Module:
    """The model of ``spec``, its weights drawn from ``seed``."""
    from orchestrator.masks import resolve_mask

    kwargs = dict(spec.kwargs)
    if spec.mask is not None:
        kwargs["blind"] = resolve_mask(spec.mask)[0]
    torch.manual_seed(seed)
    return create_model(spec.name, **kwargs)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    return cfg.epochs * steps_per_epoch if cfg.epochs > 0 else cfg.steps


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    o = cfg.optim
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps(cfg, steps_per_epoch))
    if o.schedule == "step":
        every = o.decay_every or o.decay_epochs * steps_per_epoch
        if every <= 0:
            raise ConfigError("train.optim", "schedule 'step' needs decay_every or decay_epochs > 0")
        return torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=o.gamma)
    return None


# ------------------------------------------------------------------------------------- stage files


class UpstreamError(RuntimeError):
    """An upstream stage's weights are missing, unreadable, or from a different config."""


class StorageError(RuntimeError):
    """A stage could not write to its folder: the disk is full, read-only, or not permitted."""


def _atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` to ``path`` whole or not at all. It is serialized in memory, written to a
    temporary file and synced (a full network disk may only say so then), then renamed over
    ``path``. A failed write removes its temporary file and raises the ``OSError``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _writing(who: str, path: Path, ckpt_dir: Path):
    """Turn an ``OSError`` while writing ``path`` into a :class:`StorageError` that names the file,
    the reason and the checkpoint a rerun resumes from."""
    try:
        yield
    except OSError as exc:
        try:
            kept = latest_checkpoint(ckpt_dir)
        except OSError:
            kept = None
        if kept is not None:
            left = (
                f"the checkpoints in {ckpt_dir} are intact; a rerun resumes from step {checkpoint_step(kept)}"
            )
        else:
            left = "no checkpoint of this stage was written yet"
        reason = exc.strerror or str(exc)
        raise StorageError(
            f"{who}: cannot write {path}: {reason}; {left}. Free space or make {path.parent} writable, "
            "then run the job again"
        ) from exc


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    return [
        f"{k}: {fa.get(k)!r} here, {fb.get(k)!r} expected"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]


def load_finished(
    path: Path, *, expected_key: str | None = None, expected_config: Mapping | None = None, who: str = "stage"
) -> tuple[dict, dict]:
    """(meta, state_dict) of a finished stage's ``model.pt``, checked against the expected key.

    Raises:
        UpstreamError: missing, unreadable, or trained with a different config (the message lists
            the config keys that differ).
    """
    if not path.is_file():
        raise UpstreamError(f"{who}: {path} does not exist; train that stage first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = blob["meta"], blob["model"]
    except Exception as exc:
        raise UpstreamError(f"{who}: cannot read {path} ({type(exc).__name__}: {exc})") from None
    if expected_key is not None and meta.get("key") != expected_key:
        diff = _config_diff(meta.get("config", {}), expected_config or {})
        detail = "; ".join(diff[:6]) if diff else "same config, different upstream stages or data"
        raise UpstreamError(f"{who}: {path} was trained with a different config ({detail})")
    return meta, state


@dataclass
class StageResult:
    name: str
    key: str
    path: Path
    metrics: dict[str, float]
    steps: int
    reused: bool = False
    train_s: float = 0.0  # training and final evaluation, in the run that finished it

    @classmethod
    def finished(cls, path: Path, key: str, cfg: StageConfig, *, who: str) -> StageResult:
        """The result of a stage already trained into ``path`` (checked against ``key``)."""
        meta, _ = load_finished(path, expected_key=key, expected_config=key_config(cfg), who=who)
        metrics, step = meta.get("metrics", {}), meta.get("step", 0)
        return cls(cfg.name, key, path, metrics, step, reused=True, train_s=meta.get("train_s", 0.0))


def checkpoint_name(step: int) -> str:
    return f"step_{step:09d}.pt"


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint file named by :func:`checkpoint_name`."""
    return int(path.stem.split("_")[1])


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step_*.pt"))  # zero-padded: name order is step order
    return found[-1] if found else None


def _save_checkpoint(ckpt_dir: Path, step: int, state: dict, keep: int) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / checkpoint_name(step)
    _atomic_save(state, path)
    for old in sorted(ckpt_dir.glob("step_*.pt"))[: -max(1, keep)]:
        old.unlink()
    return path


# ------------------------------------------------------------------------------------------- train


@dataclass
class StageContext:
    """What a stage needs besides its config: data, frozen upstream networks, where to write."""

    key: str
    out_dir: Path
    sampler_images: Sequence[np.ndarray]
    sampler_names: list[str]
    validation: tuple[np.ndarray, np.ndarray] | None
    upstream: dict[str, nn.Module] = field(default_factory=dict)
    steps_per_epoch: int = 1
    eval_final_blocks: int = 0
    eval_samples: int = 4
    eval_batch: int = 8
    progress: bool = True
    sampler_shapes: list[tuple[int, int]] | None = None
    device: str = ""  # '' -> cuda when there is one, else cpu
    on_start: Callable[[int], None] | None = None  # step training starts (or resumes) from
    on_step: Callable[[int, dict], None] | None = None  # step, {"step", "loss", "lr", val*...}
    on_checkpoint: Callable[[int, Path], None] | None = None
    meta_extra: dict[str, Any] = field(default_factory=dict)

    def torch_device(self) -> torch.device:
        return device_for(self.device)


def train_stage(cfg: StageConfig, ctx: StageContext) -> StageResult:
    """Train ``cfg`` (or resume it from its latest checkpoint, or return it if finished)."""
    out = ctx.out_dir
    final = out / "model.pt"
    if final.is_file():
        return StageResult.finished(final, ctx.key, cfg, who=cfg.name)
    missing = [u for u in cfg.upstream if u not in ctx.upstream]
    if missing:
        raise UpstreamError(f"{cfg.name}: upstream stage(s) {missing} not loaded")
    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if t.reuse_memory and not reuse_freed_memory():
        print(f"[{cfg.name}] train.reuse_memory: not a glibc C library, left as it is", flush=True)
    ckpt_dir = out / "checkpoints"
    with _writing(cfg.name, out / "config.yaml", ckpt_dir):
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(to_yaml(cfg))
    device = ctx.torch_device()
    model = build_model(cfg.model, seed=t.seed).to(device, memory_format=_layout(t))
    opt = torch.optim.Adam(model.parameters(), lr=t.optim.lr, betas=t.optim.betas)
    sched = make_scheduler(opt, t, ctx.steps_per_epoch)
    for net in ctx.upstream.values():
        net.to(device, memory_format=_layout(t)).eval().requires_grad_(False)
    step = _resume(ckpt_dir, ctx.key, model, opt, sched)
    if ctx.on_start is not None:
        ctx.on_start(step)
    started = time.perf_counter()
    step = _fit(cfg, ctx, model, opt, sched, step)
    metrics: dict[str, float] = {}
    if ctx.validation is not None:
        with _writing(cfg.name, out / "samples", ckpt_dir):
            metrics = evaluate(
                model,
                *ctx.validation,
                blocks=ctx.eval_final_blocks,
                seed=t.seed,
                batch=ctx.eval_batch,
                samples=ctx.eval_samples,
                sample_dir=out / "samples",
            )
    meta = {"format": FORMAT, "key": ctx.key, "name": cfg.name, "config": key_config(cfg), "step": step}
    meta["train_s"] = time.perf_counter() - started  # this run's training and evaluation
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with _writing(cfg.name, final, ckpt_dir):
        _atomic_save({"meta": {**meta, "metrics": metrics, **ctx.meta_extra}, "model": weights}, final)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return StageResult(cfg.name, ctx.key, final, metrics, step, train_s=meta["train_s"])


def _layout(t: TrainConfig) -> torch.memory_format:
    return torch.channels_last if t.channels_last else torch.contiguous_format


def _fit(cfg: StageConfig, ctx: StageContext, model: nn.Module, opt, sched, step: int) -> int:
    """The training loop from ``step`` to the end; returns the last step."""
    t = cfg.train
    total = total_steps(t, ctx.steps_per_epoch)
    loss_fn = create_loss(cfg.loss, **cfg.loss_kwargs)
    sampler = CropSampler(
        ctx.sampler_images,
        names=ctx.sampler_names,
        patch=t.patch,
        batch=t.batch,
        seed=t.seed,
        augment=t.augment,
        shapes=ctx.sampler_shapes,
    )
    device = ctx.torch_device()
    bar = Progress(f"{cfg.name} {ctx.key[:8]}", total) if ctx.progress else None
    if bar and step:
        bar.done = step
        print(f"[{cfg.name}] resuming at step {step} of {total}", flush=True)
    layout = _layout(t)
    model.train()
    ckpt_dir, history_path = ctx.out_dir / "checkpoints", ctx.out_dir / "history.jsonl"
    with _writing(cfg.name, history_path, ckpt_dir):
        history = _open_history(history_path, step)
    try:
        while step < total:
            x = to_tensor(sampler.batch(step)).to(device, memory_format=layout)
            with torch.no_grad(), autocast(t.precision, device):
                targets = [x if name == NOISY else infer(ctx.upstream[name], x) for name in cfg.targets]
            with autocast(t.precision, device):
                out = model(x)
            loss = loss_fn(out.float(), *(y.float() for y in targets))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{cfg.name}: loss is {loss.item()} at step {step}; last checkpoint kept"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            record = {"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
            if ctx.validation is not None and t.eval_every > 0 and step % t.eval_every == 0 and step < total:
                record |= evaluate(
                    model, *ctx.validation, blocks=t.eval_blocks, batch=ctx.eval_batch, seed=t.seed
                )
            with _writing(cfg.name, history_path, ckpt_dir):
                history.write(json.dumps(record) + "\n")
            path = None
            if step % t.checkpoint_every == 0 and step < total:
                with _writing(cfg.name, history_path, ckpt_dir):
                    history.flush()
                target = ckpt_dir / checkpoint_name(step)
                with _writing(cfg.name, target, ckpt_dir):
                    path = _save_checkpoint(
                        ckpt_dir, step, _state(ctx.key, step, model, opt, sched), t.keep_checkpoints
                    )
            if bar:
                bar.update(note=f"loss {record['loss']:.4g}")
            if ctx.on_step is not None:
                ctx.on_step(step, record)
            if path is not None and ctx.on_checkpoint is not None:
                ctx.on_checkpoint(step, path)
    except BaseException:
        with contextlib.suppress(OSError):  # what is buffered goes out if it can; the error stays first
            history.close()
        raise
    with _writing(cfg.name, history_path, ckpt_dir):
        history.close()
    return step


def _open_history(path: Path, step: int):
    """The history file for appending, cut back to the records up to ``step`` (a resumed run
    repeats the steps after its checkpoint)."""
    if path.is_file():
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # a line cut short by a full disk, or blank
                continue
        path.write_text("".join(line + "\n" for line in kept))
    return path.open("a")


def _state(key: str, step: int, model: nn.Module, opt, sched) -> dict:
    return {
        "meta": {"format": FORMAT, "key": key, "step": step},
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _resume(ckpt_dir: Path, key: str, model: nn.Module, opt, sched) -> int:
    """Load the latest checkpoint of this stage if there is one; return its step (0: none)."""
    path = latest_checkpoint(ckpt_dir)
    if path is None:
        return 0
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"cannot read checkpoint {path} ({exc}); delete it to resume from an earlier one"
        ) from None
    if blob["meta"].get("key") != key:
        raise UpstreamError(f"checkpoint {path} belongs to another config (key {blob['meta'].get('key')})")
    model.load_state_dict(blob["model"])
    opt.load_state_dict(blob["optimizer"])
    if sched is not None:
        sched.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    if blob.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return int(blob["meta"]["step"])


def steps_per_epoch(cfg: TrainConfig, sizes: list[tuple[int, int]]) -> int:
    """Steps in one epoch: ``cfg.steps_per_epoch`` if set, else the data's tiles over the batch."""
    if cfg.steps_per_epoch > 0:
        return cfg.steps_per_epoch
    tiles = sum(tiles_per_image(h, w, tile=cfg.epoch_tile, stride=cfg.epoch_stride) for h, w in sizes)
    return max(1, math.ceil(tiles / cfg.batch))


def stage_from_dict(data: Mapping[str, Any], *, where: str) -> StageConfig:
    cfg = from_dict(StageConfig, data, prefix=where)
    check_stage(cfg, where=where)
    return cfg
