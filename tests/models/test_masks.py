"""Blind regions as data: LG-BPN's diamond and regions derived from correlation maps."""

from __future__ import annotations

import numpy as np
import pytest

from models import masks
from orchestrator.correlation.report import REFERENCE_MAPS


def test_diamond_matches_lgbpn_local_mask() -> None:
    d = masks.diamond(4)
    assert d.shape == (9, 9) and d.sum() == 41  # LG-BPN zeroes 41 taps of its 9x9 kernel
    assert masks.kernel_taps(d, 9).sum() == 40
    assert d[4, 0] and d[0, 4] and not d[1, 1]
    assert masks.diamond(4, size=21).sum() == 41
    with pytest.raises(ValueError, match="odd size"):
        masks.diamond(4, size=8)


def test_real_sidd_map_gives_the_diamond_at_the_default_threshold() -> None:
    sidd = np.load(REFERENCE_MAPS["sidd"])
    assert np.array_equal(masks.from_correlation(sidd), masks.diamond(4, size=21))
    assert masks.from_correlation(sidd, threshold=0.05).sum() == 37  # (0, +-4) drop out at 0.05


def test_region_is_the_connected_part_around_the_centre() -> None:
    m = np.zeros((7, 7))
    m[3, 3] = 1.0
    m[3, 4] = m[3, 5] = 0.5  # connected to the centre
    m[0, 0] = 0.9  # above the threshold but isolated
    m[2, 2] = 0.9  # touches the centre only diagonally: not 4-connected
    m[1, 3] = np.nan
    region = masks.from_correlation(m, threshold=0.1)
    assert {tuple(p) for p in np.argwhere(region)} == {(3, 3), (3, 4), (3, 5)}
    assert masks.from_correlation(np.full((5, 5), np.nan)).sum() == 1  # the centre, always
    with pytest.raises(ValueError, match="odd side"):
        masks.from_correlation(np.zeros((4, 4)))


def test_kernel_taps_crop_or_pad_the_region() -> None:
    big = masks.diamond(6)  # 13x13 region into a 9x9 kernel: cropped
    assert masks.kernel_taps(big, 9).sum() == 81 - int(masks.diamond(6)[2:11, 2:11].sum())
    small = masks.diamond(1)  # 3x3 region into a 9x9 kernel: centred
    taps = masks.kernel_taps(small, 9)
    assert taps.sum() == 76 and taps[4, 4] == 0 and taps[4, 5] == 0 and taps[5, 5] == 1


def test_save_load_round_trip_and_errors(tmp_path) -> None:
    region = masks.diamond(2, size=7)
    path = masks.save(tmp_path / "m" / "mask.npz", region, threshold=0.02, source="x")
    got, meta = masks.load(path)
    assert np.array_equal(got, region) and meta == {"source": "x", "threshold": 0.02}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        masks.load(bad)
    np.savez(tmp_path / "wrong.npz", blind=np.zeros((4, 4), bool), meta_json=np.array("{}"))
    with pytest.raises(ValueError, match="square boolean array of odd side"):
        masks.load(tmp_path / "wrong.npz")
