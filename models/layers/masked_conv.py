"""Convolutions whose kernel has taps switched off by a mask given as data.

AP-BSN hides the centre tap; LG-BPN hides a diamond of taps (and keeps only a lattice in its
21x21 global kernel). The mask is a (k, k) buffer of ones (active) and zeros (hidden); the
effective weight is ``weight * mask`` at every call, so hidden taps neither act nor learn, and the
stored weight may hold anything there (original checkpoints store them unmasked).

When every active tap lies on a lattice of step s through the centre (LG-BPN's global kernel:
step 2), the convolution runs as the smaller kernel of those taps dilated by s: the same
function, with (k / s)^2 instead of k^2 taps (121 instead of 441 for the 21x21 kernel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
        self._find_lattice()
        # A loaded state dict may bring another mask: find its lattice again.
        self.register_load_state_dict_post_hook(lambda module, _: module._find_lattice())

    def _find_lattice(self) -> None:
        self.lattice = lattice_step(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.mask
        s = self.lattice
        if s == 1:
            return self._conv_forward(x, weight, self.bias)
        weight = weight[:, :, ::s, ::s]  # the active taps: a (k // s + 1)-square kernel
        dilation = self.dilation[0] * s
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, self.bias, dilation=dilation)
        return F.conv2d(x, weight, self.bias, padding=self.padding, dilation=dilation)


def lattice_step(mask: torch.Tensor) -> int:
    """The largest s such that every active tap's offset from the centre is a multiple of s in
    both directions, when the kernel's half-width is one too (so the smaller dilated kernel has the
    same reach); 1 otherwise."""
    half = mask.shape[-1] // 2
    offsets = (torch.nonzero(mask) - half).abs().flatten().tolist()
    step = math.gcd(half, *offsets)
    return step if step > 1 else 1
