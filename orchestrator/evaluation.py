"""Evaluate a denoiser on validation blocks: PSNR, SSIM and SSIM-uniform7, plus sample outputs.

Naming keeps partial numbers apart from the result: metrics over all blocks are ``val_psnr``,
``val_ssim``, ``val_ssim_uniform7``; over the first n blocks only (a quick check during training)
they are ``val<n>_psnr`` and so on. AP-BSN's habit of validating on 64 of 1280 blocks cannot then be
mistaken for the final number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrator.data.sidd import write_png
from orchestrator.metrics import MetricAccumulator, quantize_uint8


def device_for(name: str = "") -> torch.device:
    """The device ``name`` ('cuda', 'cpu', 'cuda:1'); '' means CUDA when there is one, else CPU."""
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 255]."""
    # contiguous NCHW: a permuted (channels-last) input makes some convolutions many times slower
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().contiguous()


def to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) -> uint8 (N, H, W, 3), quantized as the metrics do."""
    return quantize_uint8(x.detach().permute(0, 2, 3, 1).cpu().numpy())


@torch.no_grad()
def infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A trained network's output at inference: its ``denoise`` procedure (PD, R3) where it has one,
    else its forward pass. The caller puts the model in eval mode."""
    denoise = getattr(model, "denoise", None)
    return denoise(x) if callable(denoise) else model(x)


def metric_prefix(n: int, total: int) -> str:
    """``val`` for all ``total`` blocks, ``val<n>`` for the first n."""
    return "val" if n == total else f"val{n}"


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
) -> dict[str, float]:
    """Metrics of ``model`` on the first ``blocks`` blocks (0: all), named as the module says.

    Randomness at inference (R3's masks) is drawn from ``seed`` in a forked RNG, so evaluating in
    the middle of training changes nothing in the training run. The first ``samples`` blocks are
    written to ``sample_dir`` as ``block_<i>.png``: noisy | output | clean side by side.
    """
    total = len(noisy)
    n = total if blocks <= 0 else min(blocks, total)
    was_training = model.training
    model.eval()
    acc = MetricAccumulator()
    device = next(model.parameters(), torch.empty(0)).device
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, n, batch):
                out = to_images(infer(model, to_tensor(noisy[start : start + batch]).to(device)))
                acc.update(out, clean[start : start + len(out)])
                for j in range(max(0, min(samples - start, len(out)))):
                    i = start + j
                    strip = np.concatenate([noisy[i], out[j], clean[i]], axis=1)
                    write_png(Path(sample_dir) / f"block_{i:04d}.png", strip)
    finally:
        model.train(was_training)
    prefix = metric_prefix(n, total)
    return {f"{prefix}_{k}": v for k, v in acc.result().items()} | {f"{prefix}_blocks": float(n)}
