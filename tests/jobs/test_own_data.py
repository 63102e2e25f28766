"""Training on the data people have: a folder of noisy photos with no clean image, DND's layout,
an array of benchmark blocks; scoring on noisy/clean pairs; the submissions written in their
layouts. Every job runs through its own ``main``."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from mlflow import MlflowClient
from scipy.io import loadmat

from jobs import ablations, denoise, evaluate
from tests import layouts
from tests.files import study_args

pytestmark = [pytest.mark.ray]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return layouts.sidd_tree(tmp_path_factory.mktemp("sidd"))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Pairs from another synthetic tree than the one trained on."""
    other = layouts.sidd_tree(tmp_path_factory.mktemp("other"), seed=11, scenes=2)
    return layouts.pairs_folder(other, tmp_path_factory.mktemp("pairs"))


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def _models(path):
    """The rows of trained models (the reference rows aside)."""
    return [r for r in _csv(path) if r["family"] != "reference"]


def test_smoke_ssid_trains_on_noisy_photos_and_is_scored_on_pairs(ray_local, tree, pairs, tmp_path, capsys):
    photos = layouts.noisy_folder(tree, tmp_path / "photos")
    assert not [f for f in photos.rglob("*") if "GT" in f.name]  # no clean image on disk
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--profile", "smoke", "--ablations", "ssid", "--out", str(tmp_path / "runs")]
    args += ["--train-data", f"folder:{photos}", "--eval-data", f"own=pairs:{pairs}", "--tracking-uri", uri]
    sets = ["train.ssid.steps=10", "data.pairs.block=32", f"data.cache_dir={tmp_path / 'data'}"]
    sets.append('eval.references=["noisy input", "nlm"]')  # bm3d is in the smoke table's own test
    assert ablations.main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    printed = capsys.readouterr().out
    assert "training data folder:" in printed and "evaluation source 'own'" in printed
    (row,) = _models(tmp_path / "runs" / "results.csv")
    assert row["eval_source"] == "own" and float(row["psnr"]) > 0 and row["blocks"] == "48"
    # no SIDD data was generated or read: the cache holds the reference rows of 'own' alone
    assert {p.name for p in (tmp_path / "data").iterdir()} == {"references"}
    assert {p.name.split("-")[0] for p in (tmp_path / "data" / "references").iterdir()} == {"own"}
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ablations-smoke").experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "ssid"]
    refs = {r.info.run_name for r in runs if r.data.tags.get("denoise.kind") == "reference"}
    assert refs == {"noisy input", "nlm"}
    assert parent.data.metrics["own_psnr"] == pytest.approx(float(row["psnr"]))
    assert "own_ssim" in parent.data.metrics and "psnr" not in parent.data.metrics
    (unet,) = [r for r in runs if r.data.tags.get("denoise.stage") == "unet"]
    assert unet.data.metrics["val_own_psnr"] == parent.data.metrics["own_psnr"]


def test_dnd_and_blocks_train_evaluate_and_submit(ray_local, tree, pairs, tmp_path, capsys):
    dnd = layouts.dnd_tree(tree, tmp_path / "dnd")
    blocks = layouts.blocks_file(tree, tmp_path / "NoisyBlocks.mat")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name, source in (("dnd", f"dnd:{dnd}"), ("blocks", f"blocks:{blocks}")):
        args = study_args(tmp_path / name, uri)
        args += ["--train-data", source, "--eval-data", f"pairs:{pairs}", "--set", "data.pairs.block=32"]
        assert ablations.main(args) == 0, name
        (row,) = _models(tmp_path / name / "results.csv")
        assert row["status"] == "finished" and row["eval_source"] == "pairs" and float(row["psnr"]) > 0
    (model,) = (tmp_path / "blocks" / "stages").glob("bsn-*/model.pt")
    # jobs/evaluate.py scores it on the pairs, as the study did.
    out = tmp_path / "ev"
    args = ["--checkpoint", str(model), "--eval-data", f"pairs:{pairs}", "--set", "data.pairs.block=32"]
    assert evaluate.main([*args, "--out", str(out), "--no-tracking"]) == 0
    assert "pairs: 48 blocks" in capsys.readouterr().out and (out / "per_block_pairs.csv").is_file()
    # jobs/denoise.py writes the submissions in their layouts.
    assert denoise.main([f"blocks:{blocks}", "--checkpoint", str(model), "--out", str(tmp_path / "sb")]) == 0
    cells = loadmat(tmp_path / "sb" / "SubmitSrgb.mat")["DenoisedBlocksSrgb"]
    assert cells.shape == (6, 2) and all(
        c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in cells.ravel()
    )
    assert denoise.main([f"dnd:{dnd}", "--checkpoint", str(model), "--out", str(tmp_path / "sd")]) == 0
    for i in (1, 2):
        crop = loadmat(tmp_path / "sd" / f"{i:04d}_02.mat")["Idenoised_crop"]
        assert crop.shape == (32, 32, 3) and crop.dtype == np.float32 and 0 <= crop.min() <= crop.max() <= 1
        bundled = loadmat(tmp_path / "sd" / "bundled" / f"{i:04d}.mat")
        assert bundled["Idenoised"].shape == (1, 2) and not bundled["israw"].any()
        assert str(bundled["eval_version"][0]) == "1.0"
    with h5py.File(dnd / "images_srgb" / "0001.mat") as f:  # the input was MATLAB v7.3, column-major
        assert f["InoisySRGB"].shape == (3, 128, 96)
    # The noisy half of a pairs source, denoised as a tree of images.
    assert denoise.main([f"pairs:{pairs}", "--checkpoint", str(model), "--out", str(tmp_path / "sp")]) == 0
    assert len(list((tmp_path / "sp" / "a").glob("*.png"))) == 4


def test_two_evaluation_sources_side_by_side_and_adding_one_retrains_nothing(
    ray_local, tree, pairs, tmp_path, capsys
):
    """The same study scored on SIDD's blocks, then on SIDD's and a pairs source: the second job
    trains nothing (evaluation sources are not in a stage's key), and the table, results.csv and
    MLflow hold one group of scores per source."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = study_args(tmp_path / "runs", uri)
    assert ablations.main([*args, "--data", str(tree)]) == 0
    assert "trained 1 stage(s), reused 0" in capsys.readouterr().out
    both = ["--eval-data", f"sidd:{tree}", "--eval-data", f"pairs:{pairs}", "--set", "data.pairs.block=32"]
    assert ablations.main([*args, "--train-data", f"sidd:{tree}", *both]) == 0
    assert "trained 0 stage(s), reused 1" in capsys.readouterr().out
    rows = _csv(tmp_path / "runs" / "results.csv")
    assert [r["eval_source"] for r in rows if r["ablation"] == "apbsn"] == ["sidd", "pairs"]
    assert {r["eval_source"] for r in rows if r["family"] == "reference"} == {"sidd", "pairs"}
    header = (tmp_path / "runs" / "results.md").read_text().splitlines()[0]
    assert "PSNR [95% CI] (sidd)" in header and "PSNR [95% CI] (pairs)" in header
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ablations-tiny").experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "apbsn"]
    by_source = {r["eval_source"]: float(r["psnr"]) for r in rows if r["ablation"] == "apbsn"}
    assert parent.data.metrics["psnr"] == pytest.approx(by_source["sidd"])  # SIDD keeps its names
    assert parent.data.metrics["pairs_psnr"] == pytest.approx(by_source["pairs"])
