"""Load a denoiser from wherever its weights are: a stage's ``model.pt``, an MLflow run or model
URI, or a state dict saved by one of the original implementations.

Every file is read with ``torch.load(weights_only=True)``: tensors and plain containers only,
nothing is ever executed. Each way it can fail is a :class:`CheckpointError` that says which
source and why: missing, not a checkpoint, a training checkpoint instead of a model, weights of
another architecture, an MLflow run or model that does not exist.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orchestrator.errors import CheckpointUnusable

__all__ = ["CheckpointError", "Denoiser", "load_denoiser", "load_named"]

# Keys under which training scripts commonly nest a state dict.
_WRAPPERS = ("state_dict", "model_state_dict", "model_weight", "denoiser", "net", "model", "params")


class CheckpointError(CheckpointUnusable):
    """A checkpoint source cannot give a denoiser."""


@dataclass
class Denoiser:
    model: nn.Module
    source: str
    description: str
    meta: dict[str, Any] = field(default_factory=dict)


def load_named(
    source: str, *, tracking_uri: str = "", original: str = "", original_kwargs: str = "{}"
) -> Denoiser:
    """:func:`load_denoiser` from a job's command line: ``original_kwargs`` is JSON text.

    Raises:
        ConfigError: ``original_kwargs`` is not JSON.
        CheckpointError: the source cannot give a denoiser.
    """
    from orchestrator.config import ConfigError

    try:
        kwargs = json.loads(original_kwargs)
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"--original-kwargs is not JSON ({exc})") from None
    return load_denoiser(source, tracking_uri=tracking_uri, original=original, original_kwargs=kwargs)


def load_denoiser(
    source: str,
    *,
    tracking_uri: str = "",
    original: str = "",
    original_kwargs: Mapping[str, Any] | None = None,
) -> Denoiser:
    """The network at ``source``, in eval mode on the CPU.

    Args:
        source: a ``model.pt`` written by a stage; ``runs:/<run id>[/<path>]`` (a stage's run, or
            an ablation's parent run, followed to its final stage); ``models:/<name>/<version>``
            or ``models:/<name>@<alias>`` (a registered model version, read from its run); or,
            with ``original``, a state dict saved by an original implementation.
        tracking_uri: the MLflow store for run and model URIs.
        original: the original class (e.g. ``model.BNN`` or the names listed by
            ``models.convert.CONVERTERS``), with ``original_kwargs`` its constructor arguments.
    """
    if source.startswith(("runs:/", "models:/")):
        with tempfile.TemporaryDirectory() as tmp:
            path, where = _download(source, tracking_uri, Path(tmp))
            den = _from_file(path, source, original, original_kwargs)
            den.description += f" ({where})"
            return den
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{source}: no such file")
    return _from_file(path, source, original, original_kwargs)


def _download(uri: str, tracking_uri: str, dst: Path) -> tuple[Path, str]:
    from orchestrator.schema import TrackingConfig
    from orchestrator.tracking import Tracker

    tracker = Tracker(TrackingConfig(uri=tracking_uri))
    try:
        run_id, artifact = tracker.model_source(uri)
        path = tracker.download(run_id, artifact, dst)
    except ValueError as exc:
        raise CheckpointError(f"{uri}: {exc}") from None
    return path, f"MLflow run {run_id} in {tracker.uri}"


def _load(path: Path, source: str) -> Any:
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # torch.save writes a zip (or a pickle)
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, a zip error, a disallowed global: never executed
        text = str(exc).strip()
        # torch words a refused global two ways ("Unsupported global: GLOBAL print", "Trying to
        # load unsupported GLOBAL posix.system whose module posix is blocked"); name it either way.
        name = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
        operand = re.search(r"Unsupported operand \S+", text)
        if name or operand:
            what = f"global {name.group(1)} refused" if name else operand.group(0)
            reason = f"it holds Python objects, not only tensors ({what}); nothing was run"
        else:
            reason = f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"
        raise CheckpointError(
            f"{source}: not a checkpoint this tool can read safely (loaded with weights_only=True: "
            f"tensors and plain containers only; {reason})"
        ) from None


def _from_file(path: Path, source: str, original: str, original_kwargs: Mapping | None) -> Denoiser:
    blob = _load(path, source)
    if original:
        return _from_original(blob, source, original, dict(original_kwargs or {}))
    if not isinstance(blob, dict) or "model" not in blob or "meta" not in blob:
        raise CheckpointError(
            f"{source}: not a stage's model.pt (no meta header); for weights saved by an original "
            "implementation, name its class with --original (and its arguments with --original-kwargs)"
        )
    meta = blob["meta"]
    if "config" not in meta:
        raise CheckpointError(
            f"{source}: a training checkpoint (step {meta.get('step')}), not a finished stage; "
            "use the stage's model.pt"
        )
    from orchestrator.config import from_dict
    from orchestrator.schema import ModelSpec
    from orchestrator.train.store import build_model

    spec = from_dict(ModelSpec, meta["config"]["model"], prefix="model")
    model = build_model(spec, seed=0)
    _load_state(model, blob["model"], source, spec.name)
    args = json.dumps(spec.kwargs, sort_keys=True)
    desc = f"{spec.name} {args}, stage {meta.get('name')} step {meta.get('step')}"
    return Denoiser(model.eval(), source, desc, meta)


def _load_state(model: nn.Module, state: Mapping, source: str, name: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise CheckpointError(
            f"{source}: its weights do not fit the {name} architecture ({state_mismatch(model, state)})"
        ) from None


def state_mismatch(model: nn.Module, state: Mapping) -> str:
    """How ``state`` differs from ``model``'s parameters, in one line with an example of each."""
    want = model.state_dict()
    parts = []
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        f"{k}: {tuple(getattr(state[k], 'shape', ()))} here, {tuple(want[k].shape)} expected"
        for k in want
        if k in state and getattr(state[k], "shape", None) != want[k].shape
    ]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} {label}, e.g. {keys[0]}")
    return "; ".join(parts) or "same keys and shapes, different types"


def _unwrap(blob: Any) -> Mapping[str, torch.Tensor] | None:
    for _ in range(4):
        if isinstance(blob, Mapping) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            return blob
        if not isinstance(blob, Mapping):
            return None
        inner = [blob[k] for k in _WRAPPERS if k in blob and isinstance(blob[k], Mapping)]
        if len(inner) != 1 and len(blob) == 1:
            inner = [next(iter(blob.values()))]
        if len(inner) != 1:
            return None
        blob = inner[0]
    return None


def _from_original(blob: Any, source: str, constructor: str, kwargs: dict) -> Denoiser:
    from models.convert import CONVERTERS, from_original

    if constructor not in CONVERTERS:
        raise CheckpointError(f"--original {constructor!r}: unknown; known: {sorted(CONVERTERS)}")
    state = _unwrap(blob)
    if state is None:
        raise CheckpointError(f"{source}: holds no state dict of tensors")
    try:
        model = from_original(constructor, kwargs, state)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"{source}: its weights do not fit {constructor} with {kwargs} ({str(exc)[:400]})"
        ) from None
    return Denoiser(
        model.eval(), source, f"{constructor} {json.dumps(kwargs, sort_keys=True)} (original weights)"
    )
