"""The stage store: the record of a planned stage, its folder, checkpoints and finished ``model.pt``.

A stage folder holds ``config.yaml`` and ``history.jsonl`` while it trains, ``checkpoints/step_<k>.pt``
(model, optimizer, scheduler and RNG states; the newest ``keep_checkpoints`` kept), and once it has
finished ``model.pt`` (weights and a metadata header: content key, resolved config, upstream keys,
metrics), ``metrics.json``, ``per_block.csv`` and ``samples/``. Every file is written whole or not
at all (:func:`atomic_save`), and a write that fails is a :class:`StorageError` naming the file and
the checkpoint a rerun resumes from. Plain PyTorch and files: no Ray, no MLflow.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.registry import create_model
from orchestrator.config import flatten, to_dict
from orchestrator.errors import CheckpointUnusable, RunFailure
from orchestrator.schema import ModelSpec, StageConfig, TrainConfig

FORMAT = 1  # of model.pt and checkpoints

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
    "compile",
)


def key_config(cfg: StageConfig) -> dict[str, Any]:
    """The part of a stage's config that its content key and ``model.pt`` header hold."""
    d = to_dict(cfg)
    d.pop("trial")  # where a stage trains (its workers), not what it computes: docs/ORCHESTRATION.md
    for k in _NOT_IN_KEY:
        d["train"].pop(k)
    # defaults of options added later are left out: keys from before them stay valid
    if d["train"]["precision"] == "fp32":
        d["train"].pop("precision")
    for option in ("init_output_bias", "cache_targets"):
        if not d["train"][option]:
            d["train"].pop(option)
    if d["train"]["optim"]["warmup"] == 0:
        d["train"]["optim"].pop("warmup")
    return d


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    return cfg.epochs * steps_per_epoch if cfg.epochs > 0 else cfg.steps


@dataclass(frozen=True, eq=False)
class Stage:
    """One stage of a study, as the plan builds it and a trial receives it (the only record of it).

    Args:
        ablation: the first ablation that uses it (for people, and in ``model.pt``'s header).
        config: its resolved, checked config.
        key: its content key (config, upstream keys, training data).
        path: its folder in the store; for a pretrained stage, the folder of the given ``model.pt``.
        upstream: the stages its targets name, by stage name.
        steps_per_epoch: one epoch of the training data in steps (when the config counts epochs).
        pretrained: given by the user instead of trained.
    """

    ablation: str
    config: StageConfig
    key: str
    path: Path
    upstream: Mapping[str, Stage] = field(default_factory=dict)
    steps_per_epoch: int = 1
    pretrained: bool = False

    @property
    def label(self) -> str:
        return f"{self.ablation}.{self.config.name}"

    @property
    def model_file(self) -> Path:
        return self.path / "model.pt"

    @property
    def total_steps(self) -> int:
        return total_steps(self.config.train, self.steps_per_epoch)


class UpstreamError(CheckpointUnusable):
    """An upstream stage's weights are missing, unreadable, or from a different config."""


class StorageError(RunFailure):
    """A stage could not write to its folder: the disk is full, read-only, or not permitted."""


def build_model(spec: ModelSpec, *, seed: int) -> nn.Module:
    """The model of ``spec``, its weights drawn from ``seed``."""
    from orchestrator.correlation.masks import resolve_mask

    kwargs = dict(spec.kwargs)
    if spec.mask is not None:
        kwargs["blind"] = resolve_mask(spec.mask)[0]
    torch.manual_seed(seed)
    return create_model(spec.name, **kwargs)


def atomic_save(obj: Any, path: Path) -> None:
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
def writing(who: str, path: Path, ckpt_dir: Path) -> Iterator[None]:
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


# ---------------------------------------------------------------------------------- finished stages


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


def check_finished(stage: Stage, *, who: str | None = None) -> dict:
    """The header of ``stage``'s ``model.pt``, checked against its key and config."""
    meta, _ = load_finished(
        stage.model_file,
        expected_key=stage.key,
        expected_config=key_config(stage.config),
        who=who or stage.label,
    )
    return meta


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
    def finished(cls, stage: Stage, *, who: str | None = None) -> StageResult:
        """The result of ``stage``, already trained into its folder (checked against its key)."""
        meta = check_finished(stage, who=who)
        metrics, step = meta.get("metrics", {}), meta.get("step", 0)
        return cls(
            stage.config.name,
            stage.key,
            stage.model_file,
            metrics,
            step,
            reused=True,
            train_s=meta.get("train_s", 0.0),
        )


def load_stage_model(stage: Stage, *, who: str | None = None) -> nn.Module:
    """The finished network of ``stage`` (checked against its key), in eval mode on the CPU."""
    expected = key_config(stage.config)
    _, state = load_finished(
        stage.model_file, expected_key=stage.key, expected_config=expected, who=who or stage.label
    )
    net = build_model(stage.config.model, seed=stage.config.train.seed)
    net.load_state_dict(state)
    return net.eval()


def load_upstream(stage: Stage) -> dict[str, nn.Module]:
    """The frozen networks of ``stage``'s finished upstream stages, each checked against its key."""
    return {
        name: load_stage_model(up, who=f"{stage.label}: upstream {name!r}").requires_grad_(False)
        for name, up in stage.upstream.items()
    }


def save_model(stage: Stage, model: nn.Module, meta: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``stage``'s ``model.pt`` (or ``path``, a selected checkpoint in the same format): its
    weights on the CPU and a header (format, key, stage name, key config, ablation and upstream
    keys, plus ``meta``: step, metrics, training time)."""
    header = {
        "format": FORMAT,
        "key": stage.key,
        "name": stage.config.name,
        "config": key_config(stage.config),
        "ablation": stage.ablation,
        "upstream": {k: u.key for k, u in stage.upstream.items()},
        **meta,
    }
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = path or stage.model_file
    atomic_save({"meta": header, "model": weights}, path)
    return path


def best_file(stage: Stage, selection_key: str) -> Path:
    """Where ``stage`` keeps its best checkpoint on the selection subset ``selection_key`` names."""
    return stage.path / f"best-{selection_key[:12]}.pt"


def best_header(path: Path) -> dict | None:
    """The header of a best checkpoint (``step``, ``sel_psnr``...), or None when there is none."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["meta"]
    except Exception:
        return None  # cut short: the next selection step writes it again


# -------------------------------------------------------------------------------------- checkpoints


def checkpoint_name(step: int) -> str:
    return f"step_{step:09d}.pt"


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint file named by :func:`checkpoint_name`."""
    return int(path.stem.split("_")[1])


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step_*.pt"))  # zero-padded: name order is step order
    return found[-1] if found else None


def save_checkpoint(ckpt_dir: Path, key: str, step: int, model: nn.Module, opt, sched, keep: int) -> Path:
    """Write the state at ``step`` (model, optimizer, scheduler, RNGs) and drop all but the
    newest ``keep`` checkpoints."""
    state = {
        "meta": {"format": FORMAT, "key": key, "step": step},
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / checkpoint_name(step)
    atomic_save(state, path)
    for old in sorted(ckpt_dir.glob("step_*.pt"))[: -max(1, keep)]:
        old.unlink()
    return path


def resume(ckpt_dir: Path, key: str, model: nn.Module, opt, sched) -> int:
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
