"""The results table: every ablation's measured numbers beside the published ones.

Measured SSIM is given under both conventions (``ssim``: Gaussian window; ``ssim_uniform7``:
scikit-image's default); the published column says which one the paper most likely used.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.data.files import read_png
from orchestrator.study.catalogue import Ablation, catalogue

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
)


@dataclass
class StudyRow:
    """What the table needs about one ablation: its entry, its last stage's metrics (``val_*``:
    over all blocks), the stages reused instead of trained by this job, and the training time of
    all its stages (whenever they were trained)."""

    name: str
    entry: Ablation
    stage: str
    metrics: Mapping[str, float]
    reused: list[str] = field(default_factory=list)
    train_s: float = 0.0
    status: str = "finished"


def rows(results: list[StudyRow]) -> list[dict]:
    """One table row per ablation."""
    out = []
    for r in results:
        e, pub, m = r.entry, r.entry.published, r.metrics
        out.append(
            {
                "ablation": r.name,
                "family": e.family,
                "stage": r.stage,
                "status": r.status,
                "psnr": m.get("val_psnr"),
                "ssim": m.get("val_ssim"),
                "ssim_uniform7": m.get("val_ssim_uniform7"),
                "blocks": int(m["val_blocks"]) if "val_blocks" in m else None,
                "published_psnr": pub.psnr if pub else None,
                "published_ssim": pub.ssim if pub else None,
                "published_ssim_kind": pub.ssim_kind if pub else None,
                "reused": ",".join(r.reused),
                "train_s": round(r.train_s, 1),
                "description": e.description,
            }
        )
    return out


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def to_markdown(table: list[dict]) -> str:
    lines = [
        "| ablation | PSNR | SSIM | SSIM-uniform7 | blocks | published PSNR | published SSIM "
        "| reused stages | train time | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        kind = f" ({r['published_ssim_kind']})" if r["published_ssim_kind"] else ""
        cells = [
            r["ablation"],
            _fmt(r["psnr"], 3),
            _fmt(r["ssim"], 4),
            _fmt(r["ssim_uniform7"], 4),
            "-" if r["blocks"] is None else str(r["blocks"]),
            _fmt(r["published_psnr"], 3),
            _fmt(r["published_ssim"], 4) + kind,
            r["reused"] or "-",
            f"{r['train_s']:.0f} s",
            r["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_grid(panels: list[tuple[str, float | None, Path]], path: Path) -> Path:
    """The paper's Fig. 8: one validation block, noisy, each ablation's output and clean, side by
    side. ``panels``: (ablation, its PSNR, its ``samples/block_<i>.png`` strip noisy|output|clean)."""
    from matplotlib.figure import Figure

    strips = [read_png(p) for _, _, p in panels]
    third = strips[0].shape[1] // 3
    images = [("noisy", strips[0][:, :third])]
    images += [
        (f"{name}\n{psnr:.2f} dB" if psnr is not None else name, strip[:, third : 2 * third])
        for (name, psnr, _), strip in zip(panels, strips, strict=True)
    ]
    images.append(("clean", strips[0][:, 2 * third :]))
    fig = Figure(figsize=(1.6 * len(images), 2.0), dpi=120)
    for i, (title, img) in enumerate(images):
        ax = fig.add_subplot(1, len(images), i + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def study_table(planned, stages) -> list[dict]:
    """The table of a study: a row per planned ablation (or sweep variant), from the states of
    its stages (``{key: StageState}``)."""
    entries = {}
    for v, _ in planned:
        entries.update(catalogue(v.study))
    results = []
    for v, pa in planned:
        chain = [stages[s.key] for s in pa.stages if stages[s.key].state != "skipped"]
        last = chain[-1] if chain else None
        failed = [s for s in chain if s.result is None]
        why = f"failed: {failed[0].stage.config.name}: {failed[0].error}" if failed else "finished"
        results.append(
            StudyRow(
                name=v.name(pa.entry.name),
                entry=entries[pa.entry.name],
                stage=last.stage.config.name if last else "-",
                metrics=last.result.metrics if last and last.result else {},
                reused=[s.stage.config.name for s in chain if not s.trained_here and s.result is not None],
                train_s=sum(s.result.train_s for s in chain if s.result is not None),
                status=why,
            )
        )
    return rows(results)


def study_grid(planned, stages, out: Path) -> Path | None:
    """The first validation block across ablations (the paper's Fig. 8), if samples were saved."""
    panels = []
    for v, pa in planned:
        last = stages[pa.stages[-1].key]
        sample = last.stage.path / "samples" / "block_0000.png"
        if last.result is not None and sample.is_file():
            panels.append((v.name(pa.entry.name), last.result.metrics.get("val_psnr"), sample))
    if not panels:
        return None
    return comparison_grid(panels, out / "comparison_grid.png")


def print_summary(outcome) -> None:
    """The table, what was reused, and where to look in the MLflow UI."""
    print(to_markdown(outcome.table), flush=True)
    print(f"trained {len(outcome.trained)} stage(s), reused {len(outcome.reused)}; results in {outcome.out}")
    if outcome.tracking_uri:
        ui = f"mlflow ui --backend-store-uri {outcome.tracking_uri}"
        if outcome.tracking_uri.startswith("http"):
            ui = f"open {outcome.tracking_uri}"
        print(f"MLflow: experiment {outcome.experiment_id} at {outcome.tracking_uri}; to browse: {ui}")
    for label, why in outcome.failed.items():
        print(f"FAILED {label}: {why}", file=sys.stderr)
