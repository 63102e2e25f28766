"""Classical reference rows: what a trained denoiser must beat to mean anything.

- ``noisy input``: the blocks as they are (the floor: a denoiser below it made them worse).
- ``nlm``: scikit-image's non-local means, the noise level estimated blind from each block
  (``estimate_sigma``, wavelet-based), ``h = 0.8 sigma``, 5x5 patches searched within 6 px.
- ``bm3d``: BM3D on the colour block (the ``bm3d`` package's ``bm3d_rgb``), the noise level
  estimated blind the same way.

Each is a module mapping (B, 3, H, W) 0..255 to the same, so it runs through the one evaluation
path and the same Ray Data pool as the networks. None learns anything from the data and none sees
a clean image; a reference draws no random numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["REFERENCES", "reference", "NoisyInput", "NonLocalMeans", "BM3D"]


def _per_image(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` (float (H, W, 3) in [0, 1] -> same) to each image of a (B, 3, H, W) 0..255 batch."""
    images = x.detach().float().cpu().permute(0, 2, 3, 1).numpy() / 255.0
    out = np.stack([fn(np.ascontiguousarray(im, dtype=np.float64)) for im in images])
    return torch.from_numpy(out * 255.0).permute(0, 3, 1, 2).to(x.dtype)


def _sigma(image: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(image, channel_axis=-1, average_sigmas=True))


class NoisyInput(nn.Module):
    """The noisy blocks themselves."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NonLocalMeans(nn.Module):
    """scikit-image's non-local means, sigma estimated blind per block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means

        def nlm(im: np.ndarray) -> np.ndarray:
            s = _sigma(im)
            return denoise_nl_means(
                im, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
            )

        return _per_image(x, nlm)


class BM3D(nn.Module):
    """BM3D on the colour block (``bm3d.bm3d_rgb``), sigma estimated blind per block."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import bm3d

        return _per_image(x, lambda im: bm3d.bm3d_rgb(im, sigma_psd=max(_sigma(im), 1e-3)))


REFERENCES: dict[str, type[nn.Module]] = {"noisy input": NoisyInput, "nlm": NonLocalMeans, "bm3d": BM3D}


def reference(name: str) -> nn.Module:
    """The reference method ``name`` (one of :data:`REFERENCES`), in eval mode."""
    if name not in REFERENCES:
        raise KeyError(f"unknown reference {name!r}; known: {list(REFERENCES)}")
    return REFERENCES[name]().eval()
