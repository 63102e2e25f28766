"""Model registry: components are built by name from configs (STYLE.md 1, 3).

``@register_model("name", test_kwargs=..., multiple=..., blind=...)`` on a builder function or
class; ``create_model("name", **kwargs)`` builds one; ``list_models()`` lists the names;
``model_info(name)`` gives what tests need to check a network with no test of its own: small
arguments, the size its inputs must be a multiple of, and the blind region it promises in
training. Registering a name twice raises, so two families cannot silently shadow each other.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

BlindRegion = Callable[[Mapping[str, Any]], np.ndarray]
FitRegion = Callable[[np.ndarray], Mapping[str, Any]]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a network besides its builder.

    Args:
        builder: builds it from keyword arguments.
        test_kwargs: small, fast arguments for tests (shape, backward, blindness).
        multiple: input height and width must be multiples of it (an int, or a function of the
            builder's keyword arguments).
        blind: the blind region the network promises in training, given its builder's keyword
            arguments: a square boolean array of odd side, True at the offsets from a pixel whose
            input its output there never depends on. None: not a blind network.
        blind_kwargs: arguments added to ``test_kwargs`` when blindness is checked, where a part of
            the network adds an image-wide dependence (channel attention pools over the whole
            image) that would hide the exact zero the check looks for.
        fit: the builder's arguments that make it hide a given region (a measured noise
            correlation's, ``prior`` in a study) with its own means: SSID's BNN a square, AP-BSN a
            pixel-shuffle stride. None: a builder that takes ``blind`` gets the region itself;
            others are left alone.
    """

    builder: Callable[..., Any]
    test_kwargs: Mapping[str, Any] = field(default_factory=dict)
    multiple: int | Callable[[Mapping[str, Any]], int] = 1
    blind: BlindRegion | None = None
    blind_kwargs: Mapping[str, Any] = field(default_factory=dict)
    fit: FitRegion | None = None

    def input_multiple(self, kwargs: Mapping[str, Any]) -> int:
        return self.multiple(kwargs) if callable(self.multiple) else self.multiple

    @property
    def in_channels(self) -> int:
        """Channels of the test input (branches take features, images have 3)."""
        return int(self.test_kwargs.get("in_ch", 3))


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    test_kwargs: Mapping[str, Any] | None = None,
    multiple: int | Callable[[Mapping[str, Any]], int] = 1,
    blind: BlindRegion | None = None,
    blind_kwargs: Mapping[str, Any] | None = None,
    fit: FitRegion | None = None,
) -> Callable[[F], F]:
    """Decorator registering a builder under ``name`` with its :class:`ModelInfo`.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def deco(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(
                f"model {name!r} is already registered (by {_REGISTRY[name].builder.__module__})"
            )
        info = ModelInfo(fn, dict(test_kwargs or {}), multiple, blind, dict(blind_kwargs or {}), fit)
        _REGISTRY[name] = info
        return fn

    return deco


def unregister_model(name: str) -> None:
    """Remove a registration (for plugins and tests)."""
    _REGISTRY.pop(name)


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}")


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; KeyError listing the known names if there is none."""
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name]


def create_model(name: str, /, **kwargs: Any) -> Any:
    """Build the model registered as ``name`` with keyword arguments.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    return model_info(name).builder(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a glob pattern."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _REGISTRY


def model_arguments(name: str) -> list[str]:
    """The keyword arguments the builder of ``name`` accepts (for checking configs up front)."""
    params = inspect.signature(model_info(name).builder).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def square(side: int) -> np.ndarray:
    """A blind region: the ``side`` x ``side`` square (side 1: the centre pixel alone)."""
    return np.ones((side, side), dtype=bool)


def blind_region(name: str, kwargs: Mapping[str, Any]) -> np.ndarray | None:
    """The blind region model ``name`` built with ``kwargs`` promises in training, or None."""
    info = model_info(name)
    return None if info.blind is None else np.asarray(info.blind(kwargs), dtype=bool)


def fit_region(name: str, region: np.ndarray) -> dict[str, Any]:
    """The arguments of ``name``'s builder that make it hide ``region`` (:attr:`ModelInfo.fit`);
    {} for a network that hides nothing."""
    info = model_info(name)
    if info.fit is not None:
        return dict(info.fit(np.asarray(region, dtype=bool)))
    if info.blind is not None and "blind" in model_arguments(name):
        return {"blind": np.asarray(region, dtype=bool).tolist()}
    return {}


def common_region(*regions: np.ndarray | None) -> np.ndarray | None:
    """Offsets hidden from every one of ``regions`` (centred, of any odd sides): what a network
    that combines them never sees. None if any of them is None (one part sees everything)."""
    if not regions or any(r is None for r in regions):
        return None
    side = min(r.shape[0] for r in regions)
    out = np.ones((side, side), dtype=bool)
    for r in regions:
        cut = (r.shape[0] - side) // 2
        out &= r[cut : cut + side, cut : cut + side]
    return out
