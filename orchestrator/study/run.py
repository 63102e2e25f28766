"""Run a study: data, plan, reuse, patch shards, Tune trials, MLflow runs, the results table.

The main job's data flow (``docs/ORCHESTRATION.md``):

1. index the dataset (every bad file reported before anything is asked of the cluster);
2. plan every selected ablation (or sweep variant) into stages with content keys; stages with
   the same key are one computation, trained once;
3. find stages already finished, in the stage store (``OUT/stages``) or in MLflow's stage index
   (a run tagged with the key and ``denoise.stage_done``), and reuse them;
4. cut the training pairs into patch shards with Ray Data (once per data and cut);
5. open the MLflow runs: a parent per ablation and a child per stage, found again by tags on a
   later job, so running the same study twice adds nothing twice (:mod:`.records`);
6. run the remaining stages as Ray Tune trials in dependency order (:mod:`orchestrator.study.tune`);
7. report: the table (measured beside published numbers, reused stages, training time), the
   visual comparison grid, both written to ``OUT`` and logged to every parent run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cluster import connect
from orchestrator.config import to_yaml
from orchestrator.data.dataset import resolve as resolve_data
from orchestrator.data.shards import build_shards, shard_dir
from orchestrator.data.sidd import load_validation
from orchestrator.errors import JOB_ERRORS, exit_status, fail
from orchestrator.schema import StudyConfig
from orchestrator.study import records, report
from orchestrator.study.catalogue import Resolved
from orchestrator.study.plan import PlannedAblation, data_key, plan, selected_stage
from orchestrator.train.store import Stage, StageResult

__all__ = ["Variant", "StudyOutcome", "SearchOptions", "StageState", "run_study", "run_variants", "run_job"]


@dataclass
class Variant:
    """One configuration of a study: the study itself, or one point of a sweep (``label`` names
    its values, e.g. ``lr=0.001``; the ablations of a variant are reported as ``name[label]``).
    ``resolved``: its ablations, as the job resolved them (resolved here when None)."""

    study: StudyConfig
    label: str = ""
    values: dict = field(default_factory=dict)
    resolved: Mapping[str, Resolved] | None = None

    def name(self, ablation: str) -> str:
        return f"{ablation}[{self.label}]" if self.label else ablation


@dataclass
class StageState:
    """What this job does with one stage (unique by key) and which ablations use it."""

    stage: Stage
    users: list[str]
    state: str = "train"  # train | reused | skipped
    result: StageResult | None = None
    error: str = ""
    trained_here: bool = False
    run_ids: dict[str, str] = field(default_factory=dict)  # ablation -> its child run

    @property
    def label(self) -> str:
        return self.stage.label


@dataclass
class StudyOutcome:
    table: list[dict]
    failed: dict[str, str]  # stage label -> why
    out: Path
    tracking_uri: str = ""
    experiment_id: str = ""
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


@dataclass
class SearchOptions:
    """Tune options of a sweep: an early-stopping scheduler (made fresh per run) and its metric."""

    scheduler_factory: Callable[[], object] | None = None
    metric: str | None = None
    mode: str | None = None


def run_study(
    study: StudyConfig, *, resolved: Mapping[str, Resolved] | None = None, progress: bool = True
) -> StudyOutcome:
    """Train and evaluate every selected ablation of ``study``; see the module's docstring."""
    return run_variants([Variant(study, resolved=resolved)], progress=progress)


def run_variants(
    variants: list[Variant], *, progress: bool = True, search: SearchOptions | None = None
) -> StudyOutcome:
    """Run several variants of one study (a sweep) as one Tune experiment, sharing equal stages."""
    base = variants[0].study
    out = Path(base.out).expanduser().resolve()
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    index = resolve_data(base.data, progress=progress)
    say(index.summary())
    planned = [
        (v, pa)
        for v in variants
        for pa in plan(v.study, index, store=out / "stages", resolved=v.resolved, label=v.label)
    ]
    stages = _unique_stages(planned)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(to_yaml(base))
    with connect(base.ray, quiet=True) as resources:
        tracker, exp_id = records.open_tracker(base)
        _find_finished(stages, tracker, say)
        todo = {k: s for k, s in stages.items() if s.state == "train"}
        say(
            f"[study] {len(stages)} stage(s): {len(todo)} to train, "
            f"{sum(s.state == 'reused' for s in stages.values())} already finished"
        )
        parents = records.open_runs(tracker, exp_id, planned, stages) if tracker else {}
        if todo:
            _TrainJob(base, index, out, resources, tracker, progress).run(
                todo, stages, search or SearchOptions()
            )
        for s in stages.values():
            if s.stage.model_file.is_file() and s.result is None:
                s.result = StageResult.finished(s.stage)
            if s.state == "train" and s.result is None and not s.error:
                s.error = "did not finish"
        table = report.study_table(planned, stages)
        grid = report.study_grid(planned, stages, out)
        (out / "results.csv").write_text(report.to_csv(table))
        (out / "results.md").write_text(report.to_markdown(table))
        failed = {s.label: s.error for s in stages.values() if s.error}
        if tracker:
            try:
                records.close_runs(tracker, planned, stages, parents, table, out, grid)
            except Exception as exc:  # the results are on disk; a rerun records them
                failed["mlflow"] = (
                    f"could not record the results at {tracker.uri} ({type(exc).__name__}: {exc}); "
                    f"they are in {out}, and running the job again records them"
                )
    return StudyOutcome(
        table=table,
        failed=failed,
        out=out,
        tracking_uri=tracker.uri if tracker else "",
        experiment_id=exp_id,
        trained=[s.label for s in stages.values() if s.trained_here and s.result is not None],
        reused=[s.label for s in stages.values() if s.state == "reused"],
    )


