"""Data configs: where the training and evaluation data are, and the synthetic generator's spec."""

from __future__ import annotations

from dataclasses import dataclass

CAMERA_CODES = ("GP", "IP", "S6", "N6", "G4")  # SIDD's five cameras (orchestrator.data.camera)


@dataclass(frozen=True)
class SyntheticSpec:
    """Synthetic SIDD-like data (:mod:`orchestrator.data.synthetic`).

    Args:
        seed: everything is a deterministic function of it.
        scenes: number of scene folders in SIDD_Medium_Srgb (each holds frames 010 and 011).
        size: (H, W) of each medium image.
        val_images, val_blocks, block_size: validation blocks array is
            (val_images, val_blocks, block_size, block_size, 3); the real SIDD has 40 x 32 x 256.
        bench_images, bench_blocks: the benchmark array likewise (noisy only).
        cameras: camera codes to draw from (all five by default).
        zoom: scene content is drawn at 1/zoom the size and enlarged (1: as drawn).
        noise_gain: multiplies the analogue gain of the noise model (1: the cameras' calibrated
            levels; 2: the noise of twice the recorded ISO). Folder names keep the recorded ISO.
    """

    seed: int = 0
    scenes: int = 8
    size: tuple[int, int] = (384, 512)
    val_images: int = 4
    val_blocks: int = 8
    block_size: int = 64
    bench_images: int = 2
    bench_blocks: int = 8
    cameras: tuple[str, ...] = CAMERA_CODES
    noise_gain: float = 1.0
    zoom: float = 1.0

    def __post_init__(self) -> None:
        h, w = self.size
        if min(self.scenes, self.val_images, self.val_blocks, self.block_size) < 1:
            raise ValueError("scenes, val_images, val_blocks and block_size must be >= 1")
        if self.zoom < 1:
            raise ValueError(f"zoom must be >= 1, got {self.zoom}")
        if self.noise_gain <= 0:
            raise ValueError(f"noise_gain must be positive, got {self.noise_gain}")
        if h < 16 or w < 16:
            raise ValueError(f"size {self.size} too small; need at least 16x16")
        unknown = [c for c in self.cameras if c not in CAMERA_CODES]
        if unknown:
            raise ValueError(f"unknown camera code(s) {unknown}; known: {sorted(CAMERA_CODES)}")


@dataclass(frozen=True)
class FolderOptions:
    """``folder`` sources: ``glob`` keeps the files whose path relative to the root matches it
    ('': every PNG, JPEG or TIFF); ``recursive``: look in sub-folders too."""

    glob: str = ""
    recursive: bool = True


@dataclass(frozen=True)
class PairsOptions:
    """``pairs`` sources: twin folders ``noisy_dir`` and ``clean_dir`` under the root, matched by
    relative path; or, with ``noisy_pattern`` and ``clean_pattern`` (``*_real.png``, ``*_mean.png``),
    files anywhere under the root paired by folder and by what ``*`` stands for. ``block`` > 0:
    evaluation cuts images into non-overlapping blocks of that side (0: whole images)."""

    noisy_dir: str = "noisy"
    clean_dir: str = "clean"
    noisy_pattern: str = ""
    clean_pattern: str = ""
    block: int = 0


@dataclass(frozen=True)
class BlocksOptions:
    """``blocks`` sources: the ``.mat`` variable holding the blocks ('': the only uint8 array of
    (images, blocks, H, W, 3) or (N, H, W, 3) in the file)."""

    variable: str = ""


@dataclass(frozen=True)
class DataConfig:
    """Where the data is (``orchestrator.data.sources``).

    ``train``: the training source, ``SOURCE:PATH`` (``--train-data``); empty: SIDD at ``root``.
    ``eval``: evaluation sources, each ``SOURCE:PATH`` or ``NAME=SOURCE:PATH`` (``--eval-data``);
    empty: SIDD's validation blocks at ``root`` when training on SIDD, else none. ``root``: a SIDD
    root (``--data``); empty: synthetic SIDD-like data generated under ``cache_dir``.
    ``folder``, ``pairs``, ``blocks``: the options of those sources.
    """

    root: str = ""
    train: str = ""
    eval: tuple[str, ...] = ()
    cache_dir: str = "data"
    synthetic: SyntheticSpec = SyntheticSpec()
    check_images: bool = True
    folder: FolderOptions = FolderOptions()
    pairs: PairsOptions = PairsOptions()
    blocks: BlocksOptions = BlocksOptions()
