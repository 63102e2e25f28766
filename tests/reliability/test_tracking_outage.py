"""The tracking server stopped for a while mid-training and started again: no metric and no
checkpoint is lost, and the stage is recorded as finished only once everything has arrived."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.reliability.test_faults import DATA, SMALL_SSID, _stop_group

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_metrics_and_checkpoints_survive_a_tracking_outage(mlflow_server, tmp_path):
    out = tmp_path / "runs"
    sets = [*SMALL_SSID, 'stages=["bnn"]', "train.ssid.steps=300", "train.ssid.checkpoint_every=20"]
    sets += ["trial.report_every=1", "tracking.wait_s=120", f"data.cache_dir={tmp_path / 'data'}", *DATA]
    cmd = [sys.executable, str(ROOT / "jobs" / "ablations.py"), "--profile", "tiny", "--ablations", "ssid"]
    cmd += ["--out", str(out)]
    cmd += ["--tracking-uri", mlflow_server.url, *(a for s in sets for a in ("--set", s))]
    log = tmp_path / "job.log"
    job = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(step: int) -> None:
        deadline = time.monotonic() + 300
        while not list(out.glob(f"stages/bnn-*/checkpoints/step_{step:09d}.pt")):
            assert job.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)

    try:
        wait_for(40)
        mlflow_server.stop()  # training goes on; what it logs is queued
        wait_for(120)
        mlflow_server.start()
        assert job.wait(timeout=400) == 0, log.read_text()[-3000:]
    finally:
        _stop_group(job)
    client = MlflowClient(mlflow_server.url)
    runs = client.search_runs([client.get_experiment_by_name("ablations-tiny").experiment_id])
    (child,) = [r for r in runs if r.data.tags.get("denoise.stage") == "bnn"]
    assert child.info.status == "FINISHED" and child.data.tags["denoise.stage_done"] == "true"
    steps = {m.step for m in client.get_metric_history(child.info.run_id, "loss")}
    assert steps == set(range(1, 301))  # not one step lost during the outage
    ckpts = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")}
    assert ckpts == {f"checkpoints/step_{k:09d}.pt" for k in range(20, 300, 20)}  # every one, none lost
    assert "model.pt" in {a.path for a in client.list_artifacts(child.info.run_id)}
