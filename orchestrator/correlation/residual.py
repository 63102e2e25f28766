"""The noise correlation of images that have no clean twin: the ``residual`` statistic.

Self-supervised training runs on noisy photos alone, and so must the prior that chooses what its
blind networks hide. Without a clean image the noise is estimated where the image itself is
nearly constant:

1. the residual ``y - G(y)``, ``G`` a Gaussian of ``SMOOTH`` px per channel: the image with its
   slowly varying content removed, what is left being mostly noise;
2. the flat pixels, where that is true: the ``FLAT`` fraction of pixels with the least texture,
   texture being the mean gradient magnitude of the lightly smoothed luminance in a 9x9 window
   (smoothing first keeps the noise from choosing the pixels);
3. the ordinary Pearson coefficient (channels pooled) between the residual at p and at p + d over
   the pairs whose two pixels are both flat, kept as the same sufficient statistics as
   ``pearson`` (:class:`~orchestrator.correlation.stats.CorrelationSums`), so images pool exactly.

The residual loses the noise's slowest components to ``G``, which is what a denoiser cannot
remove either; the map is a somewhat lower, shorter-reaching estimate of the paired ``pearson``
map (noisy - clean). On polyu100's JPEG pairs it gives 0.69 / 0.47 / 0.37 at offsets (0, 1),
(1, 1), (0, 2) against the paired 0.68 / 0.46 / 0.42; on the synthetic SIDD-like pairs 0.48 /
0.25 / 0.08 against 0.55 / 0.35 / 0.20 (``docs/CORRELATION.md``).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from orchestrator.correlation.lags import fft_shape

__all__ = ["SMOOTH", "FLAT", "residual_field", "residual_sums"]

SMOOTH = 5.0  # px: the Gaussian whose output the residual leaves out
FLAT = 0.3  # the fraction of pixels, the least textured, whose residual is measured


def residual_field(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(residual (3, H, W) float64, flat mask (H, W) float64) of a uint8 (H, W, 3) noisy image."""
    y = np.moveaxis(np.asarray(image, dtype=np.float64), 2, 0)
    residual = y - np.stack([ndimage.gaussian_filter(c, SMOOTH, mode="reflect") for c in y])
    luminance = ndimage.gaussian_filter(y.mean(axis=0), 1.5, mode="reflect")
    texture = ndimage.uniform_filter(np.hypot(*np.gradient(luminance)), 9, mode="reflect")
    flat = (texture <= np.quantile(texture, FLAT)).astype(np.float64)
    return residual, flat


def _lags(fa: np.ndarray, fb: np.ndarray, radius: int, shape: tuple[int, int], workers: int) -> np.ndarray:
    """``out[..., R+k, R+l] = sum_p a(p) b(p+(k,l))`` over p with p and p+d inside, from the
    spectra of ``a`` and ``b`` zero-padded to ``shape``."""
    c = sfft.irfft2(np.conj(fa) * fb, shape, workers=workers)
    rows = np.r_[c.shape[-2] - radius : c.shape[-2], 0 : radius + 1]
    cols = np.r_[c.shape[-1] - radius : c.shape[-1], 0 : radius + 1]
    return c[..., rows[:, None], cols[None, :]]


def residual_sums(image: np.ndarray, radius: int = 10, *, workers: int = 1):
    """The ``residual`` statistic's sufficient statistics of one noisy uint8 (H, W, 3) image: per
    channel, the pair count n, the sums of the first and shifted residual and of their squares,
    and the cross sums, each over the pairs of flat pixels (3, 2R+1, 2R+1)."""
    from orchestrator.correlation.stats import CorrelationSums

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    residual, flat = residual_field(image)
    shape = fft_shape(*flat.shape, radius)
    x = residual * flat  # (3, H, W): zero off the flat pixels
    # each field transformed once; the flat mask is the same for the three channels
    fx, fxx, fm = (sfft.rfft2(a, shape, workers=workers) for a in (x, x * x, flat))
    n = np.broadcast_to(np.rint(_lags(fm, fm, radius, shape, workers)), x.shape[:1] + (2 * radius + 1,) * 2)
    sxy = _lags(fx, fx, radius, shape, workers)
    # the shifted side's sums are the first side's at -d: sum_p m(p) x(p+d) = sum_q x(q) m(q-d)
    sx = _lags(fx, fm, radius, shape, workers)
    sxx = _lags(fxx, fm, radius, shape, workers)
    sy, syy = sx[..., ::-1, ::-1], sxx[..., ::-1, ::-1]
    return CorrelationSums("residual", sxy, n.copy(), sx, sy.copy(), sxx, syy.copy())
