"""From ablations to a stage graph with content keys, and running it in this process.

A stage's content key hashes its resolved config (less what only changes how it is watched), the
keys of its upstream stages and the training source's content key; not the evaluation sources,
which score a finished stage without changing it (adding one retrains nothing). Stages with equal
keys are the same computation: SSID and S-2 share their BNN, so it is trained once and found in the
store by its key (``<store>/<stage>-<key[:16]>/model.pt``). Everything an ablation needs is
checked before the first step: configs, the stage graph, and every ``pretrained`` or
already-finished upstream file. The plan builds each stage's one record,
:class:`orchestrator.train.store.Stage`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.config import ConfigError
from orchestrator.data.crops import load_images
from orchestrator.data.sources import StudyData, TrainingSet
from orchestrator.schema import StageConfig, StudyConfig
from orchestrator.study.catalogue import Ablation, Resolved, resolve_all
from orchestrator.train.loop import Selection, StageContext, steps_per_epoch, train_stage
from orchestrator.train.store import Stage, StageResult, UpstreamError, check_finished, key_config


def stage_key(cfg: StageConfig, upstream_keys: Mapping[str, str], data: str) -> str:
    blob = {"config": key_config(cfg), "upstream": dict(sorted(upstream_keys.items())), "data": data}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


@dataclass
class PlannedAblation:
    entry: Ablation
    stages: list[Stage]


def plan(
    study: StudyConfig,
    train: TrainingSet,
    *,
    store: Path,
    resolved: Mapping[str, Resolved] | None = None,
    label: str = "",
    seed: int | None = None,
) -> list[PlannedAblation]:
    """Key every selected ablation's stages (``resolved`` by the job, or resolved here) and check
    the files a plan relies on instead of training: pretrained stages and, with ``stages`` set,
    the finished upstream stages the listed ones need. ``label``: a sweep variant's, which its
    stages' ablation names carry (``lgbpn[lr=0.001]``); ``seed``: the seed's number when a study
    trains several (``lgbpn#1``)."""
    resolved = resolve_all(study) if resolved is None else resolved
    dkey, sizes = train.key, train.sizes
    out = []
    for name, (entry, configs) in resolved.items():
        done: dict[str, Stage] = {}
        for cfg in configs:
            up = {u: done[u] for u in cfg.upstream}
            key = stage_key(cfg, {u: s.key for u, s in up.items()}, dkey)
            path, pretrained = store / f"{cfg.name}-{key[:16]}", False
            pre = study.pretrained.get(name, {}).get(cfg.name)
            if pre:
                if Path(pre).name != "model.pt":
                    raise ConfigError(f"pretrained.{name}.{cfg.name}", f"{pre} must be a stage's model.pt")
                path, pretrained = Path(pre).expanduser().parent, True
            spe = steps_per_epoch(cfg.train, sizes)
            who = (f"{name}[{label}]" if label else name) + (f"#{seed}" if seed is not None else "")
            done[cfg.name] = Stage(who, cfg, key, path, up, spe, pretrained)
        out.append(PlannedAblation(entry, list(done.values())))
    _check_before_training(study, out)
    return out


def with_seed(study: StudyConfig, k: int) -> StudyConfig:
    """``study`` as its ``k``-th seed trains it: every family's ``train.seed`` plus ``k`` (which
    changes every stage's key, so each seed trains and is reused on its own)."""
    if k == 0:
        return study
    train = {f: dataclasses.replace(t, seed=t.seed + k) for f, t in study.train.items()}
    return dataclasses.replace(study, train=train)


def selected_stage(study: StudyConfig, stage: Stage) -> bool:
    """Whether ``study.stages`` (empty: all) asks for ``stage`` to be trained."""
    return not study.stages or stage.config.name in study.stages


def _check_before_training(study: StudyConfig, plans: list[PlannedAblation]) -> None:
    for pa in plans:
        needed = {u for s in pa.stages if selected_stage(study, s) for u in s.config.upstream}
        for s in pa.stages:
            if not s.pretrained and (selected_stage(study, s) or s.config.name not in needed):
                continue
            if not s.pretrained and not s.model_file.is_file():
                raise UpstreamError(
                    f"{s.label}: not in stages={list(study.stages)} and not trained yet "
                    f"({s.model_file} does not exist); train it or set pretrained.{s.label}"
                )
            check_finished(s, who=f"pretrained.{s.label}" if s.pretrained else s.label)


@dataclass
class LocalData:
    """Training images and validation blocks, loaded once for every stage of a run."""

    images: list[np.ndarray]
    names: list[str]
    validation: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def of(cls, data: StudyData, *, progress: bool = False) -> LocalData:
        """The training source's images and the first evaluation source's blocks of ``data``."""
        images, names = load_images(data.train.items, progress=progress)
        first = data.evals[0] if data.evals else None
        return cls(images, names, (first.noisy, first.clean) if first is not None else None)


def run_local(
    study: StudyConfig,
    plans: list[PlannedAblation],
    data: LocalData,
    *,
    progress: bool = True,
    on_step: Callable[[str, int, dict], None] | None = None,
    selection: Selection | None = None,
) -> dict[str, dict[str, StageResult]]:
    """Train every planned stage in order in this process (no Ray); stages already finished in the
    store are reused; ``selection``: checkpoint selection on ``data.validation``. Returns
    ``{ablation: {stage: result}}``."""
    results: dict[str, dict[str, StageResult]] = {}
    for pa in plans:
        results[pa.entry.name] = {}
        for s in pa.stages:
            if not selected_stage(study, s) and not s.pretrained:
                if not s.model_file.is_file():
                    continue  # downstream of the listed stages: not asked for
                res = StageResult.finished(s)
            else:
                if progress:
                    print(f"== {s.label} ({s.key[:16]})", file=sys.stderr, flush=True)
                hook = (lambda step, rec, _n=s.label: on_step(_n, step, rec)) if on_step else None
                ctx = StageContext(
                    data.images,
                    data.names,
                    data.validation,
                    study.eval,
                    selection=selection,
                    progress=progress,
                    on_step=hook,
                )
                res = train_stage(s, ctx)
            results[pa.entry.name][s.config.name] = res
    return results
