"""Exact noise-correlation statistics between a pixel and its neighbours at offsets (k, l).

Two named statistics, both exact (every pixel pair, no sampling):

``rgb_pearson``
    The paper's statistic (Sec. 3.2; ``spec/correlation.md``). At each pixel the three channel
    values of the noise are centred by their own mean, ``c(p) = X(p) - mean_rgb(X(p))``; the pair
    (p, p+d) contributes the Pearson coefficient of the two 3-vectors,
    ``<c(p), c(p+d)> / (|c(p)| |c(p+d)|)``. Pairs with a pixel outside the image or with ``|c| = 0``
    are skipped. An image keeps ``sum[d]`` and ``count[d]``; maps are ``sum / count``, pooled
    over images as ``sum(sum) / sum(count)``.

``pearson``
    The ordinary Pearson coefficient between ``X`` and ``X`` shifted by d over every valid
    position, channels pooled (or per channel). Kept as sufficient statistics (n, sums,
    sums of squares, cross sums) so that images pool exactly.

Both are sums of products of a field with its shifted self, i.e. auto-correlations, computed for
all (2R+1)^2 offsets at once with zero-padded real FFTs in float64. For ``rgb_pearson`` the
centred RGB vector lies in the plane orthogonal to (1, 1, 1), so two coordinates (two FFTs)
suffice; its counts are exact integers: the overlap area corrected by the few degenerate pixels
(equal noise in all channels), or the validity mask's auto-correlation when they are many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.correlation.lags import (
    BAND_PIXELS,
    WORKSPACE,
    autocorrelation,
    clear_workspace,
    fft_shape,
    overlap_counts,
    padded_autocorrelation,
    pair_counts,
)

STATISTICS = ("rgb_pearson", "pearson", "residual")

__all__ = [
    "STATISTICS",
    "CorrelationSums",
    "autocorrelation",
    "noise_of",
    "rgb_pearson_sums",
    "pearson_sums",
    "correlation_sums",
    "radial_profile",
    "PROFILE_DISTANCES",
    "release_buffers",
]


def noise_of(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Noise ``noisy - clean`` as int16, from two uint8 images of the same shape (H, W, 3)."""
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy shape {noisy.shape} != clean shape {clean.shape}")
    return np.subtract(noisy, clean, dtype=np.int16)  # one pass, no int16 copies of the inputs


def _check_noise(noise: np.ndarray, radius: int) -> None:
    if noise.ndim != 3 or noise.shape[2] != 3:
        raise ValueError(f"noise must have shape (H, W, 3), got {noise.shape}")
    if not isinstance(radius, int | np.integer) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")


