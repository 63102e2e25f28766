"""LG-BPN's kernel shift at inference, as one dense convolution.

At test time LG-BPN samples each tap (a, b) of its masked k x k kernel at ``ratio`` times its
offset from the centre, bilinearly. That is exactly a dense convolution whose kernel is the
masked kernel resampled onto the integer grid: each tap's weight is split over the four grid
points around its shrunk position. A 9x9 kernel at ratio 0.72 becomes 7x7, a 21x21 at 0.8 17x17.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def shrink_kernel(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """(O, I, k, k) -> (O, I, 2r+1, 2r+1) with r = ceil(ratio * (k // 2)), bilinear splatting."""
    k = weight.shape[-1]
    half = k // 2
    r = math.ceil(ratio * half - 1e-9)
    pos = ratio * torch.arange(-half, half + 1, dtype=torch.float64)  # shrunk tap offsets
    lo = torch.floor(pos)
    frac = pos - lo
    # (k, 2r+1) matrix: how much of tap a lands on grid offset g (two non-zeros per row)
    split = torch.zeros(k, 2 * r + 1, dtype=torch.float64)
    idx = (lo + r).long()
    split[torch.arange(k), idx] += 1 - frac
    inside = idx + 1 <= 2 * r
    split[torch.arange(k)[inside], idx[inside] + 1] += frac[inside]
    split = split.to(weight.dtype)
    return torch.einsum("oiab,ay,bx->oiyx", weight, split, split)


def shifted_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, ratio: float
) -> torch.Tensor:
    """Convolve ``x`` (reflect-padded) with ``weight`` shrunk by ``ratio``; same spatial size."""
    dense = shrink_kernel(weight, ratio)
    r = dense.shape[-1] // 2
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), dense, bias)
