"""The results table: every ablation's measured numbers on every evaluation source, beside the
published ones.

One row per ablation and evaluation source (``eval_source``). Measured SSIM is given under both
conventions (``ssim``: Gaussian window; ``ssim_uniform7``: scikit-image's default); the published
column says which one the paper most likely used. The Markdown table puts each source's numbers in
a group of columns of its own, one line per ablation.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from orchestrator.data.files import read_png, write_png
from orchestrator.study.catalogue import catalogue

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
)


def _status(chain) -> str:
    failed = [s for s in chain if s.result is None]
    return f"failed: {failed[0].stage.config.name}: {failed[0].error}" if failed else "finished"


def study_table(planned, stages, evals, scores) -> list[dict]:
    """Rows of a study: per planned ablation (or sweep variant) and evaluation source, from its
    stages' states (``{key: StageState}``) and the final scores (``{(ablation, source): Scores}``)."""
    entries = {}
    for v, _ in planned:
        entries.update(catalogue(v.study))
    out = []
    for v, pa in planned:
        name, entry = v.name(pa.entry.name), entries[pa.entry.name]
        chain = [stages[s.key] for s in pa.stages if stages[s.key].state != "skipped"]
        pub = entry.published
        common = {
            "ablation": name,
            "family": entry.family,
            "stage": chain[-1].stage.config.name if chain else "-",
            "status": _status(chain),
            "published_psnr": pub.psnr if pub else None,
            "published_ssim": pub.ssim if pub else None,
            "published_ssim_kind": pub.ssim_kind if pub else None,
            "reused": ",".join(
                s.stage.config.name for s in chain if not s.trained_here and s.result is not None
            ),
            "train_s": round(sum(s.result.train_s for s in chain if s.result is not None), 1),
            "description": entry.description,
        }
        for source in evals or [None]:
            found = scores.get((name, source.name)) if source is not None else None
            out.append(
                common
                | {
                    "eval_source": source.name if source is not None else "",
                    "psnr": found.mean("psnr") if found else None,
                    "ssim": found.mean("ssim") if found else None,
                    "ssim_uniform7": found.mean("ssim_uniform7") if found else None,
                    "blocks": len(found.block) if found else None,
                }
            )
    return out


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def to_markdown(table: list[dict]) -> str:
    """One line per ablation; each evaluation source's PSNR, SSIM, SSIM-uniform7 and blocks in a
    group of columns (named after the source when there are several)."""
    sources = list(dict.fromkeys(r["eval_source"] for r in table))
    tag = (lambda s: "") if len(sources) <= 1 else (lambda s: f" ({s})")
    group = [f"{m}{tag(s)}" for s in sources for m in ("PSNR", "SSIM", "SSIM-uniform7", "blocks")]
    head = ["ablation", *group, "published PSNR", "published SSIM", "reused stages", "train time", "status"]
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
            cells += [_fmt(r.get("psnr"), 3), _fmt(r.get("ssim"), 4), _fmt(r.get("ssim_uniform7"), 4)]
            cells.append("-" if blocks is None else str(blocks))
        kind = f" ({first['published_ssim_kind']})" if first["published_ssim_kind"] else ""
        cells += [_fmt(first["published_psnr"], 3), _fmt(first["published_ssim"], 4) + kind]
        cells += [first["reused"] or "-", f"{first['train_s']:.0f} s", first["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_grid(planned, stages, evals, scores, out: Path, samples: int) -> Path | None:
    """The paper's Fig. 8 on the first evaluation source's most textured block: noisy, each
    ablation's output (with its PSNR on that block) and clean. The strips (noisy | output | clean)
    of its ``samples`` most textured blocks go to the final stage's ``samples/block_<i>.png``."""
    from orchestrator.study.evaluate import sample_strips, textured_blocks
    from orchestrator.train.store import load_stage_model

    if not evals or samples <= 0:
        return None
    source = evals[0]
    blocks = textured_blocks(source, samples)
    panels = []
    for v, pa in planned:
        last = stages[pa.stages[-1].key]
        if last.result is None:
            continue
        name, folder = v.name(pa.entry.name), last.stage.path / "samples"
        if not all((folder / f"block_{i:04d}.png").is_file() for i in blocks):
            model = load_stage_model(last.stage)
            strips = sample_strips(model, source, blocks, seed=last.stage.config.train.seed)
            for i, strip in zip(blocks, strips, strict=True):
                write_png(folder / f"block_{i:04d}.png", strip)
        found = scores.get((name, source.name))
        psnr = float(found.values["psnr"][found.block == blocks[0]][0]) if found is not None else None
        panels.append((name, psnr, folder / f"block_{blocks[0]:04d}.png"))
    if not panels:
        return None
    return comparison_grid(panels, out / "comparison_grid.png")


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
