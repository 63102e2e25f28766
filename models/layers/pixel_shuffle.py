"""Pixel-shuffle down-sampling (PD) and its inverse, as AP-BSN and LG-BPN use it.

PD with factor f splits an image into f*f sub-images (pixel (i, j) of every f x f cell goes to
sub-image (i, j)), which breaks the spatial correlation of real noise. Each sub-image is padded
by ``pad`` pixels; the sub-images are then either tiled into one mosaic image (the f x f grid,
sub-image (i, j) at block (i, j)) or stacked along the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pd_down(
    x: torch.Tensor, f: int, *, pad: int = 0, mode: str = "constant", mosaic: bool = True
) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, f*(H/f + 2 pad), f*(W/f + 2 pad)) mosaic, or (B*f*f, C, ., .) stacked.

    H and W must be multiples of f. ``mode``: padding of each sub-image ("constant" zeros or
    "reflect").
    """
    b, c, h, w = x.shape
    if h % f or w % f:
        raise ValueError(f"PD factor {f} needs H and W multiples of it, got {h}x{w}")
    sub = F.pixel_unshuffle(x, f).view(b, c, f * f, h // f, w // f)  # sub-image (i, j) at i*f + j
    sub = sub.transpose(1, 2).reshape(b * f * f, c, h // f, w // f)
    if pad:
        sub = F.pad(sub, (pad, pad, pad, pad), mode=mode)
    if not mosaic:
        return sub  # image-major: image n's sub-image (i, j) at n*f*f + i*f + j
    hs, ws = sub.shape[-2:]
    grid = sub.view(b, f, f, c, hs, ws).permute(0, 3, 1, 4, 2, 5)  # (B, C, fi, hs, fj, ws)
    return grid.reshape(b, c, f * hs, f * ws)


def pd_up(y: torch.Tensor, f: int, *, pad: int = 0, mosaic: bool = True) -> torch.Tensor:
    """The inverse of :func:`pd_down`: drop each sub-image's padding and interleave them again."""
    if mosaic:
        b, c, hh, ww = y.shape
        hs, ws = hh // f, ww // f
        sub = y.view(b, c, f, hs, f, ws).permute(0, 2, 4, 1, 3, 5).reshape(b * f * f, c, hs, ws)
    else:
        sub = y
        b = y.shape[0] // (f * f)
        c, hs, ws = y.shape[1:]
    if pad:
        sub = sub[..., pad : hs - pad, pad : ws - pad]
    hs, ws = sub.shape[-2:]
    sub = sub.reshape(b, f * f, c, hs, ws).transpose(1, 2).reshape(b, c * f * f, hs, ws)
    return F.pixel_shuffle(sub, f)
