"""The benchmark scripts run (on tiny inputs) and their methods agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import correlation as bench_corr
from orchestrator.correlation import rgb_pearson_sums
from orchestrator.data.sidd import write_png


@pytest.mark.ray
def test_correlation_bench_runs_and_methods_agree(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(20, 230, (40, 56, 3), dtype=np.uint8)
    noisy = np.clip(clean + rng.integers(-9, 10, clean.shape), 0, 255).astype(np.uint8)
    write_png(tmp_path / "n.png", noisy)
    write_png(tmp_path / "c.png", clean)
    rc = bench_corr.main(
        [
            "--noisy",
            str(tmp_path / "n.png"),
            "--clean",
            str(tmp_path / "c.png"),
            "--repeat",
            "1",
            "--loop-pixels",
            "20",
            "--radius",
            "4",
            "--ray-pairs",
            "3",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "(c) FFT, this project" in out and "(d) decode both PNGs" in out
    err = float(out.split("max |(b) - (c)| over the map: ")[1].split()[0])
    assert err < 1e-12
    assert "speed-up 2 vs 1 workers" in out
    noise = noisy.astype(np.int16) - clean.astype(np.int16)
    np.testing.assert_allclose(
        bench_corr.per_offset_numpy(noise, 4), rgb_pearson_sums(noise, 4).map(), atol=1e-12
    )


def test_models_bench_runs(capsys: pytest.CaptureFixture) -> None:
    from bench import models as bench_models

    assert bench_models.main(["--size", "32", "--repeat", "1", "--families", "ssid_lan"]) == 0
    out = capsys.readouterr().out
    assert "ssid_lan" in out and "94,939" in out
    assert bench_models.main(["--families", "nope"]) == 2
