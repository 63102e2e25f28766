"""Evaluate any denoiser on the validation blocks with Ray Data, and write SIDD benchmark submissions.

The blocks are a Ray Data dataset; an actor pool (one actor per GPU on a cluster, or per CPU
slot locally) holds the network once and denoises batches of blocks, returning each block's
output and its PSNR, SSIM and SSIM-uniform7 (the conventions of ``docs/METRICS.md``). The driver
averages them over every block (``val_*``; the full SIDD validation set is 1280 blocks) and
writes the per-block numbers. The benchmark blocks go through the same pool; their outputs are
written as the SIDD server's ``SubmitSrgb.mat``.

Randomness at inference (R3's masks) is seeded per batch from ``seed`` and the batch's first
block, so a result does not depend on how blocks are spread over workers.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrator.cluster import prompt_dispatch, quiet_ray_data
from orchestrator.evaluation import device_for, infer, metric_prefix, to_images, to_tensor
from orchestrator.metrics import evaluate as block_metrics

__all__ = ["BlockDenoiser", "run_blocks", "EvalResult", "evaluate_blocks", "write_submission"]

SUBMISSION_VARIABLE = "DenoisedBlocksSrgb"


class BlockDenoiser:
    """Ray Data actor: denoise a batch of blocks, and score them when the clean ones are given."""

    def __init__(self, model: nn.Module, seed: int = 0, threads: int = 1):
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = device_for()
        self.model = model.to(self.device).eval()
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch.manual_seed(self.seed * 1_000_003 + int(batch["index"][0]))
        with torch.no_grad():
            out = to_images(infer(self.model, to_tensor(batch["noisy"]).to(self.device)))
        result = {"index": batch["index"], "denoised": out}
        if "clean" in batch:
            result |= {k: v.astype(np.float64) for k, v in block_metrics(out, batch["clean"]).items()}
        return result


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
        BlockDenoiser,
        fn_constructor_kwargs={"model": model, "seed": seed, "threads": 1},
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus_per_worker,
        num_cpus=0 if gpus_per_worker > 0 else 1,
    )
    for rows in ds.iter_batches(batch_format="numpy", batch_size=None):
        for i in range(len(rows["index"])):
            yield {k: v[i] for k, v in rows.items()}


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_block: list[dict]
    seconds: float
    prefix: str = "val"  # of the metric names: ``val`` for all blocks, ``val<n>`` for the first n


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
    """PSNR, SSIM and SSIM-uniform7 over the first ``blocks`` blocks (0: all), and per-block rows.

    Metrics are named as :func:`orchestrator.evaluation.evaluate` names them: ``val_*`` over every
    block, ``val<n>_*`` over the first n only.
    """
    from orchestrator.progress import Progress

    total = len(noisy)
    if 0 < blocks < total:
        noisy, clean = noisy[:blocks], clean[:blocks]

    bar = Progress(f"evaluate {len(noisy)} blocks", len(noisy), every_s=5.0) if progress else None
    t0 = time.perf_counter()
    rows = []
    for r in run_blocks(
        model, noisy, clean, batch=batch, workers=workers, gpus_per_worker=gpus_per_worker, seed=seed
    ):
        rows.append({"block": int(r["index"]), **{k: float(r[k]) for k in ("psnr", "ssim", "ssim_uniform7")}})
        if bar:
            bar.update()
    rows.sort(key=lambda r: r["block"])
    prefix = metric_prefix(len(rows), total)
    metrics = {
        f"{prefix}_{k}": float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "ssim_uniform7")
    }
    metrics[f"{prefix}_blocks"] = float(len(rows))
    return EvalResult(metrics, rows, time.perf_counter() - t0, prefix)


def write_per_block(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["block", "psnr", "ssim", "ssim_uniform7"])
        w.writeheader()
        w.writerows(rows)


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