def _unique_stages(planned: list[tuple[Variant, PlannedAblation]]) -> dict[str, StageState]:
    stages: dict[str, StageState] = {}
    for v, pa in planned:
        for stage in pa.stages:
            s = stages.setdefault(stage.key, StageState(stage, []))
            s.users.append(v.name(pa.entry.name))
            if stage.pretrained or not selected_stage(v.study, stage):
                s.state = "reused" if stage.pretrained or stage.model_file.is_file() else "skipped"
    return stages


def _find_finished(stages: dict[str, StageState], tracker, say) -> None:
    """Stages already finished in the store, or in MLflow's stage index (downloaded into the store)."""
    for s in stages.values():
        if s.state != "train":
            continue
        stage = s.stage
        if not stage.model_file.is_file() and tracker is not None:
            run_id = tracker.finished_stage(stage.key)
            if run_id:
                say(f"[study] {s.label}: found finished in MLflow run {run_id}")
                stage.path.mkdir(parents=True, exist_ok=True)
                tracker.download(run_id, "model.pt", stage.path)
        if stage.model_file.is_file():
            s.result = StageResult.finished(stage)
            s.state = "reused"


class _TrainJob:
    """The stages left to train: patch shards, the trials' settings, one Tune experiment."""

    def __init__(self, study: StudyConfig, index, out: Path, resources: dict, tracker, progress: bool):
        from orchestrator.cluster import trial_resources

        self.study, self.index, self.out, self.tracker, self.progress = study, index, out, tracker, progress
        t = study.trial
        gpu = t.gpu if t.gpu is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
        self.request = trial_resources(t.cpu, gpu, t.custom)

    def shards(self, todo: dict[str, StageState]) -> dict[str, str]:
        """Each stage's patch-shard folder, cut by Ray Data unless already there (once per cut)."""
        dkey, cuts, out = data_key(self.index), {}, {}
        for key, s in todo.items():
            tr = s.stage.config.train
            cut = (tr.epoch_tile, tr.epoch_stride)
            if cut not in cuts:
                folder = shard_dir(self.out / "shards", dkey, tile=cut[0], stride=cut[1])
                cuts[cut] = build_shards(
                    self.index.pairs, folder, tile=cut[0], stride=cut[1], progress=self.progress
                )
            out[key] = str(cuts[cut])
        return out

    def run(self, todo: dict[str, StageState], stages: dict[str, StageState], search: SearchOptions) -> None:
        from orchestrator.cluster import check_resources
        from orchestrator.study.tune import TrialSettings, run_trials

        check_resources(self.request)  # before anything is cut or trained
        t, study = self.study.trial, self.study
        settings = TrialSettings(
            eval=study.eval,
            threads=max(1, int(t.cpu)),
            tile_cache_bytes=t.tile_cache_mb << 20,
            report_every=t.report_every,
            shards=self.shards(todo),
            run_ids={k: s.run_ids.get(s.users[0], "") for k, s in todo.items()},
            tracking_uri=self.tracker.uri if self.tracker else "",
            tracking_wait_s=study.tracking.wait_s,
        )
        for s in todo.values():
            s.trained_here = True
        deps = {k: {u.key for u in s.stage.upstream.values() if u.key in todo} for k, s in todo.items()}
        storage = t.storage or str(self.out / "ray_results")
        if "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        validation = load_validation(self.index) if self.index.validation is not None else None
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


def run_job(run: Callable[[], StudyOutcome], *, out: str, stopped_ok: bool = False) -> int:
    """The end of a study job: run it, print the summary or the error; the exit status.

    0: every stage finished (with ``stopped_ok``, stages an early-stopping scheduler stopped and
    what depended on them count as finished); 1: a stage or the tracking failed; otherwise the
    status of the error that stopped the job (:mod:`orchestrator.errors`); 130: interrupted
    (finished stages and checkpoints are kept in ``out``).
    """
    try:
        outcome = run()
    except JOB_ERRORS as exc:
        return fail(exc)
    except KeyboardInterrupt as exc:
        print(
            f"interrupted: finished stages and checkpoints are kept in {out}; "
            "run the same command again (or add --resume) to finish",
            file=sys.stderr,
        )
        return exit_status(exc)
    report.print_summary(outcome)
    if stopped_ok:
        return int(
            any("stopped early" not in why and "did not finish" not in why for why in outcome.failed.values())
        )
    return 1 if outcome.failed else 0
