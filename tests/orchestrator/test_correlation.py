"""Exact correlation maps: the authors' golden case, a direct per-offset reference, analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.correlation.report import REFERENCE_MAPS
from orchestrator.correlation.stats import (
    correlation_sums,
    noise_of,
    pearson_sums,
    radial_profile,
    release_buffers,
    rgb_pearson_sums,
)

from ..conftest import DATA

SIDD_REFERENCE_MAP = REFERENCE_MAPS["sidd"]


def _direct_rgb_pearson(noise: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """One offset at a time, straight from the definition (slow, obviously right)."""
    x = noise.astype(np.float64)
    c = x - x.mean(axis=2, keepdims=True)
    n = np.linalg.norm(c, axis=2)
    h, w = n.shape
    s = np.zeros((2 * radius + 1,) * 2)
    cnt = np.zeros_like(s)
    for k in range(-radius, radius + 1):
        for l in range(-radius, radius + 1):
            if abs(k) >= h or abs(l) >= w:
                continue  # no pixel pair at this offset
            a = (slice(max(0, -k), min(h, h - k)), slice(max(0, -l), min(w, w - l)))
            b = (slice(max(0, k), min(h, h + k)), slice(max(0, l), min(w, w + l)))
            ok = (n[a] > 0) & (n[b] > 0)
            dot = (c[a] * c[b]).sum(axis=2)
            s[k + radius, l + radius] = (dot[ok] / (n[a][ok] * n[b][ok])).sum()
            cnt[k + radius, l + radius] = ok.sum()
    return s, cnt


def test_golden_case_exact() -> None:
    g = np.load(DATA / "correlation_golden_48x64.npz")
    s = rgb_pearson_sums(g["noise"], 10)
    np.testing.assert_array_equal(s.count, g["count"])
    np.testing.assert_allclose(s.sum, g["sum"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.map(), g["map"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("h", "w", "r"), [(17, 23, 4), (9, 31, 5), (5, 7, 6)])
def test_matches_direct_computation_with_degenerate_pixels(h: int, w: int, r: int) -> None:
    rng = np.random.default_rng(h * w)
    noise = rng.integers(-30, 30, (h, w, 3)).astype(np.int16)
    noise[rng.random((h, w)) < 0.15] = 7  # equal channels: |c| = 0, skipped
    noise[0, :] = 0
    s = rgb_pearson_sums(noise, r)
    ds, dc = _direct_rgb_pearson(noise, r)
    np.testing.assert_array_equal(s.count, dc)
    np.testing.assert_allclose(s.sum, ds, rtol=0, atol=1e-9)


def test_pearson_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(21, 19, 3)) * [1, 2, 3] + [5, 0, -5]
    r = 3
    per_ch = pearson_sums(x, r).map(per_channel=True)
    pooled = pearson_sums(x, r).map()
    h, w = x.shape[:2]
    for k in range(-r, r + 1):
        for l in range(-r, r + 1):
            a = x[max(0, -k) : min(h, h - k), max(0, -l) : min(w, w - l)]
            b = x[max(0, k) : min(h, h + k), max(0, l) : min(w, w + l)]
            for ch in range(3):
                want = np.corrcoef(a[..., ch].ravel(), b[..., ch].ravel())[0, 1]
                assert per_ch[ch, k + r, l + r] == pytest.approx(want, abs=1e-12)
            # pooled: every channel's pairs together, one Pearson coefficient over all of them
            assert pooled[k + r, l + r] == pytest.approx(_pooled_reference(a, b), abs=1e-12)


def _pooled_reference(a: np.ndarray, b: np.ndarray) -> float:
    xa, xb = a.reshape(-1), b.reshape(-1)
    n = xa.size
    cov = (xa * xb).sum() - xa.sum() * xb.sum() / n
    return cov / np.sqrt(((xa**2).sum() - xa.sum() ** 2 / n) * ((xb**2).sum() - xb.sum() ** 2 / n))


def test_known_analytic_correlation() -> None:
    rng = np.random.default_rng(1)
    # Rows constant along the width: every horizontal pair is the same vector (r = 1 exactly);
    # rows are independent, so vertical pairs average to ~0.
    rows = rng.normal(size=(400, 1, 3))
    s = rgb_pearson_sums(np.repeat(rows, 50, axis=1), 3).map()
    np.testing.assert_allclose(s[3, :], 1.0, atol=1e-12)
    assert np.abs(s[[0, 1, 2, 4, 5, 6], 3]).max() < 0.1
    # Moving average X = Z + Z(shifted right by one): Pearson 1/2 at (0, +-1), 0 beyond.
    z = rng.normal(size=(300, 301, 3))
    x = z[:, 1:] + z[:, :-1]
    m = pearson_sums(x, 2).map()
    assert m[2, 3] == pytest.approx(0.5, abs=0.02) and m[2, 1] == pytest.approx(0.5, abs=0.02)
    assert abs(m[2, 4]) < 0.02 and abs(m[3, 2]) < 0.02 and m[2, 2] == pytest.approx(1.0)


def test_pooling_and_dispatch() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(-5, 5, (12, 14, 3)), rng.integers(-5, 5, (9, 20, 3))
    pooled = rgb_pearson_sums(a, 3) + rgb_pearson_sums(b, 3)
    sa, ca = _direct_rgb_pearson(a, 3)
    sb, cb = _direct_rgb_pearson(b, 3)
    np.testing.assert_allclose(pooled.map(), (sa + sb) / (ca + cb), atol=1e-12)
    assert correlation_sums(a, 3, statistic="pearson").statistic == "pearson"
    with pytest.raises(ValueError, match="unknown statistic"):
        correlation_sums(a, 3, statistic="spearman")
    with pytest.raises(ValueError, match="cannot pool"):
        rgb_pearson_sums(a, 3) + rgb_pearson_sums(a, 2)


def test_input_checks_and_zero_noise() -> None:
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        rgb_pearson_sums(np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="noisy shape"):
        noise_of(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    # An image whose noise is zero everywhere has no valid pixel: NaN map, zero counts.
    s = rgb_pearson_sums(np.zeros((6, 6, 3), np.int16), 2)
    assert (s.count == 0).all() and np.isnan(s.map()).all()


def test_radial_profile_on_the_real_sidd_map() -> None:
    m = np.load(SIDD_REFERENCE_MAP)
    p = radial_profile(m)
    assert p[1] == pytest.approx(0.565, abs=0.001) and p[2] == pytest.approx(0.233, abs=0.002)
    with pytest.raises(ValueError, match="exceeds the map radius"):
        radial_profile(m, (11,))


def test_table_path_equals_the_computed_path_and_buffers_are_reused_safely() -> None:
    # uint8 noise goes through the unit-vector table; float or wide-range noise is computed.
    rng = np.random.default_rng(5)
    for shape in ((37, 53, 3), (20, 31, 3), (37, 53, 3)):  # buffers reused, resized, reused
        noise = rng.integers(-255, 256, shape).astype(np.int16)
        noise[3, 4] = (7, 7, 7)  # degenerate pixel
        via_table = rgb_pearson_sums(noise, 4)
        computed = rgb_pearson_sums(noise.astype(np.float64), 4)
        np.testing.assert_allclose(via_table.sum, computed.sum, rtol=0, atol=1e-9)
        assert np.array_equal(via_table.count, computed.count)
        s, cnt = _direct_rgb_pearson(noise, 4)
        np.testing.assert_allclose(via_table.sum, s, rtol=0, atol=1e-9)
        assert np.array_equal(via_table.count, cnt)
    release_buffers()  # and everything is allocated again
    again = rgb_pearson_sums(noise, 4)
    assert np.array_equal(again.sum, via_table.sum)
    wide = rng.integers(-2000, 2000, (15, 17, 3)).astype(np.int32)
    s, cnt = _direct_rgb_pearson(wide, 3)
    np.testing.assert_allclose(rgb_pearson_sums(wide, 3).sum, s, rtol=0, atol=1e-9)
