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

import threading
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft

STATISTICS = ("rgb_pearson", "pearson")

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


def autocorrelation(fields: np.ndarray, radius: int, *, workers: int = 1) -> np.ndarray:
    """``out[..., R+k, R+l] = sum_p f(p) f(p+(k,l))`` over pixels p with both p and p+d inside.

    Args:
        fields: (..., H, W) real array; leading axes are transformed independently.
        radius: R; offsets k, l range over [-R, R].
        workers: threads for scipy.fft.

    Returns:
        float64 array (..., 2R+1, 2R+1).
    """
    h, w = fields.shape[-2:]
    padded = np.zeros((*fields.shape[:-2], *_fft_shape(h, w, radius)))
    padded[..., :h, :w] = fields
    return _padded_autocorrelation(padded, radius, workers=workers, summed=False)


def _fft_shape(h: int, w: int, radius: int) -> tuple[int, int]:
    # Zero padding by at least R turns the circular correlation into the linear one for |d| <= R.
    return sfft.next_fast_len(h + radius, real=True), sfft.next_fast_len(w + radius, real=True)


# Elements per band in the passes that work band by band of rows: their scratch arrays (about
# 1 MB) stay in cache.
_BAND_PIXELS = 1 << 15


class _Workspace(threading.local):
    """Per-thread scratch arrays, reused across images of the same size.

    A worker computes one SIDD-sized image after another; reusing the ~500 MB of buffers spares
    the page faults of fresh allocations, a fifth of the time per image.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        arr = self.arrays.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            self.arrays.pop(name, None)  # release before allocating anew
            arr = self.arrays[name] = np.empty(shape, dtype=dtype)
        return arr


_WORKSPACE = _Workspace()


def release_buffers() -> None:
    """Free this thread's reused FFT buffers (about 0.5 GB after a 12 MP image) and the
    unit-vector tables; the next call allocates them again."""
    _WORKSPACE.arrays.clear()
    _LUT.clear()


def _padded_autocorrelation(
    padded: np.ndarray, radius: int, *, workers: int, summed: bool, spec_out: np.ndarray | None = None
) -> np.ndarray:
    """:func:`autocorrelation` of fields already zero-padded to an FFT shape (overwritten).

    ``summed`` adds the leading axes' power spectra first: the result is the sum of their
    correlations. ``spec_out``: a buffer for the spectrum (single-threaded transforms only).
    """
    shape = padded.shape[-2:]
    if spec_out is not None and workers == 1:
        spec = np.fft.rfft2(padded, out=spec_out)
    else:
        spec = sfft.rfft2(padded, workers=workers, overwrite_x=True)
    fields = spec.reshape(-1, *spec.shape[-2:])
    groups = [fields] if summed else [fields[i : i + 1] for i in range(len(fields))]
    out = np.stack([_lags_from_spectra(group, shape, radius) for group in groups])
    return out[0] if summed else out.reshape(*padded.shape[:-2], *out.shape[-2:])


def _lags_from_spectra(spectra: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """The inverse transform of the summed power spectra of real fields, at the (2R+1)^2 lags only.

    Only 441 of the millions of lags are needed, so instead of a full inverse FFT the cosine sums
    are taken directly as matrix products: the power of a real field is even, so
    ``corr[d] = sum_k w(k) P(k) cos(2 pi (k0 d0 / N0 + k1 d1 / N1)) / N``, with weights ``w`` that
    count each half-spectrum column twice except the zero and Nyquist ones. The power is formed
    band by band of rows and multiplied while still in cache.

    Args:
        spectra: (F, N0, N1 // 2 + 1) ``rfft2`` of F real (N0, N1) fields.
    """
    n0, n1 = shape
    size = 2 * radius + 1
    ks = np.arange(-radius, radius + 1)
    k1 = np.arange(spectra.shape[-1])
    weight = np.full(k1.shape, 2.0)
    weight[0] = 1.0
    if n1 % 2 == 0:
        weight[-1] = 1.0
    # Angles from exact integer phases (k * d mod N) keep the cosines accurate for large N.
    ang1 = 2 * np.pi * ((k1[:, None] * ks[None, :]) % n1) / n1  # (N1h, 2R+1)
    ang0 = 2 * np.pi * ((ks[:, None] * np.arange(n0)[None, :]) % n0) / n0  # (2R+1, N0)
    cos_sin = np.concatenate([np.cos(ang1), np.sin(ang1)], axis=1) * weight[:, None]  # (N1h, 2 (2R+1))
    by_col = np.empty((n0, 2 * size))
    rows = max(1, _BAND_PIXELS // spectra.shape[-1])
    power = np.empty((rows, spectra.shape[-1]))
    square = np.empty_like(power)
    for r0 in range(0, n0, rows):
        n = min(rows, n0 - r0)
        p, t = power[:n], square[:n]
        parts = [part for field in spectra[:, r0 : r0 + n] for part in (field.real, field.imag)]
        np.square(parts[0], out=p)
        for part in parts[1:]:
            p += np.square(part, out=t)
        np.matmul(p, cos_sin, out=by_col[r0 : r0 + n])
    corr = np.cos(ang0) @ by_col[:, :size] - np.sin(ang0) @ by_col[:, size:]
    return corr / (n0 * n1)


def _pair_counts(valid: np.ndarray, radius: int, *, workers: int = 1) -> np.ndarray:
    """``count[d] = #{p : p, p+d inside and both valid}``, exactly.

    With few invalid pixels (the usual case: pixels whose channels carry equal noise), the count
    is the overlap area minus the invalid pixels on either side plus the invalid pairs, found from
    the invalid pixels' own neighbourhoods; otherwise from the mask's auto-correlation.
    """
    h, w = valid.shape
    area = _overlap_counts(h, w, radius)
    bad = ~valid
    n_bad = int(bad.sum())
    if n_bad == 0:
        return area
    if n_bad > 0.02 * valid.size:
        return np.rint(autocorrelation(valid.astype(np.float64), radius, workers=workers))
    ys, xs = np.divmod(np.flatnonzero(bad), w)  # a tenth of np.nonzero's time on a 2-D mask
    ks = np.arange(-radius, radius + 1)
    # Invalid p with p+d inside, and invalid q with q-d inside: separable in rows and columns.
    row_fwd = ((ys[:, None] + ks) >= 0) & ((ys[:, None] + ks) < h)
    col_fwd = ((xs[:, None] + ks) >= 0) & ((xs[:, None] + ks) < w)
    row_bwd = ((ys[:, None] - ks) >= 0) & ((ys[:, None] - ks) < h)
    col_bwd = ((xs[:, None] - ks) >= 0) & ((xs[:, None] - ks) < w)
    first = row_fwd.T.astype(np.float64) @ col_fwd.astype(np.float64)
    second = row_bwd.T.astype(np.float64) @ col_bwd.astype(np.float64)
    # Invalid pairs: each invalid pixel's (2R+1)^2 neighbourhood, gathered as whole windows
    # (rows of 2R+1 bytes) from a padded mask where outside counts as valid.
    size = 2 * radius + 1
    padded = np.zeros((h + 2 * radius, w + 2 * radius), dtype=np.uint8)
    padded[radius : radius + h, radius : radius + w] = bad
    windows = sliding_window_view(padded, (size, size))
    both = np.zeros(area.shape, dtype=np.int64)
    for start in range(0, n_bad, 8192):  # bounded memory: 8192 x (2R+1)^2 bytes at a time
        both += windows[ys[start : start + 8192], xs[start : start + 8192]].sum(axis=0, dtype=np.int64)
    return area - first - second + both


def _overlap_counts(h: int, w: int, radius: int) -> np.ndarray:
    ks = np.arange(-radius, radius + 1)
    return np.outer(np.clip(h - np.abs(ks), 0, None), np.clip(w - np.abs(ks), 0, None)).astype(np.float64)


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
    rows = max(1, _BAND_PIXELS // max(w, 1))
    idx = _WORKSPACE.get("index", (rows, w), np.int32)
    tmp = _WORKSPACE.get("scratch", (rows, w), np.int32)
    val = _WORKSPACE.get("values", (rows, w))
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
    n0, n1 = _fft_shape(h, w, radius)
    buf = _WORKSPACE.get("fields", (2, n0, n1))
    spec = _WORKSPACE.get("spectrum", (2, n0, n1 // 2 + 1), np.complex128)
    buf[:, h:, :] = 0.0
    buf[:, :h, w:] = 0.0
    a, b = buf[0, :h, :w], buf[1, :h, :w]
    if np.issubdtype(noise.dtype, np.integer) and noise.min() >= -_LUT_MAX and noise.max() <= _LUT_MAX:
        valid = _unit_plane_lut(noise, a, b)
    else:
        valid = _unit_plane(noise, a, b)
    total = _padded_autocorrelation(buf, radius, workers=workers, summed=True, spec_out=spec)
    count = _pair_counts(valid, radius, workers=workers)
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
    n = np.broadcast_to(_overlap_counts(h, w, radius), sxy.shape).copy()
    return CorrelationSums("pearson", sxy, n, sx, sy, sxx, syy)


def correlation_sums(
    noise: np.ndarray, radius: int = 10, *, statistic: str = "rgb_pearson", workers: int = 1
) -> CorrelationSums:
    """Dispatch by statistic name (one of :data:`STATISTICS`)."""
    if statistic == "rgb_pearson":
        return rgb_pearson_sums(noise, radius, workers=workers)
    if statistic == "pearson":
        return pearson_sums(noise, radius, workers=workers)
    raise ValueError(f"unknown statistic {statistic!r}; expected one of {STATISTICS}")


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
