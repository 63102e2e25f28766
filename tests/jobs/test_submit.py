"""``ray job submit`` against a real ``ray start --head`` cluster runs the jobs unchanged."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(temp: str) -> None:
    """Stop this cluster's processes only (``ray stop`` would also stop other Ray sessions here)."""
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid.isdigit() and temp.encode() in cmdline and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def head():
    """A one-node Ray cluster started with the CLI, as ``ray up`` would on a head node."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the job's `python` is this interpreter
    dash = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--num-cpus",
        "2",
        "--port",
        str(_free_port()),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dash),
        "--include-dashboard",
        "true",
        # Every fixed default port on a free one: a second head in the same session must not
        # meet the first one's agent ports (still in TIME_WAIT, or held by a slow exit).
        *("--dashboard-agent-listen-port", str(_free_port())),
        *("--dashboard-agent-grpc-port", str(_free_port())),
        *("--runtime-env-agent-port", str(_free_port())),
        *("--metrics-export-port", str(_free_port())),
        *("--ray-client-server-port", str(_free_port())),
        "--disable-usage-stats",
        "--temp-dir",
        temp,
    ]
    done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Ray turns token authentication on; the jobs client must be told to use the token.
    env.update(RAY_ADDRESS=f"http://127.0.0.1:{dash}", RAY_AUTH_MODE="token")
    try:
        yield env
    finally:
        _stop(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _submit(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``ray job submit``, retried while the head's job agent is still starting (it comes up a
    few seconds after ``ray start`` returns, later on a loaded machine)."""
    deadline = time.monotonic() + 90
    while True:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(2)


def test_correlation_job_under_ray_job_submit(head, synthetic_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--working-dir",
        str(ROOT),
        "--",
        "python",
        "jobs/correlation.py",
        "--data",
        str(synthetic_tree),
        "--out",
        str(out),
        "--radius",
        "3",
        "--no-tracking",
    ]
    done = _submit(cmd, head, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout + done.stderr
    assert "10 maps, 0 NaN, 0 errors" in done.stdout
    assert np.load(out / "pooled_map.npy").shape == (7, 7)
    assert (out / "per_image.parquet").is_file() and (out / "figures" / "pooled_map_log.png").is_file()


def test_ablations_job_under_ray_job_submit(head, tmp_path: Path) -> None:
    """The main job attaches to the cluster and trains there, exactly as run locally."""
    out = tmp_path / "runs"
    sets = ["train.apbsn.steps=4", f"data.cache_dir={tmp_path / 'data'}"]
    cmd = [str(BIN / "ray"), "job", "submit", "--working-dir", str(ROOT), "--", "python", "jobs/ablations.py"]
    cmd += [
        "--profile",
        "tiny",
        "--ablations",
        "apbsn",
        "--out",
        str(out),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    cmd += [a for s in sets for a in ("--set", s)]
    done = _submit(cmd, head, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout + done.stderr
    assert "| apbsn |" in done.stdout and "trained 1 stage(s)" in done.stdout
    assert any(
        r.startswith("apbsn,apbsn,bsn,finished,") for r in (out / "results.csv").read_text().splitlines()
    )
