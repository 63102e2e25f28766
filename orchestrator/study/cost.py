"""What a row costs at inference, read beside its quality: ``params`` (the parameters of the network
that denoises; a reference method has none) and ``ms_per_block``, the median wall time of one
256x256 block on the evaluation device over ``eval.cost_blocks`` blocks after one warm-up, its
test-time procedure (pixel-shuffle, R3) included.

It is measured in the driver, with the driver's torch threads, on random blocks (the time of these
networks does not depend on the content). Measurements are kept in ``OUT/evaluations/cost.json``
by model file (whose folder names its stage key) and threads, so a rerun measures nothing again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

BLOCK = 256


def measure(spec: str, *, blocks: int, seed: int = 0) -> dict:
    """``{"params", "ms_per_block"}`` of the model ``spec`` names (a file, or ``ref:<method>``)."""
    from orchestrator.study.evaluate import load_model
    from orchestrator.train.evaluation import infer_any

    model = load_model(spec).eval()
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, BLOCK, BLOCK, generator=gen) * 255.0
    times = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(blocks + 1):
            t0 = time.perf_counter()
            infer_any(model, x)
            if i:  # the first call is the warm-up
                times.append(time.perf_counter() - t0)
    return {"params": int(params), "ms_per_block": round(float(np.median(times)) * 1000.0, 1)}


def costs(specs: dict[str, str], *, blocks: int, cache: Path, progress=print) -> dict[str, dict]:
    """``{row: measure(spec)}`` for ``{row: spec}``; measured once per spec and thread count."""
    if blocks <= 0:
        return {}
    known = {}
    if cache.is_file():
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}  # a damaged cache is measured again
    threads = torch.get_num_threads()
    out = {}
    for row, spec in specs.items():
        key = f"{spec}|threads={threads}|blocks={blocks}"
        if key not in known:
            progress(f"[cost] timing {row} on {BLOCK}x{BLOCK} blocks ({threads} threads)")
            known[key] = measure(spec, blocks=blocks)
        out[row] = known[key]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
    tmp.replace(cache)
    return out
