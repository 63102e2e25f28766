"""Dilated transformer blocks (DTB), LG-BPN's global branch body (after Restormer).

Each block: bias-free layer norm over channels, channel ("transposed") attention whose q, k, v
come from a 1x1 then a depthwise 3x3 convolution dilated by ``d``; then a gated feed-forward of
depthwise convolutions dilated by ``d``. Dilation keeps the blind region of the masked
convolution in front of it hidden.

Inside the blocks features are kept channels-last, (B, H, W, C): the layer norms reduce over a
contiguous axis, the 1x1 convolutions are plain matrix products (``F.linear`` on the stored 1x1
weights) and the depthwise convolutions take oneDNN's channels-last path. The parameters keep the
shapes of ordinary convolutions, so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


def _linear(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution applied to channels-last features (B, H, W, C)."""
    return F.linear(x, conv.weight.view(conv.weight.shape[0], -1), conv.bias)


def _depthwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A (depthwise) convolution of channels-last features, returning channels-last features.

    While gradients are recorded, a convolution dilated by d runs as an undilated one on the d x d
    interleaved sub-images (:func:`dilated_as_subimages`): oneDNN's backward pass of dilated
    depthwise convolutions is several times slower, and in bfloat16 its weight gradient is
    inaccurate (relative error above 1 on LG-BPN's shapes, against 2e-3 this way).
    """
    if torch.is_grad_enabled() and conv.dilation[0] > 1:
        return dilated_as_subimages(x, conv)
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def dilated_as_subimages(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (k x k, dilation d, zero padding d * (k // 2), stride 1) of channels-last features
    (B, H, W, C), computed as an undilated k x k convolution of each of the d x d sub-images of
    pixels with the same (row mod d, column mod d). H and W are zero-padded up to multiples of d
    first, which adds only zeros the dilated kernel would have read as padding anyway."""
    (d, dw), (k, kw) = conv.dilation, conv.kernel_size
    if d != dw or k != kw or conv.stride != (1, 1) or conv.padding != (d * (k // 2),) * 2:
        raise ValueError(f"needs a square, stride-1, same-size dilated convolution, got {conv}")
    b, h, w, c = x.shape
    x = F.pad(x, (0, 0, 0, (-w) % d, 0, (-h) % d))
    rows, cols = x.shape[1] // d, x.shape[2] // d
    sub = x.reshape(b, rows, d, cols, d, c).permute(0, 2, 4, 1, 3, 5).reshape(b * d * d, rows, cols, c)
    y = F.conv2d(sub.permute(0, 3, 1, 2), conv.weight, conv.bias, padding=k // 2, groups=conv.groups)
    o = y.shape[1]
    y = y.permute(0, 2, 3, 1).reshape(b, d, d, rows, cols, o).permute(0, 3, 1, 4, 2, 5)
    return y.reshape(b, rows * d, cols * d, o)[:, :h, :w]


class BiasFreeLayerNorm(nn.Module):
    """``x / sqrt(var_c(x) + 1e-5) * weight`` over the channel axis of channels-last features."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        if not torch.is_grad_enabled():
            # One pass of layer_norm's kernel, which also returns the mean and 1 / sqrt(var + eps):
            # x * rstd * w = (x - mean) * rstd * w + mean * rstd * w. (Its mean and rstd outputs
            # carry no gradient, so training keeps the direct form.)
            out, mean, rstd = torch.native_layer_norm(x, [x.shape[-1]], self.weight, None, 1e-5)
            return torch.addcmul(out, mean * rstd, self.weight)
        var = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + 1e-5) * self.weight


class ChannelAttention(nn.Module):
    """Multi-head attention across channels (a C x C map per head), dilated depthwise q/k/v."""

    def __init__(self, dim: int, heads: int, d: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=d, dilation=d, groups=3 * dim, bias=False)
        self.project = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        b, h, w, c = x.shape
        heads, ch = self.heads, c // self.heads
        qkv = _depthwise(_linear(x, self.qkv), self.qkv_dw).reshape(b, h * w, 3 * c)
        q, k, v = qkv.split(c, -1)  # each (B, HW, C), channel = head * ch + i
        # Per head, softmax(normalize(q) normalize(k)^T * temperature) over HW, formed from one
        # (B, C, C) product of the raw q and k (its diagonal blocks are the heads' products) divided
        # by the norms: no copy of q, k or v into a heads-first layout.
        qn = q.norm(dim=1).clamp_min(1e-12).view(b, heads, ch, 1)  # as F.normalize's denominators
        kn = k.norm(dim=1).clamp_min(1e-12).view(b, heads, 1, ch)
        gram = (q.transpose(1, 2) @ k).view(b, heads, ch, heads, ch).diagonal(dim1=1, dim2=3)
        attn = (gram.permute(0, 3, 1, 2) / (qn * kn) * self.temperature).softmax(-1)  # (B, heads, ch, ch)
        mix = attn.new_zeros(b, heads, ch, heads, ch)
        mix.diagonal(dim1=1, dim2=3).copy_(attn.permute(0, 2, 3, 1))  # block-diagonal (B, C, C)
        out = v @ mix.view(b, c, c).transpose(1, 2)  # (B, HW, C)
        return _linear(out.view(b, h, w, c), self.project)


class GatedFeedForward(nn.Module):
    """1x1 up to 2 x hidden, dilated depthwise 3x3, GELU(one half) * other half, 1x1 down."""

    def __init__(self, dim: int, expansion: float, d: int):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=d, dilation=d, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        a, g = _depthwise(_linear(x, self.project_in), self.dw).chunk(2, -1)
        gated = F.gelu(a).mul_(g) if not torch.is_grad_enabled() else F.gelu(a) * g
        return _linear(gated, self.project_out)


class DilatedTransformerBlock(nn.Module):
    def __init__(self, dim: int, *, heads: int = 2, expansion: float = 2.66, d: int = 3):
        super().__init__()
        self.norm1, self.attn = BiasFreeLayerNorm(dim), ChannelAttention(dim, heads, d)
        self.norm2, self.ffn = BiasFreeLayerNorm(dim), GatedFeedForward(dim, expansion, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
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

    def forward(self, x: torch.Tensor, *, checkpoint: bool = False) -> torch.Tensor:  # (B, C, H, W)
        """``checkpoint``: keep only each block's input for the backward pass and recompute the
        block there (activation checkpointing): the same result and gradients, for a peak memory
        of one block's activations instead of all of them, at the cost of a second forward."""
        h = x.permute(0, 2, 3, 1).contiguous()
        for block in self.blocks:
            h = checkpoint_call(block, h) if checkpoint else block(h)
        return self.out(h.permute(0, 3, 1, 2)).contiguous()


def checkpoint_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, recomputed in the backward pass instead of keeping its activations
    (only while gradients are being recorded)."""
    if not torch.is_grad_enabled():
        return module(x)
    return torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False)
