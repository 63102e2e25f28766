"""The ``dnd`` source: the Darmstadt Noise Dataset's sRGB layout, noisy only, and its submission.

Layout (as distributed)::

    ROOT/info.mat              v7.3: struct array info, field boundingboxes: per image a 20 x 4
                               array of 1-based inclusive [top, left, bottom, right] crops
    ROOT/images_srgb/0001.mat  v7.3: InoisySRGB, the noisy image, single in [0, 1], (H, W, 3)

Both are HDF5 files (read with h5py); MATLAB stores arrays column-major, so each is transposed on
reading. Training crops from the whole noisy images (rounded to 8 bits). ``jobs/denoise.py``
denoises every bounding box into DND's submission layout: ``OUT/<image>_<box>.mat`` holding
``Idenoised_crop`` (single in [0, 1]), bundled into ``OUT/bundled/<image>.mat`` (``Idenoised``, a
cell per box; ``israw`` false; ``eval_version`` "1.0"), the folder the DND server takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from orchestrator.data.files import DatasetError
from orchestrator.data.sources import (
    SourceKind,
    SourceSpec,
    TrainingSet,
    TrainItem,
    fingerprint,
    register_reader,
    register_source,
)
from orchestrator.schema import DataConfig

__all__ = ["dnd_images", "bounding_boxes", "read_noisy", "write_dnd_submission"]

IMAGES = "images_srgb"
INFO = "info.mat"
VARIABLE = "InoisySRGB"


def _h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError([(path, f"not a readable MATLAB v7.3 (HDF5) file ({exc})")]) from None


def dnd_images(root: Path) -> list[Path]:
    found = sorted((root / IMAGES).glob("*.mat"))
    if not found:
        raise DatasetError(
            [(root / IMAGES, "no <image>.mat files (DND's sRGB layout: images_srgb/0001.mat ...)")]
        )
    return found


def _shape(path: Path) -> tuple[int, int]:
    with _h5(path) as f:
        if VARIABLE not in f:
            raise DatasetError([(path, f"variable {VARIABLE!r} not found (variables in file: {sorted(f)})")])
        shape = tuple(reversed(f[VARIABLE].shape))  # stored (3, W, H)
    if len(shape) != 3 or shape[2] != 3:
        raise DatasetError([(path, f"{VARIABLE} has shape {shape}; expected (H, W, 3)")])
    return shape[0], shape[1]


def read_noisy(path: str | Path) -> np.ndarray:
    """A DND image as float32 (H, W, 3) in [0, 1]."""
    path = Path(path)
    with _h5(path) as f:
        try:
            return np.ascontiguousarray(np.asarray(f[VARIABLE], dtype=np.float32).T)
        except (KeyError, OSError, ValueError) as exc:
            raise DatasetError([(path, f"cannot read {VARIABLE} ({exc})")]) from None


def bounding_boxes(root: Path, count: int) -> list[np.ndarray]:
    """Per image, its (boxes, 4) 0-based half-open [top, left, bottom, right] crops from ``info.mat``."""
    path = root / INFO
    if not path.is_file():
        raise DatasetError([(path, "missing: DND's info.mat holds the bounding boxes a submission needs")])
    with _h5(path) as f:
        try:
            refs = np.asarray(f["info"]["boundingboxes"]).ravel()
            boxes = [np.asarray(f[r]).T.astype(np.int64) for r in refs]
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise DatasetError([(path, f"no readable info.boundingboxes ({exc})")]) from None
    if len(boxes) != count or any(b.ndim != 2 or b.shape[1] != 4 for b in boxes):
        raise DatasetError(
            [(path, f"{len(boxes)} bounding-box lists for {count} images, or not (boxes, 4) each")]
        )
    return [b - np.array([1, 1, 0, 0]) for b in boxes]


def dnd_train(spec: SourceSpec, cfg: DataConfig) -> TrainingSet:
    root = Path(spec.path).expanduser()
    if not spec.path or not root.is_dir():
        raise DatasetError([(root, "dnd source: not a folder")])
    items, problems = [], []
    for path in dnd_images(root):
        try:
            hw = _shape(path)
        except DatasetError as exc:
            problems += exc.problems
            continue
        items.append(TrainItem(path.name, str(path.resolve()), "dnd", (hw,), fingerprint=fingerprint(path)))
    if problems:
        raise DatasetError(problems)
    return TrainingSet(spec, tuple(items), root=str(root.resolve()))


@register_reader("dnd")
def _read(item: TrainItem) -> list[np.ndarray]:
    return [np.clip(np.floor(read_noisy(item.path).astype(np.float64) * 255 + 0.5), 0, 255).astype(np.uint8)]


def write_dnd_submission(
    root: Path, out: Path, denoise: Callable[[np.ndarray], np.ndarray], *, on_crop=None
) -> Path:
    """Denoise every bounding box of every image with ``denoise`` (float [0, 1] (H, W, 3) in and
    out) into DND's layout under ``out``; returns ``out/bundled``."""
    from scipy.io import loadmat, savemat

    images = dnd_images(root)
    boxes = bounding_boxes(root, len(images))
    out.mkdir(parents=True, exist_ok=True)
    for i, (path, bb) in enumerate(zip(images, boxes, strict=True), 1):
        noisy = read_noisy(path)
        for k, (y0, x0, y1, x1) in enumerate(bb, 1):
            crop = np.clip(denoise(noisy[y0:y1, x0:x1]), 0, 1).astype(np.float32)
            savemat(out / f"{i:04d}_{k:02d}.mat", {"Idenoised_crop": crop})
            if on_crop:
                on_crop(i, k)
    bundled = out / "bundled"
    bundled.mkdir(exist_ok=True)
    for i, bb in enumerate(boxes, 1):
        cells = np.empty((len(bb),), dtype=object)
        for k in range(len(bb)):
            cells[k] = loadmat(out / f"{i:04d}_{k + 1:02d}.mat")["Idenoised_crop"]
        savemat(bundled / f"{i:04d}.mat", {"Idenoised": cells, "israw": False, "eval_version": "1.0"})
    return bundled


register_source(
    SourceKind(
        "dnd",
        "DND's sRGB layout, noisy only; training, and its submission (jobs/denoise.py)",
        train=dnd_train,
    )
)
