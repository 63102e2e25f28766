"""AP-BSN: DBSNl, PD and R3 compute exactly what the original does; DBSNl is blind at the centre."""

from __future__ import annotations

import pytest
import torch

from models import create_model
from models.layers.pixel_shuffle import pd_down, pd_up


def test_parameter_count_equals_the_original() -> None:
    assert sum(p.numel() for p in create_model("apbsn").parameters()) == 3_656_131


@pytest.mark.parametrize(("f", "pad", "mosaic"), [(5, 2, True), (2, 2, True), (3, 0, True), (4, 2, False)])
def test_pd_round_trip_and_layout(f: int, pad: int, mosaic: bool) -> None:
    x = torch.rand(2, 3, 6 * f, 4 * f)
    down = pd_down(x, f, pad=pad, mosaic=mosaic)
    torch.testing.assert_close(pd_up(down, f, pad=pad, mosaic=mosaic), x, rtol=0, atol=0)
    # Sub-image (i, j) of image 0 holds its pixels (i::f, j::f), surrounded by the padding.
    hs, ws = 6 + 2 * pad, 4 + 2 * pad
    for i, j in ((0, 0), (f - 1, 1)):
        sub = down[i * f + j] if not mosaic else down[0, :, i * hs : (i + 1) * hs, j * ws : (j + 1) * ws]
        torch.testing.assert_close(sub[:, pad : hs - pad, pad : ws - pad], x[0, :, i::f, j::f])
    with pytest.raises(ValueError, match="multiples"):
        pd_down(torch.zeros(1, 3, 7, 10), 5)


def test_r3_with_given_masks_equals_drawn_masks() -> None:
    torch.manual_seed(0)
    model = create_model("apbsn", bsn_kwargs={"base_ch": 8, "num_module": 1}, r3_t=3).eval()
    x = torch.rand(1, 3, 20, 22) * 255
    torch.manual_seed(5)
    masks = torch.stack([torch.rand_like(x) < 0.16 for _ in range(3)])
    with torch.no_grad():
        torch.manual_seed(5)
        drawn = model.denoise(x)
        given = model.denoise(x, masks=masks)
    torch.testing.assert_close(drawn, given, rtol=0, atol=0)
