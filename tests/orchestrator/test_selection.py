"""Checkpoint selection without leakage: selection reads the selection subset and nothing else."""

from __future__ import annotations

import json

import numpy as np
import torch

from orchestrator.data.sources import index_data
from orchestrator.study.catalogue import load_profile
from orchestrator.study.evaluate import selection_key
from orchestrator.study.plan import LocalData, plan, run_local
from orchestrator.train.evaluation import evaluate
from orchestrator.train.loop import Selection
from orchestrator.train.store import best_file, best_header

# LG-BPN under the tiny profile, 8 steps, validated every 2; four validation images of 2 blocks.
SETTINGS = [
    'ablations=["lgbpn"]',
    "train.lgbpn.steps=8",
    "train.lgbpn.eval_every=2",
    "data.synthetic.val_images=4",
    "eval.select=2",
]


def _select(study, data, validation, store, selection):
    (pa,) = plan(study, data.train, store=store)
    history = []
    images = LocalData.of(data)
    run_local(
        study,
        [pa],
        LocalData(images.images, images.names, validation),
        progress=False,
        on_step=lambda _, step, rec: history.append(rec),
        selection=selection,
    )
    stage = pa.stages[0]
    best = best_file(stage, selection.key)
    return best_header(best), torch.load(best, weights_only=True)["model"], history


def test_selection_never_reads_a_reported_block(tmp_path):
    study = load_profile("tiny", [f"data.cache_dir={tmp_path / 'data'}", *SETTINGS])
    data = index_data(study.data)
    source = data.evals[0]
    sel, rep = source.split(study.eval.select)
    assert len(sel) and len(rep) and not set(source.image[sel]) & set(source.image[rep])
    selection = Selection(tuple(int(i) for i in sel), selection_key(source, study.eval.select))

    clean_run = _select(study, data, (source.noisy, source.clean), tmp_path / "a", selection)
    # the same blocks, as floats, with every reported block replaced by NaN
    noisy, clean = source.noisy.astype(np.float32), source.clean.astype(np.float32)
    noisy[rep], clean[rep] = np.nan, np.nan
    nan_run = _select(study, data, (noisy, clean), tmp_path / "b", selection)

    (head_a, weights_a, hist_a), (head_b, weights_b, hist_b) = clean_run, nan_run
    assert head_a["step"] == head_b["step"] and np.isfinite(head_a["sel_psnr"])
    assert head_a["sel_psnr"] == head_b["sel_psnr"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    sel_a = [r["sel_psnr"] for r in hist_a if "sel_psnr" in r]
    assert sel_a == [r["sel_psnr"] for r in hist_b if "sel_psnr" in r] and len(sel_a) == 4  # 2, 4, 6, 8
    # the canary: a NaN block that is read scores as no real block does (so the equalities above
    # can fail): NaN quantizes like 0 on both sides, an infinite PSNR that would win the selection
    model = torch.nn.Identity()
    model.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    with np.errstate(invalid="ignore"):
        assert not np.isfinite(evaluate(model, noisy, clean, index=rep[:1]).metrics["val1_psnr"])
    # the best checkpoint is the best of those steps, and a resumed or repeated run keeps it
    assert head_a["sel_psnr"] == max(sel_a)
    again = _select(study, data, (source.noisy, source.clean), tmp_path / "a", selection)
    assert again[0]["step"] == head_a["step"]
    lines = (next((tmp_path / "a").glob("bsn-*")) / "history.jsonl").read_text().splitlines()
    assert any("sel_psnr" in json.loads(line) for line in lines)
