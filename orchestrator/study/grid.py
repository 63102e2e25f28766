"""The paper's Fig. 8 for a study: the most textured reported block, noisy, each ablation's output
and clean, side by side; and each final stage's sample strips."""

from __future__ import annotations

from pathlib import Path

from orchestrator.data.files import read_png, write_png


def sample_folder(study, p) -> Path:
    """Where the final stage of ``p`` keeps the sample strips of the model its row reports."""
    stage = study.stages[p.final.key].stage
    best = study.best_file(stage)
    return stage.path / ("samples" if best is None else f"samples-{best.stem}")


def study_grid(study, scores) -> Path | None:
    """The paper's Fig. 8 on the first evaluation source's most textured reported block: noisy,
    each ablation's output (first seed; the model its row reports; its PSNR on that block) and
    clean. The strips (noisy | output | clean) of its ``eval.samples`` most textured reported blocks
    go to the final stage's ``samples/block_<i>.png`` (``samples-best-<key>/`` for a selected
    checkpoint)."""
    from orchestrator.study.evaluate import load_model, sample_strips, textured_blocks

    samples = study.base.eval.samples
    if not study.data.evals or samples <= 0:
        return None
    source = study.data.evals[0]
    blocks = textured_blocks(source, samples, study.reported(source))
    panels = []
    for p in study.planned:
        last = study.stages[p.final.key]
        if p.seed != 0 or last.result is None:
            continue
        folder, best = sample_folder(study, p), study.best_file(last.stage)
        if not all((folder / f"block_{i:04d}.png").is_file() for i in blocks):
            model = load_model(str(best or last.stage.model_file))
            strips = sample_strips(model, source, blocks, seed=last.stage.config.train.seed)
            for i, strip in zip(blocks, strips, strict=True):
                write_png(folder / f"block_{i:04d}.png", strip)
        found = scores.get((p.name, 0, source.name, "best" if best else "last"))
        psnr = None
        if found is not None and (found.block == blocks[0]).any():
            psnr = float(found.values["psnr"][found.block == blocks[0]][0])
        panels.append((p.name, psnr, folder / f"block_{blocks[0]:04d}.png"))
    if not panels:
        return None
    return comparison_grid(panels, study.out / "comparison_grid.png")


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
