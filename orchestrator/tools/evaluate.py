"""Evaluate any denoiser on the validation blocks with Ray Data, and write SIDD benchmark submissions.

The blocks are a Ray Data dataset; an actor pool (one actor per GPU on a cluster, or per CPU
slot locally) holds the network once and scores batches of blocks through the one evaluation
path, :func:`orchestrator.train.evaluation.score_batch`: each block's output and its PSNR, SSIM
and SSIM-uniform7 (the conventions of ``docs/METRICS.md``), its random inference steps (R3) seeded
per block. The driver averages them over every block in block order (``val_*``; the full SIDD
validation set is 1280 blocks), so the numbers equal training's final evaluation of the same
``model.pt``, however many workers. The benchmark blocks go through the same pool; their outputs
are written as the SIDD server's ``SubmitSrgb.mat``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrator.cluster import prompt_dispatch, quiet_ray_data
from orchestrator.progress import Progress
from orchestrator.train.evaluation import EvalResult, device_for, rows_of, score_batch, summarize

__all__ = ["BlockScorer", "run_blocks", "evaluate_blocks", "write_submission"]

SUBMISSION_VARIABLE = "DenoisedBlocksSrgb"


class BlockScorer:
    """Ray Data actor: denoise a batch of blocks, and score them when the clean ones are given."""

    def __init__(self, model: nn.Module, seed: int = 0, threads: int = 1):
        if threads > 0:
            torch.set_num_threads(threads)
        self.model = model.to(device_for()).eval()
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return score_batch(self.model, batch["noisy"], batch.get("clean"), batch["index"], seed=self.seed)


def run_blocks(
    model: nn.Module,
    noisy: np.ndarray,
    clean: np.ndarray | None,
    *,
    batch: int,
    workers: int,
    gpus_per_worker: float,
    seed: int,
) -> Iterator[dict]:
    """Denoise (and score) (N, H, W, 3) blocks on a Ray Data actor pool; yields result rows."""
    import ray

    quiet_ray_data()
    prompt_dispatch()
    items = [
        {"index": i, "noisy": noisy[i], **({"clean": clean[i]} if clean is not None else {})}
        for i in range(len(noisy))
    ]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch, 64)))
    ds = ds.map_batches(
        BlockScorer,
        fn_constructor_kwargs={"model": model, "seed": seed, "threads": 1},
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus_per_worker,
        num_cpus=0 if gpus_per_worker > 0 else 1,
    )
    for rows in ds.iter_batches(batch_format="numpy", batch_size=None):
        for i in range(len(rows["index"])):
            yield {k: v[i : i + 1] for k, v in rows.items()}


def evaluate_blocks(
    model: nn.Module,
    noisy: np.ndarray,
    clean: np.ndarray,
    *,
    blocks: int = 0,
    batch: int = 8,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """PSNR, SSIM and SSIM-uniform7 over the first ``blocks`` blocks (0: all), and per-block rows,
    named as :func:`orchestrator.train.evaluation.summarize` names them."""
    total = len(noisy)
    if 0 < blocks < total:
        noisy, clean = noisy[:blocks], clean[:blocks]
    bar = Progress(f"evaluate {len(noisy)} blocks", len(noisy), every_s=5.0) if progress else None
    t0 = time.perf_counter()
    rows = []
    opts = {"batch": batch, "workers": workers, "gpus_per_worker": gpus_per_worker, "seed": seed}
    for r in run_blocks(model, noisy, clean, **opts):
        rows += rows_of(r)
        if bar:
            bar.update()
    return summarize(rows, total, time.perf_counter() - t0)


def write_submission(
    path: Path, denoised: np.ndarray, seconds_per_mp: float, optional: dict[str, str]
) -> Path:
    """``SubmitSrgb.mat`` as the SIDD benchmark server takes it (the SIDD benchmark code's
    ``SIDD_Denoise.m``): ``DenoisedBlocksSrgb``, a cell array of (images x blocks) uint8
    (H, W, 3) blocks; ``TimeMPSrgb``, seconds per megapixel; ``OptionalData``, a struct of text
    (method name, authors, paper, venue)."""
    from scipy.io import savemat

    if denoised.ndim != 5 or denoised.shape[-1] != 3 or denoised.dtype != np.uint8:
        raise ValueError(f"denoised blocks must be uint8 (images, blocks, H, W, 3), got {denoised.shape}")
    cells = np.empty(denoised.shape[:2], dtype=object)
    for i in range(denoised.shape[0]):
        for j in range(denoised.shape[1]):
            cells[i, j] = denoised[i, j]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.mat")
    savemat(
        tmp,
        {
            SUBMISSION_VARIABLE: cells,
            "TimeMPSrgb": np.array([[seconds_per_mp]]),
            "OptionalData": {k: str(v) for k, v in optional.items()},
        },
        do_compression=True,
    )
    tmp.replace(path)
    return path
