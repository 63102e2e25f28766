"""Run by ``test_storage.py`` inside a private mount namespace: train a small stage into a folder
on its own tmpfs, make that storage full or read-only after the checkpoint at step 4, then free
it and train again. Writes what it saw to ``<work>/result.json`` and copies the stage folder out
(the tmpfs goes with the namespace)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from orchestrator.data.sources import index_data
from orchestrator.study.catalogue import load_profile
from orchestrator.study.plan import LocalData, plan, run_local
from orchestrator.train.store import StorageError

SETS = [
    'ablations=["ssid"]',
    'stages=["bnn"]',
    "train.ssid.steps=10",
    "train.ssid.threads=1",
    "eval.samples=0",
]
FAULT_AT = 4  # the step whose checkpoint is the last one written before the storage fails


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _fill(folder: Path) -> Path:
    """Another writer fills the disk: write until the filesystem says it is full."""
    ballast = folder / "ballast.bin"
    chunk = b"\0" * (1 << 20)
    with ballast.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return ballast


def main(mode: str, work: Path, cache: Path) -> None:
    study = load_profile("tiny", [f"data.cache_dir={cache}", *SETS])
    found = index_data(study.data)
    index, data = found.train, LocalData.of(found)

    straight = run_local(study, plan(study, index, store=work / "straight"), data, progress=False)

    disk = work / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk))
    plans = plan(study, index, store=disk)
    stage_dir = plans[0].stages[0].path
    ckpts = stage_dir / "checkpoints"
    undo = []

    def fault(name: str, step: int, record: dict) -> None:
        if step != FAULT_AT:
            return
        if mode == "full":
            undo.append(_fill(disk))
        else:  # the checkpoint folder becomes read-only, as a remounted network share does
            _mount("--bind", str(ckpts), str(ckpts))
            _mount("-o", "remount,bind,ro", str(ckpts))
            undo.append(ckpts)

    result: dict = {"mode": mode}
    try:
        run_local(study, plans, data, progress=False, on_step=fault)
        result["error"] = None
    except StorageError as exc:
        result["error"] = str(exc)
    shutil.copytree(stage_dir, work / "after_fault")

    for thing in undo:  # the space is freed, or the folder writable again
        if mode == "full":
            thing.unlink()
        else:
            subprocess.run(["umount", str(thing)], check=True)
    resumed = run_local(study, plan(study, index, store=disk), data, progress=False)
    result["resumed_reused"] = resumed["ssid"]["bnn"].reused
    shutil.copytree(stage_dir, work / "after_rerun")
    shutil.copy(straight["ssid"]["bnn"].path, work / "straight.pt")
    (work / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
