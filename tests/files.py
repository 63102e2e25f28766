"""Files the tests write: a finished stage's ``model.pt`` as training writes it, a pickle that
would run code if it were ever unpickled without ``weights_only``, and PNGs with a rewritten
header."""

from __future__ import annotations

import os
import shlex
import struct
from pathlib import Path

import torch

from models.registry import create_model
from orchestrator.data.images import png_chunk
from orchestrator.schema import ModelSpec, StageConfig
from orchestrator.train.store import FORMAT, key_config


def stage_model_file(folder: Path) -> Path:
    """``folder/model.pt`` of a finished stage (a small SSID UNet, step 3)."""
    torch.manual_seed(0)
    cfg = StageConfig(name="unet", model=ModelSpec("ssid_unet", {"dim": 8}))
    net = create_model("ssid_unet", dim=8)
    meta = {"format": FORMAT, "key": "k", "name": "unet", "config": key_config(cfg), "step": 3}
    torch.save({"meta": meta, "model": net.state_dict()}, folder / "model.pt")
    return folder / "model.pt"


class CodePayload:
    """Unpickled by a plain ``torch.load``, it would run a shell command (a harmless one): any code
    could stand there. Not ``print``: Ray swaps ``builtins.print`` while its progress bars are on,
    so what a pickle of ``print`` names would depend on the tests run before."""

    def __init__(self, marker: Path | None = None):
        self.marker = marker  # the file the command would create: its absence proves it never ran

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}" if self.marker else "true",))


def with_ihdr(png: bytes, *fields: int) -> bytes:
    """``png`` with its header chunk replaced by one holding ``fields`` (width, height, bit depth,
    colour type, compression, filter, interlace), its CRC made right so readers get past it."""
    return png[:8] + png_chunk(b"IHDR", struct.pack(">IIBBBBB", *fields)) + png[33:]


def study_args(out: Path, uri: str, ablations: str = "apbsn", *, profile: str = "tiny", sets=()) -> list[str]:
    """The command line of ``jobs/ablations.py`` for ``ablations`` under ``profile``, written to
    ``out`` and tracked at ``uri``, with each of ``sets`` as a ``--set``."""
    args = ["--profile", profile, "--ablations", ablations, "--out", str(out), "--tracking-uri", uri]
    return args + [a for s in sets for a in ("--set", s)]
