"""The ``residual`` statistic: the noise correlation of noisy images alone."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.correlation.residual import residual_field, residual_sums


def _direct(image: np.ndarray, radius: int) -> np.ndarray:
    """The map by its definition: Pearson over the pairs of flat pixels at each offset, the three
    channels' values pooled into one sample (as ``pearson``), one offset at a time."""
    residual, flat = residual_field(image)
    h, w = flat.shape
    out = np.zeros((2 * radius + 1, 2 * radius + 1))
    for k in range(-radius, radius + 1):
        for l in range(-radius, radius + 1):
            a, b = [], []
            for y in range(max(0, -k), min(h, h - k)):
                for x in range(max(0, -l), min(w, w - l)):
                    if flat[y, x] and flat[y + k, x + l]:
                        a.append(residual[:, y, x])
                        b.append(residual[:, y + k, x + l])
            out[k + radius, l + radius] = np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]
    return out


def test_matches_its_definition_pair_by_pair() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(120, 20, (18, 22, 3)), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(residual_sums(image, 2).map(), _direct(image, 2), atol=1e-9)


def _noisy(noise: np.ndarray) -> np.ndarray:
    """A smooth gradient with ``noise`` on it, as uint8."""
    h, w = noise.shape[:2]
    ramp = np.linspace(60, 180, w)[None, :, None] + np.linspace(0, 20, h)[:, None, None]
    return np.clip(np.rint(ramp + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_shows_no_correlation_and_filtered_noise_its_own(seed: int) -> None:
    rng = np.random.default_rng(seed)
    white = rng.normal(0, 8, (256, 256, 3))
    m = residual_sums(_noisy(white), 3).map()
    off = np.abs(m - np.eye(7)[3][:, None] * np.eye(7)[3][None, :])
    assert off.max() < 0.05
    # averaging horizontal neighbours: noise correlated by 0.5 at (0, +-1), 0 beyond
    pairs = (white + np.roll(white, 1, axis=1)) / np.sqrt(2)
    m = residual_sums(_noisy(pairs), 3).map()
    assert m[3, 4] == pytest.approx(0.5, abs=0.06) and m[3, 2] == pytest.approx(0.5, abs=0.06)
    assert abs(m[4, 3]) < 0.06 and abs(m[3, 5]) < 0.06


def test_needs_three_channels() -> None:
    with pytest.raises(ValueError, match="shape"):
        residual_sums(np.zeros((8, 8), np.uint8), 2)
