"""Classical reference rows: what a trained denoiser must beat to mean anything.

- ``noisy input``: the blocks as they are (the floor: a denoiser below it made them worse).
- ``nlm``: scikit-image's non-local means (fast mode), ``h = nlm_h * sigma``, 5x5 patches searched
  within 6 px.
- ``bm3d``: BM3D on the colour image (the ``bm3d`` package's ``bm3d_rgb``) with ``sigma``, its
  reference-block step and search window from the settings.

Both classical methods take a noise level, estimated for each image (each block of a block
source) from the noisy image alone (:func:`estimate_sigma`; ``eval.classical.sigma``):
- ``pd`` (the default): Donoho's wavelet estimate (the median absolute finest diagonal wavelet
  coefficient / 0.6745, scikit-image's ``estimate_sigma``) on each of the ``s x s`` pixel-shuffle
  sub-images of stride ``s`` (``sigma_stride``), averaged. Real camera noise is spatially
  correlated (demosaicking, denoising in the camera, JPEG): neighbouring pixels carry much of the
  same noise, so the finest wavelet band of the image itself sees only its small uncorrelated part.
  Pixels ``s`` apart carry little of it (AP-BSN's observation that pixel-shuffle down-sampling
  breaks the correlation), so the finest band of a sub-image sees nearly all of it.
- ``wavelet``: the same estimate on the image itself, the textbook choice for white noise. On
  ``polyu100`` it gives 0.53 on the 0-255 scale against a noise std (noisy - clean) of 4.2, and
  the methods barely touch the image (``docs/METRICS.md``).

Each method is a module mapping (B, 3, H, W) 0..255 to the same, so it runs through the one
evaluation path and the same Ray Data pool as the networks. None learns anything from the data and
none sees a clean image; a reference draws no random numbers. A method and its settings are named
by one string (:func:`reference_spec`), which is also how its scores are cached.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn

from orchestrator.schema import ClassicalOptions

__all__ = [
    "REFERENCES",
    "reference",
    "reference_spec",
    "estimate_sigma",
    "NoisyInput",
    "NonLocalMeans",
    "BM3D",
]

NOISY = "noisy input"


def _per_image(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` (float (H, W, 3) in [0, 1] -> same) to each image of a (B, 3, H, W) 0..255 batch."""
    images = x.detach().float().cpu().permute(0, 2, 3, 1).numpy() / 255.0
    out = np.stack([fn(np.ascontiguousarray(im, dtype=np.float64)) for im in images])
    return torch.from_numpy(out * 255.0).permute(0, 3, 1, 2).to(x.dtype)


def estimate_sigma(image: np.ndarray, options: ClassicalOptions) -> float:
    """The noise level of float (H, W, 3) ``image`` in [0, 1], from the image alone (module doc)."""
    from skimage.restoration import estimate_sigma as wavelet_sigma

    s = options.sigma_stride if options.sigma == "pd" else 1
    h, w = image.shape[:2]
    if min(h, w) < 2 * s:  # too small to shuffle: the image itself
        s = 1
    subs = [image[i::s, j::s] for i in range(s) for j in range(s)]
    return float(np.mean([wavelet_sigma(sub, channel_axis=-1, average_sigmas=True) for sub in subs]))


class NoisyInput(nn.Module):
    """The noisy blocks themselves."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NonLocalMeans(nn.Module):
    """scikit-image's non-local means, sigma estimated per image (:func:`estimate_sigma`)."""

    def __init__(self, options: ClassicalOptions):
        super().__init__()
        self.options = options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means

        def nlm(im: np.ndarray) -> np.ndarray:
            s = estimate_sigma(im, self.options)
            return denoise_nl_means(
                im,
                h=self.options.nlm_h * s,
                sigma=s,
                fast_mode=True,
                patch_size=5,
                patch_distance=6,
                channel_axis=-1,
            )

        return _per_image(x, nlm)


class BM3D(nn.Module):
    """BM3D on the colour image (``bm3d.bm3d_rgb``), sigma estimated per image; as many threads as
    torch has here (a Ray Data actor's share of the CPUs, not the whole machine)."""

    def __init__(self, options: ClassicalOptions):
        super().__init__()
        self.options = options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import bm3d

        profile = bm3d.BM3DProfile()
        profile.step_ht = profile.step_wiener = self.options.bm3d_step
        profile.search_window_ht = profile.search_window_wiener = self.options.bm3d_window
        profile.num_threads = torch.get_num_threads()

        def run(im: np.ndarray) -> np.ndarray:
            return bm3d.bm3d_rgb(im, sigma_psd=max(estimate_sigma(im, self.options), 1e-3), profile=profile)

        return _per_image(x, run)


REFERENCES: dict[str, type[nn.Module]] = {NOISY: NoisyInput, "nlm": NonLocalMeans, "bm3d": BM3D}

# the settings each method depends on (its cache key)
_SETTINGS = {
    NOISY: (),
    "nlm": ("sigma", "sigma_stride", "nlm_h"),
    "bm3d": ("sigma", "sigma_stride", "bm3d_step", "bm3d_window"),
}


def _settings(method: str, options: ClassicalOptions) -> dict:
    got = {k: getattr(options, k) for k in _SETTINGS[method]}
    if got.get("sigma") == "wavelet":
        got.pop("sigma_stride")
    return got


def _known(method: str) -> str:
    if method not in REFERENCES:
        raise KeyError(f"unknown reference {method!r}; known: {list(REFERENCES)}")
    return method


def _parse(spec: str) -> tuple[str, str]:
    """(method, settings as JSON or '') of a spec: ``nlm``, or ``ref:nlm:{...}``."""
    method, _, settings = spec.removeprefix("ref:").partition(":")
    return method, settings


def reference_spec(method: str, options: ClassicalOptions) -> str:
    """``ref:<method>``, followed by ``:<settings as JSON>`` for a method that has settings: what
    :func:`reference` builds, and the name its scores are cached under."""
    settings = _settings(_known(method), options)
    return f"ref:{method}" + (f":{json.dumps(settings, sort_keys=True)}" if settings else "")


def spec_tag(spec: str) -> str:
    """A short file-name tag of a reference spec: ``ref-bm3d-<hash of its settings>``."""
    method, settings = _parse(spec)
    tag = "ref-" + method.replace(" ", "_")
    return tag + ("-" + hashlib.sha256(settings.encode()).hexdigest()[:8] if settings else "")


def reference(spec: str) -> nn.Module:
    """The reference method a spec names (``nlm``, or :func:`reference_spec`'s
    ``ref:nlm:{...}``), in eval mode."""
    method, settings = _parse(spec)
    cls = REFERENCES[_known(method)]
    if cls is NoisyInput:
        return cls().eval()
    options = ClassicalOptions(**json.loads(settings)) if settings else ClassicalOptions()
    return cls(options).eval()
