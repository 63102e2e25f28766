"""Checks shared by the model tests."""

from __future__ import annotations

import torch


def assert_same_function(got: torch.Tensor, want: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
    """``got`` equals ``want``, and so do their gradients with respect to each of ``inputs`` for one
    random output gradient."""
    torch.testing.assert_close(got, want)
    seed = torch.randn_like(want)
    for a, e in zip(
        torch.autograd.grad(got, inputs, seed), torch.autograd.grad(want, inputs, seed), strict=True
    ):
        torch.testing.assert_close(a, e)
