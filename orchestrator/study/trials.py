"""The stages left to train: their patch shards, the trials' shared settings, one Tune experiment."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.cluster import check_resources, trial_resources
from orchestrator.data.shards import build_shards, shard_dir
from orchestrator.data.sources import StudyData
from orchestrator.schema import StudyConfig
from orchestrator.study.tune import TrialSettings, run_trials

__all__ = ["TrainJob"]


class TrainJob:
    """The stages left to train: patch shards, the trials' settings, one Tune experiment."""

    def __init__(
        self, study: StudyConfig, data: StudyData, out: Path, resources: dict, tracker, progress: bool
    ):
        self.study, self.data, self.out, self.tracker, self.progress = study, data, out, tracker, progress
        t = study.trial
        gpu = t.gpu if t.gpu is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
        self.request = trial_resources(t.cpu, gpu, t.custom)

    def shards(self, todo: dict) -> dict[str, str]:
        """Each stage's patch-shard folder, cut by Ray Data unless already there (once per cut)."""
        dkey, cuts, out = self.data.train.key, {}, {}
        for key, s in todo.items():
            tr = s.stage.config.train
            cut = (tr.epoch_tile, tr.epoch_stride)
            if cut not in cuts:
                folder = shard_dir(self.out / "shards", dkey, tile=cut[0], stride=cut[1])
                items = self.data.train.items
                cuts[cut] = build_shards(items, folder, tile=cut[0], stride=cut[1], progress=self.progress)
            out[key] = str(cuts[cut])
        return out

    def run(self, todo: dict, stages: dict, search, *, selection=None) -> None:
        """Train the stages ``todo`` (by key; ``stages`` gets each one's error) as one experiment;
        ``selection``: checkpoint selection on the first evaluation source (``eval.select``)."""
        workers = {s.stage.label: s.stage.config.trial.workers for s in todo.values()}
        check_resources(self.request, workers)  # before anything is cut or trained
        t, study = self.study.trial, self.study
        storage = t.storage or str(self.out / "ray_results")
        if "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        settings = TrialSettings(
            eval=study.eval,
            threads=max(1, int(t.cpu)),
            tile_cache_bytes=t.tile_cache_mb << 20,
            report_every=t.report_every,
            shards=self.shards(todo),
            run_ids={k: s.run_ids.get(s.users[0], "") for k, s in todo.items()},
            tracking_uri=self.tracker.uri if self.tracker else "",
            tracking_wait_s=study.tracking.wait_s,
            selection=selection,
            resources=self.request,
            storage=storage,
        )
        for s in todo.values():
            s.trained_here = True
        deps = {k: {u.key for u in s.stage.upstream.values() if u.key in todo} for k, s in todo.items()}
        first = self.data.evals[0] if self.data.evals else None
        validation = (first.noisy, first.clean) if first is not None else None
        outcome = run_trials(
            {k: s.stage for k, s in todo.items()},
            deps,
            settings=settings,
            resources=self.request,
            storage=storage,
            name=f"{study.study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            max_failures=t.max_failures,
            max_concurrent=t.max_concurrent,
            keep_checkpoints=max(s.stage.config.train.keep_checkpoints for s in todo.values()),
            scheduler=search.scheduler_factory() if search.scheduler_factory else None,
            metric=search.metric,
            mode=search.mode,
            validation=validation,
            quiet=not self.progress,
        )
        for key, why in outcome.errors.items():
            stages[key].error = why
        record = {"path": outcome.experiment_path, "wall_s": outcome.wall_s, "times": outcome.times}
        (self.out / "last_experiment.json").write_text(json.dumps(record, indent=1))
