"""The results table as files and as the job's closing lines: ``results.csv`` (every column of
:data:`COLUMNS`), ``results.md`` (one line per ablation, intervals in brackets, a legend) and the
summary a job prints (``docs/METRICS.md`` says what each number means)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from pathlib import Path

COLUMNS = (
    "ablation",
    "family",
    "stage",
    "status",
    "psnr",
    "ssim",
    "ssim_uniform7",
    "blocks",
    "published_psnr",
    "published_ssim",
    "published_ssim_kind",
    "reused",
    "train_s",
    "description",
    "eval_source",
    "psnr_ci_low",
    "psnr_ci_high",
    "psnr_std",
    "ssim_ci_low",
    "ssim_ci_high",
    "seeds",
    "step",
    "last_psnr",
    "last_ssim",
    "delta_psnr_vs_original",
    "delta_ci_low",
    "delta_ci_high",
    "delta_significant",
    "best_reference",
    "delta_vs_best_reference",
    "delta_ref_ci_low",
    "delta_ref_ci_high",
    "flag",
    "eval_s",
    "params",
    "ms_per_block",
)


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(r: dict, metric: str, digits: int) -> str:
    v = r.get(metric)
    if v is None:
        return "-"
    std = f" ±{r['psnr_std']:.{digits}f}" if metric == "psnr" and (r.get("seeds") or 0) > 1 else ""
    low, high = r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high")
    ci = f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None else " [no interval: one image]"
    return f"{v:.{digits}f}{std}{ci}"


def _count(n: int | None) -> str:
    """Parameters as people read them: 0, 1234, 12.3k, 1.23M."""
    if n is None:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}k" if n >= 10_000 else str(n)


def _paired(d: float | None, low: float | None, high: float | None) -> str:
    """A paired difference with its interval, ``*`` when that interval excludes 0."""
    if d is None:
        return "-"
    if low is None:
        return f"{d:+.3f} [no interval: one image]"
    mark = " *" if low > 0 or high < 0 else ""
    return f"{d:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def _delta(r: dict) -> str:
    return _paired(r.get("delta_psnr_vs_original"), r.get("delta_ci_low"), r.get("delta_ci_high"))


def _delta_reference(r: dict) -> str:
    d = r.get("delta_vs_best_reference")
    if d is None:
        return "-"
    return f"{r['best_reference']}: " + _paired(d, r.get("delta_ref_ci_low"), r.get("delta_ref_ci_high"))


LEGEND = (
    "PSNR and SSIM: mean over the reported blocks (and over seeds: ± their std), [95% bootstrap "
    "interval over images and seeds]. ΔPSNR: paired with the family's original over the same blocks; "
    "ΔPSNR vs best reference: paired with the reference row of highest PSNR on that source (named); "
    "* the interval excludes 0. flag: below a reference row. ms/block: median inference time of one "
    "256x256 block on the driver's CPU, test-time procedure included. See docs/METRICS.md."
)


def to_markdown(table: list[dict], best: str = "") -> str:
    """One line per ablation (the reference rows first); each evaluation source's numbers in a group
    of columns (named after the source when there are several); a legend, and a sweep's verdict."""
    sources = list(dict.fromkeys(r["eval_source"] for r in table))
    tag = (lambda s: "") if len(sources) <= 1 else (lambda s: f" ({s})")
    metrics = (
        "PSNR [95% CI]",
        "SSIM [95% CI]",
        "SSIM-uniform7",
        "ΔPSNR vs original [95% CI]",
        "ΔPSNR vs best reference [95% CI]",
        "flag",
        "blocks",
    )
    group = [f"{m}{tag(s)}" for s in sources for m in metrics]
    head = ["ablation", *group, "params", "ms/block", "step", "last PSNR", "published PSNR", "published SSIM"]
    head += ["reused stages"]
    head += ["train time", "eval time", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_ablation: dict[str, dict[str, dict]] = {}
    for r in table:
        by_ablation.setdefault(r["ablation"], {})[r["eval_source"]] = r
    for name, rows in by_ablation.items():
        first = next(iter(rows.values()))
        cells = [name]
        for s in sources:
            r = rows.get(s, {})
            blocks = r.get("blocks")
            cells += [_ci(r, "psnr", 3), _ci(r, "ssim", 4), _fmt(r.get("ssim_uniform7"), 4), _delta(r)]
            cells.append(_delta_reference(r))
            cells += [r.get("flag") or "-", "-" if blocks is None else str(blocks)]
        kind = f" ({first['published_ssim_kind']})" if first.get("published_ssim_kind") else ""
        cells += [_count(first.get("params")), _fmt(first.get("ms_per_block"), 0)]
        cells += [first.get("step") or "-", _fmt(first.get("last_psnr"), 3)]
        cells += [_fmt(first.get("published_psnr"), 3), _fmt(first.get("published_ssim"), 4) + kind]
        eval_s = sum(r.get("eval_s") or 0.0 for r in rows.values())
        cells += [
            first.get("reused") or "-",
            f"{first.get('train_s') or 0:.0f} s",
            f"{eval_s:.1f} s",
            first["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", LEGEND]
    if best:
        lines += ["", best]
    return "\n".join(lines) + "\n"


def _mlflow_command() -> str:
    """``mlflow`` as this Python's environment has it (``.venv/bin/mlflow`` when not on PATH)."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.is_file() and shutil.which("mlflow") != str(beside):
        return os.path.relpath(beside) if not os.path.relpath(beside).startswith("..") else str(beside)
    return "mlflow"


def print_summary(outcome) -> None:
    """The table, what was reused, and where to look in the MLflow UI; stages a scheduler stopped
    early are listed as such, not as failures."""
    print(to_markdown(outcome.table, best=outcome.best), flush=True)
    print(f"trained {len(outcome.trained)} stage(s), reused {len(outcome.reused)}; results in {outcome.out}")
    if outcome.tracking_uri:
        ui = f"{_mlflow_command()} ui --backend-store-uri {outcome.tracking_uri}"
        if outcome.tracking_uri.startswith("http"):
            ui = f"open {outcome.tracking_uri}"
        print(f"MLflow: experiment {outcome.experiment_id} at {outcome.tracking_uri}; to browse: {ui}")
        print(
            '  MLflow 3\'s UI opens on its GenAI overview: the runs are under "Model training" '
            "(one parent run per ablation, its stages as child runs, the reference rows as runs of their own)"
        )
    figure = outcome.out / "comparison_grid.png"
    print(
        f"table: {outcome.out / 'results.md'} and results.csv"
        + (f"; comparison grid: {figure}" if figure.is_file() else "")
    )
    for label, why in outcome.failed.items():
        if why.startswith("stopped early") or "stopped early" in why:
            print(f"stopped early {label}: {why}", file=sys.stderr)
        else:
            print(f"FAILED {label}: {why}", file=sys.stderr)
