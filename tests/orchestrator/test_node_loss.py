"""A node lost mid-trial on a multi-node ``ray.cluster_utils.Cluster``: the job still finishes, and
the stage resumes from its last checkpoint on another node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_node_lost_mid_trial_resumes_from_checkpoint(tmp_path):
    from ray.cluster_utils import Cluster

    # The head cuts the patch shards; only the two workers offer the `trainer` resource trials need.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1, resources={"trainer": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    out = tmp_path / "runs"
    sets = [
        'stages=["bnn"]',
        "train.ssid.steps=400",
        "train.ssid.batch=2",
        "train.ssid.checkpoint_every=20",
        "models.ssid_bnn.dim=8",
        "eval.samples=0",
        "trial.custom={trainer: 1}",
        "trial.max_failures=2",
        f"data.cache_dir={tmp_path / 'data'}",
        "data.synthetic.scenes=3",
        "data.synthetic.size=[96,128]",
        "data.synthetic.val_images=1",
        "data.synthetic.val_blocks=2",
        "data.synthetic.block_size=32",
    ]
    cmd = [sys.executable, str(ROOT / "jobs" / "ablations.py"), "--ablations", "ssid", "--out", str(out)]
    cmd += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    cmd += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    log = (tmp_path / "job.log").open("w")
    job = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        # Wait for the BNN trial to pass its second checkpoint, then take its node away.
        deadline = time.monotonic() + 240
        stage = None
        while time.monotonic() < deadline and job.poll() is None:
            found = list(out.glob("stages/bnn-*/checkpoints/step_000000040.pt"))
            if found:
                stage = found[0].parents[1]
                break
            time.sleep(0.2)
        assert stage is not None, (tmp_path / "job.log").read_text()[-3000:]
        first = json.loads((stage / "attempts.jsonl").read_text().splitlines()[0])
        (victim,) = [w for w in workers if w.node_id == first["node"]]
        cluster.remove_node(victim, allow_graceful=False)
        assert job.wait(timeout=300) == 0, (tmp_path / "job.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
        cluster.shutdown()
    attempts = [json.loads(line) for line in (stage / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 2, attempts
    assert attempts[1]["node"] != first["node"]  # retried on the surviving worker ...
    assert attempts[1]["from_step"] >= 40  # ... from a checkpoint, not from scratch
    meta = torch.load(stage / "model.pt", weights_only=True)["meta"]
    assert meta["step"] == 400
    history = [json.loads(line)["step"] for line in (stage / "history.jsonl").read_text().splitlines()]
    assert history == list(range(1, 401))
