"""Data in the layouts of the non-SIDD sources, written from the project's synthetic generator:
a folder of noisy images only, noisy/clean pairs, an array of noisy blocks, and DND's sRGB layout
(MATLAB v7.3 files written with h5py, as DND distributes them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from orchestrator.data.files import read_png, save_blocks
from orchestrator.data.images import write_image  # noqa: F401  (tests write images with it)
from orchestrator.data.sidd import index_sidd
from orchestrator.data.synthetic import generate
from orchestrator.schema import SyntheticSpec

MATLAB_73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
)


def sidd_tree(root: Path, *, seed: int = 5, scenes: int = 3, size=(96, 128)) -> Path:
    spec = SyntheticSpec(seed=seed, scenes=scenes, size=size, val_images=1, val_blocks=2, block_size=32)
    return generate(root, spec)


def noisy_folder(tree: Path, out: Path) -> Path:
    """The NOISY images of a SIDD tree, in sub-folders by scene, as 8-bit PNG, 16-bit PNG, TIFF and
    JPEG by turns; no clean image is copied."""
    for i, p in enumerate(index_sidd(tree).pairs):
        img = read_png(p.noisy_path)
        sub = out / p.scene_name[:8]
        sub.mkdir(parents=True, exist_ok=True)
        kind = i % 4
        if kind == 0:
            shutil.copyfile(p.noisy_path, sub / f"{i:02d}.png")
        elif kind == 1:
            write_image(sub / f"{i:02d}.png", img.astype(np.uint16) * 257)
        elif kind == 2:
            write_image(sub / f"{i:02d}.tif", img)
        else:
            write_image(sub / f"{i:02d}.jpg", img)
    return out


def pairs_folder(tree: Path, out: Path, *, patterns: bool = False) -> Path:
    """The Medium pairs of a SIDD tree as ``noisy/`` and ``clean/`` twins, or (``patterns``) as
    ``<n>_real.png`` and ``<n>_mean.png`` side by side."""
    for i, p in enumerate(index_sidd(tree).pairs):
        if patterns:
            (out / "x").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p.noisy_path, out / "x" / f"{i:02d}_real.png")
            shutil.copyfile(p.clean_path, out / "x" / f"{i:02d}_mean.png")
        else:
            for half, src in (("noisy", p.noisy_path), ("clean", p.clean_path)):
                (out / half / "a").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out / half / "a" / f"{i:02d}.png")
    return out


def blocks_file(tree: Path, path: Path, *, side: int = 32) -> Path:
    """The noisy Medium images of a SIDD tree cut into (images, blocks, side, side, 3) blocks, in a
    MATLAB v5 ``.mat`` (variable ``NoisyBlocks``)."""
    images = [read_png(p.noisy_path) for p in index_sidd(tree).pairs]
    blocks = np.stack([[im[:side, :side], im[side : 2 * side, :side]] for im in images])
    save_blocks(path, "NoisyBlocks", blocks)
    return path


def dnd_tree(tree: Path, root: Path, *, images: int = 2, boxes: int = 2, side: int = 32) -> Path:
    """DND's sRGB layout from a SIDD tree's noisy images: ``images_srgb/000<i>.mat`` holding
    ``InoisySRGB`` (single in [0, 1], stored column-major) and ``info.mat`` whose
    ``info.boundingboxes`` holds, per image, ``boxes`` 1-based inclusive [top left bottom right]."""
    import h5py

    (root / "images_srgb").mkdir(parents=True, exist_ok=True)
    pairs = index_sidd(tree).pairs[:images]
    for i, p in enumerate(pairs, 1):
        img = read_png(p.noisy_path).astype(np.float32) / 255.0
        with h5py.File(root / "images_srgb" / f"{i:04d}.mat", "w", userblock_size=512) as f:
            f.create_dataset("InoisySRGB", data=img.T)
        _header(root / "images_srgb" / f"{i:04d}.mat")
    with h5py.File(root / "info.mat", "w", userblock_size=512) as f:
        refs = []
        for i in range(len(pairs)):
            box = np.array([[1 + k * side, 1, (k + 1) * side, side] for k in range(boxes)], dtype=np.float64)
            refs.append(f.create_dataset(f"#refs#/b{i}", data=box.T).ref)
        info = f.create_group("info")
        info.create_dataset("boundingboxes", data=np.array([refs], dtype=h5py.ref_dtype))
    _header(root / "info.mat")
    return root


def _header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(MATLAB_73_HEADER.ljust(128, b" "))
