"""The one evaluation path: denoise blocks, score them, name and average the numbers.

:func:`score_batch` denoises and scores one batch of blocks; every evaluation calls it: training's
periodic and final evaluation (:func:`evaluate`, in the trial's process), and ``jobs/evaluate.py``'s
Ray Data actors (:class:`orchestrator.tools.evaluate.BlockScorer`). Randomness at inference (R3's
masks) is drawn per block from ``(seed, block index)``, in a forked RNG: a block's output depends
neither on the batch it is in, nor on the worker, nor on the training run around it. Averages are
taken over the per-block rows in block order, so every path gives the same numbers, to the bit.

Naming keeps partial numbers apart from the result: metrics over all blocks are ``val_psnr``,
``val_ssim``, ``val_ssim_uniform7``; over the first n blocks only (a quick check during training)
they are ``val<n>_psnr`` and so on. AP-BSN's habit of validating on 64 of 1280 blocks cannot then be
mistaken for the final number.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrator.train.metrics import METRICS, quantize_uint8
from orchestrator.train.metrics import evaluate as block_metrics

__all__ = [
    "EvalResult",
    "device_for",
    "evaluate",
    "infer",
    "metric_prefix",
    "score_batch",
    "summarize",
    "to_images",
    "to_tensor",
    "write_per_block",
]


def device_for(name: str = "") -> torch.device:
    """The device ``name`` ('cuda', 'cpu', 'cuda:1'); '' means CUDA when there is one, else CPU."""
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 255]."""
    # contiguous NCHW: a permuted (channels-last) input makes some convolutions many times slower
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().contiguous()


def to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) -> uint8 (N, H, W, 3), quantized as the metrics do."""
    return quantize_uint8(x.detach().permute(0, 2, 3, 1).float().cpu().numpy())


@torch.no_grad()
def infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A trained network's output at inference: its ``denoise`` procedure (PD, R3) where it has one,
    else its forward pass. The caller puts the model in eval mode."""
    denoise = getattr(model, "denoise", None)
    return denoise(x) if callable(denoise) else model(x)


def block_seed(seed: int, index: int) -> int:
    """The seed of block ``index``'s random inference steps."""
    return seed * 1_000_003 + int(index)


def _rng_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG an evaluation on ``device`` must leave as it found it."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@torch.no_grad()
def score_batch(
    model: nn.Module, noisy: np.ndarray, clean: np.ndarray | None, index: np.ndarray, *, seed: int
) -> dict[str, np.ndarray]:
    """Denoise uint8 (B, H, W, 3) ``noisy`` blocks (numbered ``index``) and score them against
    ``clean`` when given: ``{"index", "denoised", "psnr", "ssim", "ssim_uniform7"}``, one entry per
    block. The model is used as it is (the caller puts it in eval mode on its device). A network
    that draws randomness at inference (``random_inference``) runs block by block, each seeded by
    :func:`block_seed`; the caller's RNG state, CPU and CUDA, is left as it was."""
    device = next(model.parameters(), torch.empty(0)).device
    x = to_tensor(noisy).to(device)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        if getattr(model, "random_inference", False):
            parts = []
            for j, i in enumerate(index):
                torch.manual_seed(block_seed(seed, int(i)))
                parts.append(infer(model, x[j : j + 1]))
            out = torch.cat(parts)
        else:
            out = infer(model, x)
    result = {"index": np.asarray(index), "denoised": to_images(out)}
    if clean is not None:
        result |= {k: v.astype(np.float64) for k, v in block_metrics(result["denoised"], clean).items()}
    return result


def metric_prefix(n: int, total: int) -> str:
    """``val`` for all ``total`` blocks, ``val<n>`` for the first n."""
    return "val" if n == total else f"val{n}"


@dataclass
class EvalResult:
    """Named averages (``<prefix>_psnr`` ...), the per-block rows they average, and the time taken."""

    metrics: dict[str, float]
    per_block: list[dict]
    seconds: float
    prefix: str = "val"


def summarize(rows: list[dict], total: int, seconds: float = 0.0) -> EvalResult:
    """Averages of per-block ``rows`` (each with ``block`` and the metrics), in block order, named
    by how many of the ``total`` blocks they cover."""
    rows = sorted(rows, key=lambda r: r["block"])
    prefix = metric_prefix(len(rows), total)
    metrics = {f"{prefix}_{k}": float(np.mean([r[k] for r in rows])) for k in METRICS}
    metrics[f"{prefix}_blocks"] = float(len(rows))
    return EvalResult(metrics, rows, seconds, prefix)


def rows_of(scored: dict[str, np.ndarray]) -> list[dict]:
    """Per-block rows ``{"block", "psnr", "ssim", "ssim_uniform7"}`` of a :func:`score_batch` result."""
    return [
        {"block": int(i), **{k: float(scored[k][j]) for k in METRICS}} for j, i in enumerate(scored["index"])
    ]


def evaluate(
    model: nn.Module,
    noisy: np.ndarray,
    clean: np.ndarray,
    *,
    blocks: int = 0,
    batch: int = 8,
    seed: int = 0,
    samples: int = 0,
    sample_dir: str | Path | None = None,
) -> EvalResult:
    """``model`` on the first ``blocks`` blocks (0: all), in this process, through :func:`score_batch`.

    The first ``samples`` blocks are written to ``sample_dir`` as ``block_<i>.png``: noisy | output |
    clean side by side. The model's mode (train or eval) is restored afterwards.
    """
    from orchestrator.data.files import write_png

    total = len(noisy)
    n = total if blocks <= 0 else min(blocks, total)
    was_training = model.training
    model.eval()
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            scored = score_batch(
                model, noisy[start:stop], clean[start:stop], np.arange(start, stop), seed=seed
            )
            rows += rows_of(scored)
            for i in range(start, min(stop, samples)):
                strip = np.concatenate([noisy[i], scored["denoised"][i - start], clean[i]], axis=1)
                write_png(Path(sample_dir) / f"block_{i:04d}.png", strip)
    finally:
        model.train(was_training)
    return summarize(rows, total, time.perf_counter() - t0)


def write_per_block(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["block", *METRICS])
        w.writeheader()
        w.writerows(rows)
