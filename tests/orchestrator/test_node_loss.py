"""A node lost on a multi-node ``ray.cluster_utils.Cluster``: mid-trial, the job still finishes and
the stage resumes from its last checkpoint on another node; during the correlation job, every
per-image map is still computed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
        "train.ssid.steps=200",
        "train.ssid.checkpoint_every=20",
        "eval.samples=0",
        "eval.references=[]",
        "trial.custom={trainer: 1}",
        "trial.max_failures=2",
        f"data.cache_dir={tmp_path / 'data'}",
    ]
    cmd = [sys.executable, str(ROOT / "jobs" / "ablations.py"), "--profile", "tiny", "--ablations", "ssid"]
    cmd += ["--out", str(out)]
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
    assert meta["step"] == 200
    history = [json.loads(line)["step"] for line in (stage / "history.jsonl").read_text().splitlines()]
    assert history == list(range(1, 201))


def _job(cluster, tmp: Path, out: Path, *sets: str, log: Path) -> subprocess.Popen:
    """``jobs/ablations.py`` on the tiny profile's AP-BSN, attached to ``cluster``."""
    base = ["eval.samples=0", "eval.references=[]", f"data.cache_dir={tmp / 'data'}"]
    cmd = [sys.executable, str(ROOT / "jobs" / "ablations.py"), "--profile", "tiny", "--ablations", "apbsn"]
    cmd += ["--out", str(out), "--tracking-uri", f"sqlite:///{out}.db"]
    cmd += [a for s in [*base, *sets] for a in ("--set", s)]
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp)


def test_two_workers_on_two_nodes_resume_after_one_is_killed(tmp_path):
    """``trial.workers=2`` on two 1-CPU worker nodes (the head has none): the stage's Ray Train
    workers can only be placed one per node. Rank 0's process is killed after the checkpoint of
    step 100: the Train run and its trial fail, Tune retries the trial, and its new workers (again
    one per node) resume from the last checkpoint. The stage ends with the weights of an
    uninterrupted run (one worker), within the tolerance of tests/orchestrator/test_workers.py."""
    from ray.cluster_utils import Cluster

    from tests.orchestrator.test_workers import WEIGHT_TOL

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = sorted(cluster.add_node(num_cpus=1).node_id for _ in range(2))
    cluster.wait_for_nodes()
    sets = ["train.apbsn.steps=300", "train.apbsn.checkpoint_every=50", "trial.report_every=20"]
    sets.append("trial.max_failures=2")
    log = tmp_path / "two.log"
    try:
        job = _job(cluster, tmp_path, tmp_path / "two", *sets, "trial.workers=2", log=log)
        deadline, ckpt = time.monotonic() + 240, []
        while not ckpt and time.monotonic() < deadline and job.poll() is None:
            ckpt = list((tmp_path / "two").glob("stages/bsn-*/checkpoints/step_000000100.pt"))
            time.sleep(0.1)
        assert ckpt, log.read_text()[-3000:]
        stage = ckpt[0].parents[1]
        first = json.loads((stage / "attempts.jsonl").read_text().splitlines()[0])
        os.kill(first["pid"], signal.SIGKILL)  # the Ray Train worker of rank 0
        assert job.wait(timeout=400) == 0, log.read_text()[-3000:]
        one = _job(cluster, tmp_path, tmp_path / "one", *sets, log=tmp_path / "one.log")
        assert one.wait(timeout=400) == 0, (tmp_path / "one.log").read_text()[-3000:]
    finally:
        cluster.shutdown()
    attempts = [json.loads(line) for line in (stage / "attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 2 and attempts[1]["from_step"] >= 100, attempts
    assert all(sorted(a["workers"]) == nodes for a in attempts)  # one worker on each node, twice
    assert attempts[1]["pid"] != first["pid"]
    (reference,) = (tmp_path / "one").glob("stages/bsn-*")
    assert reference.name == stage.name
    a, b = (torch.load(s / "model.pt", weights_only=True)["model"] for s in (reference, stage))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= WEIGHT_TOL


def _children_running(parent: int, name: str) -> bool:
    """Whether a process started by ``parent`` (a raylet) runs a task named like ``name``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and title.startswith("ray::") and name in title:
            return True
    return False


def _replicated_tree(root: Path, copies: int) -> Path:
    """A SIDD tree of ``2 * copies`` real PNG pairs: two generated scenes, copied under new scene
    instance numbers (the maps of copies are equal, and cheap to make)."""
    from orchestrator.data.synthetic import generate
    from orchestrator.schema import SyntheticSpec

    spec = SyntheticSpec(seed=5, scenes=1, size=(384, 512), val_images=1, val_blocks=2, block_size=32)
    generate(root, spec)
    data = root / "SIDD_Medium_Srgb" / "Data"
    (scene,) = list(data.iterdir())
    instance, rest = scene.name.split("_", 1)
    for i in range(copies):
        new = f"{i + 101:04d}"
        target = data / f"{new}_{rest}"
        target.mkdir()
        for f in scene.iterdir():
            shutil.copyfile(f, target / f.name.replace(instance, new, 1))
    shutil.rmtree(scene)
    return root


def test_node_lost_during_the_correlation_job_keeps_every_map(tmp_path):
    """A worker node removed while it computes maps: Ray Data runs its tasks again elsewhere, and the
    job ends with every per-image map, each equal to the direct computation."""
    import pyarrow.parquet as pq
    from ray.cluster_utils import Cluster

    from orchestrator.correlation.stats import correlation_sums, noise_of
    from orchestrator.data.sidd import index_sidd, load_pair

    tree = _replicated_tree(tmp_path / "sidd", copies=24)
    pairs = index_sidd(tree).pairs
    assert len(pairs) == 48
    # Nothing runs on the head: the two workers compute every map.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    raylets = {w.all_processes["raylet"][0].process.pid: w for w in workers}
    out, log_path = tmp_path / "out", tmp_path / "job.log"
    cmd = [sys.executable, str(ROOT / "jobs" / "correlation.py"), "--data", str(tree), "--out", str(out)]
    cmd += ["--no-tracking"]
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    job = subprocess.Popen(cmd, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    victim = None
    try:
        # Once maps come back, remove a worker node that is computing one at that moment.
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline and job.poll() is None:
            if "[correlation] 1/48" in log_path.read_text():
                busy = [w for pid, w in raylets.items() if _children_running(pid, "pair_task")]
                if busy:
                    victim = busy[0]
                    cluster.remove_node(victim, allow_graceful=False)
            time.sleep(0.02)
        assert victim is not None, "no map was in flight on a worker: " + log_path.read_text()[-3000:]
        assert job.wait(timeout=300) == 0, log_path.read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
        cluster.shutdown()

    table = pq.read_table(out / "per_image.parquet").to_pylist()
    assert sorted(r["key"] for r in table) == sorted(p.key for p in pairs)
    assert {r["status"] for r in table} == {"ok"}
    # Every copy of a frame has that frame's map: computed once directly, compared with each row.
    want = {}
    for rec in pairs:
        frame = rec.key[-3:]
        if frame not in want:
            want[frame] = correlation_sums(noise_of(*load_pair(rec)), 10, statistic="rgb_pearson")
    for r in table:
        direct = want[r["key"][-3:]]
        np.testing.assert_allclose(np.asarray(r["map"]).reshape(21, 21), direct.map(), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(r["count"]).reshape(21, 21), direct.count)
