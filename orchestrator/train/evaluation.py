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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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


ALIGN = 32  # the strictest size multiple of any network here (SSID's U-Nets)


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right (reflecting; replicating where too small) to multiples."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def infer_any(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:func:`infer` on an input of any size: padded to multiples of :data:`ALIGN` (and to a square
    for networks that need one), the output cropped back."""
    h, w = x.shape[-2:]
    padded = pad_to(x, ALIGN)
    if getattr(model, "square_input", False) and padded.shape[-1] != padded.shape[-2]:
        side = max(padded.shape[-2:])
        ph, pw = side - padded.shape[-2], side - padded.shape[-1]
        padded = F.pad(padded, (0, pw, 0, ph), mode="replicate")
    return infer(model, padded)[..., :h, :w]


def block_seed(seed: int, index: int) -> int:
    """The seed of block ``index``'s random inference steps."""
    return seed * 1_000_003 + int(index)


def rng_devices(device: torch.device) -> list[int]:
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
    with torch.random.fork_rng(devices=rng_devices(device)):
        if getattr(model, "random_inference", False):
            parts = []
            for j, i in enumerate(index):
                torch.manual_seed(block_seed(seed, int(i)))
                parts.append(infer_any(model, x[j : j + 1]))
            out = torch.cat(parts)
        else:
            out = infer_any(model, x)
    result = {"index": np.asarray(index), "denoised": to_images(out)}
    if clean is not None:
        result |= {k: v.astype(np.float64) for k, v in block_metrics(result["denoised"], clean).items()}
    return result


def metric_prefix(n: int, total: int, base: str = "val") -> str:
    """``base`` (``val``, ``val_<source>``) for all ``total`` blocks; for the first n, ``val<n>``
    and ``val<n>_<source>``."""
    return base if n == total else f"val{n}{base[3:]}"


@dataclass
class EvalResult:
    """Named averages (``<prefix>_psnr`` ...), the per-block rows they average, and the time taken."""

    metrics: dict[str, float]
    per_block: list[dict]
    seconds: float
    prefix: str = "val"


def summarize(rows: list[dict], total: int, seconds: float = 0.0, *, prefix: str = "val") -> EvalResult:
    """Averages of per-block ``rows`` (each with ``block`` and the metrics), in block order, named
    by the source's ``prefix`` and by how many of its ``total`` blocks they cover."""
    rows = sorted(rows, key=lambda r: r["block"])
    prefix = metric_prefix(len(rows), total, prefix)
    metrics = {f"{prefix}_{k}": float(np.mean([r[k] for r in rows])) for k in METRICS}
    metrics[f"{prefix}_blocks"] = float(len(rows))
    return EvalResult(metrics, rows, seconds, prefix)


def rows_of(scored: dict[str, np.ndarray]) -> list[dict]:
    """Per-block rows ``{"block", "psnr", "ssim", "ssim_uniform7"}`` of a :func:`score_batch` result."""
    return [
        {"block": int(i), **{k: float(scored[k][j]) for k in METRICS}} for j, i in enumerate(scored["index"])
    ]


def _runs(index: Sequence[int], noisy, batch: int) -> list[list[int]]:
    """``index`` cut into batches of at most ``batch`` consecutive blocks of one size."""
    runs: list[list[int]] = []
    for i in index:
        if runs and len(runs[-1]) < batch and noisy[runs[-1][-1]].shape == noisy[i].shape:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def evaluate(
    model: nn.Module,
    noisy: Sequence[np.ndarray],
    clean: Sequence[np.ndarray],
    *,
    blocks: int = 0,
    index: Sequence[int] | None = None,
    prefix: str = "val",
    batch: int = 8,
    seed: int = 0,
) -> EvalResult:
    """``model`` on the blocks ``index`` names (default: the first ``blocks``, 0: all), in this
    process, through :func:`score_batch`; blocks may differ in size (lists of (H, W, 3) arrays).
    Metrics are named by the source's ``prefix``; the model's mode is restored afterwards."""
    total = len(noisy)
    if index is None:
        index = range(total if blocks <= 0 else min(blocks, total))
    was_training = model.training
    model.eval()
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        for run in _runs(index, noisy, batch):
            n, c = np.stack([noisy[i] for i in run]), np.stack([clean[i] for i in run])
            rows += rows_of(score_batch(model, n, c, np.asarray(run), seed=seed))
    finally:
        model.train(was_training)
    return summarize(rows, total, time.perf_counter() - t0, prefix=prefix)


def write_per_block(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["block", *METRICS])
        w.writeheader()
        w.writerows(rows)
