"""reuse_freed_memory() moves large tensors from their own mmap to malloc's heap (checked in a
child process, since the setting is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
import torch
from models.runtime import reuse_freed_memory
ok = reuse_freed_memory() if sys.argv[1] == "reuse" else None
x = torch.ones(64, 2**20)  # 256 MB

def heap_mb():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
            return (hi - lo) / 2**20
    return 0.0

print(json.dumps({{"ok": ok, "heap_mb": heap_mb(), "sum": float(x.sum())}}))
"""


def _child(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_large_tensors_come_from_the_heap_after_reuse_freed_memory() -> None:
    plain, reuse = _child("plain"), _child("reuse")
    assert reuse["ok"] is True
    assert plain["sum"] == reuse["sum"] == 64 * 2**20
    assert plain["heap_mb"] < 200 <= reuse["heap_mb"], (plain, reuse)
