"""PSNR/SSIM conventions against hand-computed cases and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from orchestrator.train import metrics


def test_quantization_rounds_half_up_and_clips() -> None:
    x = np.array([-3.0, 0.49, 0.5, 1.5, 2.49, 254.5, 300.0])
    np.testing.assert_array_equal(metrics.quantize_uint8(x), [0, 0, 1, 2, 2, 255, 255])


def test_psnr_hand_computed() -> None:
    t = np.full((1, 8, 8, 3), 100, np.uint8)
    p = t.astype(float) + 1.0  # MSE 1 -> 20 log10(255)
    assert metrics.psnr(p, t) == pytest.approx(20 * np.log10(255.0))
    # 100.4 rounds to 100: identical after quantization -> infinite PSNR
    assert metrics.psnr(t + 0.4, t) == np.inf
    # mean over blocks, not the PSNR of the pooled MSE: MSE 1 and 4
    t2 = np.full((2, 4, 4, 3), 50, np.uint8)
    p2 = t2.astype(float) + np.array([1.0, 2.0])[:, None, None, None]
    want = np.mean([10 * np.log10(255**2 / 1), 10 * np.log10(255**2 / 4)])
    assert metrics.psnr(p2, t2) == pytest.approx(want)


def test_ssim_hand_computed_on_constant_images() -> None:
    # Constant images: zero variances, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1).
    a, b = 100.0, 110.0
    c1 = (0.01 * 255) ** 2
    want = (2 * a * b + c1) / (a * a + b * b + c1)
    x = np.full((1, 16, 16, 3), a)
    y = np.full((1, 16, 16, 3), b)
    assert metrics.ssim(x, y) == pytest.approx(want, rel=1e-12)
    assert metrics.ssim_uniform7(x, y) == pytest.approx(want, rel=1e-12)
    assert metrics.ssim(y, y) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(24, 24, 3), (31, 45, 3)])
def test_against_scikit_image(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (3, *shape)).astype(np.uint8)
    p = t + rng.normal(0, 15, t.shape)  # float output, quantized inside
    pq = metrics.quantize_uint8(p)
    got = metrics.evaluate(p, t)
    for i in range(3):
        assert got["psnr"][i] == pytest.approx(
            peak_signal_noise_ratio(t[i], pq[i], data_range=255), abs=1e-10
        )
        assert got["ssim"][i] == pytest.approx(
            structural_similarity(
                pq[i],
                t[i],
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
                channel_axis=-1,
            ),
            abs=1e-10,
        )
        assert got["ssim_uniform7"][i] == pytest.approx(
            structural_similarity(pq[i], t[i], data_range=255, channel_axis=-1), abs=1e-10
        )
    assert got["ssim"][0] != pytest.approx(got["ssim_uniform7"][0], abs=1e-4)  # conventions differ


def test_layouts_and_accumulator_agree() -> None:
    rng = np.random.default_rng(1)
    t = rng.integers(0, 256, (5, 20, 20, 3)).astype(np.uint8)
    p = rng.integers(0, 256, (5, 20, 20, 3)).astype(np.uint8)
    whole = {k: float(v.mean()) for k, v in metrics.evaluate(p, t).items()}
    nchw = metrics.evaluate(p.transpose(0, 3, 1, 2), t.transpose(0, 3, 1, 2), layout="NCHW")
    acc = metrics.MetricAccumulator()
    acc.update(p[:2], t[:2])
    acc.update(p[2:], t[2:])
    for k in metrics.METRICS:
        assert float(nchw[k].mean()) == pytest.approx(whole[k])
        assert acc.result()[k] == pytest.approx(whole[k])
    assert acc.count == 5


def test_errors() -> None:
    with pytest.raises(ValueError, match="prediction shape"):
        metrics.psnr(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 9, 3)))
    with pytest.raises(ValueError, match="smaller than the 11x11 SSIM window"):
        metrics.ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="no images"):
        metrics.MetricAccumulator().result()
