"""The ``real`` profile on real camera noise: a few steps of every family on a folder of real JPEG
photos with no clean image (four PolyU crops), scored on their pairs; the blind region measured
on the photos first; the table with its reference rows, flags and paired differences from the best
reference; a rerun that trains and scores nothing."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from jobs import ablations
from models import masks

pytestmark = [pytest.mark.ray]

POLYU = Path(__file__).resolve().parents[1] / "data" / "polyu"

# the real profile's recipe, a few steps long; its networks, prior and references as they are
FEW_STEPS = [
    "train.ssid.steps=3",
    "train.ssid.patch=32",
    "train.lgbpn.steps=3",
    "train.lgbpn.patch=60",
    "train.apbsn.steps=2",
    "train.apbsn.patch=60",
    "data.pairs.block=256",  # 16 blocks of 256x256, four images: an interval
    "eval.cost_blocks=1",
    "eval.samples=1",
    "ray.address=local",  # a Ray of its own (tests/conftest.py's OWN_RAY), stopped when the job ends
]


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_real_profile_trains_on_noisy_jpegs_alone_and_is_scored_on_their_pairs(tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(POLYU / "noisy", photos)  # the noisy shots alone: no clean image on disk
    out, cache = tmp_path / "runs", tmp_path / "cache"
    args = ["--profile", "real", "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    args += ["--train-data", f"folder:{photos}", "--eval-data", f"polyu=pairs:{POLYU}"]
    sets = [*FEW_STEPS, f"data.cache_dir={cache}"]
    args += [a for s in sets for a in ("--set", s)]
    assert ablations.main(args) == 0
    printed = capsys.readouterr().out

    # the prior: measured on the noisy photos, handed to each family its own way
    assert "[correlation] 4 images: 0 already in" in printed and "[prior] blind region:" in printed
    blind, meta = masks.load(out / "prior" / "mask.npz")
    assert meta["statistic"] == "residual" and blind[blind.shape[0] // 2].sum() >= 3  # JPEG noise
    r = min(masks.chebyshev_radius(blind), 4)
    configs = [p.read_text() for p in (out / "stages").glob("*/config.yaml")]
    assert sum(f"blindspot: {2 * r + 1}" in c for c in configs) == 1  # the BNN SSID and S-2 share
    assert sum(f"pd_train: {r + 1}" in c for c in configs) == 1  # AP-BSN
    assert sum("blind:" in c for c in configs) == 1  # LG-BPN: the region itself

    rows = _rows(out / "results.csv")
    refs = {r["ablation"]: r for r in rows if r["family"] == "reference"}
    models = {r["ablation"]: r for r in rows if r["family"] != "reference"}
    assert list(refs) == ["noisy input", "nlm", "bm3d"] and set(models) == {"ssid", "S-2", "lgbpn", "apbsn"}
    best = max(refs, key=lambda m: float(refs[m]["psnr"]))
    for name, row in models.items():
        assert row["eval_source"] == "polyu" and row["blocks"] == "16" and row["status"] == "finished"
        assert row["best_reference"] == best
        d, low, high = (
            float(row[k]) for k in ("delta_vs_best_reference", "delta_ref_ci_low", "delta_ref_ci_high")
        )
        assert low <= d <= high
        assert d == pytest.approx(float(row["psnr"]) - float(refs[best]["psnr"]), abs=1e-9)
        below = [m for m in refs if float(row["psnr"]) < float(refs[m]["psnr"])]
        if "noisy input" in below:
            assert row["flag"] == "below noisy input", name
        elif below:
            assert row["flag"] == "below " + max(below, key=lambda m: float(refs[m]["psnr"])), name
        else:
            assert row["flag"] == "", name
    assert refs[best]["delta_vs_best_reference"] == ""  # the best reference is not compared with itself
    table = (out / "results.md").read_text()
    assert "ΔPSNR vs best reference [95% CI]" in table
    (best_line,) = [line for line in table.splitlines() if line.startswith(f"| {best} |")]
    assert f"| {best}: " not in best_line  # its own row leaves the column empty
    trained = [line for line in table.splitlines() if line.startswith(("| ssid |", "| lgbpn |"))]
    assert len(trained) == 2 and all(f"| {best}: " in line for line in trained)

    # references are cached by source and settings where every later job finds them
    cached = list((cache / "references").glob("polyu-*/ref-bm3d-*.npz"))
    assert len(cached) == 1

    # the same command again: nothing to train, nothing to score
    assert ablations.main(args) == 0
    printed = capsys.readouterr().out
    assert "trained 0 stage(s), reused 7" in printed and "[score" not in printed
    again = _rows(out / "results.csv")
    np.testing.assert_allclose([float(r["psnr"]) for r in again], [float(r["psnr"]) for r in rows])
