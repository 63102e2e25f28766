"""SSID's BNN, LAN and UNet compute exactly what the originals do, and are blind where they should be."""

from __future__ import annotations

import pytest
import torch

from models import create_model
from models.convert import from_original

from ..data.golden import compact

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize(
    ("name", "params"), [("ssid_bnn", 1_268_547), ("ssid_lan", 94_939), ("ssid_unet", 1_083_747)]
)
def test_parameter_counts_equal_the_originals(name: str, params: int) -> None:
    assert sum(p.numel() for p in create_model(name).parameters()) == params


def test_converter_errors_name_what_is_wrong() -> None:
    g = compact.load("ssid_lan_seed0")
    with pytest.raises(KeyError, match="no converter for 'network.nope'"):
        from_original("network.nope", {}, g["state_dict"])
    with pytest.raises(ValueError, match="unsupported original arguments"):
        from_original("network.lan.LAN", {"blindspot": 3, "colour": 1}, g["state_dict"])
    bad = dict(g["state_dict"])
    bad["conv.9.weight"] = bad.pop("conv.5.weight")
    with pytest.raises(ValueError, match="does not match"):
        from_original("network.lan.LAN", {"blindspot": 3}, bad)


def _input_gradient(model: torch.nn.Module, size: int, y: int, x: int) -> torch.Tensor:
    torch.manual_seed(0)
    inp = (torch.rand(1, 3, size, size) * 255).requires_grad_(True)
    model(inp)[0, :, y, x].sum().backward()
    return inp.grad[0].abs().sum(0)  # (H, W)


def test_lan_sees_its_neighbourhood_and_global_statistics_only() -> None:
    # Its convolutions see the blindspot x blindspot square; the channel attention adds only
    # image-wide averages. Without attention blocks the receptive field is exactly the square.
    grad = _input_gradient(create_model("ssid_lan", blindspot=3, width=16, blocks=0), 16, 7, 8)
    seen = (grad > 0).nonzero().tolist()
    assert sorted(map(tuple, seen)) == [(y, x) for y in (6, 7, 8) for x in (7, 8, 9)]
    grad = _input_gradient(create_model("ssid_lan", blindspot=5, width=16, blocks=2), 16, 7, 8)
    assert grad[5:10, 6:11].min() > 0 and grad[5:10, 6:11].sum() > 100 * (grad.sum() - grad[5:10, 6:11].sum())


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        create_model("ssid_unet", dim=8)(torch.zeros(1, 3, 48, 40))
    with pytest.raises(ValueError, match="blindspot must be odd"):
        create_model("ssid_bnn", blindspot=4)
