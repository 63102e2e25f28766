"""The classical reference rows: their noise level from the noisy image alone, and their names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from orchestrator.schema import ClassicalOptions
from orchestrator.study.references import estimate_sigma, reference, reference_spec, spec_tag


def _image(noise: np.ndarray) -> np.ndarray:
    h, w = noise.shape[:2]
    ramp = np.linspace(0.3, 0.7, w)[None, :, None] * np.ones((h, 1, 3))
    return ramp + noise


def test_the_pixel_shuffle_estimate_sees_spatially_correlated_noise() -> None:
    rng = np.random.default_rng(0)
    white = rng.normal(0, 0.04, (256, 256, 3))
    # correlated as demosaicked, denoised or compressed noise is: a 3x3 box, rescaled to the same std
    correlated = ndimage.uniform_filter(white, size=(3, 3, 1)) * 3.0
    std = correlated.std()
    wavelet = estimate_sigma(_image(correlated), ClassicalOptions(sigma="wavelet"))
    pd = estimate_sigma(_image(correlated), ClassicalOptions())
    assert wavelet < 0.35 * std  # the finest band of the image holds little of this noise
    assert 0.8 * std < pd < 1.2 * std
    # on white noise both agree with the truth
    for options in (ClassicalOptions(sigma="wavelet"), ClassicalOptions()):
        assert estimate_sigma(_image(white), options) == pytest.approx(0.04, rel=0.1)


def test_specs_name_each_method_with_its_settings() -> None:
    default, fast = ClassicalOptions(), ClassicalOptions(bm3d_step=6, bm3d_window=19)
    assert reference_spec("noisy input", default) == "ref:noisy input"
    assert reference_spec("nlm", default) == reference_spec("nlm", fast)  # BM3D's settings only
    assert reference_spec("bm3d", default) != reference_spec("bm3d", fast)
    assert spec_tag(reference_spec("bm3d", default)) != spec_tag(reference_spec("bm3d", fast))
    assert spec_tag("ref:noisy input") == "ref-noisy_input"
    model = reference(reference_spec("nlm", ClassicalOptions(nlm_h=0.5, sigma="wavelet")))
    assert model.options == ClassicalOptions(nlm_h=0.5, sigma="wavelet")
    with pytest.raises(KeyError, match="unknown reference"):
        reference_spec("median", default)


@pytest.mark.parametrize("method", ["nlm", "bm3d"])
def test_classical_methods_denoise_a_batch(method: str) -> None:
    rng = np.random.default_rng(1)
    clean = np.full((2, 3, 40, 40), 120.0)
    x = torch.from_numpy(clean + rng.normal(0, 10, clean.shape)).float()
    options = ClassicalOptions(bm3d_step=6, bm3d_window=19)
    out = reference(reference_spec(method, options))(x)
    assert out.shape == x.shape
    assert (out - 120).abs().mean() < 0.5 * (x - 120).abs().mean()


def test_settings_are_checked() -> None:
    for bad in ({"sigma_stride": 0}, {"nlm_h": 0.0}, {"bm3d_step": 0}, {"bm3d_window": 4}):
        with pytest.raises(ValueError):
            ClassicalOptions(**bad)
