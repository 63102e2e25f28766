"""From ablations to a stage graph with content keys, and running it in this process.

A stage's content key hashes its resolved config (less what only changes how it is watched), the
keys of its upstream stages and the data's key. Stages with equal keys are the same computation:
SSID and S-2 share their BNN, so it is trained once and found in the store by its key
(``<store>/<stage>-<key[:16]>/model.pt``). Everything an ablation needs is checked before the first
step: configs, the stage graph, and every ``pretrained`` or already-finished upstream file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.ablations import Ablation, StudyConfig, catalogue, resolve, selected
from orchestrator.config import ConfigError
from orchestrator.data.sidd import SiddIndex
from orchestrator.stages import (
    StageConfig,
    StageContext,
    StageResult,
    UpstreamError,
    build_model,
    key_config,
    load_finished,
    steps_per_epoch,
    train_stage,
)


def data_key(index: SiddIndex) -> str:
    """The training data's identity: pair names and sizes, file sizes, and the validation blocks."""
    items = [(p.key, p.height, p.width, Path(p.noisy_path).stat().st_size) for p in index.pairs]
    if index.validation is not None:
        items.append(
            ("validation", *index.validation.shape, Path(index.validation.noisy_path).stat().st_size)
        )
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def stage_key(cfg: StageConfig, upstream_keys: dict[str, str], data: str) -> str:
    blob = {"config": key_config(cfg), "upstream": dict(sorted(upstream_keys.items())), "data": data}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


@dataclass
class PlannedStage:
    ablation: str
    config: StageConfig
    key: str
    path: Path  # the stage folder in the store, or the pretrained model.pt's folder
    upstream: dict[str, PlannedStage] = field(default_factory=dict)
    pretrained: bool = False

    @property
    def model_file(self) -> Path:
        return self.path / "model.pt"


@dataclass
class PlannedAblation:
    entry: Ablation
    stages: list[PlannedStage]


def plan(study: StudyConfig, index: SiddIndex, *, store: Path) -> list[PlannedAblation]:
    """Resolve every selected ablation into keyed stages; check pretrained files and ``stages``."""
    resolved = {name: resolve(study, name) for name in selected(study)}
    _check_names(study, resolved)
    dkey = data_key(index)
    out = []
    for name, (entry, configs) in resolved.items():
        done: dict[str, PlannedStage] = {}
        for cfg in configs:
            up = {u: done[u] for u in cfg.upstream}
            key = stage_key(cfg, {u: s.key for u, s in up.items()}, dkey)
            node = PlannedStage(name, cfg, key, store / f"{cfg.name}-{key[:16]}", up)
            pre = study.pretrained.get(name, {}).get(cfg.name)
            if pre:
                node.path, node.pretrained = Path(pre).expanduser().parent, True
                if Path(pre).name != "model.pt":
                    raise ConfigError(f"pretrained.{name}.{cfg.name}", f"{pre} must be a stage's model.pt")
            done[cfg.name] = node
        out.append(PlannedAblation(entry, list(done.values())))
    _check_before_training(study, out)
    return out


def _check_names(study: StudyConfig, resolved: dict[str, tuple[Ablation, tuple[StageConfig, ...]]]) -> None:
    """Keys that name ablations or stages must name real ones: a typo would otherwise be ignored."""
    entries = catalogue(study)
    for section in ("overrides", "pretrained"):
        for name in getattr(study, section):
            if name not in entries:
                raise ConfigError(f"{section}.{name}", f"no such ablation; known: {list(entries)}")
    for name, chosen in study.pretrained.items():
        stages = [s.name for s in (resolved.get(name) or resolve(study, name))[1]]
        for stage in chosen:
            if stage not in stages:
                raise ConfigError(f"pretrained.{name}.{stage}", f"no such stage; {name} has {stages}")
    every = {s.name for _, configs in resolved.values() for s in configs}
    unknown = [s for s in study.stages if s not in every]
    if unknown:
        raise ConfigError("stages", f"no stage named {unknown} in the selected ablations ({sorted(every)})")


