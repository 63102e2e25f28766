"""Checks shared by the model tests."""

from __future__ import annotations

import math

import torch

from models.registry import create_model, model_info


def input_side(name: str, kwargs: dict, at_least: int) -> int:
    """The smallest input side >= ``at_least`` that model ``name`` built with ``kwargs`` accepts."""
    m = model_info(name).input_multiple(kwargs)
    return m * math.ceil(at_least / m)


def assert_blind(name: str, kwargs: dict) -> None:
    """Model ``name`` built with ``kwargs``, in train mode, gives an output at a pixel that does not
    depend on any input in the blind region its registry entry declares for those arguments
    (checked with autograd), and depends on some input outside it. Every weight is moved a little
    first, so that no zero-initialized layer (a :class:`~models.layers.skip.Skip`'s
    output convolution) hides a dependence."""
    info = model_info(name)
    region = info.blind(kwargs)
    assert region is not None, f"{name} with {kwargs} declares no blind region"
    r = region.shape[0] // 2
    side = input_side(name, kwargs, max(40, 4 * r + 16))
    torch.manual_seed(0)
    model = create_model(name, **kwargs).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = (torch.rand(1, info.in_channels, side, side) * 255).requires_grad_(True)
    c = side // 2
    model(x)[0, :, c, c + 1].sum().backward()
    grad = x.grad[0].abs().sum(0)  # (H, W): how much the output at (c, c + 1) moves with each input
    hidden = grad[c - r : c + r + 1, c + 1 - r : c + r + 2][torch.from_numpy(region)]
    assert torch.all(hidden == 0), f"{name} sees {int((hidden != 0).sum())} offset(s) of its blind region"
    assert torch.any(grad > 0), f"{name}'s output depends on no input at all"


def assert_same_function(got: torch.Tensor, want: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
    """``got`` equals ``want``, and so do their gradients with respect to each of ``inputs`` for one
    random output gradient."""
    torch.testing.assert_close(got, want)
    seed = torch.randn_like(want)
    for a, e in zip(
        torch.autograd.grad(got, inputs, seed), torch.autograd.grad(want, inputs, seed), strict=True
    ):
        torch.testing.assert_close(a, e)
