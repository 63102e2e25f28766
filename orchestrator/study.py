"""Run a study: data, plan, reuse, patch shards, Tune trials, MLflow runs, the results table.

The main job's data flow (``docs/ORCHESTRATION.md``):

1. index the dataset (every bad file reported before anything is asked of the cluster);
2. plan every selected ablation (or sweep variant) into stages with content keys; stages with
   the same key are one computation, trained once;
3. find stages already finished, in the stage store (``OUT/stages``) or in MLflow's stage index
   (a run tagged with the key and ``denoise.stage_done``), and reuse them;
4. cut the training pairs into patch shards with Ray Data (once per data and cut);
5. open the MLflow runs: a parent per ablation and a child per stage, found again by tags on a
   later job, so running the same study twice adds nothing twice;
6. run the remaining stages as Ray Tune trials in dependency order (:mod:`orchestrator.tune`);
7. report: the table (measured beside published numbers, reused stages, training time), the
   visual comparison grid, both written to ``OUT`` and logged to every parent run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import report
from orchestrator.ablations import StudyConfig, catalogue
from orchestrator.cluster import connect
from orchestrator.config import flatten, to_yaml
from orchestrator.data.dataset import resolve as resolve_data
from orchestrator.data.shards import build_shards, shard_dir
from orchestrator.data.sidd import load_validation
from orchestrator.plan import PlannedAblation, PlannedStage, data_key, plan
from orchestrator.stages import StageResult, key_config, steps_per_epoch

__all__ = ["Variant", "StudyOutcome", "run_study", "run_variants"]


class TrackingError(RuntimeError):
    """MLflow cannot be reached when the job starts."""


@dataclass
class Variant:
    """One configuration of a study: the study itself, or one point of a sweep (``label`` names
    its values, e.g. ``lr=0.001``; the ablations of a variant are reported as ``name[label]``)."""

    study: StudyConfig
    label: str = ""
    values: dict = field(default_factory=dict)

    def name(self, ablation: str) -> str:
        return f"{ablation}[{self.label}]" if self.label else ablation


@dataclass
class _Stage:
    """A unique stage of the study (by content key) and the ablations that use it."""

    node: PlannedStage
    users: list[str]
    state: str = "train"  # train | reused | skipped
    result: StageResult | None = None
    error: str = ""
    trained_here: bool = False
    run_ids: dict[str, str] = field(default_factory=dict)  # ablation -> its child run


@dataclass
class StudyOutcome:
    table: list[dict]
    failed: dict[str, str]  # stage label -> why
    out: Path
    tracking_uri: str = ""
    experiment_id: str = ""
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def run_study(study: StudyConfig, *, progress: bool = True) -> StudyOutcome:
    """Train and evaluate every selected ablation of ``study``; see the module's docstring."""
    return run_variants([Variant(study)], progress=progress)


@dataclass
class SearchOptions:
    """Tune options of a sweep: an early-stopping scheduler (made fresh per run) and its metric."""

    scheduler_factory: Callable[[], object] | None = None
    metric: str | None = None
    mode: str | None = None


def run_variants(
    variants: list[Variant], *, progress: bool = True, search: SearchOptions | None = None
) -> StudyOutcome:
    """Run several variants of one study (a sweep) as one Tune experiment, sharing equal stages."""
    base = variants[0].study
    out = Path(base.out).expanduser().resolve()
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    index = resolve_data(base.data, progress=progress)
    say(index.summary())
    planned = [(v, pa) for v in variants for pa in plan(v.study, index, store=out / "stages")]
    stages = _unique_stages(planned)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(to_yaml(base))
    with connect(base.ray, quiet=True) as resources:
        tracker = _tracker(base)
        try:
            exp_id = tracker.experiment(base.tracking.experiment or base.study_name) if tracker else ""
        except Exception as exc:  # nothing has run yet: stop with the reason
            raise TrackingError(
                f"cannot reach MLflow at {tracker.uri} ({type(exc).__name__}: {exc})"
            ) from None
        _find_finished(stages, tracker, say)
        todo = {k: s for k, s in stages.items() if s.state == "train"}
        say(
            f"[study] {len(stages)} stage(s): {len(todo)} to train, "
            f"{sum(s.state == 'reused' for s in stages.values())} already finished"
        )
        parents = _open_runs(tracker, exp_id, planned, stages) if tracker else {}
        if todo:
            job = _TrainJob(base, index, out, resources, tracker, progress)
            job.run(todo, stages, search or SearchOptions())
        for s in stages.values():
            if s.node.model_file.is_file() and s.result is None:
                s.result = StageResult.finished(s.node.model_file, s.node.key, s.node.config, who=_label(s))
            if s.state == "train" and s.result is None and not s.error:
                s.error = "did not finish"
        table = _table(planned, stages)
        grid = _grid(planned, stages, out)
        (out / "results.csv").write_text(report.to_csv(table))
        (out / "results.md").write_text(report.to_markdown(table))
        failed = {_label(s): s.error for s in stages.values() if s.error}
        if tracker:
            try:
                _close_runs(tracker, planned, stages, parents, table, out, grid)
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
        trained=[_label(s) for s in stages.values() if s.trained_here and s.result is not None],
        reused=[_label(s) for s in stages.values() if s.state == "reused"],
    )


