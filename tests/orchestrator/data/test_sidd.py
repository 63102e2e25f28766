"""SIDD readers on trees built by hand (PNG via Pillow, .mat via scipy and h5py) and on bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from orchestrator.data.files import DatasetError, load_blocks, read_png
from orchestrator.data.sidd import (
    BENCHMARK_NOISY,
    MEDIUM_DIR,
    VALIDATION_GT,
    VALIDATION_NOISY,
    format_scene_name,
    index_sidd,
    load_pair,
    load_validation,
    parse_scene_name,
)

SCENE = "0001_001_S6_00100_00060_3200_L"
SCENE2 = "0002_004_GP_03200_00030_5500_H"


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _mat(path: Path, name: str, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {name: arr})


def _mat73(path: Path, name: str, arr: np.ndarray) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte userblock, arrays stored transposed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset(name, data=np.ascontiguousarray(arr.transpose(4, 3, 2, 1, 0)))
        ds.attrs["MATLAB_class"] = np.bytes_("uint8")
    with open(path, "r+b") as f:
        f.write(
            b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        )


def build_tree(root: Path, rng: np.random.Generator, *, v73: bool = False) -> dict:
    """Two scenes with frames 010/011, validation and benchmark blocks; returns what was written."""
    written: dict = {"pairs": {}}
    for scene, (h, w) in ((SCENE, (24, 40)), (SCENE2, (32, 32))):
        inst = scene[:4]
        for frame in ("010", "011"):
            noisy = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            clean = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            _png(root / MEDIUM_DIR / scene / f"{inst}_NOISY_SRGB_{frame}.PNG", noisy)
            _png(root / MEDIUM_DIR / scene / f"{inst}_GT_SRGB_{frame}.PNG", clean)
            written["pairs"][f"{scene}/{inst}_{frame}"] = (noisy, clean)
    write = _mat73 if v73 else _mat
    for key, rel in (("val_noisy", VALIDATION_NOISY), ("val_gt", VALIDATION_GT), ("bench", BENCHMARK_NOISY)):
        arr = rng.integers(0, 256, (3, 2, 16, 16, 3), dtype=np.uint8)
        write(root / rel, rel.stem, arr)
        written[key] = arr
    return written


@pytest.mark.parametrize("v73", [False, True], ids=["mat-v5", "mat-v7.3"])
def test_hand_built_tree_reads_back_exactly(tmp_path: Path, v73: bool) -> None:
    written = build_tree(tmp_path, np.random.default_rng(0), v73=v73)
    index = index_sidd(tmp_path)
    assert len(index.pairs) == 4
    assert {p.key for p in index.pairs} == set(written["pairs"])
    for rec in index.pairs:
        noisy, clean = load_pair(rec)
        np.testing.assert_array_equal(noisy, written["pairs"][rec.key][0])
        np.testing.assert_array_equal(clean, written["pairs"][rec.key][1])
        assert (rec.height, rec.width) == noisy.shape[:2]
    rec = next(p for p in index.pairs if p.scene_name == SCENE)
    assert rec.info.camera == "S6" and rec.info.iso == 100 and rec.info.brightness == "L"
    assert index.validation.shape == (3, 2, 16, 16, 3)
    assert index.benchmark.shape == (3, 2, 16, 16, 3) and index.benchmark.gt_path is None
    vn, vg = load_validation(index)
    np.testing.assert_array_equal(vn, written["val_noisy"].reshape(6, 16, 16, 3))
    np.testing.assert_array_equal(vg, written["val_gt"].reshape(6, 16, 16, 3))
    np.testing.assert_array_equal(
        load_blocks(index.benchmark.noisy_path, BENCHMARK_NOISY.stem), written["bench"]
    )
    assert "medium pairs: 4 in 2 scene folders" in index.summary()


def test_generated_tree_takes_the_same_path(synthetic_tree: Path) -> None:
    index = index_sidd(synthetic_tree)
    assert len(index.pairs) == 10  # 5 scenes x frames 010, 011
    noisy, clean = load_pair(index.pairs[0])
    assert noisy.shape == (96, 128, 3) and noisy.dtype == np.uint8
    assert index.validation.shape == (2, 4, 32, 32, 3)
    assert index.benchmark.shape == (2, 3, 32, 32, 3)
    vn, vg = load_validation(index)
    assert vn.shape == vg.shape == (8, 32, 32, 3)


def test_scene_name_round_trip() -> None:
    info = parse_scene_name("0151_007_IP_01600_02000_4400_N")
    assert (
        info.instance,
        info.scene,
        info.camera,
        info.iso,
        info.shutter,
        info.illuminant,
        info.brightness,
    ) == (151, 7, "IP", 1600, 2000, 4400, "N")
    assert info.camera_name == "iPhone 7"
    assert format_scene_name(info) == "0151_007_IP_01600_02000_4400_N"
    with pytest.raises(ValueError, match="does not match"):
        parse_scene_name("0001_S6_100")


# ------------------------------------------------------------------------------ bad input


def _problem(exc: pytest.ExceptionInfo, path: Path) -> str:
    """The message recorded for ``path`` (asserting there is exactly one)."""
    msgs = [m for p, m in exc.value.problems if Path(p) == path]
    assert len(msgs) == 1, exc.value.problems
    assert str(path) in str(exc.value)
    return msgs[0]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    build_tree(tmp_path, np.random.default_rng(1))
    return tmp_path


def test_missing_clean_partner(tree: Path) -> None:
    (tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_011.PNG").unlink()
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    msg = _problem(exc, tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_011.PNG")
    assert "missing" in msg and "0001_NOISY_SRGB_011.PNG has no GT partner" in msg


def test_missing_noisy_partner(tree: Path) -> None:
    (tree / MEDIUM_DIR / SCENE2 / "0002_NOISY_SRGB_010.PNG").unlink()
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "has no NOISY partner" in _problem(exc, tree / MEDIUM_DIR / SCENE2 / "0002_NOISY_SRGB_010.PNG")


def test_corrupt_png(tree: Path) -> None:
    bad = tree / MEDIUM_DIR / SCENE / "0001_NOISY_SRGB_010.PNG"
    bad.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "not a readable image" in _problem(exc, bad)
    with pytest.raises(DatasetError, match="not a readable image"):
        read_png(bad)


def test_truncated_png(tree: Path) -> None:
    bad = tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_011.PNG"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "corrupt or truncated PNG" in _problem(exc, bad)
    with pytest.raises(DatasetError, match="corrupt or truncated PNG"):
        read_png(bad)


def test_bit_flip_in_png_is_caught_by_crc(tree: Path) -> None:
    bad = tree / MEDIUM_DIR / SCENE2 / "0002_GT_SRGB_010.PNG"
    data = bytearray(bad.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "corrupt or truncated PNG" in _problem(exc, bad)


def test_png_claiming_billions_of_pixels_is_not_decoded(tree: Path) -> None:
    """A header (valid CRC) giving 2^31-1 x 1 pixels: refused before any allocation."""
    from tests.files import with_ihdr

    bad = tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_010.PNG"
    bad.write_bytes(with_ihdr(bad.read_bytes(), 2**31 - 1, 1, 8, 2, 0, 0, 0))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "not decoded: Image size (2147483647 pixels) exceeds limit" in _problem(exc, bad)


def test_shape_mismatch(tree: Path) -> None:
    noisy = tree / MEDIUM_DIR / SCENE / "0001_NOISY_SRGB_010.PNG"
    _png(noisy, np.zeros((24, 39, 3), np.uint8))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    msg = _problem(exc, noisy)
    assert "shape mismatch: noisy is 24x39 but clean 0001_GT_SRGB_010.PNG is 24x40" in msg


def test_grayscale_png(tree: Path) -> None:
    clean = tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_010.PNG"
    _png(clean, np.zeros((24, 40), np.uint8))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "expected an 8-bit RGB PNG, found mode L" in _problem(exc, clean)


def test_bad_scene_folder_name(tree: Path) -> None:
    odd = tree / MEDIUM_DIR / "my_scene"
    odd.mkdir()
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "does not match" in _problem(exc, odd)


def test_mat_wrong_variable_name(tree: Path) -> None:
    path = tree / VALIDATION_NOISY
    _mat(path, "noisy", np.zeros((1, 1, 8, 8, 3), np.uint8))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    msg = _problem(exc, path)
    assert "variable 'ValidationNoisyBlocksSrgb' not found (variables in file: noisy)" in msg


def test_mat_wrong_shape(tree: Path) -> None:
    path = tree / VALIDATION_GT
    _mat(path, VALIDATION_GT.stem, np.zeros((6, 16, 16, 3), np.uint8))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "has shape (6, 16, 16, 3); expected (images, blocks, H, W, 3)" in _problem(exc, path)


def test_mat_wrong_dtype(tree: Path) -> None:
    path = tree / BENCHMARK_NOISY
    _mat(path, BENCHMARK_NOISY.stem, np.zeros((1, 2, 8, 8, 3), np.float32))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    # MATLAB class names: float32 is "single".
    assert "has dtype single; expected uint8" in _problem(exc, path)


def test_mat_v73_wrong_dtype(tree: Path) -> None:
    path = tree / BENCHMARK_NOISY
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset(BENCHMARK_NOISY.stem, data=np.zeros((3, 8, 8, 2, 1), np.float64))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "has dtype float64; expected uint8" in _problem(exc, path)


def test_mat_noisy_and_gt_disagree(tree: Path) -> None:
    path = tree / VALIDATION_GT
    _mat(path, VALIDATION_GT.stem, np.zeros((3, 2, 8, 8, 3), np.uint8))
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "differs from ValidationNoisyBlocksSrgb.mat's (3, 2, 16, 16, 3)" in _problem(exc, path)


def test_mat_not_a_mat_file(tree: Path) -> None:
    path = tree / VALIDATION_NOISY
    path.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "not a readable MATLAB .mat file" in _problem(exc, path)


def test_validation_gt_missing(tree: Path) -> None:
    (tree / VALIDATION_GT).unlink()
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert "file not found" in _problem(exc, tree / VALIDATION_GT)


def test_every_problem_is_reported_at_once(tree: Path) -> None:
    (tree / MEDIUM_DIR / SCENE / "0001_GT_SRGB_011.PNG").unlink()
    (tree / VALIDATION_NOISY).write_bytes(b"junk" * 100)
    with pytest.raises(DatasetError) as exc:
        index_sidd(tree)
    assert len(exc.value.problems) == 2
    assert str(exc.value).startswith("2 problem(s) in the dataset:")


def test_empty_and_missing_roots(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset root is not a directory"):
        index_sidd(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no SIDD Medium sRGB pairs found"):
        index_sidd(tmp_path)
