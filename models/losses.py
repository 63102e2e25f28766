"""Losses, registered by name (``create_loss``, ``list_losses``; duplicate names raise).

- ``l1``: mean absolute error (every stage of the three families uses it against some target).
- ``ssid_adaptive``: SSID's stage-3 loss. From the BNN output (0..255) a per-pixel weight ``a``
  is derived (detached): sigma = the standard deviation of the channel mean in a 7x7
  reflect-padded window; a = 0.5 where 1 <= sigma <= 5, sigmoid(sigma - 1) below 1, sigmoid(sigma - 5)
  above 5. The loss is L1((1-a) U, (1-a) BNN) + L1(a U, a LAN): flat regions follow the BNN,
  textured ones the LAN.
- ``perceptual``: a perceptual-style loss that needs no pretrained network (nothing downloaded):
  L1 between Laplacian-pyramid bands (``levels`` levels, 5-tap binomial filter) plus L1 between
  Sobel gradient magnitudes at each level, weighted by ``gradient_weight``. It compares structure
  (edges and band-limited detail) at several scales instead of raw pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "create_loss",
    "list_losses",
    "loss_arguments",
    "register_loss",
    "SSIDAdaptiveLoss",
    "PyramidLoss",
    "adaptive_weight",
]

_LOSSES: dict[str, Callable[..., nn.Module]] = {}


def register_loss(name: str):
    def deco(fn):
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        _LOSSES[name] = fn
        return fn

    return deco


def create_loss(name: str, /, **kwargs) -> nn.Module:
    """The loss registered as ``name``, built with ``kwargs``.

    Raises:
        KeyError: no loss of that name (an error inside a builder is raised as it is).
    """
    if name not in _LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[name](**kwargs)


def list_losses() -> list[str]:
    return sorted(_LOSSES)


def loss_arguments(name: str) -> list[str]:
    """The keyword arguments the builder of loss ``name`` accepts (for checking configs up front)."""
    import inspect

    params = inspect.signature(_LOSSES[name]).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def local_std(img: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Std of the channel mean over a ``window`` x ``window`` reflect-padded window, (B, 1, H, W).

    Two passes, as SSID's ``generate_alpha`` computes it: each window's mean first, then the mean
    of the squared deviations from it (population std). The one-pass ``E[x^2] - E[x]^2`` cancels
    in float32 where a window is nearly flat (pixel values near 200 vary by hundredths), which
    moved the weight by up to 0.03 there."""
    m = img.mean(1, keepdim=True)
    p = window // 2
    padded = F.pad(m, (p, p, p, p), mode="reflect")
    mean = F.avg_pool2d(padded, window, stride=1)
    h, w = m.shape[-2:]
    squares = torch.zeros_like(mean)
    for dy in range(window):
        for dx in range(window):
            squares += (padded[..., dy : dy + h, dx : dx + w] - mean).square()
    return (squares / (window * window)).sqrt()


def adaptive_weight(bnn_out: torch.Tensor, *, lower: float = 1.0, upper: float = 5.0) -> torch.Tensor:
    """SSID's per-pixel weight ``a`` (detached), (B, 1, H, W)."""
    sigma = local_std(bnn_out.detach())
    a = torch.full_like(sigma, 0.5)
    a = torch.where(sigma < lower, torch.sigmoid(sigma - lower), a)
    return torch.where(sigma > upper, torch.sigmoid(sigma - upper), a)


class SSIDAdaptiveLoss(nn.Module):
    """``forward(unet_out, bnn_out, lan_out)``: SSID's stage-3 loss (see the module docstring)."""

    def forward(self, unet_out: torch.Tensor, bnn_out: torch.Tensor, lan_out: torch.Tensor) -> torch.Tensor:
        a = adaptive_weight(bnn_out)
        return F.l1_loss((1 - a) * unet_out, (1 - a) * bnn_out) + F.l1_loss(a * unet_out, a * lan_out)


class PyramidLoss(nn.Module):
    """Laplacian-pyramid and gradient L1 (no pretrained weights).

    Args:
        levels: pyramid levels.
        gradient_weight: weight of the Sobel-magnitude term.
    """

    def __init__(self, *, levels: int = 3, gradient_weight: float = 0.5):
        super().__init__()
        g = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        self.register_buffer("blur", (g[:, None] * g[None, :] / 256.0)[None, None])
        sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("sobel", torch.stack([sx, sx.t()])[:, None])
        self.levels, self.gradient_weight = levels, gradient_weight

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.blur.expand(c, 1, 5, 5), groups=c)

    def _gradient(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = F.conv2d(F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="reflect"), self.sobel)
        return (g.square().sum(1) + 1e-6).sqrt()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = output.new_zeros(())
        for _ in range(self.levels):
            so, st = self._smooth(output), self._smooth(target)
            loss = loss + F.l1_loss(output - so, target - st)
            loss = loss + self.gradient_weight * F.l1_loss(self._gradient(output), self._gradient(target))
            if min(so.shape[-2:]) < 8:
                return loss + F.l1_loss(so, st)
            output, target = so[..., ::2, ::2], st[..., ::2, ::2]
        return loss + F.l1_loss(output, target)


@register_loss("l1")
def l1() -> nn.Module:
    return nn.L1Loss()


@register_loss("ssid_adaptive")
def ssid_adaptive() -> SSIDAdaptiveLoss:
    return SSIDAdaptiveLoss()


@register_loss("perceptual")
def perceptual(*, levels: int = 3, gradient_weight: float = 0.5) -> PyramidLoss:
    return PyramidLoss(levels=levels, gradient_weight=gradient_weight)
