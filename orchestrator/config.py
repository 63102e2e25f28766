"""Configs: frozen dataclasses, filled from defaults <- YAML <- dotted command-line overrides.

One strict path (STYLE.md 4-5): :func:`build` takes a dataclass type, an optional YAML file and
``key.sub=value`` overrides. Unknown keys and values of the wrong type raise :class:`ConfigError`
naming the full dotted key. :func:`to_yaml` writes the resolved config back; loading that text
gives an equal config (round trip).

Supported field types: bool, int, float (ints accepted), str, ``X | None``, ``Literal[...]``,
``tuple[T, ...]`` and fixed ``tuple[A, B]``, ``dict[str, T]``, and nested dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from orchestrator.data.synthetic import SyntheticSpec

T = TypeVar("T")
_SCI_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


class ConfigError(ValueError):
    """A config key is unknown or its value has the wrong type. ``key`` is the dotted path."""

    def __init__(self, key: str, message: str):
        self.key, self.reason = key, message
        super().__init__(f"config key {key!r}: {message}" if key else message)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against ``tp`` and convert containers (lists -> tuples, dicts -> dataclasses)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, f"expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(key, f"expected {len(args)} items, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        kt, vt = args or (str, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected bool (true/false), got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected int, got {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept exactly that spelling of a number.
        if isinstance(value, str) and _SCI_FLOAT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected str, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported field type {_type_name(tp)}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; missing keys keep their defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"expected a mapping, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            raise ConfigError(key, f"unknown key; {cls.__name__} has {sorted(fields)}")
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(prefix, f"invalid {cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> Any:
    """Plain nested dict/list/scalars (tuples become lists) suitable for YAML and JSON."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, list | tuple):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for every leaf (lists kept as values): for MLflow params."""
    out: dict[str, Any] = {}
    d = to_dict(cfg) if not isinstance(cfg, Mapping) else cfg
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key:
        raise ConfigError(key, f"override {text!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"cannot parse value {raw!r}: {exc}") from None
    return key, value


def _field_type(cls: type, path: list[str]) -> Any:
    tp: Any = cls
    for i, part in enumerate(path):
        if tp is Any:  # below a free-form mapping's value: anything goes, checked where it is used
            return Any
        if typing.get_origin(tp) is dict:  # a free-form mapping: the part is one of its keys
            tp = (typing.get_args(tp) or (str, Any))[1]
            continue
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(".".join(path[: i + 1]), f"{'.'.join(path[:i])} has no sub-keys")
        hints = _hints(tp)
        if part not in hints:
            raise ConfigError(".".join(path[: i + 1]), f"unknown key; {tp.__name__} has {sorted(hints)}")
        tp = hints[part]
    return tp


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Return ``cfg`` with each ``a.b.c=value`` applied (value parsed as YAML, then type-checked).

    A string field keeps the literal text (``name=123`` sets the string "123").
    """
    data, result = to_dict(cfg), cfg
    for text in overrides:
        key, value = _parse_override(text)
        path = key.split(".")
        tp = _field_type(type(cfg), path)
        if tp is str and not isinstance(value, str):
            value = text.partition("=")[2].strip()
        node = data
        for i, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(path[: i + 1])
                raise ConfigError(key, f"{where} is {node!r}, not a mapping with a key {path[i + 1]!r}")
        node[path[-1]] = value
        result = from_dict(type(cfg), data)  # each override checked as it is applied: the error names it
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise ConfigError("", f"config file {path} cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, Mapping):
        raise ConfigError("", f"config file {path} must hold a mapping at the top level")
    return dict(data)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where in the file, and what (PyYAML's own text spans several)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def merge(base: Mapping, extra: Mapping) -> dict:
    """``base`` updated by ``extra``, recursing where both hold a mapping; values from ``extra``
    are copied, so the result shares no mutable part with it."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = (
            merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        )
    return out


def build(cls: type[T], yaml_path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults of ``cls``, then the YAML file (if any), then the overrides."""
    data = to_dict(cls())
    if yaml_path is not None:
        try:
            data = merge(data, load_yaml(yaml_path))
            cfg = from_dict(cls, data)
        except ConfigError as exc:
            if str(yaml_path) in str(exc):
                raise
            raise ConfigError(exc.key, f"{exc} (in {yaml_path})") from None
    else:
        cfg = from_dict(cls, data)
    return apply_overrides(cfg, overrides)


def from_yaml_text(cls: type[T], text: str) -> T:
    """Inverse of :func:`to_yaml`."""
    data = yaml.safe_load(text) or {}
    return from_dict(cls, data)


# ------------------------------------------------------------------------------ the data config


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the SIDD data is. ``root`` empty: generate synthetic data under ``cache_dir``."""

    root: str = ""
    cache_dir: str = "data"
    synthetic: SyntheticSpec = SyntheticSpec()
    check_images: bool = True


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The end-to-end data-layer demo (``jobs/demo.py``)."""

    data: DataConfig = DataConfig()
    correlation_radius: int = 10
    max_pairs: int = 8


# ------------------------------------------------------------------ cluster, tracking, correlation


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where Ray runs. ``address`` empty: ``RAY_ADDRESS`` if set (as under ``ray job submit``),
    else an embedded local Ray with ``num_cpus`` CPUs (0: all of this machine's)."""

    address: str = ""
    num_cpus: int = 0


@dataclasses.dataclass(frozen=True)
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
    custom: dict[str, float] = dataclasses.field(default_factory=dict)
    max_failures: int = 2
    storage: str = ""
    report_every: int = 10
    tile_cache_mb: int = 1024
    max_concurrent: int = 0


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """MLflow. ``uri`` empty: ``sqlite:///<cwd>/mlflow.db``; relative paths are made absolute.
    ``wait_s``: how long a finished stage waits for an unreachable tracking server before its
    trial fails (metrics and checkpoints are queued meanwhile, never dropped)."""

    enabled: bool = True
    uri: str = ""
    experiment: str = "noise-correlation"
    wait_s: float = 600.0


@dataclasses.dataclass(frozen=True)
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


@dataclasses.dataclass(frozen=True)
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


@dataclasses.dataclass(frozen=True)
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
