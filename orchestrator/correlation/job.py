"""The noise-correlation job: pairs -> per-image sums on Ray Data workers -> Parquet + pooled map.

Each pair is one Ray Data task that decodes its two PNGs, forms the noise and computes the exact
per-offset sums and counts (:mod:`orchestrator.correlation.stats`). The driver streams the results back,
writes them to ``OUT/parts/`` as they arrive (so an interrupted run keeps every finished map and a
rerun computes only what is missing), pools them, and writes the outputs and figures.

Nothing a worker meets in the data stops the job: a pair that cannot be decoded, or whose noise
has no valid pixel, becomes a row with ``status`` ``error`` or ``nan``, a NaN map and a reason.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.cluster import prompt_dispatch, quiet_ray_data
from orchestrator.correlation.outputs import PARTS, PER_IMAGE, SUM_FIELDS
from orchestrator.correlation.stats import CorrelationSums, correlation_sums, noise_of
from orchestrator.data.files import read_pair
from orchestrator.errors import RunFailure
from orchestrator.schema import CorrelationConfig

__all__ = ["pair_task", "sums_from_row", "compute_rows", "load_results", "collect", "JobStateError"]

JOB_FILE = "job.json"


class JobStateError(RunFailure):
    """The output folder holds results that cannot be combined with this run."""


def _side(radius: int) -> int:
    return 2 * radius + 1


def _sums_shape(radius: int, statistic: str) -> tuple[int, ...]:
    """Shape of each sum field: (2R+1, 2R+1), per channel for ``pearson``."""
    side = (_side(radius),) * 2
    return side if statistic == "rgb_pearson" else (3, *side)


def _empty_sums(radius: int, statistic: str) -> CorrelationSums:
    zeros = {f: np.zeros(_sums_shape(radius, statistic)) for f in SUM_FIELDS[statistic]}
    return CorrelationSums(statistic, **zeros)


def _classify(sums: CorrelationSums) -> tuple[str, str]:
    m = sums.map()
    if np.isnan(m).all():
        if sums.statistic == "rgb_pearson":
            return "nan", "no valid pixel: the noise is zero, or equal in all three channels, everywhere"
        return "nan", "the noise is constant over the image (zero variance)"
    return "ok", ""


def _sums(row: dict, radius: int, statistic: str, threads: int) -> CorrelationSums:
    """One row's sums: of its pair's noise, or (``residual``) of its noisy images alone."""
    if statistic != "residual":
        noisy, clean = read_pair(str(row["noisy_path"]), str(row["clean_path"]))
        return correlation_sums(noise_of(noisy, clean), radius, statistic=statistic, workers=threads)
    from orchestrator.correlation.residual import residual_sums
    from orchestrator.data.sources import TrainItem, read_item

    item = TrainItem(str(row["key"]), str(row["noisy_path"]), str(row["reader"]), (), arg=str(row["arg"]))
    return CorrelationSums.pool([residual_sums(image, radius, workers=threads) for image in read_item(item)])


def pair_task(row: dict, *, radius: int, statistic: str, threads: int = 1) -> dict:
    """Ray Data map function: one pair (or, for ``residual``, one noisy item) row in, the same row
    with its sums and map out. Never raises."""
    t0 = time.perf_counter()
    out = {k: v for k, v in row.items() if not isinstance(v, np.ndarray)}
    try:
        sums = _sums(row, radius, statistic, threads)
        status, reason = _classify(sums)
    except Exception as exc:  # recorded in the row: one bad image must not lose the others
        sums = _empty_sums(radius, statistic)
        status, reason = "error", f"{type(exc).__name__}: {exc}"
    for field in SUM_FIELDS[statistic]:
        out[field] = np.asarray(getattr(sums, field), dtype=np.float64).ravel()
    out["map"] = sums.map().ravel() if status == "ok" else np.full(_side(radius) ** 2, np.nan)
    out.update(status=status, reason=reason, statistic=statistic, radius=radius)
    out["seconds"] = time.perf_counter() - t0
    return out


def sums_from_row(row: dict, *, radius: int, statistic: str) -> CorrelationSums:
    """Rebuild one image's :class:`CorrelationSums` from its row (as stored in Parquet)."""
    shape = _sums_shape(radius, statistic)
    fields = {f: np.asarray(row[f], dtype=np.float64).reshape(shape) for f in SUM_FIELDS[statistic]}
    return CorrelationSums(statistic, **fields)


# ------------------------------------------------------------------------------------ storage


class _PartWriter:
    """Appends result rows to ``parts/`` as small Parquet files, each written atomically."""

    def __init__(self, folder: Path, *, every_rows: int = 16, every_s: float = 30.0):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.every_rows, self.every_s = every_rows, every_s
        self.last = time.monotonic()
        self.serial = len(list(folder.glob("part-*.parquet")))

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.every_rows or time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows)
        path = self.folder / f"part-{self.serial:06d}-{os.getpid()}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.rename(path)
        self.serial += 1
        self.rows = []
        self.last = time.monotonic()


