"""The up-sampling convolution of the U-Nets equals conv3x3(cat(nearest_up2(h), skip)), with and
without autograd, for ordinary and upward-looking kernels, and the U-Nets use it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import create_model
from models.layers.upconv import upsampled_conv3x3

from .same import assert_same_function

ORDINARY, UPWARD = (-1, 0, 1), (-2, -1, 0)
PADDING = {ORDINARY: (1, 1, 1, 1), UPWARD: (1, 1, 2, 0)}  # left, right, top, bottom


def _direct(h, skip, weight, bias, rows):
    up = F.interpolate(h, scale_factor=2.0, mode="nearest")
    return F.conv2d(F.pad(torch.cat((up, skip), 1), PADDING[rows]), weight, bias)


@pytest.mark.parametrize("rows", [ORDINARY, UPWARD])
@pytest.mark.parametrize("shape", [(2, 5, 4, 6, 3), (1, 7, 3, 5, 1)])
def test_equals_the_convolution_of_the_concatenation(rows, shape) -> None:
    b, c, height, width, s = shape
    g = torch.Generator().manual_seed(sum(shape) + rows[0])
    h = torch.randn(b, c, height, width, generator=g, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(b, s, 2 * height, 2 * width, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, c + s, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    want = _direct(h, skip, weight, bias, rows)
    with torch.no_grad():
        torch.testing.assert_close(upsampled_conv3x3(h, skip, weight, bias, row_offsets=rows), want)
    got = upsampled_conv3x3(h, skip, weight, bias, row_offsets=rows)
    assert_same_function(got, want, (h, skip, weight, bias))


def test_shapes_that_do_not_fit_are_named() -> None:
    with pytest.raises(ValueError, match=r"h \(1, 2, 4, 4\), skip \(1, 1, 6, 8\)"):
        upsampled_conv3x3(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 6, 8), torch.zeros(3, 3, 3, 3), None)


@pytest.mark.parametrize("name", ["ssid_unet", "ssid_bnn"])
def test_the_unets_decode_with_it(name: str, monkeypatch) -> None:
    """The U-Net bodies give what the same weights give through explicit up-sampling."""
    import models.ssid as ssid

    torch.manual_seed(1)
    model = create_model(name, dim=8).double().eval()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 255
    with torch.no_grad():
        fast = model(x)
        calls = []

        def direct(h, skip, weight, bias, *, row_offsets):
            calls.append(row_offsets)
            return _direct(h, skip, weight, bias, row_offsets)

        monkeypatch.setattr(ssid, "upsampled_conv3x3", direct)
        slow = model(x)
    assert calls == [UPWARD if name == "ssid_bnn" else ORDINARY] * 5
    torch.testing.assert_close(fast, slow)
