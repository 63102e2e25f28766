"""What a row costs at inference, read beside its quality: ``params`` (the parameters of the network
that denoises; a reference method has none) and ``ms_per_block``, the median wall time of one
256x256 block over ``eval.cost_blocks`` blocks after one warm-up, its test-time procedure
(pixel-shuffle, R3) included.

It is measured in the job's driver, on its CPU with its torch threads (on a GPU cluster the
driver may have no GPU; ``bench/models.py --device cuda`` times the networks there), on random
blocks (the time of these networks does not depend on the content), every row in the same job
one after the other, so that the ratios between rows compare runs made under the same
conditions (a cache across jobs would mix a teacher timed on a quiet machine with a student timed
on a busy one). The figures of each
job are written to ``OUT/evaluations/cost.json``.
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
        warm = 0 if spec.startswith("ref:") else 1  # a classical method has nothing to warm up
        for i in range(blocks + warm):
            t0 = time.perf_counter()
            infer_any(model, x)
            if i >= warm:
                times.append(time.perf_counter() - t0)
    return {"params": int(params), "ms_per_block": round(float(np.median(times)) * 1000.0, 1)}


def costs(specs: dict[str, str], *, blocks: int, out: Path, progress=print) -> dict[str, dict]:
    """``{row: measure(spec)}`` for ``{row: spec}``, timed now, one after the other; also written
    to ``out`` with the thread count."""
    if blocks <= 0:
        return {}
    threads = torch.get_num_threads()
    progress(f"[cost] timing {len(specs)} row(s) on {BLOCK}x{BLOCK} blocks ({threads} threads)")
    found = {row: measure(spec, blocks=blocks) for row, spec in specs.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"threads": threads, "blocks": blocks, "rows": found}, indent=1))
    tmp.replace(out)
    return found
