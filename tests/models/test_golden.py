"""Every golden vector of the original SSID, AP-BSN and LG-BPN code is reproduced: the original
state dict loads through ``models.convert.from_original`` and the call lands within tolerance."""

from __future__ import annotations

import pytest
import torch

from models.convert import from_original

from ..data.golden import compact


@pytest.mark.parametrize("case", sorted(compact.CASES))
def test_golden_vectors_are_reproduced(case: str) -> None:
    g = compact.load(case)
    y = compact.call(from_original(g["constructor"], g["kwargs"], g["state_dict"]), g)
    tol = g["tolerance"]
    torch.testing.assert_close(y, g["output"], rtol=tol["rtol"], atol=tol["atol"])
