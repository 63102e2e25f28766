"""Convolutions whose kernel has taps switched off by a mask given as data.

AP-BSN hides the centre tap; LG-BPN hides a diamond of taps (and keeps only a lattice in its
21x21 global kernel). The mask is a (k, k) buffer of ones (active) and zeros (hidden); the
effective weight is ``weight * mask`` at every call, so hidden taps neither act nor learn, and the
stored weight may hold anything there (original checkpoints store them unmasked).
"""

from __future__ import annotations

import torch
from torch import nn


def centre_mask(size: int) -> torch.Tensor:
    """All taps active but the centre."""
    m = torch.ones(size, size)
    m[size // 2, size // 2] = 0.0
    return m


class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution with the taps where ``mask`` is 0 removed.

    Args:
        in_ch, out_ch: channels.
        mask: (k, k) tensor of 0/1; k is the kernel size.
        dilation: spacing of the taps; padding keeps the spatial size.
    """

    def __init__(
        self, in_ch: int, out_ch: int, mask: torch.Tensor, *, dilation: int = 1, padding_mode: str = "zeros"
    ):
        k = mask.shape[-1]
        if mask.shape != (k, k) or k % 2 == 0:
            raise ValueError(f"mask must be square with an odd side, got {tuple(mask.shape)}")
        super().__init__(
            in_ch, out_ch, k, padding=dilation * (k // 2), dilation=dilation, padding_mode=padding_mode
        )
        self.register_buffer("mask", mask.to(torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)
