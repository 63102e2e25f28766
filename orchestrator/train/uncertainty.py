"""How sure a number is: bootstrap intervals that resample images, and paired differences.

Blocks of one image share its scene, camera and noise level (SIDD's validation set is 40 images of
32 blocks each), so they are not independent samples: the intervals here resample whole images
(with replacement), and a mean over the resampled images weighs each by its number of blocks.
With several seeds, seeds are resampled too (a two-level bootstrap), so the interval covers the
run-to-run variation as well as the choice of images. Everything is seeded: the same numbers give
the same interval.

A paired comparison takes two methods over the same blocks: each resample draws one set of images
for both (so what the images share cancels) and each side's seeds on its own; the difference is
called significant when its interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap", "paired", "LEVEL", "RESAMPLES"]

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval (``low``, ``high`` at ``LEVEL``); ``std`` over seeds."""

    mean: float
    low: float
    high: float
    std: float = 0.0

    @property
    def defined(self) -> bool:
        """False when there was nothing to resample (a single image): no interval, not 0 wide."""
        return not (np.isnan(self.low) or np.isnan(self.high))

    @property
    def excludes_zero(self) -> bool:
        return self.defined and (self.low > 0 or self.high < 0)


def _image_sums(values: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image sums (seeds x images) and block counts (images,) of ``values`` (seeds x blocks)."""
    ids, inverse = np.unique(image, return_inverse=True)
    sums = np.zeros((values.shape[0], len(ids)))
    for k in range(values.shape[0]):
        np.add.at(sums[k], inverse, values[k])
    return sums, np.bincount(inverse, minlength=len(ids)).astype(np.float64)


def _resampled_means(sums: np.ndarray, counts: np.ndarray, pick_image: np.ndarray, rng) -> np.ndarray:
    """For each resample: the mean over drawn seeds (rows of ``sums``, drawn with replacement) of
    the block-weighted mean over the drawn images ``pick_image`` (resamples, images)."""
    k = sums.shape[0]
    resamples = pick_image.shape[0]
    pick_seed = rng.integers(k, size=(resamples, k)) if k > 1 else np.zeros((resamples, 1), int)
    drawn = sums[pick_seed[:, :, None], pick_image[:, None, :]].sum(axis=2)  # (resamples, k)
    return (drawn / counts[pick_image].sum(axis=1)[:, None]).mean(axis=1)


def _quantiles(means: np.ndarray, images: int, level: float) -> tuple[float, float]:
    """The interval's ends; NaN with fewer than two images (one image cannot be resampled)."""
    if images < 2:
        return float("nan"), float("nan")
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _per_seed(values, image: np.ndarray) -> np.ndarray:
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if v.shape[1] != len(image):
        raise ValueError(f"{v.shape[1]} values per seed but {len(image)} image ids")
    return v


def bootstrap(
    values: Sequence[np.ndarray] | np.ndarray,
    image: np.ndarray,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Interval:
    """The mean of per-block ``values`` (one array per training seed, each over the same blocks)
    and its interval, resampling seeds and the images ``image`` assigns the blocks to. ``std``:
    the standard deviation of the per-seed means (0 with one seed)."""
    image = np.asarray(image)
    v = _per_seed(values, image)
    sums, counts = _image_sums(v, image)
    rng = np.random.default_rng(seed)
    pick_image = rng.integers(len(counts), size=(resamples, len(counts)))
    means = _resampled_means(sums, counts, pick_image, rng)
    low, high = _quantiles(means, len(counts), level)
    per_seed = v.mean(axis=1)
    std = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0
    return Interval(float(per_seed.mean()), float(low), float(high), std)


def paired(
    a: Sequence[np.ndarray] | np.ndarray,
    b: Sequence[np.ndarray] | np.ndarray,
    image: np.ndarray,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Interval:
    """The mean per-block difference ``a - b`` over the same blocks, and its interval: each
    resample draws one set of images for both sides (the pairing) and each side's seeds on its
    own, so the interval covers the choice of images and both sides' run-to-run variation."""
    image = np.asarray(image)
    va, vb = _per_seed(a, image), _per_seed(b, image)
    sa, counts = _image_sums(va, image)
    sb, _ = _image_sums(vb, image)
    rng = np.random.default_rng(seed)
    pick_image = rng.integers(len(counts), size=(resamples, len(counts)))
    diffs = _resampled_means(sa, counts, pick_image, rng) - _resampled_means(sb, counts, pick_image, rng)
    low, high = _quantiles(diffs, len(counts), level)
    return Interval(float(va.mean(axis=1).mean() - vb.mean(axis=1).mean()), float(low), float(high))
