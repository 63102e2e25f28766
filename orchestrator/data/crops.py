"""Training crops: random patches with flips and transposes, as a pure function of (seed, step).

Batch ``step`` is drawn from ``numpy.random.default_rng((seed, step))`` and nothing else, so a run
resumed from a checkpoint at step k sees exactly the batches an uninterrupted run sees after k, with
no sampler state to save. Self-supervised training reads only the noisy images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from orchestrator.data.sources import TrainItem, read_item
from orchestrator.progress import Progress

Augment = Literal["hflip", "vflip", "transpose", "rot90"]
AUGMENTS: tuple[str, ...] = ("hflip", "vflip", "transpose", "rot90")


def tiles_per_image(height: int, width: int, *, tile: int, stride: int) -> int:
    """How many ``tile`` x ``tile`` crops at ``stride`` cover an image (at least one): the unit
    AP-BSN and LG-BPN count an epoch in (SIDD Medium cut into 512 px tiles overlapping by 128)."""

    def n(length: int) -> int:
        return 1 if length <= tile else math.ceil((length - tile) / stride) + 1

    return n(height) * n(width)


class CropSampler:
    """Deterministic random crops from a list of uint8 (H, W, 3) images.

    Args:
        images: the noisy training images.
        names: one name per image, used in errors.
        patch: crop side.
        batch: crops per step.
        seed: the stream's seed.
        augment: transforms applied each with probability 0.5 (``rot90``: a random multiple of 90
            degrees instead).
        shapes: (height, width) of each image, when reading ``images[i]`` is costly (tiles read
            from shards on demand); taken from the images otherwise.
        share: the indices of each global batch this sampler crops (a data-parallel worker's
            share, :class:`orchestrator.train.ddp.Share`); all of them by default.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        *,
        names: Sequence[str] | None = None,
        patch: int,
        batch: int,
        seed: int,
        augment: Sequence[str] = ("hflip", "vflip", "transpose"),
        shapes: Sequence[tuple[int, int]] | None = None,
        share: slice = slice(None),
    ):
        if not len(images):
            raise ValueError("no training images")
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        shapes = [tuple(s) for s in shapes] if shapes is not None else [im.shape[:2] for im in images]
        small = [f"{n} ({h}x{w})" for n, (h, w) in zip(names, shapes, strict=True) if min(h, w) < patch]
        if small:
            raise ValueError(
                f"train.patch={patch} is larger than {len(small)} image(s): {', '.join(small[:3])}"
            )
        unknown = sorted(set(augment) - set(AUGMENTS))
        if unknown:
            raise ValueError(f"train.augment: unknown transform(s) {unknown}; known: {list(AUGMENTS)}")
        if patch < 1 or batch < 1:
            raise ValueError(f"train.patch and train.batch must be >= 1, got {patch} and {batch}")
        self.images, self.shapes = images, shapes
        self.patch, self.batch_size, self.seed = patch, batch, seed
        self.augment, self.share = tuple(augment), share

    def batch(self, step: int) -> np.ndarray:
        """The crops of ``step``: uint8 (batch, patch, patch, channels of the images); with
        ``share``, only those of the global batch's indices in it (the same draws are made)."""
        rng = np.random.default_rng((self.seed, step))
        p, share = self.patch, range(self.batch_size)[self.share]
        out = np.empty((len(share), p, p, self.images[0].shape[2]), np.uint8)
        for i in range(self.batch_size):
            k = int(rng.integers(len(self.images)))
            h, w = self.shapes[k]
            y = int(rng.integers(h - p + 1))
            x = int(rng.integers(w - p + 1))
            turns = [int(rng.integers(4)) if t == "rot90" else rng.random() < 0.5 for t in self.augment]
            if i not in share:
                continue
            crop = self.images[k][y : y + p, x : x + p]
            for t, turn in zip(self.augment, turns, strict=True):
                if t == "rot90":
                    crop = np.rot90(crop, turn)
                elif turn:
                    crop = {
                        "hflip": crop[:, ::-1],
                        "vflip": crop[::-1],
                        "transpose": crop.transpose(1, 0, 2),
                    }[t]
            out[i - share.start] = crop
        return out


def load_images(items: Sequence[TrainItem], *, progress: bool = True) -> tuple[list[np.ndarray], list[str]]:
    """Decode every image of the training items (a source's noisy images; nothing else is read)."""
    bar = Progress("load training images", len(items)) if progress else None
    images, names = [], []
    for item in items:
        found = read_item(item)
        images += found
        names += [item.key] if len(found) == 1 else [f"{item.key}#{j}" for j in range(len(found))]
        if bar:
            bar.update()
    return images, names


class Prefetcher:
    """A :class:`CropSampler`'s batches made on one background thread, ``depth`` steps ahead of
    the training loop, so that reading tiles (Parquet row groups) and cropping overlap the step's
    compute. ``batch(step)`` returns exactly ``sampler.batch(step)``: the crops stay a function of
    the seed and the step, whatever was prefetched. Only the background thread touches the sampler."""

    def __init__(self, sampler: CropSampler, depth: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self.sampler, self.depth = sampler, depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="crops")
        self._ahead: dict = {}

    def batch(self, step: int) -> np.ndarray:
        found = self._ahead.pop(step, None) or self._pool.submit(self.sampler.batch, step)
        for stale in [s for s in self._ahead if s < step]:  # a jump back (never in a plain run)
            self._ahead.pop(stale).cancel()
        for ahead in range(step + 1, step + 1 + self.depth):
            if ahead not in self._ahead:
                self._ahead[ahead] = self._pool.submit(self.sampler.batch, ahead)
        return found.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()
