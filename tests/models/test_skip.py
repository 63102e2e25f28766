"""A network plus a fixed first estimate (``skip``): the ring around a blind region, or the input
itself; where training starts, what it adds, and that the blind networks that take it stay blind
(the registry-wide test checks each with ``skip``)."""

from __future__ import annotations

import numpy as np
import torch

from models import create_model, masks
from models.layers.skip import Skip, ring_taps


def test_ring_taps_touch_the_region_from_outside() -> None:
    assert ring_taps(np.ones((1, 1), bool)).sum() == 8
    ring = ring_taps(masks.diamond(1))
    assert ring.shape == (5, 5) and ring.sum() == 16 and not (ring & np.pad(masks.diamond(1), 1)).any()
    assert ring_taps(np.ones((3, 3), bool)).sum() == 16


def test_training_starts_at_the_ring_mean_of_each_family() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 255
    for name, kwargs in (
        ("ssid_bnn", {"dim": 8, "blindspot": 3, "skip": True}),
        ("apbsn_dbsnl", {"base_ch": 8, "num_module": 1, "skip": True}),
    ):
        model = create_model(name, **kwargs).train()
        assert isinstance(model, Skip)
        torch.testing.assert_close(model(x), model.base(x))
    lg = create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=1, skip=True, blind=masks.diamond(2))
    skip = lg.bsn
    assert isinstance(skip, Skip) and skip.ring.shape[-1] == 7  # around the radius-2 diamond
    lg.train()
    torch.testing.assert_close(lg(x), skip.base(x))


def test_the_lgbpn_ring_shrinks_at_inference_as_its_kernels_do() -> None:
    lg = create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=1, skip=True, r3=False)
    skip = lg.bsn
    x = torch.rand(1, 3, 40, 40) * 255
    trained = skip.train().base(x)
    skip.eval()
    test, refine = skip.base(x), skip.base(x, refine=True)
    assert not torch.allclose(trained, test) and not torch.allclose(test, refine)
    # a constant image stays constant: the shrunk ring still averages
    flat = torch.full((1, 3, 40, 40), 77.0)
    torch.testing.assert_close(skip.base(flat, refine=True), flat)


def test_the_skip_changes_no_parameter_count() -> None:
    plain = create_model("apbsn_dbsnl", base_ch=8, num_module=1)
    ringed = create_model("apbsn_dbsnl", base_ch=8, num_module=1, skip=True)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in ringed.parameters())
    assert "ring" not in ringed.state_dict()  # derived from the config, not stored


def test_a_network_that_sees_every_pixel_starts_at_its_input_and_learns() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64) * 255
    for name, kwargs in (("ssid_lan", {"width": 16, "blocks": 1}), ("ssid_unet", {"dim": 8})):
        model = create_model(name, **kwargs, skip=True).train()
        assert isinstance(model, Skip) and model.ring is None
        torch.testing.assert_close(model(x), x)
        (model(x) - x.mean()).abs().mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
