"""The dilated convolution layer (DCL) of AP-BSN and LG-BPN's local branch."""

from __future__ import annotations

import torch
from torch import nn


class DilatedConvLayer(nn.Module):
    """3x3 convolution dilated by ``d``, ReLU, 1x1 convolution, plus the input.

    With ``d`` >= 2 after a blind-spot convolution, the centre stays hidden.
    """

    def __init__(self, width: int, d: int):
        super().__init__()
        self.dilated = nn.Conv2d(width, width, 3, padding=d, dilation=d)
        self.pointwise = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place on the convolutions' own outputs, which their backward passes do not need.
        return self.pointwise(torch.relu_(self.dilated(x))).add_(x)
