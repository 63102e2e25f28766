"""PSNR and SSIM with their conventions written down.

Conventions (DESIGN.md):
- Outputs are first quantized as the originals do before scoring: ``floor(x + 0.5)`` clipped to
  [0, 255] (SSID rounds and clamps; AP-BSN/LG-BPN add 0.5, floor and clip).
- ``psnr``: data range 255, per block, then the mean over blocks (not the PSNR of the mean MSE).
- ``ssim``: Wang et al.'s SSIM with an 11-tap Gaussian window (sigma 1.5, truncated at 3.5 sigma),
  population covariances, K1 0.01, K2 0.03; per channel, averaged over channels, then over blocks.
  This is ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``.
- ``ssim_uniform7``: scikit-image's default: a 7x7 uniform window with sample covariances, as the
  AP-BSN and LG-BPN code computes it (LG-BPN's published 0.886 validation SSIM is this one).
- Both SSIMs average the map over the valid interior (a (win-1)/2 border is cropped), as
  scikit-image does.

Everything is batched over (N, H, W, C) arrays with separable filters along H and W only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from orchestrator.data.images import quantize_uint8

METRICS = ("psnr", "ssim", "ssim_uniform7")
DATA_RANGE = 255.0
_K1, _K2 = 0.01, 0.03


def _as_batch(x: np.ndarray, layout: str) -> np.ndarray:
    x = np.asarray(x)
    if layout == "NCHW":
        if x.ndim == 3:
            x = x[None]
        x = np.moveaxis(x, 1, -1)
    elif layout == "NHWC":
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim == 3:
            x = x[None]
    else:
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images, got shape {x.shape}")
    return x


def _prepare(pred: np.ndarray, target: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    pred = quantize_uint8(_as_batch(pred, layout)).astype(np.float64)
    target = quantize_uint8(_as_batch(target, layout)).astype(np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
    return pred, target


def psnr_per_image(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> np.ndarray:
    """PSNR in dB of each image in the batch (inf where identical)."""
    p, t = _prepare(pred, target, layout)
    mse = ((p - t) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE**2 / mse)


def _ssim_per_image(p: np.ndarray, t: np.ndarray, *, gaussian: bool) -> np.ndarray:
    if gaussian:
        sigma, truncate = 1.5, 3.5
        win = 2 * int(truncate * sigma + 0.5) + 1  # 11

        def filt(a: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(a, sigma=(0, sigma, sigma, 0), truncate=truncate, mode="reflect")

        cov_norm = 1.0
    else:
        win = 7

        def filt(a: np.ndarray) -> np.ndarray:
            return ndimage.uniform_filter(a, size=(1, win, win, 1), mode="reflect")

        n = win * win
        cov_norm = n / (n - 1.0)
    if min(p.shape[1:3]) < win:
        raise ValueError(f"images of {p.shape[1]}x{p.shape[2]} are smaller than the {win}x{win} SSIM window")
    ux, uy = filt(p), filt(t)
    vx = cov_norm * (filt(p * p) - ux * ux)
    vy = cov_norm * (filt(t * t) - uy * uy)
    vxy = cov_norm * (filt(p * t) - ux * uy)
    c1, c2 = (_K1 * DATA_RANGE) ** 2, (_K2 * DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return s[:, pad:-pad, pad:-pad, :].mean(axis=(1, 2, 3))


def ssim_per_image(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> np.ndarray:
    """Gaussian-window SSIM (sigma 1.5) of each image."""
    p, t = _prepare(pred, target, layout)
    return _ssim_per_image(p, t, gaussian=True)


def ssim_uniform7_per_image(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> np.ndarray:
    """scikit-image's default SSIM (7x7 uniform window, sample covariance) of each image."""
    p, t = _prepare(pred, target, layout)
    return _ssim_per_image(p, t, gaussian=False)


def psnr(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> float:
    """Mean over images of the per-image PSNR (dB)."""
    return float(np.mean(psnr_per_image(pred, target, layout=layout)))


def ssim(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> float:
    return float(np.mean(ssim_per_image(pred, target, layout=layout)))


def ssim_uniform7(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> float:
    return float(np.mean(ssim_uniform7_per_image(pred, target, layout=layout)))


def evaluate(pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> dict[str, np.ndarray]:
    """All three metrics per image, sharing one quantization: ``{name: (N,) array}``."""
    p, t = _prepare(pred, target, layout)
    mse = ((p - t) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        ps = 10.0 * np.log10(DATA_RANGE**2 / mse)
    return {
        "psnr": ps,
        "ssim": _ssim_per_image(p, t, gaussian=True),
        "ssim_uniform7": _ssim_per_image(p, t, gaussian=False),
    }


class MetricAccumulator:
    """Running means of per-image metrics over batches (so 1280 blocks need not sit in memory)."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(METRICS, 0.0)
        self.count = 0

    def update(self, pred: np.ndarray, target: np.ndarray, *, layout: str = "NHWC") -> None:
        for name, values in evaluate(pred, target, layout=layout).items():
            self._sums[name] += float(np.sum(values))
        self.count += len(values)

    def result(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no images were evaluated")
        return {k: v / self.count for k, v in self._sums.items()}
