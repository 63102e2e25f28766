"""Every registered model builds at a small width, keeps the input's shape and trains (backward)."""

from __future__ import annotations

import pytest
import torch

from models import create_model, list_models

# Small-width arguments per registered model; a new model must add its entry here.
SMALL = {
    "apbsn": {"bsn_kwargs": {"base_ch": 8, "num_module": 2}, "pd_train": 2, "pd_pad": 1},
    "apbsn_dbsnl": {"base_ch": 8, "num_module": 2},
    "lgbpn": {"width": 8, "head_ch": 4, "modules": 1, "blocks": 1},
    "lgbpn_global": {"in_ch": 3, "width": 4, "blocks": 1},
    "lgbpn_local": {"in_ch": 3, "width": 3, "modules": 1},
    "lgbpn_local_dtb": {"in_ch": 3, "width": 4, "modules": 1},
    "ssid_bnn": {"dim": 8},
    "ssid_bnn_branch": {"in_ch": 3, "width": 4, "dim": 8},
    "ssid_lan": {"width": 16, "blocks": 2},
    "ssid_unet": {"dim": 8},
}


def test_every_registered_model_has_a_small_configuration() -> None:
    assert set(list_models()) == set(SMALL)


@pytest.mark.parametrize("name", list_models())
def test_shape_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name])
    x = (
        torch.rand(2, 3, 40, 40) * 255
        if "lgbpn" in name or "branch" in name
        else torch.rand(2, 3, 32, 32) * 255
    )
    y = model(x)
    assert y.shape[0] == 2 and y.shape[2:] == x.shape[2:] and torch.isfinite(y).all()
    (y - y.detach().mean()).abs().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