def load_results(out: Path) -> list[dict]:
    """Every result row already in ``out`` (``per_image.parquet`` and ``parts/``), the latest per key."""
    files = [out / PER_IMAGE] if (out / PER_IMAGE).is_file() else []
    files += sorted((out / PARTS).glob("part-*.parquet")) if (out / PARTS).is_dir() else []
    rows: dict[str, dict] = {}
    for f in files:
        try:
            for row in pq.read_table(f).to_pylist():
                rows[row["key"]] = row
        except (pa.ArrowInvalid, OSError) as exc:
            print(f"warning: ignoring unreadable partial results {f} ({exc})", flush=True)
    return list(rows.values())


def _check_job_state(out: Path, cfg: CorrelationConfig) -> None:
    state = {"radius": cfg.radius, "statistic": cfg.statistic}
    job = out / JOB_FILE
    has_results = (out / PER_IMAGE).is_file() or any((out / PARTS).glob("part-*.parquet"))
    if job.is_file() and has_results:
        before = json.loads(job.read_text())
        if before != state and cfg.resume:
            raise JobStateError(
                f"{out} holds results for {before}, not {state}: choose another --out, or pass "
                "--set resume=false to replace them"
            )
    if not cfg.resume:
        shutil.rmtree(out / PARTS, ignore_errors=True)
        (out / PER_IMAGE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps(state))


# ------------------------------------------------------------------------------------ compute