def _label(s: _Stage) -> str:
    return f"{s.users[0]}.{s.node.config.name}"


def _tracker(study: StudyConfig):
    if not study.tracking.enabled:
        return None
    from orchestrator.tracking import Tracker

    return Tracker(study.tracking)


def _unique_stages(planned: list[tuple[Variant, PlannedAblation]]) -> dict[str, _Stage]:
    stages: dict[str, _Stage] = {}
    for v, pa in planned:
        for node in pa.stages:
            name = v.name(pa.entry.name)
            s = stages.setdefault(node.key, _Stage(node, []))
            s.users.append(name)
            selected = not v.study.stages or node.config.name in v.study.stages
            if node.pretrained or not selected:
                s.state = "reused" if node.pretrained or node.model_file.is_file() else "skipped"
    return stages


def _find_finished(stages: dict[str, _Stage], tracker, say) -> None:
    """Stages already finished in the store, or in MLflow's stage index (downloaded into the store)."""
    for s in stages.values():
        if s.state != "train":
            continue
        node = s.node
        if not node.model_file.is_file() and tracker is not None:
            run_id = tracker.finished_stage(node.key)
            if run_id:
                say(f"[study] {_label(s)}: found finished in MLflow run {run_id}")
                node.path.mkdir(parents=True, exist_ok=True)
                tracker.download(run_id, "model.pt", node.path)
        if node.model_file.is_file():
            s.result = StageResult.finished(node.model_file, node.key, node.config, who=_label(s))
            s.state = "reused"


