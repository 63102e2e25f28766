"""The ``blocks`` source: an array of noisy blocks in one file, and the SIDD server's submission.

The file is a ``.mat`` (MATLAB v5-v7 or v7.3) or a ``.npy`` holding uint8 blocks shaped
(images, blocks, H, W, 3), as SIDD's ``BenchmarkNoisyBlocksSrgb.mat``, or (N, H, W, 3). In a
``.mat`` the variable is ``data.blocks.variable``, else the only uint8 array of those shapes.
Training crops from the blocks (AP-BSN's "trained on the benchmark" protocol); ``jobs/denoise.py``
denoises them into ``SubmitSrgb.mat`` (:func:`write_submission`), in the blocks' own layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.data.files import DatasetError, load_blocks, mat_variables
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

__all__ = ["blocks_file", "read_blocks", "write_submission", "SUBMISSION_VARIABLE"]

SUBMISSION_VARIABLE = "DenoisedBlocksSrgb"


def _variable(path: Path, wanted: str) -> str:
    found = mat_variables(path)
    if wanted:
        if wanted not in found:
            names = ", ".join(sorted(found)) or "none"
            raise DatasetError([(path, f"variable {wanted!r} not found (variables in file: {names})")])
        return wanted
    fits = [
        k for k, (shape, dtype) in found.items() if len(shape) in (4, 5) and dtype in ("uint8", "uint8_t")
    ]
    if len(fits) != 1:
        raise DatasetError(
            [
                (
                    path,
                    f"{len(fits)} uint8 block arrays in the file ({sorted(found)}); set data.blocks.variable",
                )
            ]
        )
    return fits[0]


def blocks_file(spec: SourceSpec, cfg: DataConfig) -> tuple[Path, str]:
    """The file of a ``blocks`` source and the variable that holds its blocks ('' for ``.npy``)."""
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise DatasetError([(path, "blocks source: no such file")])
    if path.suffix.lower() == ".npy":
        return path, ""
    if path.suffix.lower() != ".mat":
        raise DatasetError([(path, "blocks source: expected a .mat or .npy file")])
    return path, _variable(path, cfg.blocks.variable)


def read_blocks(path: str | Path, variable: str) -> np.ndarray:
    """The blocks as stored: uint8 (images, blocks, H, W, 3) or (N, H, W, 3)."""
    path = Path(path)
    if not variable:
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError([(path, f"not a readable .npy array ({exc})")]) from None
    else:
        arr = load_blocks(path, variable)
    if arr.dtype != np.uint8 or arr.ndim not in (4, 5) or arr.shape[-1] != 3:
        raise DatasetError([(path, f"holds {arr.dtype} {arr.shape}; expected uint8 (..., H, W, 3) blocks")])
    return arr


def blocks_train(spec: SourceSpec, cfg: DataConfig) -> TrainingSet:
    path, variable = blocks_file(spec, cfg)
    arr = read_blocks(path, variable)
    flat = arr.reshape(-1, *arr.shape[-3:])
    shapes = ((flat.shape[1], flat.shape[2]),) * len(flat)
    item = TrainItem(
        path.name, str(path.resolve()), "blocks", shapes, arg=variable, fingerprint=fingerprint(path)
    )
    return TrainingSet(spec, (item,), root=str(path.parent.resolve()))


@register_reader("blocks")
def _read(item: TrainItem) -> list[np.ndarray]:
    arr = read_blocks(item.path, item.arg)
    return list(arr.reshape(-1, *arr.shape[-3:]))


def write_submission(
    path: Path, denoised: np.ndarray, seconds_per_mp: float, optional: dict[str, str]
) -> Path:
    """``SubmitSrgb.mat`` as the SIDD benchmark server takes it (the SIDD benchmark code's
    ``SIDD_Denoise.m``): ``DenoisedBlocksSrgb``, a cell array of (images x blocks) uint8
    (H, W, 3) blocks; ``TimeMPSrgb``, seconds per megapixel; ``OptionalData``, a struct of text
    (method name, authors, paper, venue). (N, H, W, 3) blocks are one row of N cells."""
    from scipy.io import savemat

    if denoised.ndim == 4:
        denoised = denoised[None]
    if denoised.ndim != 5 or denoised.shape[-1] != 3 or denoised.dtype != np.uint8:
        raise ValueError(f"denoised blocks must be uint8 (images, blocks, H, W, 3), got {denoised.shape}")
    cells = np.empty(denoised.shape[:2], dtype=object)
    for i in range(denoised.shape[0]):
        for j in range(denoised.shape[1]):
            cells[i, j] = denoised[i, j]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.mat")
    savemat(
        tmp,
        {
            SUBMISSION_VARIABLE: cells,
            "TimeMPSrgb": np.array([[seconds_per_mp]]),
            "OptionalData": {k: str(v) for k, v in optional.items()},
        },
        do_compression=True,
    )
    tmp.replace(path)
    return path


register_source(
    SourceKind(
        "blocks",
        "a .mat or .npy array of noisy blocks (SIDD's benchmark blocks); training, and a submission",
        train=blocks_train,
    )
)
