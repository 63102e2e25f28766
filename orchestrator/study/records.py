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
        return tracker, tracker.experiment(study.experiment)
    except Exception as exc:
        raise TrackingError(f"cannot reach MLflow at {tracker.uri} ({type(exc).__name__}: {exc})") from None


def _ablation_key(planned) -> str:
    """A row's identity over its seeds: the keys of every stage of every seed."""
    keys = [s.key for p in planned for s in p.pa.stages]
    return hashlib.sha256(":".join(keys).encode()).hexdigest()[:32]


def open_runs(tracker: Tracker, exp_id: str, planned, stages) -> tuple[dict[str, str], dict]:
    """A parent run per ablation (row), a child per seed when there are several, and under it (or
    under the parent) a child per stage; all found again if a job made them before. Each stage
    run's id is kept in its stage's ``run_ids`` (by the seed's run name), each seed run's in
    ``seed_runs``. Returns ``{row: parent run id}`` and ``{(row, seed): seed run id}``."""
    parents, rows, seed_runs = {}, {}, {}
    for p in planned:
        rows.setdefault(p.name, []).append(p)
    for name, group in rows.items():
        first = group[0]
        params = {
            "family": first.pa.entry.family,
            "profile": first.variant.study.profile,
            "seeds": len(group),
        }
        params |= first.variant.values
        for stage in first.pa.stages:
            params |= {
                f"{stage.config.name}.{k}": val for k, val in flatten(key_config(stage.config)).items()
            }
        parent = tracker.open_run(
            name,
            experiment_id=exp_id,
            tags={
                "denoise.kind": "ablation",
                "denoise.ablation": name,
                "denoise.ablation_key": _ablation_key(group),
            },
            params=params,
        )
        parents[name] = parent
        for p in group:
            holder = parent
            if p.seeds > 1:
                holder = tracker.open_run(
                    f"seed {p.seed}",
                    experiment_id=exp_id,
                    parent_run_id=parent,
                    tags={"denoise.kind": "seed", "denoise.ablation": name, "denoise.seed": str(p.seed)},
                    params={"seed": p.seed, "train_seed": p.final.config.train.seed},
                )
                seed_runs[(name, p.seed)] = holder
            for stage in p.pa.stages:
                s = stages[stage.key]
                if s.state == "skipped":
                    continue
                s.run_ids[p.run_name] = tracker.open_run(
                    stage.config.name,
                    experiment_id=exp_id,
                    parent_run_id=holder,
                    tags={"denoise.kind": "stage", "denoise.stage": stage.config.name, STAGE_KEY: stage.key},
                    params={"key": stage.key, "ablation": p.run_name, **flatten(key_config(stage.config))},
                )
    return parents, seed_runs


def _close_stage_runs(tracker: Tracker, s) -> None:
    owner = s.run_ids.get(s.users[0])
    for run_id in s.run_ids.values():
        status, tags = tracker.run_state(run_id)
        if status == "FINISHED" and tags.get(STAGE_DONE) == "true":
            continue  # closed by an earlier job
        if s.result is None:
            stopped = s.error.startswith("stopped early")
            tracker.set_tags(
                run_id,
                {"denoise.error": s.error or s.state}
                | ({"denoise.stopped_early": "true"} if stopped else {}),
            )
            tracker.end(run_id, "FAILED" if s.error and not stopped else "KILLED")
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


_ROW_METRICS = (
    "psnr",
    "ssim",
    "ssim_uniform7",
    "psnr_ci_low",
    "psnr_ci_high",
    "psnr_std",
    "ssim_ci_low",
    "ssim_ci_high",
    "last_psnr",
    "last_ssim",
    "delta_psnr_vs_original",
    "delta_ci_low",
    "delta_ci_high",
    "delta_vs_best_reference",
    "delta_ref_ci_low",
    "delta_ref_ci_high",
    "eval_s",
)


