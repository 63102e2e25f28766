"""Dataset files, read strictly: 8-bit RGB PNGs and MATLAB ``.mat`` block arrays.

Every way a file can be bad (missing, not the format, truncated, a flipped bit caught by a CRC, a
header claiming billions of pixels, the wrong variable, shape or dtype) is a :class:`DatasetError`
that names the file and says what is wrong. ``.mat`` files may be MATLAB v5-v7 (read by
:mod:`orchestrator.data.matfile`, every size checked before data is read) or v7.3 (HDF5, h5py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from orchestrator.data import matfile
from orchestrator.errors import InputError

# PIL refuses very large images by default; 12 MP SIDD frames are far below this bound.
Image.MAX_IMAGE_PIXELS = 200_000_000


class DatasetError(InputError):
    """One or more dataset files are missing or malformed. ``problems`` lists (path, message)."""

    def __init__(self, problems: list[tuple[Path, str]]):
        self.problems = problems
        lines = [f"{path}: {msg}" for path, msg in problems]
        head = f"{len(problems)} problem(s) in the dataset:" if len(problems) > 1 else "bad dataset file:"
        super().__init__("\n  ".join([head, *lines]))


# --------------------------------------------------------------------------------------- PNG


@contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    """Open an image, turning every way it can fail into a DatasetError naming the file."""
    try:
        with Image.open(path) as im:
            yield im
    except FileNotFoundError:
        raise DatasetError([(path, "file not found")]) from None
    except UnidentifiedImageError:
        raise DatasetError([(path, "not a readable image (not a PNG?)")]) from None
    except Image.DecompressionBombError as exc:  # a header claiming more pixels than any SIDD image
        raise DatasetError([(path, f"not decoded: {exc}")]) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError([(path, f"corrupt or truncated PNG ({exc})")]) from None


def png_size(path: Path) -> tuple[int, int, str]:
    """(height, width, mode) of a PNG after checking every chunk's CRC up to IEND (no decode).

    Raises:
        DatasetError: unreadable, not a PNG, truncated, or corrupt.
    """
    with _open_image(path) as im:
        fmt, (w, h), mode = im.format, im.size, im.mode
        im.verify()
    if fmt != "PNG":
        raise DatasetError([(path, f"expected a PNG file, found {fmt}")])
    return h, w, mode


def read_png(path: str | Path) -> np.ndarray:
    """Decode an 8-bit RGB PNG to uint8 (H, W, 3).

    Raises:
        DatasetError: the file is missing, corrupt, truncated, or not 8-bit RGB.
    """
    path = Path(path)
    with _open_image(path) as im:
        mode = im.mode
        arr = np.asarray(im)
    if mode != "RGB" or arr.dtype != np.uint8 or arr.ndim != 3:
        raise DatasetError([(path, f"expected 8-bit RGB, found mode {mode} ({arr.dtype} {arr.shape})")])
    return arr


def write_png(path: str | Path, image: np.ndarray, *, compress_level: int = 6) -> None:
    """Write uint8 (H, W, 3) as an RGB PNG, creating parent folders."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image, mode="RGB").save(path, compress_level=compress_level)


# --------------------------------------------------------------------------------------- .mat


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512 + 8)
    # MATLAB v7.3 files carry a 512-byte text header followed by the HDF5 signature.
    return head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n"


def mat_variables(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes (in MATLAB order) and dtypes of the arrays in a ``.mat`` file, without loading."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError([(path, "file not found")])
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                # HDF5 stores MATLAB arrays transposed (column-major): reverse the axes back.
                return {
                    k: (tuple(reversed(v.shape)), str(v.dtype))
                    for k, v in f.items()
                    if isinstance(v, h5py.Dataset) and not k.startswith("#")
                }
        return {v.name: (v.shape, v.cls) for v in matfile.variables(path)}
    except DatasetError:
        raise
    except matfile.MatError as exc:
        raise DatasetError([(path, f"not a readable MATLAB .mat file ({exc})")]) from None
    except Exception as exc:  # h5py raises many types for a damaged file
        raise DatasetError(
            [(path, f"not a readable MATLAB .mat file ({type(exc).__name__}: {exc})")]
        ) from None


def _check_blocks(path: Path, name: str, shape: tuple[int, ...], dtype: str) -> list[tuple[Path, str]]:
    problems = []
    if len(shape) != 5 or shape[-1] != 3:
        problems.append((path, f"variable {name!r} has shape {shape}; expected (images, blocks, H, W, 3)"))
    if dtype not in ("uint8", "uint8_t"):
        problems.append((path, f"variable {name!r} has dtype {dtype}; expected uint8"))
    return problems


def check_blocks_file(path: str | Path, variable: str) -> tuple[int, ...]:
    """Validate a blocks ``.mat`` file without loading its data; return the block array's shape."""
    path = Path(path)
    variables = mat_variables(path)
    if variable not in variables:
        found = ", ".join(sorted(variables)) or "none"
        raise DatasetError([(path, f"variable {variable!r} not found (variables in file: {found})")])
    shape, dtype = variables[variable]
    problems = _check_blocks(path, variable, shape, dtype)
    if problems:
        raise DatasetError(problems)
    return shape


def load_blocks(path: str | Path, variable: str) -> np.ndarray:
    """Load a uint8 (images, blocks, H, W, 3) array from a v5 or v7.3 ``.mat`` file.

    Raises:
        DatasetError: missing file, missing variable, wrong shape or dtype.
    """
    path = Path(path)
    check_blocks_file(path, variable)
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                arr = np.asarray(f[variable][()])
            arr = np.ascontiguousarray(arr.transpose(tuple(reversed(range(arr.ndim)))))
        else:
            arr = matfile.read_array(path, variable)
    except Exception as exc:
        raise DatasetError(
            [(path, f"cannot read variable {variable!r} ({type(exc).__name__}: {exc})")]
        ) from None
    return arr


def save_blocks(path: str | Path, variable: str, blocks: np.ndarray) -> None:
    """Write a blocks array as a MATLAB v5 ``.mat`` (the format SIDD distributes)."""
    from scipy.io import savemat

    if blocks.dtype != np.uint8 or blocks.ndim != 5 or blocks.shape[-1] != 3:
        raise ValueError(f"expected uint8 (images, blocks, H, W, 3), got {blocks.dtype} {blocks.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {variable: blocks}, do_compression=False)


def read_pair(noisy_path: str | Path, clean_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """:func:`load_pair` from the two paths."""
    noisy, clean = read_png(noisy_path), read_png(clean_path)
    if noisy.shape != clean.shape:
        raise DatasetError(
            [(Path(noisy_path), f"shape mismatch: noisy {noisy.shape} vs clean {clean.shape} ({clean_path})")]
        )
    return noisy, clean
