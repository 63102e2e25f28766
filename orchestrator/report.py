"""The results table: every ablation's measured numbers beside the published ones.

Measured SSIM is given under both conventions (``ssim``: Gaussian window; ``ssim_uniform7``:
scikit-image's default); the published column says which one the paper most likely used.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from orchestrator.ablations import Ablation

COLUMNS = (
    "ablation",
    "family",
    "stage",
    "psnr",
    "ssim",
    "ssim_uniform7",
    "blocks",
    "published_psnr",
    "published_ssim",
    "published_ssim_kind",
    "description",
)


def rows(
    entries: Mapping[str, Ablation], metrics: Mapping[str, tuple[str, Mapping[str, float]]]
) -> list[dict]:
    """One row per ablation from ``{name: (stage, metrics)}``, the stage being its last one run
    (``val_*`` metrics: over all blocks)."""
    out = []
    for name, (stage, m) in metrics.items():
        e, pub = entries[name], entries[name].published
        out.append(
            {
                "ablation": name,
                "family": e.family,
                "stage": stage,
                "psnr": m.get("val_psnr"),
                "ssim": m.get("val_ssim"),
                "ssim_uniform7": m.get("val_ssim_uniform7"),
                "blocks": int(m["val_blocks"]) if "val_blocks" in m else None,
                "published_psnr": pub.psnr if pub else None,
                "published_ssim": pub.ssim if pub else None,
                "published_ssim_kind": pub.ssim_kind if pub else None,
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
        "| ablation | PSNR | SSIM | SSIM-uniform7 | blocks | published PSNR | published SSIM |",
        "|---|---|---|---|---|---|---|",
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
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
