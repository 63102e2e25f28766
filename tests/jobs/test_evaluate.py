"""``jobs/evaluate.py``: every validation block scored on a Ray Data actor pool (the same numbers
as one in-process pass, however many workers), MLflow logging, and the SIDD submission file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from scipy.io import loadmat

from jobs import evaluate
from models.registry import create_model
from orchestrator.data.sidd import index_sidd, load_validation
from orchestrator.tools.load import load_denoiser
from orchestrator.train.evaluation import evaluate as evaluate_in_process

pytestmark = [pytest.mark.ray]


def _model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = create_model("ssid_unet", dim=8)
    config = {"model": {"name": "ssid_unet", "kwargs": {"dim": 8}, "mask": None}}
    path = tmp_path / "model.pt"
    torch.save(
        {
            "meta": {"format": 1, "key": "k", "name": "unet", "config": config, "step": 1},
            "model": net.state_dict(),
        },
        path,
    )
    return path


def test_distributed_evaluation_and_submission(ray_local, synthetic_tree, tmp_path, capsys):
    model_file = _model_file(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--checkpoint", str(model_file), "--data", str(synthetic_tree), "--tracking-uri", uri]
    assert evaluate.main([*common, "--out", str(tmp_path / "one"), "--workers", "1", "--benchmark"]) == 0
    assert evaluate.main([*common, "--out", str(tmp_path / "two"), "--workers", "2", "--batch", "3"]) == 0
    printed = capsys.readouterr().out
    assert "8 blocks: PSNR" in printed and "benchmark submission" in printed
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    noisy, clean = load_validation(index_sidd(synthetic_tree))
    torch.manual_seed(0)
    net = create_model("ssid_unet", dim=8)
    net.load_state_dict(torch.load(model_file, weights_only=True)["model"])
    direct = evaluate_in_process(net, noisy, clean, batch=8).metrics
    for k in ("val_psnr", "val_ssim", "val_ssim_uniform7", "val_blocks"):
        assert one[k] == pytest.approx(direct[k], abs=1e-9) and two[k] == pytest.approx(direct[k], abs=1e-9)
    assert len((tmp_path / "one" / "per_block.csv").read_text().splitlines()) == 9
    # A subset is named as the training loop names it, never as the result over every block.
    assert evaluate.main([*common, "--out", str(tmp_path / "some"), "--blocks", "3", "--no-tracking"]) == 0
    some = json.loads((tmp_path / "some" / "metrics.json").read_text())
    assert some["val3_blocks"] == 3 and "val_psnr" not in some
    # The submission: the variable, shape and dtype the SIDD server reads.
    mat = loadmat(tmp_path / "one" / "SubmitSrgb.mat")
    cells = mat["DenoisedBlocksSrgb"]
    assert cells.dtype == object and cells.shape == (2, 3)
    assert all(c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in cells.ravel())
    assert mat["TimeMPSrgb"].shape == (1, 1) and float(mat["TimeMPSrgb"][0, 0]) > 0
    assert "ssid_unet" in str(mat["OptionalData"]["MethodName"][0, 0])
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("evaluations")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and all(r.data.metrics["val_blocks"] == 8 for r in runs)
    assert {a.path for a in client.list_artifacts(runs[-1].info.run_id)} >= {
        "per_block.csv",
        "SubmitSrgb.mat",
    }


def test_unknown_sources_fail_clearly(ray_local, synthetic_tree, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert evaluate.main(["--ablation", "ssid", "--tracking-uri", uri, "--data", str(synthetic_tree)]) == 3
    assert "no finished run of it in any experiment" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", str(tmp_path / "none.pt"), "--data", str(synthetic_tree)]) == 3
    assert "no such file" in capsys.readouterr().err


def test_r3_models_score_the_same_in_training_and_in_the_evaluation_job(ray_local, tmp_path, capsys):
    """AP-BSN and LG-BPN draw R3's masks at inference: the PSNR training's final evaluation logs is
    the evaluation job's on the same ``model.pt``, with one worker and with two (one evaluation
    path, randomness seeded per block)."""
    from jobs import ablations

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--profile", "tiny", "--ablations", "apbsn,lgbpn", "--out", str(tmp_path / "runs")]
    args += ["--tracking-uri", uri, "--set", f"data.cache_dir={tmp_path / 'data'}"]
    args += ["--set", "data.synthetic.val_blocks=5", "--set", "models.lgbpn.r3_t=2"]
    assert ablations.main(args) == 0
    (data_root,) = (tmp_path / "data").glob("synthetic-*")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ablations-tiny")
    logged = {
        r.data.tags["denoise.stage_key"]: r.data.metrics["val_psnr"]
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("denoise.stage_done") == "true"
    }
    models = sorted((tmp_path / "runs" / "stages").glob("bsn-*/model.pt"))
    assert len(models) == 2 and len(logged) == 2
    for model in models:
        meta = torch.load(model, weights_only=True)["meta"]
        assert load_denoiser(str(model)).model.random_inference  # R3 at inference
        for workers in ("1", "2"):
            out = tmp_path / f"eval-{model.parent.name}-{workers}"
            common = [
                "--checkpoint",
                str(model),
                "--data",
                str(data_root),
                "--no-tracking",
                "--out",
                str(out),
            ]
            assert evaluate.main([*common, "--workers", workers, "--batch", "3"]) == 0
            scored = json.loads((out / "metrics.json").read_text())
            assert scored["val_psnr"] == logged[meta["key"]]
