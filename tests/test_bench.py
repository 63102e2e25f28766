"""The benchmark scripts run (on tiny inputs) and their methods agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench import correlation as bench_corr
from orchestrator.correlation.stats import rgb_pearson_sums
from orchestrator.data.files import write_png


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
    fast = ["--channels-last", "--reuse-memory", "--precision", "bf16"]
    assert bench_models.main(["--size", "32", "--repeat", "1", "--families", "ssid_lan", *fast]) == 0
    out = capsys.readouterr().out
    assert "bf16, NHWC, freed memory reused" in out
    row = next(line for line in out.splitlines() if line.startswith("ssid_lan"))
    assert 0 < float(row.split()[-1]) < 0.05  # the bf16 output's relative RMS deviation from float32


@pytest.mark.ray
@pytest.mark.slow
def test_orchestration_bench_reports_overhead_and_critical_path(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    sets = ["train.ssid.steps=4", "eval.samples=0", f"data.cache_dir={tmp_path / 'data'}"]
    cmd = [
        sys.executable,
        str(root / "bench" / "orchestration.py"),
        "--profile",
        "tiny",
        "--ablations",
        "S-2",
    ]
    cmd += ["--gpus", "3"]
    cmd += ["--out", str(tmp_path / "b"), *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "study: 3 trials" in out and "Tune+MLflow overhead" in out
    # S-2's LAN needs no BNN: the two run side by side, and the longer of them (by measured wall
    # time, which two cores shared with other tests can swap) leads the two-stage path to the UNet
    assert re.search(r"critical path: S-2\.(bnn|lan) -> S-2\.unet = ", out), out[-2000:]
    ratio = float(out.split(" x critical path")[0].split("= ")[-1])
    assert ratio >= 0.99  # the makespan cannot be shorter than its longest chain


def test_decode_distill_and_data_benches_run(capsys: pytest.CaptureFixture) -> None:
    """Each on a tiny input: the old and new PNG readers agree; both teacher-output strategies are
    timed; crops are drawn from real patch shards cold, warm and prefetched."""
    import subprocess

    from bench import data as bench_data
    from bench import decode as bench_decode
    from bench import distill as bench_distill

    root = Path(__file__).resolve().parents[1]
    old = subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{bench_decode.BEFORE}^{{commit}}"])
    if old.returncode == 0:  # a checkout with its history
        assert bench_decode.main(["--size", "24x40", "--repeat", "1"]) == 0
        assert "(identical pixels)" in capsys.readouterr().out
    assert bench_distill.main(["--profile", "tiny", "--steps", "1", "--teachers", "apbsn"]) == 0
    assert "| apbsn |" in capsys.readouterr().out
    assert bench_data.main(["--images", "1", "--size", "520x600", "--batches", "2", "--compute-ms", "1"]) == 0
    out = capsys.readouterr().out
    assert "| cold (every crop reads its tile from Parquet) |" in out and "prefetched" in out


def test_device_check_without_a_gpu_prints_its_plan_and_succeeds(tmp_path: Path) -> None:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin")  # no nvidia-smi on it
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    done = subprocess.run(
        [str(root / "scripts" / "device-check.sh"), str(tmp_path / "r")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "bench/models.py --device cuda" in done.stdout
    assert not (tmp_path / "r").exists()


def test_references_bench_runs(capsys: pytest.CaptureFixture) -> None:
    from bench import references as bench_refs

    polyu = Path(__file__).parent / "data" / "polyu"
    assert bench_refs.main(["--pairs", str(polyu), "--every", "4", "--crop", "48"]) == 0
    out = capsys.readouterr().out
    assert "1 images of 48x48" in out and out.count("| nlm |") == 4 and out.count("| bm3d |") == 6