@dataclass(frozen=True)
class CorrelationSums:
    """Per-offset sufficient statistics of one image (or pooled over several).

    ``sum`` / ``count`` give the map. For ``pearson`` the extra fields hold the sums needed to
    form Pearson's coefficient exactly: ``sx``/``sy`` (sums of the first and shifted values),
    ``sxx``/``syy`` and ``sxy``, each (C, 2R+1, 2R+1) with C = 3 channels.
    """

    statistic: str
    sum: np.ndarray
    count: np.ndarray
    sx: np.ndarray | None = None
    sy: np.ndarray | None = None
    sxx: np.ndarray | None = None
    syy: np.ndarray | None = None

    @property
    def radius(self) -> int:
        return (self.sum.shape[-1] - 1) // 2

    def __add__(self, other: CorrelationSums) -> CorrelationSums:
        if other.statistic != self.statistic or other.sum.shape != self.sum.shape:
            raise ValueError(
                f"cannot pool {other.statistic} sums of shape {other.sum.shape} into "
                f"{self.statistic} sums of shape {self.sum.shape}"
            )

        def add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else a + b

        return CorrelationSums(
            self.statistic,
            self.sum + other.sum,
            self.count + other.count,
            add(self.sx, other.sx),
            add(self.sy, other.sy),
            add(self.sxx, other.sxx),
            add(self.syy, other.syy),
        )

    @staticmethod
    def pool(sums: Sequence[CorrelationSums]) -> CorrelationSums:
        """The sums of several images (at least one) pooled into one."""
        total = sums[0]
        for s in sums[1:]:
            total = total + s
        return total

    def map(self, *, per_channel: bool = False) -> np.ndarray:
        """The correlation map; NaN where no pair was counted.

        Args:
            per_channel: ``pearson`` only: return (3, 2R+1, 2R+1) instead of channels pooled.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.statistic == "rgb_pearson":
                if per_channel:
                    raise ValueError("per_channel applies to the 'pearson' statistic only")
                return np.where(self.count > 0, self.sum / self.count, np.nan)
            # pearson: sum holds sxy per channel, count n per channel
            sxy, n, sx, sy, sxx, syy = self.sum, self.count, self.sx, self.sy, self.sxx, self.syy
            if not per_channel:
                sxy, n, sx, sy, sxx, syy = (a.sum(axis=0) for a in (sxy, n, sx, sy, sxx, syy))
            cov = sxy - sx * sy / n
            var_x = sxx - sx * sx / n
            var_y = syy - sy * sy / n
            denom = np.sqrt(var_x * var_y)
            return np.where((n > 1) & (denom > 0), cov / denom, np.nan)


# Noise of uint8 images lies in [-255, 255]: the unit vector of a pixel depends only on the two
# integers A = x0 - x1 and B = x0 + x1 - 2 x2, so it is read from a table instead of computed.
_LUT_MAX = 255
_LUT: list[np.ndarray] = []


def release_buffers() -> None:
    """Free this thread's reused FFT buffers (about 0.5 GB after a 12 MP image) and the
    unit-vector tables; the next call allocates them again."""
    clear_workspace()
    _LUT.clear()


def _unit_table() -> tuple[np.ndarray, np.ndarray]:
    """Flat tables (2 x 16 MB) of the two unit-vector coordinates, indexed by
    (A + 510) * 2041 + (B + 1020) for A in [-510, 510] and B in [-1020, 1020]."""
    if not _LUT:
        av = np.arange(-2 * _LUT_MAX, 2 * _LUT_MAX + 1, dtype=np.float64)[:, None]
        bv = np.arange(-4 * _LUT_MAX, 4 * _LUT_MAX + 1, dtype=np.float64)[None, :]
        n2 = 3.0 * av * av + bv * bv  # 6 |c|^2
        inv = np.divide(1.0, np.sqrt(n2), out=np.zeros_like(n2), where=n2 > 0)
        _LUT[:] = [(np.sqrt(3.0) * av * inv).ravel(), (bv * inv).ravel()]
    return _LUT[0], _LUT[1]


def _unit_plane_lut(noise: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Write the 2-D unit vectors of integer noise in [-255, 255] into ``a``, ``b``; return validity.

    Works through bands of rows small enough for the cache: the table index and the looked-up
    values of a band are formed in contiguous scratch arrays and copied into ``a`` and ``b``
    (rows of the padded FFT buffer), so every pass but the last stays in cache.
    """
    table_a, table_b = _unit_table()
    nb = 8 * _LUT_MAX + 1
    h, w = noise.shape[:2]
    rows = max(1, BAND_PIXELS // max(w, 1))
    idx = WORKSPACE.get("index", (rows, w), np.int32)
    tmp = WORKSPACE.get("scratch", (rows, w), np.int32)
    val = WORKSPACE.get("values", (rows, w))
    valid = np.empty((h, w), dtype=bool)
    invalid_index = 2 * _LUT_MAX * nb + 4 * _LUT_MAX  # A = B = 0: equal channels
    for r0 in range(0, h, rows):
        band = noise[r0 : r0 + rows]
        n = band.shape[0]
        x0, x1, x2 = band[..., 0], band[..., 1], band[..., 2]
        i, t, v = idx[:n], tmp[:n], val[:n]
        np.subtract(x0, x1, out=i, dtype=np.int32)
        i += 2 * _LUT_MAX
        i *= nb
        np.add(x0, x1, out=t, dtype=np.int32)
        t -= x2
        t -= x2
        i += t
        i += 4 * _LUT_MAX
        np.take(table_a, i, out=v, mode="clip")  # indices are in range; "clip" avoids a copy
        a[r0 : r0 + n] = v
        np.take(table_b, i, out=v, mode="clip")
        b[r0 : r0 + n] = v
        np.not_equal(i, invalid_index, out=valid[r0 : r0 + n])
    return valid


def _unit_plane(noise: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Write the 2-D unit vectors of any noise into ``a``, ``b``; return where they exist."""
    x0, x1, x2 = noise[..., 0], noise[..., 1], noise[..., 2]
    np.subtract(x0, x1, out=a, dtype=np.float64)
    a *= np.sqrt(0.5)  # along (1, -1, 0) / sqrt(2)
    np.add(x0, x1, out=b, dtype=np.float64)
    b -= x2  # twice, instead of a temporary 2 * x2
    b -= x2
    b *= np.sqrt(1.0 / 6.0)  # along (1, 1, -2) / sqrt(6)
    norm2 = a * a
    norm2 += b * b
    if np.issubdtype(noise.dtype, np.integer):
        valid = norm2 > 0  # equal channels give exactly zero
    else:
        valid = norm2 > 1e-24 * max(float(norm2.max()), 1.0)
    inv = norm2
    np.sqrt(norm2, out=inv)
    np.divide(1.0, inv, out=inv, where=valid)
    inv[~valid] = 0.0
    a *= inv
    b *= inv
    return valid


def rgb_pearson_sums(noise: np.ndarray, radius: int = 10, *, workers: int = 1) -> CorrelationSums:
    """The paper's statistic for one image: per-offset sums of the RGB Pearson coefficient.

    The centred vector ``c(p)`` is orthogonal to (1, 1, 1), so it has two coordinates in an
    orthonormal basis of that plane, and ``<c(p), c(q)> / (|c(p)| |c(q)|)`` is the dot product of
    the two 2-D unit vectors: two real FFTs and one inverse give every offset's sum.

    Args:
        noise: (H, W, 3) integer or float noise.
        radius: R (10 gives the paper's 21x21 map).
        workers: threads for the FFTs.
    """
    _check_noise(noise, radius)
    h, w = noise.shape[:2]
    # Both coordinates are written straight into the zero-padded FFT buffer (no extra copies).
    n0, n1 = fft_shape(h, w, radius)
    buf = WORKSPACE.get("fields", (2, n0, n1))
    spec = WORKSPACE.get("spectrum", (2, n0, n1 // 2 + 1), np.complex128)
    buf[:, h:, :] = 0.0
    buf[:, :h, w:] = 0.0
    a, b = buf[0, :h, :w], buf[1, :h, :w]
    if np.issubdtype(noise.dtype, np.integer) and noise.min() >= -_LUT_MAX and noise.max() <= _LUT_MAX:
        valid = _unit_plane_lut(noise, a, b)
    else:
        valid = _unit_plane(noise, a, b)
    total = padded_autocorrelation(buf, radius, workers=workers, summed=True, spec_out=spec)
    count = pair_counts(valid, radius, workers=workers)
    # A pair with an invalid pixel contributes an exact zero; the FFT leaves round-off there.
    total = np.where(count > 0, total, 0.0)
    return CorrelationSums("rgb_pearson", total, count)


def _box_sums(field: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """For each offset d: sum of ``field`` over {p : p, p+d inside} and over {p+d : ...}.

    Args:
        field: (C, H, W).
    Returns:
        (first, second), each (C, 2R+1, 2R+1).
    """
    c, h, w = field.shape
    ii = np.zeros((c, h + 1, w + 1), dtype=np.float64)
    ii[:, 1:, 1:] = field.astype(np.float64).cumsum(1).cumsum(2)

    def rect(r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        return (
            ii[:, r1[:, None], c1[None, :]]
            - ii[:, r0[:, None], c1[None, :]]
            - ii[:, r1[:, None], c0[None, :]]
            + ii[:, r0[:, None], c0[None, :]]
        )

    ks = np.arange(-radius, radius + 1)
    # First side: rows p with 0 <= p < h and 0 <= p + k < h, i.e. [max(0, -k), min(h, h - k)).
    # Second side: the same rows moved by k, i.e. [max(0, k), min(h, h + k)). Likewise columns.
    r0, r1 = np.clip(-ks, 0, h), np.clip(h - ks, 0, h)
    c0, c1 = np.clip(-ks, 0, w), np.clip(w - ks, 0, w)
    s0, s1 = np.clip(ks, 0, h), np.clip(h + ks, 0, h)
    t0, t1 = np.clip(ks, 0, w), np.clip(w + ks, 0, w)
    first = rect(r0, np.maximum(r1, r0), c0, np.maximum(c1, c0))
    second = rect(s0, np.maximum(s1, s0), t0, np.maximum(t1, t0))
    return first, second


def pearson_sums(noise: np.ndarray, radius: int = 10, *, workers: int = 1) -> CorrelationSums:
    """The ordinary per-offset Pearson coefficient's sufficient statistics, per channel.

    Every pixel is valid; the mean of each side is taken over the overlap of the image and its
    shift, as Pearson's coefficient over the pairs requires.
    """
    _check_noise(noise, radius)
    x = np.moveaxis(noise.astype(np.float64), 2, 0)  # (3, H, W)
    h, w = x.shape[1:]
    sxy = autocorrelation(x, radius, workers=workers)
    sx, sy = _box_sums(x, radius)
    sxx, syy = _box_sums(x * x, radius)
    n = np.broadcast_to(overlap_counts(h, w, radius), sxy.shape).copy()
    return CorrelationSums("pearson", sxy, n, sx, sy, sxx, syy)


def correlation_sums(
    noise: np.ndarray, radius: int = 10, *, statistic: str = "rgb_pearson", workers: int = 1
) -> CorrelationSums:
    """Dispatch by statistic name: ``rgb_pearson`` or ``pearson`` of a noise array (``residual``
    takes a noisy image instead: :func:`orchestrator.correlation.residual.residual_sums`)."""
    if statistic == "rgb_pearson":
        return rgb_pearson_sums(noise, radius, workers=workers)
    if statistic == "pearson":
        return pearson_sums(noise, radius, workers=workers)
    raise ValueError(f"unknown statistic {statistic!r} for a noise array; expected rgb_pearson or pearson")


PROFILE_DISTANCES = (1, 2, 3, 4, 5, 10)  # the distances reported beside the real SIDD map


def radial_profile(corr_map: np.ndarray, distances: tuple[int, ...] = PROFILE_DISTANCES) -> dict:
    """Coefficient at axis distances d (mean of the four axis neighbours at distance d)."""
    r = (corr_map.shape[-1] - 1) // 2
    out = {}
    for d in distances:
        if d > r:
            raise ValueError(f"distance {d} exceeds the map radius {r}")
        vals = [corr_map[r + d, r], corr_map[r - d, r], corr_map[r, r + d], corr_map[r, r - d]]
        out[d] = float(np.mean(vals))
    return out
