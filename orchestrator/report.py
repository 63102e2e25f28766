"""The results table: every ablation's measured numbers beside the published ones.

Measured SSIM is given under both conventions (``ssim``: Gaussian window; ``ssim_uniform7``:
scikit-image's default); the published column says which one the paper most likely used.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.ablations import Ablation
from orchestrator.data.sidd import read_png

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
