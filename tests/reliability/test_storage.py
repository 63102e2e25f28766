"""A stage whose checkpoint storage fills up or turns read-only mid-training: a clear error that
names the file and the reason, the earlier checkpoints intact, and a rerun that resumes from them
to the same weights as an uninterrupted run.

Real filesystems, not patched calls: the stage trains into its own tmpfs in a private mount
namespace (``unshare -m``), which another writer fills, or whose checkpoint folder is remounted
read-only. Needs mount namespaces (root, or unprivileged user namespaces); skipped, saying so,
where the platform has neither.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestrator.train.store import checkpoint_name

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("storage_child.py")


def _unshare() -> list[str]:
    """The command prefix for a private mount namespace, or skip."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("unshare or mount missing")
    base = ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*base, "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    return base


def _steps(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "reason"), [("full", "No space left on device"), ("readonly", "Read-only file system")]
)
def test_full_or_read_only_checkpoint_storage(tmp_path, mode, reason):
    prefix = _unshare()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [*prefix, sys.executable, str(CHILD), mode, str(tmp_path), str(tmp_path / "data")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())

    # A clear error: the file it could not write, the system's reason, and what a rerun does.
    error = result["error"]
    assert error is not None, "the stage finished although its storage failed"
    assert "bnn: cannot write " in error and checkpoint_name(6) in error and reason in error, error
    assert "a rerun resumes from step 4" in error, error

    # The checkpoints written before the fault are intact, and nothing half-written is left.
    after = tmp_path / "after_fault"
    ckpts = after / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [checkpoint_name(2), checkpoint_name(4)]
    for step in (2, 4):
        blob = torch.load(ckpts / checkpoint_name(step), weights_only=True)
        assert blob["meta"]["step"] == step
    assert not (after / "model.pt").exists()
    assert _steps(after)[:4] == [1, 2, 3, 4]

    # Freed, the same job resumes from step 4 and ends with an uninterrupted run's weights.
    assert result["resumed_reused"] is False
    final = tmp_path / "after_rerun"
    assert _steps(final) == list(range(1, 11))
    got = torch.load(final / "model.pt", weights_only=True)
    want = torch.load(tmp_path / "straight.pt", weights_only=True)
    assert got["meta"]["step"] == 10
    for k, v in want["model"].items():
        assert torch.equal(got["model"][k], v), f"{k} differs from the uninterrupted run"
