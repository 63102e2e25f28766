"""Losses: SSID's adaptive weight against a direct window computation; the download-free
perceptual loss; the loss registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.losses import (
    _LOSSES,
    adaptive_weight,
    create_loss,
    list_losses,
    local_std,
    loss_arguments,
    register_loss,
)


def test_local_std_matches_a_direct_window_computation() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 3, 12, 13, dtype=torch.float64) * 255
    m = F.pad(img.mean(1, keepdim=True), (3, 3, 3, 3), mode="reflect")
    windows = F.unfold(m, 7).view(2, 49, 12, 13)
    direct = (windows - windows.mean(1, keepdim=True)).square().mean(1, keepdim=True).sqrt()
    torch.testing.assert_close(local_std(img), direct)


def test_adaptive_weight_on_near_flat_input_is_the_two_pass_one() -> None:
    """On a block flat at 200 +- 0.05 (float32, as the BNN outputs it), the weight equals the
    original two-pass computation done in float64; the one-pass E[x^2] - E[x]^2 in float32 cancels
    there and moves it (by up to 0.03 on this input)."""
    torch.manual_seed(1)
    img = (200.0 + (torch.rand(2, 3, 64, 64) - 0.5) * 0.1).float()
    exact = img.double()
    m = F.pad(exact.mean(1, keepdim=True), (3, 3, 3, 3), mode="reflect")
    windows = F.unfold(m, 7).view(2, 49, 64, 64)
    sigma = (windows - windows.mean(1, keepdim=True)).square().mean(1, keepdim=True).sqrt()
    want = torch.sigmoid(sigma - 1.0)  # every sigma here is below 1
    got = adaptive_weight(img).double()
    assert (got - want).abs().max() < 1e-5
    mf = F.pad(img.mean(1, keepdim=True), (3, 3, 3, 3), mode="reflect")
    one_pass = (F.avg_pool2d(mf * mf, 7, 1) - F.avg_pool2d(mf, 7, 1).square()).clamp_min(0).sqrt()
    assert (torch.sigmoid(one_pass - 1.0).double() - want).abs().max() > 1e-3  # what the old form did


def test_adaptive_weight_regimes() -> None:
    flat = torch.full((1, 3, 16, 16), 100.0)  # sigma 0: sigmoid(0 - 1)
    torch.testing.assert_close(
        adaptive_weight(flat), torch.full((1, 1, 16, 16), torch.sigmoid(torch.tensor(-1.0)))
    )
    stripes = torch.zeros(1, 3, 16, 16)
    stripes[..., ::2] = 6.0  # sigma ~3: inside [1, 5], weight 0.5
    assert torch.allclose(adaptive_weight(stripes)[..., 4:-4, 4:-4], torch.tensor(0.5))
    wild = torch.zeros(1, 3, 16, 16)
    wild[..., ::2] = 255.0  # sigma >> 5: sigmoid(sigma - 5) ~ 1
    assert adaptive_weight(wild)[..., 4:-4, 4:-4].min() > 0.99


def test_ssid_loss_follows_bnn_in_flat_and_lan_in_textured_regions() -> None:
    loss = create_loss("ssid_adaptive")
    bnn = torch.full((1, 3, 16, 16), 100.0)
    lan = bnn + 10.0
    u = bnn.clone().requires_grad_(True)
    a = torch.sigmoid(torch.tensor(-1.0))
    assert loss(u, bnn, lan).item() == pytest.approx((a * 10.0).item(), rel=1e-5)
    loss(u, bnn, lan).backward()
    assert u.grad is not None and bnn.grad is None


def test_perceptual_loss_is_zero_on_equal_images_and_sees_structure() -> None:
    loss = create_loss("perceptual")
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 255
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-3)
    shifted = x + 5.0  # a constant offset changes no band-pass or gradient, only the residual
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    # An offset of 5 changes only the coarse residual (loss 5); a 3x3 blur changes every band.
    assert loss(shifted, x).item() == pytest.approx(5.0, rel=1e-3)
    assert loss(blurred, x) > 10 * loss(shifted, x)


def test_registry() -> None:
    assert list_losses() == ["l1", "perceptual", "ssid_adaptive"]
    with pytest.raises(ValueError, match="already registered"):
        register_loss("l1")(lambda: None)
    with pytest.raises(KeyError, match="unknown loss 'l2'"):
        create_loss("l2")
    # An error raised inside a builder is the builder's, not "unknown loss".
    register_loss("_raises_key_error")(lambda: {}["missing"])
    try:
        with pytest.raises(KeyError) as err:
            create_loss("_raises_key_error")
        assert "unknown loss" not in str(err.value) and "missing" in str(err.value)
        assert loss_arguments("perceptual") == ["levels", "gradient_weight"] and loss_arguments("l1") == []
    finally:
        _LOSSES.pop("_raises_key_error")
