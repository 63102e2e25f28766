"""``bench/workers.py`` runs (a few steps of the tiny profile) and reports the three ways side by
side; without two GPUs, ``--gpu`` says so and runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_workers_bench_reports_one_against_two_workers(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "workers.py"), "--profile", "tiny", "--steps", "4"]
    cmd += ["--batch", "2", "--out", str(tmp_path / "b")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "steps/s" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| 1 worker, 1 thread",
        "| 1 worker, 2 threads",
        "| 2 workers, 1 thread each",
    ]
    assert rows[0].split(" | ")[2] == "1.00" and all(float(r.split(" | ")[1]) > 0 for r in rows)
    gpu = subprocess.run([*cmd[:2], "--gpu"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert gpu.returncode == 0 and "needs a machine with 2 or more GPUs" in gpu.stdout
