"""Every registered model, from its registry entry alone: it builds at its small test size, keeps
the input's shape, trains (backward), and, when it declares a blind region, never sees it.

A newly registered network is checked here with no test of its own."""

from __future__ import annotations

import pytest
import torch

from models import create_model, list_models, masks
from models.registry import model_arguments, model_info

from .same import assert_blind, input_side


@pytest.mark.parametrize("name", list_models())
def test_shape_and_backward(name: str) -> None:
    info = model_info(name)
    torch.manual_seed(0)
    model = create_model(name, **info.test_kwargs)
    side = input_side(name, info.test_kwargs, 32)
    x = torch.rand(2, info.in_channels, side, side) * 255
    y = model(x)
    assert y.shape[0] == 2 and y.shape[2:] == x.shape[2:] and torch.isfinite(y).all()
    (y - y.detach().mean()).abs().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def _variants() -> list[tuple[str, dict]]:
    """Every blind network at its test size, again with a smaller configured region where its
    builder takes one (``blind``: a radius-2 diamond; ``blindspot``: 5), and with the ring around
    its region added where it takes ``skip``."""
    out = []
    for name in list_models():
        info = model_info(name)
        if info.blind is None:
            continue
        base = {**info.test_kwargs, **info.blind_kwargs}
        out.append((name, base))
        args = model_arguments(name)
        if "blind" in args:
            out.append((name, {**base, "blind": masks.diamond(2)}))
        if "blindspot" in args:
            out.append((name, {**base, "blindspot": 5}))
        if "skip" in args:
            out.append((name, {**base, "skip": True}))
    return out


VARIANTS = _variants()


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)])
def test_blind_networks_never_see_their_blind_region(name: str, kwargs: dict) -> None:
    assert_blind(name, kwargs)