def _row_metrics(rows: list[dict]) -> dict[str, float]:
    """A row's numbers on each source: ``psnr``, ``psnr_ci_low``... for SIDD's validation blocks (as
    ever), ``<source>_psnr``... for any other source; its training time and inference cost."""
    out = {"train_s": rows[0]["train_s"]}
    out |= {k: float(rows[0][k]) for k in ("params", "ms_per_block") if rows[0].get(k) is not None}
    for r in rows:
        prefix = "" if r["eval_source"] in ("sidd", "") else f"{r['eval_source']}_"
        out |= {f"{prefix}{k}": float(r[k]) for k in _ROW_METRICS if r.get(k) is not None}
        if r.get("delta_significant") is not None:
            out[f"{prefix}delta_significant"] = float(bool(r["delta_significant"]))
    return out


def _log_references(tracker: Tracker, exp_id: str, table: list[dict], out: Path) -> None:
    """A run per reference method (tag ``denoise.kind=reference``), found again on a later job."""
    for name in dict.fromkeys(r["ablation"] for r in table if r["family"] == "reference"):
        rows = [r for r in table if r["ablation"] == name]
        run_id = tracker.open_run(
            name,
            experiment_id=exp_id,
            tags={"denoise.kind": "reference", "denoise.reference": name},
            params={"method": name, "description": rows[0]["description"]},
        )
        tracker.log_metrics(run_id, _row_metrics(rows))
        for f in ("results.md", "results.csv"):
            tracker.log_artifacts(run_id, out / f, "report")
        tracker.end(run_id, "FINISHED")


def close_runs(tracker: Tracker, study, table: list[dict], scores: dict, grid: Path | None) -> None:
    """Mark every stage run with what happened to it; log each seed's final scores to the run of
    its final stage (``val_*``, ``val_<source>_*``; the selected checkpoint's as ``best_val_*``),
    each row's numbers (means, intervals, paired differences) to its parent with the table and
    grid, and the reference rows to runs of their own."""
    from orchestrator.study.grid import sample_folder

    stages, out = study.stages, study.out
    for s in stages.values():
        _close_stage_runs(tracker, s)
    prefixes = {e.name: e.prefix for e in study.data.evals}
    rows: dict[str, list] = {}
    for p in study.planned:
        rows.setdefault(p.name, []).append(p)
        final = stages[p.final.key].run_ids.get(p.run_name)
        if not final:
            continue
        for (row, seed, source, kind), found in scores.items():
            if row == p.name and seed == p.seed and kind in ("last", "best"):
                prefix = prefixes[source] if kind == "last" else f"best_{prefixes[source]}"
                tracker.log_metrics(final, found.metrics(prefix))
        samples = sample_folder(study, p)
        if samples.is_dir():
            tracker.log_artifacts(final, samples, "samples")
        seed_run = study.seed_runs.get((p.name, p.seed))
        if seed_run:
            done = stages[p.final.key].result is not None
            tracker.set_tags(seed_run, {"denoise.final_run": final})
            tracker.end(seed_run, "FINISHED" if done else "FAILED")
    _log_references(tracker, study.exp_id, table, out)
    for name, group in rows.items():
        mine, run_id = [r for r in table if r["ablation"] == name], study.parents[name]
        final = stages[group[0].final.key].run_ids.get(group[0].run_name)
        tracker.log_metrics(run_id, _row_metrics(mine))
        status = mine[0]["status"]
        tags = {"denoise.status": status, "denoise.reused_stages": mine[0]["reused"] or "-"}
        if mine[0].get("flag"):
            tags["denoise.flag"] = mine[0]["flag"]
        if final:  # the run holding the ablation's (first seed's) final model: what jobs/denoise.py follows
            tags["denoise.final_run"] = final
        tracker.set_tags(run_id, tags)
        (out / "report").mkdir(exist_ok=True)
        config = out / "report" / f"{_safe(name)}.yaml"
        config.write_text("\n---\n".join(to_yaml(s.config) for s in group[0].pa.stages))
        tracker.log_artifacts(run_id, config, "config")
        for f in ("results.md", "results.csv"):
            tracker.log_artifacts(run_id, out / f, "report")
        if grid is not None:
            tracker.log_artifacts(run_id, grid, "report")
        end = {"finished": "FINISHED", "stopped early": "KILLED"}.get(status, "FAILED")
        tracker.end(run_id, end)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
