"""Random-replacing refinement (R3) of AP-BSN, shared by LG-BPN.

After a first denoised estimate, ``passes`` times: replace a random fraction ``p`` of the
pixels (per channel) by the noisy input, reflect-pad by ``pad``, run the blind network at full
resolution, crop; average the passes. The masks are drawn with ``torch.rand_like`` in order, so a
seed reproduces them; they can also be given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def crop(y: torch.Tensor, p: int) -> torch.Tensor:
    """Drop ``p`` pixels on every side."""
    return y[..., p : y.shape[-2] - p, p : y.shape[-1] - p] if p else y


def refine(
    x: torch.Tensor,
    first: torch.Tensor,
    net: Callable[[torch.Tensor], torch.Tensor],
    *,
    passes: int,
    p: float,
    pad: int,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean of ``passes`` refinement passes of ``net`` over ``first`` re-seeded from ``x``.

    Args:
        masks: optional (passes, *x.shape) booleans used instead of drawing them.
    """
    total = torch.zeros_like(first)
    for t in range(passes):
        mask = masks[t] if masks is not None else torch.rand_like(x) < p
        z = torch.where(mask, x, first)
        total += crop(net(F.pad(z, (pad, pad, pad, pad), mode="reflect")), pad)
    return total / passes