class _TrainJob:
    """The stages left to train: patch shards, the trials' tasks, one Tune experiment."""

    def __init__(self, study: StudyConfig, index, out: Path, resources: dict, tracker, progress: bool):
        from orchestrator.tune import trial_resources

        self.study, self.index, self.out, self.tracker, self.progress = study, index, out, tracker, progress
        t = study.trial
        gpu = t.gpu if t.gpu is not None else (1.0 if resources.get("GPU", 0) > 0 else 0.0)
        self.request = trial_resources(t.cpu, gpu, t.custom)

    def shards(self, todo: dict[str, _Stage]) -> dict[tuple[int, int], Path]:
        """Patch shards for every cut the stages use, cut by Ray Data unless already there."""
        dkey, found = data_key(self.index), {}
        for s in todo.values():
            tr = s.node.config.train
            cut = (tr.epoch_tile, tr.epoch_stride)
            if cut not in found:
                folder = shard_dir(self.out / "shards", dkey, tile=cut[0], stride=cut[1])
                found[cut] = build_shards(
                    self.index.pairs, folder, tile=cut[0], stride=cut[1], progress=self.progress
                )
        return found

    def task(self, s: _Stage, shards: Path, sizes: list[tuple[int, int]]):
        from orchestrator.tune import StageTask, UpstreamRef

        node, t, ev = s.node, self.study.trial, self.study.eval
        return StageTask(
            key=node.key,
            label=_label(s),
            config=node.config,
            path=str(node.path),
            shards=str(shards),
            steps_per_epoch=steps_per_epoch(node.config.train, sizes),
            upstream={n: UpstreamRef(u.key, str(u.path), u.config) for n, u in node.upstream.items()},
            eval_blocks=ev.blocks,
            eval_samples=ev.samples,
            eval_batch=ev.batch,
            threads=max(1, int(t.cpu)),
            tile_cache_bytes=t.tile_cache_mb << 20,
            report_every=t.report_every,
            tracking_uri=self.tracker.uri if self.tracker else "",
            run_id=s.run_ids.get(s.users[0], ""),
            tracking_wait_s=self.study.tracking.wait_s,
            meta_extra={"ablation": s.users[0], "upstream": {n: u.key for n, u in node.upstream.items()}},
        )

    def run(self, todo: dict[str, _Stage], stages: dict[str, _Stage], search: SearchOptions) -> None:
        from orchestrator.tune import check_resources, run_trials

        check_resources(self.request)  # before anything is cut or trained
        shards = self.shards(todo)
        sizes = [(p.height, p.width) for p in self.index.pairs]
        tasks = {}
        for key, s in todo.items():
            tr = s.node.config.train
            tasks[key] = self.task(s, shards[(tr.epoch_tile, tr.epoch_stride)], sizes)
            s.trained_here = True
        deps = {k: {u.key for u in s.node.upstream.values() if u.key in todo} for k, s in todo.items()}
        t = self.study.trial
        storage = t.storage or str(self.out / "ray_results")
        if "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        validation = load_validation(self.index) if self.index.validation is not None else None
        outcome = run_trials(
            tasks,
            deps,
            resources=self.request,
            storage=storage,
            name=f"{self.study.study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            max_failures=t.max_failures,
            max_concurrent=t.max_concurrent,
            keep_checkpoints=max(s.node.config.train.keep_checkpoints for s in todo.values()),
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


# ------------------------------------------------------------------------------------- MLflow


def _ablation_key(pa: PlannedAblation) -> str:
    return hashlib.sha256(":".join(n.key for n in pa.stages).encode()).hexdigest()[:32]


def _open_runs(tracker, exp_id: str, planned, stages: dict[str, _Stage]) -> dict[str, str]:
    """A parent run per ablation and a child per stage (found again if a job made them before)."""
    from orchestrator.tracking import STAGE_KEY

    parents = {}
    for v, pa in planned:
        name = v.name(pa.entry.name)
        params = {"family": pa.entry.family, "profile": v.study.profile, **v.values}
        for node in pa.stages:
            params |= {f"{node.config.name}.{k}": val for k, val in flatten(key_config(node.config)).items()}
        parent = tracker.open_run(
            name,
            experiment_id=exp_id,
            tags={
                "denoise.kind": "ablation",
                "denoise.ablation": name,
                "denoise.ablation_key": _ablation_key(pa),
            },
            params=params,
        )
        parents[name] = parent
        for node in pa.stages:
            s = stages[node.key]
            if s.state == "skipped":
                continue
            s.run_ids[name] = tracker.open_run(
                node.config.name,
                experiment_id=exp_id,
                parent_run_id=parent,
                tags={"denoise.kind": "stage", "denoise.stage": node.config.name, STAGE_KEY: node.key},
                params={"key": node.key, "ablation": name, **flatten(key_config(node.config))},
            )
    return parents


def _close_runs(tracker, planned, stages: dict[str, _Stage], parents, table, out: Path, grid: Path | None):
    """Mark every stage run with what happened to it, then each parent with its final numbers."""
    from orchestrator.tracking import STAGE_DONE

    rows = {r["ablation"]: r for r in table}
    for s in stages.values():
        owner = s.run_ids.get(s.users[0])
        for run_id in s.run_ids.values():
            info = tracker.client.get_run(run_id)
            if info.info.status == "FINISHED" and info.data.tags.get(STAGE_DONE) == "true":
                continue
            if s.result is not None:
                tags = {"denoise.reused": "true"}
                source = owner if s.trained_here else tracker.finished_stage(s.node.key)
                if source and source != run_id:
                    tags["denoise.reused_from"] = source
                if s.node.pretrained:
                    tags["denoise.pretrained"] = str(s.node.model_file)
                tracker.set_tags(run_id, tags)
                tracker.log_metrics(run_id, s.result.metrics, step=s.result.steps)
                tracker.end(run_id, "FINISHED")
            else:
                tracker.set_tags(run_id, {"denoise.error": s.error or s.state})
                tracker.end(run_id, "FAILED" if s.error else "KILLED")
    for v, pa in planned:
        name = v.name(pa.entry.name)
        row, run_id = rows[name], parents[name]
        metrics = {k: row[k] for k in ("psnr", "ssim", "ssim_uniform7", "train_s") if row.get(k) is not None}
        tracker.log_metrics(run_id, metrics)
        tags = {"denoise.status": row["status"], "denoise.reused_stages": row["reused"] or "-"}
        final = stages[pa.stages[-1].key].run_ids.get(name)
        if final:  # the run holding the ablation's final model (what jobs/denoise.py follows)
            tags["denoise.final_run"] = final
        tracker.set_tags(run_id, tags)
        (out / "report").mkdir(exist_ok=True)
        (out / "report" / f"{_safe(name)}.yaml").write_text(
            "\n---\n".join(to_yaml(n.config) for n in pa.stages)
        )
        tracker.log_artifacts(run_id, out / "report" / f"{_safe(name)}.yaml", "config")
        for f in ("results.md", "results.csv"):
            tracker.log_artifacts(run_id, out / f, "report")
        if grid is not None:
            tracker.log_artifacts(run_id, grid, "report")
        tracker.end(run_id, "FINISHED" if row["status"] == "finished" else "FAILED")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ------------------------------------------------------------------------------------- report


def _table(planned, stages: dict[str, _Stage]) -> list[dict]:
    entries = {}
    for v, _ in planned:
        entries.update(catalogue(v.study))
    results = []
    for v, pa in planned:
        name = v.name(pa.entry.name)
        chain = [stages[n.key] for n in pa.stages if stages[n.key].state != "skipped"]
        last = chain[-1] if chain else None
        failed = [s for s in chain if s.result is None]
        why = f"failed: {failed[0].node.config.name}: {failed[0].error}" if failed else "finished"
        results.append(
            report.StudyRow(
                name=name,
                entry=entries[pa.entry.name],
                stage=last.node.config.name if last else "-",
                metrics=last.result.metrics if last and last.result else {},
                reused=[s.node.config.name for s in chain if not s.trained_here and s.result is not None],
                train_s=sum(s.result.train_s for s in chain if s.result is not None),
                status=why,
            )
        )
    return report.rows(results)


def _grid(planned, stages: dict[str, _Stage], out: Path) -> Path | None:
    """The first validation block across ablations (the paper's Fig. 8), if samples were saved."""
    panels = []
    for v, pa in planned:
        last = stages[pa.stages[-1].key]
        sample = last.node.path / "samples" / "block_0000.png"
        if last.result is not None and sample.is_file():
            panels.append((v.name(pa.entry.name), last.result.metrics.get("val_psnr"), sample))
    if not panels:
        return None
    return report.comparison_grid(panels, out / "comparison_grid.png")


def print_summary(outcome: StudyOutcome) -> None:
    """The table, what was reused, and where to look in the MLflow UI."""
    print(report.to_markdown(outcome.table), flush=True)
    print(f"trained {len(outcome.trained)} stage(s), reused {len(outcome.reused)}; results in {outcome.out}")
    if outcome.tracking_uri:
        ui = f"mlflow ui --backend-store-uri {outcome.tracking_uri}"
        if outcome.tracking_uri.startswith("http"):
            ui = f"open {outcome.tracking_uri}"
        print(f"MLflow: experiment {outcome.experiment_id} at {outcome.tracking_uri}; to browse: {ui}")
    for label, why in outcome.failed.items():
        print(f"FAILED {label}: {why}", file=sys.stderr)


def run_job(run: Callable[[], StudyOutcome], *, out: str, stopped_ok: bool = False) -> int:
    """The end of a study job: run it, print the summary or the error; the exit status.

    0: every stage finished (with ``stopped_ok``, stages an early-stopping scheduler stopped and
    what depended on them count as finished); 1: a stage or the tracking failed, or the job
    could not start; 130: interrupted (finished stages and checkpoints are kept in ``out``).
    """
    from orchestrator.cli import error_text
    from orchestrator.cluster import ClusterError
    from orchestrator.config import ConfigError
    from orchestrator.data.shards import ShardError
    from orchestrator.data.sidd import DatasetError
    from orchestrator.stages import StorageError, UpstreamError

    try:
        outcome = run()
    except (
        ConfigError,
        DatasetError,
        UpstreamError,
        StorageError,
        ClusterError,
        ShardError,
        TrackingError,
        ValueError,
        OSError,  # the output folder: a file, read-only, full
    ) as exc:
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"interrupted: finished stages and checkpoints are kept in {out}; "
            "run the same command again (or add --resume) to finish",
            file=sys.stderr,
        )
        return 130
    print_summary(outcome)
    if stopped_ok:
        return int(
            any("stopped early" not in why and "did not finish" not in why for why in outcome.failed.values())
        )
    return 1 if outcome.failed else 0
