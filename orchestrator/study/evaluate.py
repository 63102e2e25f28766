"""A study's final evaluation: each ablation's final model, and the reference methods, on every
evaluation source, through the one evaluation path on a Ray Data actor pool, cached.

Scores are per block (PSNR, SSIM, SSIM-uniform7 in block order), so the report can average them,
bootstrap them over images and compare two methods block by block. They are cached under
``OUT/evaluations/<source>-<source key>/`` by the model's stage key (and checkpoint) or the
reference's name: an evaluation source added later scores only what it has not scored, and a
rerun scores nothing. A stage's content key does not depend on the evaluation sources, so adding
one never retrains anything.

The sample blocks shown in the comparison grid are the most textured of the first source (the
highest mean gradient magnitude of the clean block, :func:`textured_blocks`); their outputs are
computed again in this process by the same path, with the same per-block seeds, as the pool's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from orchestrator.data.sources import EvalSet
from orchestrator.progress import Progress
from orchestrator.train.evaluation import score_batch
from orchestrator.train.metrics import METRICS

__all__ = ["Scores", "StudyEvaluation", "textured_blocks"]


@dataclass
class Scores:
    """Per-block scores of one method on one source's blocks ``block``, and the time they took."""

    block: np.ndarray
    values: dict[str, np.ndarray]  # metric -> (blocks,)
    seconds: float

    def mean(self, metric: str = "psnr") -> float:
        return float(self.values[metric].mean())

    def metrics(self, prefix: str) -> dict[str, float]:
        """``<prefix>_psnr`` ... and ``<prefix>_blocks``, as every evaluation names them."""
        out = {f"{prefix}_{k}": self.mean(k) for k in METRICS}
        return out | {f"{prefix}_blocks": float(len(self.block))}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, block=self.block, seconds=self.seconds, **self.values)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Scores:
        with np.load(path) as z:
            return cls(z["block"], {k: z[k] for k in METRICS}, float(z["seconds"]))


def textured_blocks(source: EvalSet, count: int, index: np.ndarray | None = None) -> list[int]:
    """The ``count`` blocks (among ``index``) whose clean block has the highest mean gradient
    magnitude: where denoisers differ most visibly (flat blocks look alike under any of them)."""
    index = np.arange(len(source)) if index is None else np.asarray(index)

    def texture(i: int) -> float:
        c = source.clean[i].astype(np.float64).mean(axis=2)
        return float(np.hypot(np.diff(c, axis=0)[:, :-1], np.diff(c, axis=1)[:-1]).mean())

    ranked = sorted(index.tolist(), key=lambda i: -texture(i))
    return sorted(ranked[: max(0, count)])


class StudyEvaluation:
    """The final scores of a study, computed on a Ray Data actor pool when not cached.

    Args:
        out: the study's output folder (the cache is ``out/evaluations``).
        sources: the evaluation sources.
        batch, workers, gpus_per_worker: the pool (one actor per worker).
        progress: print a line per method and source scored.
    """

    def __init__(
        self,
        out: Path,
        sources: list[EvalSet],
        *,
        batch: int,
        workers: int,
        gpus_per_worker: float,
        progress: bool = True,
    ):
        self.out, self.sources, self.progress = out / "evaluations", sources, progress
        self.pool = {"batch": batch, "workers": workers, "gpus_per_worker": gpus_per_worker}

    def _path(self, source: EvalSet, name: str) -> Path:
        return self.out / f"{source.name}-{source.key[:12]}" / f"{name}.npz"

    def scores(
        self, name: str, model: nn.Module | None, source: EvalSet, index: np.ndarray, *, seed: int
    ) -> Scores:
        """The scores of ``model`` (cached as ``name``) on the blocks ``index`` of ``source``.
        ``model`` may be None when the scores are known to be cached."""
        path = self._path(source, name)
        if path.is_file():
            cached = Scores.load(path)
            if np.array_equal(cached.block, index):
                return cached
        if model is None:
            raise FileNotFoundError(f"{path}: no cached scores and no model to compute them")
        from orchestrator.tools.evaluate import evaluate_blocks

        bar = Progress(f"score {name} on {source.name}", 1) if self.progress else None
        t0 = time.perf_counter()
        result = evaluate_blocks(
            model, source.noisy, source.clean, index=index, seed=seed, progress=False, **self.pool
        )
        rows = result.per_block
        scores = Scores(
            np.array([r["block"] for r in rows]),
            {k: np.array([r[k] for r in rows]) for k in METRICS},
            time.perf_counter() - t0,
        )
        scores.save(path)
        if bar:
            bar.update(note=f"PSNR {scores.mean():.3f} dB, {scores.seconds:.1f} s")
        return scores


def sample_strips(model: nn.Module, source: EvalSet, blocks: list[int], *, seed: int) -> list[np.ndarray]:
    """noisy | output | clean strips of ``blocks``, computed as the pool computes them."""
    model.eval()
    strips = []
    for i in blocks:
        out = score_batch(model, source.noisy[i][None], None, np.array([i]), seed=seed)["denoised"][0]
        strips.append(np.concatenate([source.noisy[i], out, source.clean[i]], axis=1))
    return strips