def _check_before_training(study: StudyConfig, plans: list[PlannedAblation]) -> None:
    """Every file a plan relies on instead of training exists and was made by the same config:
    pretrained stages, and (with ``stages`` set) the finished upstream stages the listed ones need."""
    for pa in plans:
        needed = {u for node in pa.stages if _selected(study, node) for u in node.config.upstream}
        for node in pa.stages:
            who = f"{pa.entry.name}.{node.config.name}"
            if not node.pretrained and (_selected(study, node) or node.config.name not in needed):
                continue
            if not node.pretrained and not node.model_file.is_file():
                raise UpstreamError(
                    f"{who}: not in stages={list(study.stages)} and not trained yet "
                    f"({node.model_file} does not exist); train it or set pretrained.{who}"
                )
            load_finished(
                node.model_file,
                expected_key=node.key,
                expected_config=key_config(node.config),
                who=f"pretrained.{who}" if node.pretrained else who,
            )


def _who(node: PlannedStage) -> str:
    return f"{node.ablation}.{node.config.name}"


def _selected(study: StudyConfig, node: PlannedStage) -> bool:
    return not study.stages or node.config.name in study.stages


@dataclass
class LocalData:
    """Training images and validation blocks, loaded once for every stage of a run."""

    images: list[np.ndarray]
    names: list[str]
    validation: tuple[np.ndarray, np.ndarray] | None

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [im.shape[:2] for im in self.images]


def load_upstream(upstream: Mapping[str, Any], *, who: str) -> dict:
    """The frozen networks of finished upstream stages, ``{name: ref}`` with ``ref.key``,
    ``ref.path`` (the stage folder) and ``ref.config``; each checked against its key first."""
    nets = {}
    for name, up in upstream.items():
        _, state = load_finished(
            Path(up.path) / "model.pt",
            expected_key=up.key,
            expected_config=key_config(up.config),
            who=f"{who}: upstream {name!r}",
        )
        net = build_model(up.config.model, seed=up.config.train.seed)
        net.load_state_dict(state)
        nets[name] = net.eval()
    return nets


def run_stage(
    node: PlannedStage,
    data: LocalData,
    study: StudyConfig,
    *,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
) -> StageResult:
    """Train one planned stage (or find it finished), its upstream stages loaded and checked first."""
    if node.pretrained:
        return StageResult.finished(node.model_file, node.key, node.config, who=_who(node))
    ctx = StageContext(
        key=node.key,
        out_dir=node.path,
        sampler_images=data.images,
        sampler_names=data.names,
        validation=data.validation,
        upstream=load_upstream(node.upstream, who=_who(node)),
        steps_per_epoch=steps_per_epoch(node.config.train, data.sizes),
        eval_final_blocks=study.eval.blocks,
        eval_samples=study.eval.samples,
        eval_batch=study.eval.batch,
        progress=progress,
        on_step=on_step,
        meta_extra={"ablation": node.ablation, "upstream": {k: u.key for k, u in node.upstream.items()}},
    )
    return train_stage(node.config, ctx)


def run_local(
    study: StudyConfig,
    plans: list[PlannedAblation],
    data: LocalData,
    *,
    progress: bool = True,
    on_step: Callable[[str, int, dict], None] | None = None,
) -> dict[str, dict[str, StageResult]]:
    """Train every planned stage in order in this process (no Ray); stages already finished in the
    store are reused. Returns ``{ablation: {stage: result}}``."""
    results: dict[str, dict[str, StageResult]] = {}
    for pa in plans:
        results[pa.entry.name] = {}
        for node in pa.stages:
            if not _selected(study, node) and not node.pretrained:
                if not node.model_file.is_file():
                    continue  # downstream of the listed stages: not asked for
                res = StageResult.finished(node.model_file, node.key, node.config, who=_who(node))
            else:
                if progress:
                    print(
                        f"== {pa.entry.name} / {node.config.name} ({node.key[:16]})",
                        file=sys.stderr,
                        flush=True,
                    )
                hook = (
                    (lambda s, rec, _n=f"{pa.entry.name}.{node.config.name}": on_step(_n, s, rec))
                    if on_step
                    else None
                )
                res = run_stage(node, data, study, progress=progress, on_step=hook)
            results[pa.entry.name][node.config.name] = res
    return results
