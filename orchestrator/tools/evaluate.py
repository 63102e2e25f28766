"""Evaluate any denoiser on the validation blocks with Ray Data, and write SIDD benchmark submissions.

The blocks are a Ray Data dataset; an actor pool (one actor per GPU on a cluster, or per CPU
slot locally) holds the network once and scores batches of blocks through the one evaluation
path, :func:`orchestrator.train.evaluation.score_batch`: each block's output and its PSNR, SSIM
and SSIM-uniform7 (the conventions of ``docs/METRICS.md``), its random inference steps (R3) seeded
per block. The driver averages them over every block in block order (``val_*``; the full SIDD
validation set is 1280 blocks), so the numbers equal training's final evaluation of the same
``model.pt``, however many workers. The benchmark blocks go through the same pool; their outputs
are written as the SIDD server's ``SubmitSrgb.mat`` (:func:`orchestrator.data.blocks.write_submission`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from orchestrator.cluster import prompt_dispatch, quiet_ray_data
from orchestrator.progress import Progress
from orchestrator.train.evaluation import EvalResult, device_for, rows_of, score_batch, summarize

__all__ = ["BlockScorer", "run_blocks", "evaluate_blocks"]


class BlockScorer:
    """Ray Data actor: denoise a batch of blocks, and score them when the clean ones are given.
    ``denoised``: whether the outputs come back too (a submission) or only the scores."""

    def __init__(self, model: nn.Module, seed: int = 0, threads: int = 1, denoised: bool = True):
        if threads > 0:
            torch.set_num_threads(threads)
        self.model = model.to(device_for()).eval()
        self.seed, self.denoised = seed, denoised

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        noisy, clean = _stacked(batch["noisy"]), batch.get("clean")
        out = score_batch(
            self.model, noisy, None if clean is None else _stacked(clean), batch["index"], seed=self.seed
        )
        if not self.denoised:
            del out["denoised"]
        return out


def _stacked(a: np.ndarray) -> np.ndarray:
    """A batch column as one uint8 array (Ray Data hands blocks of different sizes as objects)."""
    return np.stack(list(a)) if a.dtype == object else a


def run_blocks(
    model: nn.Module,
    noisy: Sequence[np.ndarray],
    clean: Sequence[np.ndarray] | None,
    *,
    batch: int,
    workers: int,
    gpus_per_worker: float,
    seed: int,
    index: Sequence[int] | None = None,
    denoised: bool = True,
) -> Iterator[dict]:
    """Denoise (and score) blocks on a Ray Data actor pool; yields result rows (one block each).

    ``noisy``, ``clean``: (N, H, W, 3) arrays, or lists of blocks that differ in size (then each
    is its own batch). ``index``: the blocks to run (default all).
    """
    import ray

    quiet_ray_data()
    prompt_dispatch()
    index = range(len(noisy)) if index is None else index
    if len({noisy[i].shape for i in index}) > 1:
        batch = 1
    items = [
        {"index": i, "noisy": noisy[i], **({"clean": clean[i]} if clean is not None else {})} for i in index
    ]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch, 64)))
    ds = ds.map_batches(
        BlockScorer,
        fn_constructor_kwargs={"model": model, "seed": seed, "threads": 1, "denoised": denoised},
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(items)))),
        num_gpus=gpus_per_worker,
        num_cpus=0 if gpus_per_worker > 0 else 1,
    )
    for rows in ds.iter_batches(batch_format="numpy", batch_size=None):
        for i in range(len(rows["index"])):
            yield {k: v[i : i + 1] for k, v in rows.items()}


def evaluate_blocks(
    model: nn.Module,
    noisy: Sequence[np.ndarray],
    clean: Sequence[np.ndarray],
    *,
    blocks: int = 0,
    index: Sequence[int] | None = None,
    prefix: str = "val",
    batch: int = 8,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """PSNR, SSIM and SSIM-uniform7 over the blocks ``index`` names (default: the first ``blocks``,
    0: all), and per-block rows, named as :func:`orchestrator.train.evaluation.summarize` names them
    (``prefix`` is the source's: ``val``, ``val_<name>``)."""
    total = len(noisy)
    if index is None:
        index = range(total if blocks <= 0 else min(blocks, total))
    bar = Progress(f"evaluate {len(index)} blocks", len(index), every_s=5.0) if progress else None
    t0 = time.perf_counter()
    rows = []
    opts = {"batch": batch, "workers": workers, "gpus_per_worker": gpus_per_worker, "seed": seed}
    for r in run_blocks(model, noisy, clean, index=index, denoised=False, **opts):
        rows += rows_of(r)
        if bar:
            bar.update()
    return summarize(rows, total, time.perf_counter() - t0, prefix=prefix)