def compute_rows(rows: list[dict], cfg: CorrelationConfig, resources: dict):
    """Run :func:`pair_task` over ``rows`` with Ray Data; yield result rows as they finish."""
    import ray

    quiet_ray_data()
    prompt_dispatch()
    cpus = float(resources.get("CPU", 1))
    workers = cfg.workers or max(1, int(cpus // cfg.threads))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
        pair_task,
        fn_kwargs={"radius": cfg.radius, "statistic": cfg.statistic, "threads": cfg.threads},
        num_cpus=cfg.threads,
        compute=ray.data.TaskPoolStrategy(size=workers),
    )
    yield from ds.iter_rows()


def collect(pairs: list[dict], cfg: CorrelationConfig, out: Path, resources_fn) -> tuple[list[dict], int]:
    """All result rows for the ``pairs`` (their input rows), reused from ``out`` where unchanged,
    else computed; and how many were computed.

    Args:
        resources_fn: a context manager factory yielding the cluster's resources (``connect``).
    """
    from orchestrator.progress import Progress

    _check_job_state(out, cfg)
    wanted = pairs[: cfg.max_pairs] if cfg.max_pairs else pairs
    previous = {r["key"]: r for r in load_results(out)} if cfg.resume else {}
    reused = {
        w["key"]: previous[w["key"]]
        for w in wanted
        if w["key"] in previous
        and previous[w["key"]]["fingerprint"] == w["fingerprint"]
        and previous[w["key"]]["status"] != "error"
    }
    todo = [w for w in wanted if w["key"] not in reused]
    print(
        f"[correlation] {len(wanted)} {'images' if cfg.statistic == 'residual' else 'pairs'}: "
        f"{len(reused)} already in {out}, {len(todo)} to compute "
        f"(statistic {cfg.statistic}, radius {cfg.radius})",
        flush=True,
    )
    results = dict(reused)
    if todo:
        writer = _PartWriter(out / PARTS)
        progress = Progress("correlation", len(todo))
        try:
            with resources_fn() as resources:
                print(f"[correlation] Ray resources: {_describe(resources)}", flush=True)
                for row in compute_rows(todo, cfg, resources):
                    row = {k: _plain(v) for k, v in row.items()}
                    writer.add(row)
                    results[row["key"]] = row
                    tail = f" ({row['reason']})" if row["status"] != "ok" else ""
                    progress.update(note=f"{row['key']} {row['status']}{tail} {row['seconds']:.2f}s")
        finally:
            writer.flush()  # whatever finished is on disk, also when the loop was interrupted
    return [results[w["key"]] for w in wanted], len(todo)


def _plain(value):
    """Ray Data hands back numpy values; Parquet rows and JSON want plain ones."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def _describe(resources: dict) -> str:
    keys = [k for k in ("CPU", "GPU", "memory") if k in resources]
    return ", ".join(
        f"{k}={resources[k] / 2**30:.1f} GiB" if k == "memory" else f"{k}={resources[k]:g}" for k in keys
    )


def run_correlation(cfg: CorrelationConfig) -> dict:
    """Index the data, compute every per-image map on Ray, pool, write outputs and figures, log.

    Returns the summary also written to ``OUT/summary.json``.
    """
    from models import masks
    from orchestrator.cluster import connect
    from orchestrator.correlation import outputs, report
    from orchestrator.correlation.pairs import source_images, source_pairs

    report.check_offsets(cfg.figures.offsets, cfg.radius)  # config errors before any work
    reference = report.load_reference(cfg.figures.reference, cfg.radius)
    t0 = time.perf_counter()
    out = Path(cfg.out).expanduser().resolve()
    print("[correlation] indexing the dataset", flush=True)
    found = source_images(cfg) if cfg.statistic == "residual" else source_pairs(cfg)
    print("\n".join(found.summaries), flush=True)
    before = _previous_summary(out)
    rows, computed = collect(found.rows, cfg, out, lambda: connect(cfg.ray))
    outputs.write_per_image(out, rows, cfg)
    sums = [sums_from_row(r, radius=cfg.radius, statistic=cfg.statistic) for r in rows]
    ok = [s for r, s in zip(rows, sums, strict=True) if r["status"] == "ok"]
    status_counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "nan", "error")}
    if not ok:
        raise JobStateError(
            f"no pair gave a map ({status_counts}); the reasons are in {out / PER_IMAGE} (column 'reason')"
        )
    pooled = CorrelationSums.pool(ok)
    files = outputs.write_pooled(out, pooled)
    pooled_map = pooled.map()
    label = found.label if len(found.label) <= 40 else found.label[:37] + "..."
    findings = report.write_report(
        rows, sums, pooled_map, cfg.figures, out / "figures", label=label, reference=reference
    )
    outputs.write_findings(out, findings, found.problems)
    blind = masks.from_correlation(pooled_map, threshold=cfg.threshold)
    masks.save(
        out / "mask.npz",
        blind,
        threshold=cfg.threshold,
        statistic=cfg.statistic,
        source=str(files["pooled_map"]),
        images=len(ok),
    )
    seconds = time.perf_counter() - t0
    summary = outputs.summary(cfg, found, rows, status_counts, pooled_map, blind, findings, seconds)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    outputs.print_summary(summary, out)
    if cfg.tracking.enabled:
        _record(cfg, out, summary, before if not computed else {})
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _record(cfg: CorrelationConfig, out: Path, summary: dict, before: dict) -> None:
    """Log the outputs to MLflow, unless ``before`` (the previous run's summary, when this run
    computed nothing new) says a run in the same store and experiment already holds them."""
    where = _where(cfg)
    if before.get("mlflow_where") == where and before.get("mlflow_run_id"):
        summary |= {k: before[k] for k in ("mlflow_run_id", "mlflow_where")}
        print(f"[correlation] nothing new: MLflow run {before['mlflow_run_id']} holds these maps")
        return
    try:
        summary["mlflow_run_id"], summary["mlflow_where"] = _log_to_mlflow(cfg, out, summary), where
    except Exception as exc:  # the outputs are on disk already; say so instead of losing them
        summary["mlflow_error"] = f"{type(exc).__name__}: {exc}"
        print(f"[correlation] MLflow logging failed ({summary['mlflow_error']}); outputs kept in {out}")


def _where(cfg: CorrelationConfig) -> str:
    """The MLflow store and experiment a run of ``cfg`` logs to."""
    from orchestrator.tracking import resolve_uri

    return f"{resolve_uri(cfg.tracking.uri)}#{cfg.tracking.experiment}"


def _previous_summary(out: Path) -> dict:
    """The ``summary.json`` a previous run left in ``out`` ({} when none can be read)."""
    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _log_to_mlflow(cfg: CorrelationConfig, out: Path, summary: dict) -> str:
    from orchestrator.config import flatten
    from orchestrator.tracking import Tracker

    tracker = Tracker(cfg.tracking)
    name = f"correlation-{cfg.statistic}-r{cfg.radius}"
    with tracker.run(name, tags={"job": "correlation", "dataset": summary["dataset"]}) as run_id:
        tracker.log_params(run_id, {**flatten(cfg), "dataset.pairs": summary["pairs"]})
        metrics = {f"profile_d{d}": v for d, v in summary["profile"].items()}
        metrics.update({f"pairs_{k}": v for k, v in summary["status"].items()})
        metrics.update(
            outliers=len(summary["outliers"]), mask_taps=summary["mask_taps"], seconds=summary["seconds"]
        )
        tracker.log_metrics(run_id, metrics)
        for f in sorted(out.iterdir()):
            if f.is_file() and f.suffix in (".npy", ".npz", ".parquet", ".json", ".csv"):
                tracker.log_artifacts(run_id, f)
        tracker.log_artifacts(run_id, out / "figures", "figures")
    print(
        f"[correlation] logged to MLflow: {tracker.uri}, experiment {cfg.tracking.experiment!r}, run {run_id}"
    )
    return run_id
