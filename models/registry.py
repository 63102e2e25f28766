"""Model registry: components are built by name from configs (STYLE.md 1, 3).

``@register_model("name")`` on a builder function or class; ``create_model("name", **kwargs)``
builds one; ``list_models()`` lists the names. Registering a name twice raises, so two families
cannot silently shadow each other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a builder under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def deco(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__module__})")
        _REGISTRY[name] = fn
        return fn

    return deco


def unregister_model(name: str) -> None:
    """Remove a registration (for plugins and tests)."""
    _REGISTRY.pop(name)


def create_model(name: str, /, **kwargs: Any) -> Any:
    """Build the model registered as ``name`` with keyword arguments.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None
    return builder(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a glob pattern."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _REGISTRY


def model_arguments(name: str) -> list[str]:
    """The keyword arguments the builder of ``name`` accepts (for checking configs up front)."""
    import inspect

    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}")
    params = inspect.signature(_REGISTRY[name]).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
