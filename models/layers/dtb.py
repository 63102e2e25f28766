"""Dilated transformer blocks (DTB), LG-BPN's global branch body (after Restormer).

Each block: bias-free layer norm over channels, channel ("transposed") attention whose q, k, v
come from a 1x1 then a depthwise 3x3 convolution dilated by ``d``; then a gated feed-forward of
depthwise convolutions dilated by ``d``. Dilation keeps the blind region of the masked
convolution in front of it hidden.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BiasFreeLayerNorm(nn.Module):
    """``x / sqrt(var_c(x) + 1e-5) * weight`` over the channel axis of (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + 1e-5) * self.weight[:, None, None]


class ChannelAttention(nn.Module):
    """Multi-head attention across channels (a C x C map per head), dilated depthwise q/k/v."""

    def __init__(self, dim: int, heads: int, d: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=d, dilation=d, groups=3 * dim, bias=False)
        self.project = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(-1)  # (B, heads, c/h, c/h)
        return self.project((attn @ v).reshape(b, c, h, w))


class GatedFeedForward(nn.Module):
    """1x1 up to 2 x hidden, dilated depthwise 3x3, GELU(one half) * other half, 1x1 down."""

    def __init__(self, dim: int, expansion: float, d: int):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=d, dilation=d, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.dw(self.project_in(x)).chunk(2, 1)
        return self.project_out(F.gelu(a) * g)


class DilatedTransformerBlock(nn.Module):
    def __init__(self, dim: int, *, heads: int = 2, expansion: float = 2.66, d: int = 3):
        super().__init__()
        self.norm1, self.attn = BiasFreeLayerNorm(dim), ChannelAttention(dim, heads, d)
        self.norm2, self.ffn = BiasFreeLayerNorm(dim), GatedFeedForward(dim, expansion, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class DTB(nn.Module):
    """``blocks`` dilated transformer blocks, then a 3x3 convolution dilated by ``d``.

    Args:
        dim: channels.
        blocks: number of blocks (6 in LG-BPN).
        heads, expansion: attention heads (2) and feed-forward expansion (2.66).
        d: dilation (3).
    """

    def __init__(self, dim: int, *, blocks: int = 6, heads: int = 2, expansion: float = 2.66, d: int = 3):
        super().__init__()
        self.blocks = nn.Sequential(
            *(DilatedTransformerBlock(dim, heads=heads, expansion=expansion, d=d) for _ in range(blocks))
        )
        self.out = nn.Conv2d(dim, dim, 3, padding=d, dilation=d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x))
