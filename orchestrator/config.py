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

from orchestrator.errors import InputError

T = TypeVar("T")
_SCI_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


class ConfigError(InputError):
    """A config key is unknown or its value has the wrong type. ``key`` is the dotted path."""

    def __init__(self, key: str, message: str):
        self.key, self.reason = key, message
        super().__init__(f"config key {key!r}: {message}" if key else message)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _scalar(value: Any, tp: type, key: str) -> Any:
    """``value`` checked as a bool, int, float (ints widen) or str."""
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
    if not isinstance(value, str):
        raise ConfigError(key, f"expected str, got {value!r}")
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against ``tp`` and convert containers (lists -> tuples, dicts -> dataclasses)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
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
    if tp in (bool, int, float, str):
        return _scalar(value, tp, key)
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
    except yaml.YAMLError:  # not YAML (``*_real.png``): the text itself, checked as the field's type
        value = raw.strip()
    return key, value


def _join(prefix: str, parts: list[str]) -> str:
    return ".".join([prefix, *parts] if prefix else parts)


def _optional_dataclass(tp: Any) -> Any:
    """``X`` for a field typed ``X | None`` where X is a dataclass, else ``tp``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return tp


def set_value(
    cfg: T, path: str, value: Any, *, prefix: str = "", raw: str | None = None, tp: Any = None
) -> T:
    """``cfg`` with the value at dotted ``path`` replaced, checked against its field's type.

    The one dotted-path setter: ``--set``, profiles, catalogue entries and model defaults all go
    through it. Errors name ``prefix.path`` cut at the part at fault, so a caller whose ``cfg``
    sits below the user's key (a stage under ``overrides.<ablation>.<stage>``) passes that key as
    ``prefix``. ``raw``: the text the value was parsed from; a ``str`` field keeps it literally
    (``name=123`` sets the string "123"). A value below a dataclass that is None starts from its
    defaults; below a missing mapping key, from an empty mapping. ``tp``: the type of ``cfg`` when
    it is not a dataclass (``dict[str, Any]``).
    """
    return _set(cfg, tp or type(cfg), path.split("."), 0, value, prefix, raw)


def _leaf(value: Any, tp: Any, key: str, raw: str | None) -> Any:
    if tp is str and raw is not None and not isinstance(value, str):
        value = raw  # a string field keeps the text as written
    return _coerce(value, tp, key)


def _set(node: Any, tp: Any, parts: list[str], i: int, value: Any, prefix: str, raw: str | None) -> Any:
    key, part, last = _join(prefix, parts[: i + 1]), parts[i], i == len(parts) - 1
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        if part not in hints:
            raise ConfigError(key, f"unknown key; {tp.__name__} has {sorted(hints)}")
        sub = hints[part]
        if last:
            new = _leaf(value, sub, key, raw)
        else:
            child, sub = getattr(node, part), _optional_dataclass(sub)
            if child is None and dataclasses.is_dataclass(sub):
                child = sub()
            new = _set(child, sub, parts, i + 1, value, prefix, raw)
        try:
            return dataclasses.replace(node, **{part: new})
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(_join(prefix, parts[:i]), f"invalid {tp.__name__}: {exc}") from None
    if typing.get_origin(tp) is dict or tp is Any:
        if not isinstance(node, Mapping):
            where = _join(prefix, parts[:i])
            raise ConfigError(key, f"{where} is {node!r}, not a mapping with a key {part!r}")
        sub = (typing.get_args(tp) or (str, Any))[1] if tp is not Any else Any
        if last:
            new = _leaf(value, sub, key, raw)
        else:
            child = node.get(part)
            if child is None:
                child = sub() if dataclasses.is_dataclass(sub) else {}
            new = _set(child, sub, parts, i + 1, value, prefix, raw)
        return {**node, part: new}
    raise ConfigError(key, f"{_join(prefix, parts[:i])} has no sub-keys")


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Return ``cfg`` with each ``a.b.c=value`` applied (value parsed as YAML, then type-checked
    by :func:`set_value`); each override is checked as it is applied, so an error names it."""
    for text in overrides:
        key, value = _parse_override(text)
        cfg = set_value(cfg, key, value, raw=text.partition("=")[2].strip())
    return cfg


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
