"""Findings from per-image maps: outliers outside the central square, groups, offsets."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.correlation.report import check_offsets, find_outliers, group_maps, load_reference
from orchestrator.correlation.stats import CorrelationSums


def test_outliers_are_found_only_outside_the_central_square() -> None:
    maps = np.zeros((3, 21, 21))
    maps[0, 10 + 4, 10 + 4] = 0.9  # inside the 9x9: not an outlier
    maps[1, 10 - 5, 10 + 2] = 0.25  # just outside
    maps[2, 0, 0] = np.nan
    rows = [{"key": k, "camera": "GP", "iso": 100} for k in "abc"]
    found = find_outliers(rows, maps, inner_radius=4, threshold=0.2)
    assert found == [{"key": "b", "camera": "GP", "iso": 100, "value": 0.25, "dy": -5, "dx": 2}]


def test_group_maps_pool_sums_not_maps() -> None:
    def sums(total: float, count: float) -> CorrelationSums:
        return CorrelationSums("rgb_pearson", np.full((3, 3), total), np.full((3, 3), count))

    rows = [
        {"camera": "GP", "status": "ok"},
        {"camera": "GP", "status": "ok"},
        {"camera": "IP", "status": "nan"},
    ]
    g = group_maps(rows, "camera", [sums(1.0, 10.0), sums(3.0, 10.0), sums(0.0, 0.0)])
    assert list(g) == ["GP"] and g["GP"][1] == 2
    np.testing.assert_allclose(g["GP"][0], 0.2)


def test_offsets_and_reference() -> None:
    assert check_offsets((), 3) == ((0, 1), (2, 2))
    with pytest.raises(ValueError, match=r"\(0, 4\) lies outside the radius-3 map"):
        check_offsets(((0, 4),), 3)
    assert load_reference("sidd", 3).shape == (7, 7)
    assert load_reference("", 3) is None
    with pytest.raises(ValueError, match="figures.reference: cannot read"):
        load_reference("/nonexistent.npy", 3)
