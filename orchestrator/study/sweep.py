"""Sweeps: any config value of a study as a Ray Tune search space, with the same reuse and tracking.

A sweep file names the ablations, the space and the sampling::

    ablations: [lgbpn]
    samples: 2                       # random draws; each grid point is repeated this many times
    seed: 0
    space:
      train.lgbpn.optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
      models.lgbpn.width: {grid: [8, 16]}
    asha: {metric: loss, mode: min, grace_period: 10, reduction_factor: 2}   # optional

Keys are the dotted config keys of ``--set``. Distributions are Tune's: ``grid``, ``choice``,
``uniform``, ``loguniform``, ``randint``, ``quniform``. The variants are drawn with Tune's own
variant generator, then each becomes a study with those overrides; they run as one Tune
experiment, in which stages that a value does not touch are shared (a sweep over the UNet's
learning rate trains SSID's BNN and LAN once). ``asha`` stops unpromising stage trials early.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.config import ConfigError, apply_overrides, from_dict, load_yaml
from orchestrator.schema import StudyConfig, SweepConfig
from orchestrator.study.run import SearchOptions, Variant

__all__ = ["load_sweep", "variants", "search_options"]

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint", "quniform")


def load_sweep(path: str | Path) -> SweepConfig:
    cfg = from_dict(SweepConfig, load_yaml(path), prefix="")
    if not cfg.space:
        raise ConfigError("space", f"{path}: the sweep varies nothing (space is empty)")
    if cfg.samples < 1:
        raise ConfigError("samples", f"must be >= 1, got {cfg.samples}")
    return cfg


def _domain(key: str, spec: dict[str, Any]):
    from ray import tune

    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"space.{key}", f"expected one of {list(DISTRIBUTIONS)} with its arguments, got {spec}"
        )
    kind, args = next(iter(spec.items()))
    if kind in ("grid", "choice"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"space.{key}.{kind}", f"expected a non-empty list, got {args!r}")
        return tune.grid_search(args) if kind == "grid" else tune.choice(args)
    numbers = isinstance(args, list) and all(
        isinstance(a, int | float) and not isinstance(a, bool) for a in args
    )
    if not numbers or len(args) not in (2, 3):
        raise ConfigError(
            f"space.{key}.{kind}", f"expected numbers [low, high] (quniform: [low, high, q]), got {args!r}"
        )
    try:
        return getattr(tune, kind)(*args)
    except (TypeError, ValueError) as exc:  # bounds of the wrong type or order
        raise ConfigError(f"space.{key}.{kind}", f"{args!r}: {exc}") from None


def _label(values: dict[str, Any]) -> str:
    def short(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, str) else v

    return ",".join(f"{k.rsplit('.', 1)[-1]}={short(v)}" for k, v in values.items())


def variants(base: StudyConfig, sweep: SweepConfig) -> list[Variant]:
    """The studies of the sweep: Tune's variant generator over the space, ``samples`` times."""
    space = {key: _domain(key, spec) for key, spec in sweep.space.items()}
    rng = np.random.RandomState(sweep.seed)
    out, seen = [], set()
    for _ in range(sweep.samples):
        for _, resolved in _generate(space, rng):
            values = {k: resolved[k] for k in sweep.space}
            label = _label(values)
            if label in seen:  # a pure grid repeated: the same study, trained once
                continue
            seen.add(label)
            overrides = [f"{k}={json.dumps(_plain(v))}" for k, v in values.items()]
            if sweep.ablations:
                overrides.append(f"ablations={json.dumps(list(sweep.ablations))}")
            out.append(Variant(apply_overrides(base, overrides), label, values))
    return out


def _generate(space: dict, rng: np.random.RandomState) -> list:
    """Tune's variants of ``space``; a domain that cannot be sampled is a ConfigError."""
    from ray.tune.search.variant_generator import generate_variants

    try:
        return list(generate_variants(dict(space), random_state=rng))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError("space", f"cannot sample the sweep's space: {exc}") from None


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def search_options(sweep: SweepConfig) -> SearchOptions:
    if sweep.asha is None:
        return SearchOptions()
    a = sweep.asha

    def make():
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="step", grace_period=a.grace_period, reduction_factor=a.reduction_factor, max_t=10**9
        )

    return SearchOptions(make, a.metric, a.mode)
