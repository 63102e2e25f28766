"""Faults injected into real runs: a trial's worker killed, the driver killed, a diverging loss.

Each job runs as its own process on its own local Ray (``ray.address=local``), as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from tests.files import study_args

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray]

# Each job on the tiny profile, on its own local Ray; a failed trial is retried.
DATA = ["eval.samples=0", "eval.references=[]", "ray.address=local"]
SMALL_SSID = ["trial.max_failures=2"]


def _cmd(tmp: Path, out: Path, ablation: str, sets: list[str]) -> list[str]:
    cmd = [sys.executable, str(ROOT / "jobs" / "ablations.py"), "--profile", "tiny", "--ablations", ablation]
    cmd += ["--out", str(out), "--tracking-uri", f"sqlite:///{out}.db"]
    return cmd + [a for s in [f"data.cache_dir={tmp / 'data'}", *DATA, *sets] for a in ("--set", s)]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent
    )


def _wait_for(pattern: str, root: Path, job: subprocess.Popen, log: Path, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        assert job.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"nothing matched {pattern} in {timeout} s: {log.read_text()[-3000:]}")


def _stop_group(job: subprocess.Popen) -> None:
    """Whatever the job's process group still runs (its local Ray), stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def _weights(stage_dir: Path) -> dict:
    return torch.load(stage_dir / "model.pt", weights_only=True)["model"]


def _attempts(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "attempts.jsonl").read_text().splitlines()]


def _killed_mid_stage(tmp: Path, ablation: str, stage: str, sets: list[str], at: int) -> tuple[Path, Path]:
    """The job run straight, then again with the process that trains ``stage`` (its first
    attempt's pid) SIGKILLed once the checkpoint of step ``at`` is written; both stage folders."""
    straight = subprocess.run(
        _cmd(tmp, tmp / "straight", ablation, sets), capture_output=True, text=True, timeout=400
    )
    assert straight.returncode == 0, straight.stdout[-3000:] + straight.stderr[-3000:]
    log = tmp / "killed.log"
    job = _start(_cmd(tmp, tmp / "killed", ablation, sets), log)
    try:
        ckpt = _wait_for(f"stages/{stage}-*/checkpoints/step_{at:09d}.pt", tmp / "killed", job, log)
        folder = ckpt.parents[1]
        os.kill(_attempts(folder)[0]["pid"], signal.SIGKILL)
        assert job.wait(timeout=400) == 0, log.read_text()[-3000:]
    finally:
        _stop_group(job)
    (reference,) = (tmp / "straight" / "stages").glob(f"{stage}-*")
    return reference, folder


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_killed_trial_worker_resumes_to_the_same_weights(tmp_path):
    sets = [*SMALL_SSID, 'stages=["bnn"]', "train.ssid.steps=140", "train.ssid.checkpoint_every=20"]
    reference, stage = _killed_mid_stage(tmp_path, "ssid", "bnn", sets, at=60)  # the trial's Ray worker
    attempts = _attempts(stage)
    assert len(attempts) == 2 and attempts[1]["from_step"] >= 60
    assert _same_weights(reference, stage)


@pytest.mark.slow
def test_killed_driver_then_rerun_retrains_nothing_finished(tmp_path):
    # S-2: its BNN and LAN are independent and short; its UNet waits for both and is long.
    sets = [*SMALL_SSID, "train.ssid.steps=30", "train.ssid.checkpoint_every=10"]
    sets += ["overrides.S-2.unet.train.steps=200", "overrides.S-2.unet.train.checkpoint_every=20"]
    out = tmp_path / "runs"
    cmd = _cmd(tmp_path, out, "S-2", sets)
    log = tmp_path / "first.log"
    job = _start(cmd, log)
    try:
        ckpt = _wait_for("stages/unet-*/checkpoints/step_000000060.pt", out, job, log)
        os.kill(job.pid, signal.SIGKILL)  # the driver only: Tune's snapshot may now lag the disk
    finally:
        _stop_group(job)
    saved = max(int(p.stem.split("_")[1]) for p in ckpt.parent.glob("step_*.pt"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trained 1 stage(s), reused 2" in again.stdout
    for name in ("bnn", "lan"):
        (stage,) = out.glob(f"stages/{name}-*")
        assert len(_attempts(stage)) == 1  # finished before the kill: never started again
    (unet,) = out.glob("stages/unet-*")
    attempts = _attempts(unet)
    assert len(attempts) == 2 and attempts[1]["from_step"] == saved  # at most one interval lost
    assert torch.load(unet / "model.pt", weights_only=True)["meta"]["step"] == 200


def test_divergence_stops_the_stage_and_keeps_its_checkpoints(ray_local, tmp_path, capsys):
    from jobs import ablations

    sets = ["train.apbsn.steps=6", "train.apbsn.checkpoint_every=1", "train.apbsn.optim.lr=1e30"]
    sets += [f"data.cache_dir={tmp_path / 'data'}", *DATA[:-1]]
    uri = f"sqlite:///{tmp_path / 'db'}"
    assert ablations.main(study_args(tmp_path / "runs", uri, sets=sets)) == 1
    err = capsys.readouterr().err
    assert "FAILED apbsn.bsn" in err and "loss is nan" in err
    (stage,) = (tmp_path / "runs" / "stages").glob("bsn-*")
    assert (stage / "checkpoints" / "step_000000001.pt").is_file() and not (stage / "model.pt").exists()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ablations-tiny").experiment_id])
    (child,) = [r for r in runs if r.data.tags.get("denoise.stage") == "bsn"]
    assert child.info.status == "FAILED" and "loss is nan" in child.data.tags["denoise.error"]
    assert "denoise.stage_done" not in child.data.tags
    assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")]
