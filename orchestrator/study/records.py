"""A study's MLflow runs, which the driver owns (see :mod:`orchestrator.tracking`).

One experiment per study; a parent run per ablation (tagged ``denoise.ablation`` and its stages'
keys) and a child run per stage (tagged with its content key). Runs are found again by their tags
on a later job, so running the same study twice adds nothing twice. The driver opens them before
the trials start and closes them when the study ends: a stage run FINISHED when its stage is (a
reused one records where it came from), FAILED with the reason when it failed, KILLED when it never
ran; each parent with its final numbers, the results table and the comparison grid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from orchestrator.config import flatten, to_yaml
from orchestrator.errors import RunFailure
from orchestrator.schema import StudyConfig
from orchestrator.tracking import STAGE_DONE, STAGE_KEY, Tracker
from orchestrator.train.store import key_config

__all__ = ["TrackingError", "open_tracker", "open_runs", "close_runs"]


class TrackingError(RunFailure):
    """MLflow cannot be reached when the job starts."""


def open_tracker(study: StudyConfig) -> tuple[Tracker | None, str]:
    """The study's tracker and experiment id (None, '' with tracking off).

    Raises:
        TrackingError: MLflow does not answer (nothing has run yet).
    """
    if not study.tracking.enabled:
        return None, ""
    tracker = Tracker(study.tracking)
    try:
        return tracker, tracker.experiment(study.tracking.experiment or study.study_name)
    except Exception as exc:
        raise TrackingError(f"cannot reach MLflow at {tracker.uri} ({type(exc).__name__}: {exc})") from None


def _ablation_key(pa) -> str:
    return hashlib.sha256(":".join(s.key for s in pa.stages).encode()).hexdigest()[:32]


def open_runs(tracker: Tracker, exp_id: str, planned, stages) -> dict[str, str]:
    """A parent run per ablation and a child per stage (found again if a job made them before);
    each child's id is kept in its stage's ``run_ids``. Returns ``{ablation: parent run id}``."""
    parents = {}
    for v, pa in planned:
        name = v.name(pa.entry.name)
        params = {"family": pa.entry.family, "profile": v.study.profile, **v.values}
        for stage in pa.stages:
            params |= {
                f"{stage.config.name}.{k}": val for k, val in flatten(key_config(stage.config)).items()
            }
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
        for stage in pa.stages:
            s = stages[stage.key]
            if s.state == "skipped":
                continue
            s.run_ids[name] = tracker.open_run(
                stage.config.name,
                experiment_id=exp_id,
                parent_run_id=parent,
                tags={"denoise.kind": "stage", "denoise.stage": stage.config.name, STAGE_KEY: stage.key},
                params={"key": stage.key, "ablation": name, **flatten(key_config(stage.config))},
            )
    return parents


def _close_stage_runs(tracker: Tracker, s) -> None:
    owner = s.run_ids.get(s.users[0])
    for run_id in s.run_ids.values():
        status, tags = tracker.run_state(run_id)
        if status == "FINISHED" and tags.get(STAGE_DONE) == "true":
            continue  # closed by an earlier job
        if s.result is None:
            tracker.set_tags(run_id, {"denoise.error": s.error or s.state})
            tracker.end(run_id, "FAILED" if s.error else "KILLED")
            continue
        if not (s.trained_here and run_id == owner):
            new = {"denoise.reused": "true"}
            source = owner if s.trained_here else tracker.finished_stage(s.stage.key)
            if source and source != run_id:
                new["denoise.reused_from"] = source
            if s.stage.pretrained:
                new["denoise.pretrained"] = str(s.stage.model_file)
            tracker.set_tags(run_id, new)
        if tags.get(STAGE_DONE) != "true":  # else the trial sent its metrics with everything else
            tracker.log_metrics(run_id, s.result.metrics, step=s.result.steps)
        tracker.end(run_id, "FINISHED")


def _parent_metrics(rows: list[dict]) -> dict[str, float]:
    """An ablation's numbers on each source: ``psnr``... for SIDD's validation blocks (as ever),
    ``<source>_psnr``... for any other source; and its training time."""
    out = {"train_s": rows[0]["train_s"]}
    for r in rows:
        prefix = "" if r["eval_source"] in ("sidd", "") else f"{r['eval_source']}_"
        out |= {f"{prefix}{k}": r[k] for k in ("psnr", "ssim", "ssim_uniform7") if r.get(k) is not None}
    return out


def close_runs(tracker: Tracker, study, table: list[dict], scores: dict, grid: Path | None) -> None:
    """Mark every stage run with what happened to it; log each ablation's final scores to the run of
    its final stage (``val_*``, ``val_<source>_*``) and to its parent, with the table and grid."""
    stages, out = study.stages, study.out
    for s in stages.values():
        _close_stage_runs(tracker, s)
    prefixes = {e.name: e.prefix for e in study.data.evals}
    for v, pa in study.planned:
        name = v.name(pa.entry.name)
        rows, run_id = [r for r in table if r["ablation"] == name], study.parents[name]
        final = stages[pa.stages[-1].key].run_ids.get(name)
        for (ablation, source), found in scores.items():
            if ablation == name and final:
                tracker.log_metrics(final, found.metrics(prefixes[source]))
        samples = stages[pa.stages[-1].key].stage.path / "samples"
        if final and samples.is_dir():
            tracker.log_artifacts(final, samples, "samples")
        tracker.log_metrics(run_id, _parent_metrics(rows))
        tags = {"denoise.status": rows[0]["status"], "denoise.reused_stages": rows[0]["reused"] or "-"}
        if final:  # the run holding the ablation's final model (what jobs/denoise.py follows)
            tags["denoise.final_run"] = final
        tracker.set_tags(run_id, tags)
        (out / "report").mkdir(exist_ok=True)
        config = out / "report" / f"{_safe(name)}.yaml"
        config.write_text("\n---\n".join(to_yaml(s.config) for s in pa.stages))
        tracker.log_artifacts(run_id, config, "config")
        for f in ("results.md", "results.csv"):
            tracker.log_artifacts(run_id, out / f, "report")
        if grid is not None:
            tracker.log_artifacts(run_id, grid, "report")
        tracker.end(run_id, "FINISHED" if rows[0]["status"] == "finished" else "FAILED")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
