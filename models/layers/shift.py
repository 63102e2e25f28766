"""Upward-looking ("shifted") convolutions and row shifts, the blind-neighbourhood machinery of
Laine et al. as used by SSID's BNN.

A shifted k x k convolution sees only the rows at and above its output row: it is an ordinary
convolution over an input zero-padded by 2*(k//2) rows on top and none at the bottom. Stacking
them and moving the final feature map down by s rows hides every row above s-1 from the output;
doing that for the four 90-degree rotations hides a (2s-1) x (2s-1) square around each pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShiftConv2d(nn.Conv2d):
    """k x k convolution whose receptive field lies at and above the output row.

    Args:
        in_ch, out_ch: channels.
        kernel_size: odd k; 1 gives a plain 1x1 convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3):
        super().__init__(in_ch, out_ch, kernel_size, padding=0)
        self.reach = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reach
        if r:
            x = F.pad(x, (r, r, 2 * r, 0))  # left, right, top, bottom
        return F.conv2d(x, self.weight, self.bias)


def shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Move a (B, C, H, W) map down by ``rows`` rows, zeros entering at the top."""
    if rows == 0:
        return x
    return F.pad(x, (0, 0, rows, 0))[:, :, : x.shape[2]]
