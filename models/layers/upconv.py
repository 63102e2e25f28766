"""A 3x3 convolution of ``cat(nearest_up2(h), skip)`` computed without forming the up-sampled map.

Nearest-neighbour 2x up-sampling repeats each low-resolution pixel in a 2x2 block, so the
full-resolution output pixels of each of the four phases (row and column parity) see only two
distinct low-resolution rows and two columns through the 3x3 kernel: the taps that land on the
same low-resolution pixel can be summed into one. Each phase is then a 2x2 convolution at the low
resolution, and the up-sampled part costs 4 x 4 = 16 low-resolution taps instead of 9
full-resolution ones (2.25x fewer multiply-adds); the skip channels keep their ordinary 3x3
convolution at full resolution, into which the four phases are added. The result is the same
function as the convolution of the concatenation (the zero padding of the up-sampled map is the
up-sampled zero padding of ``h``), up to the order of floating-point additions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upsampled_conv3x3"]


def _phase_sums(offsets: tuple[int, int, int], like: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """For output parity 0 and 1: the first low-resolution offset seen and the (2, 3) 0/1 matrix
    that sums the kernel's taps (at full-resolution ``offsets`` from the output) onto the two
    low-resolution offsets they fall on."""
    phases = []
    for parity in (0, 1):
        low = [(parity + o) // 2 for o in offsets]
        first = min(low)
        sums = torch.zeros(2, 3, dtype=like.dtype, device=like.device)
        for tap, at in enumerate(low):
            sums[at - first, tap] = 1.0
        phases.append((first, sums))
    return phases


def upsampled_conv3x3(
    h: torch.Tensor,
    skip: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    row_offsets: tuple[int, int, int] = (-1, 0, 1),
) -> torch.Tensor:
    """``conv3x3(cat(nearest_up2(h), skip))`` with zero padding.

    Args:
        h: (B, C, H, W), the map to up-sample.
        skip: (B, S, 2H, 2W), concatenated after the up-sampled map.
        weight: (O, C + S, 3, 3); bias: (O,) or None.
        row_offsets: the rows each kernel row reads, relative to the output row: (-1, 0, 1) for an
            ordinary convolution padded by one, (-2, -1, 0) for an upward-looking one
            (:class:`models.layers.shift.ShiftConv2d`). Columns are always (-1, 0, 1).

    Returns:
        (B, O, 2H, 2W).
    """
    b, c, rows, cols = h.shape
    if skip.shape[-2:] != (2 * rows, 2 * cols) or weight.shape[1] != c + skip.shape[1]:
        raise ValueError(
            f"shapes do not fit: h {tuple(h.shape)}, skip {tuple(skip.shape)}, weight {tuple(weight.shape)}"
        )
    top = -row_offsets[0]
    out = F.conv2d(F.pad(skip, (1, 1, top, 2 - top)), weight[:, c:], bias)  # (B, O, 2H, 2W)
    padded = F.pad(h, (1, 1, 1, 1))
    w_up = weight[:, :c]
    parts = []
    col_phases = _phase_sums((-1, 0, 1), weight)
    for row0, row_sum in _phase_sums(row_offsets, weight):
        for col0, col_sum in col_phases:
            w = torch.einsum("it,js,octs->ocij", row_sum, col_sum, w_up)
            window = padded[:, :, 1 + row0 : 2 + row0 + rows, 1 + col0 : 2 + col0 + cols]
            parts.append(F.conv2d(window, w))
    if not torch.is_grad_enabled():  # add each phase in place: one pass over the output
        grid = out.view(b, out.shape[1], rows, 2, cols, 2)
        for k, part in enumerate(parts):
            grid[:, :, :, k // 2, :, k % 2] += part
        return out
    # With autograd, interleave first: the backward of in-place adds into strided views costs more.
    # Channel o * 4 + 2 * row parity + column parity, as pixel_shuffle expects.
    return out + F.pixel_shuffle(torch.stack(parts, 2).flatten(1, 2), 2)
