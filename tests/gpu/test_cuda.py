"""The CUDA paths, on a real device: skipped where there is none (``make device-check`` runs them).

Resume is bit-identical with deterministic algorithms on; evaluation leaves the CUDA random stream
(R3's masks in training) where it found it; bf16 autocast and channels_last train and evaluate; a
stage runs as a Tune trial holding one GPU; the denoise and evaluate jobs run on the device.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from tests.files import study_args

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from orchestrator.data.sources import index_data
    from orchestrator.study.catalogue import load_profile
    from orchestrator.study.plan import LocalData

    cache = tmp_path_factory.mktemp("data")
    study = load_profile("tiny", [f"data.cache_dir={cache}"])
    data = index_data(study.data)
    return cache, data, LocalData.of(data)


def _study(cache, *extra):
    from orchestrator.study.catalogue import load_profile

    return load_profile("tiny", [f"data.cache_dir={cache}", 'ablations=["apbsn"]', *extra])


class Interrupt(Exception):
    pass


def test_resume_on_cuda_is_bit_identical(tiny, tmp_path, monkeypatch):
    from orchestrator.study.plan import plan, run_local

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        cache, data, local = tiny
        study = _study(cache, "train.apbsn.steps=4", "train.apbsn.checkpoint_every=2")
        straight = run_local(study, plan(study, data.train, store=tmp_path / "a"), local, progress=False)

        def stop(name, step, rec):
            if step == 3:  # after the checkpoint at step 2
                raise Interrupt

        plans = plan(study, data.train, store=tmp_path / "b")
        with pytest.raises(Interrupt):
            run_local(study, plans, local, progress=False, on_step=stop)
        resumed = run_local(study, plan(study, data.train, store=tmp_path / "b"), local, progress=False)
        a = torch.load(straight["apbsn"]["bsn"].path, weights_only=True)["model"]
        b = torch.load(resumed["apbsn"]["bsn"].path, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    finally:
        torch.use_deterministic_algorithms(False)


def test_evaluation_leaves_the_cuda_random_stream_alone(tiny):
    from models.registry import create_model
    from orchestrator.train.evaluation import evaluate

    _, data, _ = tiny
    source = data.evals[0]
    model = create_model("apbsn", bsn_kwargs={"base_ch": 16, "num_module": 2}, r3_t=1).cuda().eval()
    torch.cuda.manual_seed(5)
    before = torch.cuda.get_rng_state()
    evaluate(model, list(source.noisy), list(source.clean), blocks=2)
    assert torch.equal(torch.cuda.get_rng_state(), before)


@pytest.mark.parametrize("extra", [["train.apbsn.precision=bf16"], ["train.apbsn.channels_last=true"]])
def test_bf16_and_channels_last_train_and_evaluate_on_cuda(tiny, tmp_path, extra):
    from orchestrator.study.plan import plan, run_local

    cache, data, local = tiny
    study = _study(cache, "train.apbsn.eval_every=2", *extra)
    done = run_local(study, plan(study, data.train, store=tmp_path), local, progress=False)
    history = (done["apbsn"]["bsn"].path / "history.jsonl").read_text().splitlines()
    assert all(np.isfinite(json.loads(line)["loss"]) for line in history)
    assert any("psnr" in k for line in history for k in json.loads(line))


def test_a_stage_holds_a_gpu_as_a_tune_trial_and_the_tools_run_on_it(tiny, tmp_path, capsys):
    from jobs import ablations, denoise, evaluate
    from orchestrator.data.images import read_image, write_image

    cache, data, _ = tiny
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    sets = [f"data.cache_dir={cache}", "trial.gpu=1"]
    assert ablations.main(study_args(tmp_path / "runs", uri, sets=sets)) == 0
    rows = list(csv.DictReader((tmp_path / "runs" / "results.csv").open()))
    assert any(r["ablation"] == "apbsn" and r["status"] == "finished" for r in rows)
    (model,) = (tmp_path / "runs" / "stages").glob("bsn-*/model.pt")
    folder = tmp_path / "photos"
    write_image(folder / "a.png", np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert denoise.main([str(folder), "--checkpoint", str(model), "--device", "cuda", "--out", str(out)]) == 0
    assert read_image(out / "a.png").shape == (70, 90, 3)
    (root,) = cache.glob("synthetic-*")
    ev = ["--checkpoint", str(model), "--data", str(root), "--no-tracking", "--gpus-per-worker", "1"]
    assert evaluate.main([*ev, "--out", str(tmp_path / "ev")]) == 0
