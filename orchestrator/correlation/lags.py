"""Auto-correlations of fields at every offset within a radius, exact, by zero-padded real FFTs.

The sums of products of a field with its shifted self, for all (2R+1)^2 offsets at once, in
float64; the pair counts of a validity mask the same way. The power spectrum is turned into lags
band by band of rows in cache-sized scratch arrays (one per thread), instead of full-image
temporaries. :mod:`orchestrator.correlation.stats` builds the named statistics on these.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft

__all__ = [
    "WORKSPACE",
    "BAND_PIXELS",
    "autocorrelation",
    "clear_workspace",
    "fft_shape",
    "overlap_counts",
    "padded_autocorrelation",
    "pair_counts",
]


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
    padded = np.zeros((*fields.shape[:-2], *fft_shape(h, w, radius)))
    padded[..., :h, :w] = fields
    return padded_autocorrelation(padded, radius, workers=workers, summed=False)


def fft_shape(h: int, w: int, radius: int) -> tuple[int, int]:
    # Zero padding by at least R turns the circular correlation into the linear one for |d| <= R.
    return sfft.next_fast_len(h + radius, real=True), sfft.next_fast_len(w + radius, real=True)


# Elements per band in the passes that work band by band of rows: their scratch arrays (about
# 1 MB) stay in cache.
BAND_PIXELS = 1 << 15


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


WORKSPACE = _Workspace()


def clear_workspace() -> None:
    """Free this thread's reused FFT buffers (about 0.5 GB after a 12 MP image)."""
    WORKSPACE.arrays.clear()


def padded_autocorrelation(
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
    rows = max(1, BAND_PIXELS // spectra.shape[-1])
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


def pair_counts(valid: np.ndarray, radius: int, *, workers: int = 1) -> np.ndarray:
    """``count[d] = #{p : p, p+d inside and both valid}``, exactly.

    With few invalid pixels (the usual case: pixels whose channels carry equal noise), the count
    is the overlap area minus the invalid pixels on either side plus the invalid pairs, found from
    the invalid pixels' own neighbourhoods; otherwise from the mask's auto-correlation.
    """
    h, w = valid.shape
    area = overlap_counts(h, w, radius)
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


def overlap_counts(h: int, w: int, radius: int) -> np.ndarray:
    ks = np.arange(-radius, radius + 1)
    return np.outer(np.clip(h - np.abs(ks), 0, None), np.clip(w - np.abs(ks), 0, None)).astype(np.float64)
