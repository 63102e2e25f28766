"""A network plus a fixed first estimate it learns to correct (``skip`` in the builders).

``out(x) = base(x) + s * net((x - 128) / s)``, where ``base`` is
- for a blind network, the mean of ``x`` over the ring of offsets that touch its blind region from
  outside (its 8-neighbour border: the centre's eight neighbours for a one-pixel region, the
  square of side b + 2 around a b x b one). The ring lies outside the region, so the sum is as
  blind as ``net``;
- for a network that sees every pixel (``blind`` None), the input itself.

``net``'s output convolution starts at zero, so training starts from ``base`` and the network
learns what to add to it. A network without it carries the image's intensity through every layer
and, at the few thousand steps of a CPU budget, is still far from the image: on polyu100's real
JPEG noise AP-BSN was 3.7 dB below the noisy input after 3000 steps without the ring, and above it
after 500 with it (``docs/TRAINING.md``, "Real camera noise"). ``base`` is a function the network
could learn, so this changes where training starts and how the network's input is scaled, not
what it can represent; it adds no parameter.

``ratios`` (test, refine): at inference the ring shrinks towards the centre by these factors, as
LG-BPN's kernel shift shrinks its masked kernels (:mod:`models.layers.kernel_shift`); ``None``: the
ring is the same in training and at inference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from models.layers.kernel_shift import shrink_kernel

__all__ = ["Skip", "ring_taps"]


def ring_taps(blind: np.ndarray) -> np.ndarray:
    """The offsets (a square of odd side, True) that touch ``blind`` from outside, 8-neighbour."""
    region = np.pad(np.asarray(blind, dtype=bool), 1)
    return ndimage.binary_dilation(region, np.ones((3, 3), bool)) & ~region


def _output_conv(net: nn.Module) -> nn.Conv2d | None:
    """The network's last registered convolution with three output channels."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 3]
    return convs[-1] if convs else None


class Skip(nn.Module):
    """``net`` plus ``base(x)``: the ring's mean around its blind region, or ``x`` (module doc).

    Args:
        net: a network mapping (B, 3, H, W) 0..255 to the same; keyword arguments of its forward
            pass (``refine``) are passed on.
        blind: its blind region (square boolean array of odd side), or None: it sees every pixel.
        scale: the network sees ``(x - 128) / scale`` and its output is multiplied by ``scale``.
        ratios: (test, refine) shrink factors of the ring at inference, or None.
    """

    def __init__(
        self,
        net: nn.Module,
        blind: np.ndarray | None,
        *,
        scale: float = 64.0,
        ratios: tuple[float, float] | None = None,
    ):
        super().__init__()
        self.net, self.scale, self.ratios = net, scale, ratios
        ring = None
        if blind is not None:
            taps = torch.from_numpy(ring_taps(blind).astype(np.float32))
            ring = (taps / taps.sum())[None, None]
        self.register_buffer("ring", ring, persistent=False)
        self.square_input = getattr(net, "square_input", False)
        out = _output_conv(net)
        if out is not None:
            nn.init.zeros_(out.weight)
            if out.bias is not None:
                nn.init.zeros_(out.bias)

    def base(self, x: torch.Tensor, *, refine: bool = False) -> torch.Tensor:
        """The first estimate at every pixel: ``x``, or the ring's mean (reflect-padded), shrunk at
        inference by ``ratios``."""
        if self.ring is None:
            return x
        kernel = self.ring.to(x.dtype)
        if not self.training and self.ratios is not None:
            kernel = shrink_kernel(kernel, self.ratios[1] if refine else self.ratios[0])
        r = kernel.shape[-1] // 2
        c = x.shape[1]
        return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), kernel.expand(c, 1, -1, -1), groups=c)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        refine = bool(kwargs.get("refine", False))
        return self.base(x, refine=refine) + self.scale * self.net((x - 128.0) / self.scale, **kwargs)
