"""Denoise images of any size in overlapping tiles, inside a memory bound, without seams.

The image is first padded (reflect, bottom and right) to a multiple of ``ALIGN`` = 32 px, the
strictest size any network here needs (SSID's U-Nets; pixel-shuffle factors divide it), exactly
as whole-image inference pads it. The padded image is cut into cores of ``tile`` px on a
32-aligned grid; each core is run inside a window that extends it by ``margin`` px of real
context on every side (clipped at the image), and its output is blended with its neighbours'
over a ``blend``-px band by linear weights. Where the margin covers a network's receptive field,
every output pixel sees exactly the context it sees in one whole-image pass, so the tiled
output equals the whole-image one (to float rounding); the blending hides what is left when it
does not.

``tile`` follows from a memory bound: a probe pass records the bytes of every module's output
per input pixel (an upper bound on what inference holds at once), and the window is the largest
32-aligned square whose activations fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from orchestrator.errors import InputError
from orchestrator.train.evaluation import ALIGN, infer, infer_any, pad_to

__all__ = ["ALIGN", "activation_bytes_per_pixel", "tile_for_memory", "denoise_image"]


@torch.no_grad()
def activation_bytes_per_pixel(model: nn.Module, device: torch.device, side: int = 64) -> float:
    """Bytes of all module outputs of one inference pass, per input pixel."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        infer(model, torch.zeros(1, 3, side, side, device=device))
    finally:
        for h in handles:
            h.remove()
    return max(total, 1) / (side * side)


def tile_for_memory(bytes_per_pixel: float, memory_mb: float, margin: int) -> int:
    """The core side (a multiple of 32) whose window (core + 2 margins) fits ``memory_mb``."""
    window = int(math.sqrt(memory_mb * 2**20 / bytes_per_pixel)) // ALIGN * ALIGN
    core = window - 2 * margin
    if core < ALIGN:
        need = (ALIGN + 2 * margin) ** 2 * bytes_per_pixel / 2**20
        raise InputError(
            f"a memory bound of {memory_mb:g} MB leaves no room for a tile with a {margin}px margin "
            f"(this network needs at least {need:.0f} MB); raise --memory-mb or lower --margin"
        )
    return core


def _ramp(n: int, lo: int, hi: int, blend: int, start: int, stop: int) -> np.ndarray:
    """Weights over window positions [start, stop): 1 on the core [lo, hi), falling linearly to 0
    over ``blend`` px outside it (at the image edge the core reaches the edge)."""
    pos = np.arange(start, stop) + 0.5
    below = np.clip((pos - (lo - blend)) / max(blend, 1), 0, 1) if lo > 0 else np.ones_like(pos)
    above = np.clip(((hi + blend) - pos) / max(blend, 1), 0, 1) if hi < n else np.ones_like(pos)
    w = np.minimum(below, above)
    w[(pos >= lo) & (pos < hi)] = 1.0
    return w


@torch.no_grad()
def denoise_image(
    model: nn.Module,
    image: np.ndarray,
    *,
    tile: int = 0,
    margin: int = 160,
    blend: int = 16,
    device: torch.device | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Denoise float (H, W, 3) ``image`` in the networks' 0..255 range; float output, same shape.

    ``tile`` 0 runs the whole image in one pass. ``on_tile(done, total)`` is called after each tile.
    """
    if tile > 0 and (tile % ALIGN or margin % ALIGN):
        raise InputError(f"tile ({tile}) and margin ({margin}) must be multiples of {ALIGN}")
    if tile > 0 and blend > margin:
        raise InputError(f"blend ({blend}) cannot exceed margin ({margin})")
    device = device or torch.device("cpu")
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float().to(device)
    x = pad_to(x, ALIGN)
    H, W = x.shape[-2:]
    if tile <= 0 or (tile >= H and tile >= W):
        out = infer_any(model, x)[0, :, :h, :w].permute(1, 2, 0).cpu().numpy()
        if on_tile:
            on_tile(1, 1)
        return out
    acc = np.zeros((H, W, 3), np.float64)
    weight = np.zeros((H, W, 1), np.float64)
    ys, xs = range(0, H, tile), range(0, W, tile)
    total, done = len(ys) * len(xs), 0
    for y0 in ys:
        y1 = min(y0 + tile, H)
        wy0, wy1 = max(0, y0 - margin), min(H, y1 + margin)
        ry = _ramp(H, y0, y1, blend, wy0, wy1)
        for x0 in xs:
            x1 = min(x0 + tile, W)
            wx0, wx1 = max(0, x0 - margin), min(W, x1 + margin)
            rx = _ramp(W, x0, x1, blend, wx0, wx1)
            out = infer_any(model, x[..., wy0:wy1, wx0:wx1])[0].permute(1, 2, 0).cpu().numpy()
            wgt = (ry[:, None] * rx[None, :])[..., None]
            acc[wy0:wy1, wx0:wx1] += out * wgt
            weight[wy0:wy1, wx0:wx1] += wgt
            done += 1
            if on_tile:
                on_tile(done, total)
    return (acc / weight)[:h, :w].astype(np.float32)
