"""What the correlation job writes to its output folder, and prints: per-image Parquet, pooled maps,
the findings (outliers, per-camera and per-ISO maps, skipped files) and the summary."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.correlation.stats import CorrelationSums
from orchestrator.schema import CorrelationConfig

_MOMENTS = ("sum", "count", "sx", "sy", "sxx", "syy")
SUM_FIELDS = {"rgb_pearson": ("sum", "count"), "pearson": _MOMENTS, "residual": _MOMENTS}
PARTS = "parts"
PER_IMAGE = "per_image.parquet"


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.save(f, np.asarray(array, dtype=np.float64))
    tmp.replace(path)


def write_per_image(out: Path, rows: list[dict], cfg: CorrelationConfig) -> Path:
    """All rows to ``per_image.parquet`` (atomically), then drop the merged ``parts/``."""
    table = pa.Table.from_pylist(rows)
    meta = {"radius": str(cfg.radius), "statistic": cfg.statistic, "map_side": str(2 * cfg.radius + 1)}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    tmp = out / (PER_IMAGE + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out / PER_IMAGE)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return out / PER_IMAGE


def write_pooled(out: Path, pooled: CorrelationSums) -> dict[str, Path]:
    """``pooled_map``, ``pooled_sum``, ``pooled_count`` (float64, (2R+1)^2), and for ``pearson`` the
    per-channel moments needed to recompute the map exactly."""
    files = {
        "pooled_map": out / "pooled_map.npy",
        "pooled_sum": out / "pooled_sum.npy",
        "pooled_count": out / "pooled_count.npy",
    }
    _save_npy(files["pooled_map"], pooled.map())
    if pooled.statistic == "rgb_pearson":
        _save_npy(files["pooled_sum"], pooled.sum)
        _save_npy(files["pooled_count"], pooled.count)
    else:  # channels pooled; the per-channel moments go beside them
        _save_npy(files["pooled_sum"], pooled.sum.sum(axis=0))
        _save_npy(files["pooled_count"], pooled.count.sum(axis=0))
        files["pooled_map_per_channel"] = out / "pooled_map_per_channel.npy"
        _save_npy(files["pooled_map_per_channel"], pooled.map(per_channel=True))
        files["pooled_moments"] = out / "pooled_moments.npz"
        moments = {f: getattr(pooled, f) for f in SUM_FIELDS["pearson"]}
        np.savez(files["pooled_moments"], **moments)
    return files


def write_findings(out: Path, findings: dict, problems: tuple) -> None:
    with (out / "outliers.csv").open("w", newline="") as f:
        table = csv.writer(f)
        table.writerow(["key", "camera", "iso", "value", "dy", "dx"])
        for o in findings["outliers"]:
            table.writerow([o["key"], o["camera"], o["iso"], f"{o['value']:.6f}", o["dy"], o["dx"]])
    groups = {
        col: {k: {"images": v["images"], "map": v["map"].tolist()} for k, v in g.items()}
        for col, g in findings["groups"].items()
    }
    (out / "group_maps.json").write_text(json.dumps(groups))
    if problems:
        with (out / "skipped_files.csv").open("w", newline="") as f:
            table = csv.writer(f)  # quotes paths and messages that hold commas or quotes
            table.writerow(["path", "problem"])
            table.writerows(problems)


def summary(cfg, found, rows, status_counts, pooled_map, blind, findings, seconds) -> dict:
    from orchestrator.correlation.stats import PROFILE_DISTANCES, radial_profile

    r = cfg.radius
    dists = tuple(d for d in PROFILE_DISTANCES if d <= r)
    failed = [
        {"key": x["key"], "status": x["status"], "reason": x["reason"]} for x in rows if x["status"] != "ok"
    ]
    return {
        "dataset": found.label,
        "statistic": cfg.statistic,
        "radius": r,
        "pairs": len(rows),
        "status": status_counts,
        "failed": failed,
        "skipped_files": len(found.problems),
        "profile": {str(d): v for d, v in radial_profile(pooled_map, dists).items()},
        "mask_taps": int(blind.sum()),
        "mask_threshold": cfg.threshold,
        "mask_is_radius4_diamond": bool(blind.shape[0] >= 9 and _is_diamond4(blind)),
        "outliers": findings["outliers"],
        "seconds": round(seconds, 2),
    }


def _is_diamond4(blind: np.ndarray) -> bool:
    from models import masks

    return bool(np.array_equal(blind, masks.diamond(4, size=blind.shape[0])))


def print_summary(summary: dict, out: Path) -> None:
    st = summary["status"]
    print(f"[correlation] {st['ok']} maps, {st['nan']} NaN, {st['error']} errors in {summary['seconds']} s")
    for f in summary["failed"]:
        print(f"  {f['status']}: {f['key']}: {f['reason']}")
    prof = ", ".join(f"d={d}: {v:.3f}" for d, v in summary["profile"].items())
    print(f"  coefficient along the axes: {prof}")
    shape = "LG-BPN's radius-4 diamond" if summary["mask_is_radius4_diamond"] else "not the radius-4 diamond"
    print(
        f"  derived blind region: {summary['mask_taps']} offsets above {summary['mask_threshold']} ({shape})"
    )
    print(f"  outlier images: {len(summary['outliers'])}")
    print(f"  outputs in {out}", flush=True)
