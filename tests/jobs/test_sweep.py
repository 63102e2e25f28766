"""``jobs/sweep.py``: a search space over config values, run as Tune trials with the stage reuse
and MLflow tracking of the main job."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from jobs import sweep
from orchestrator.schema import SweepConfig
from orchestrator.study.catalogue import load_profile
from orchestrator.study.sweep import variants

pytestmark = [pytest.mark.ray]

# On the tiny profile: long enough for ASHA's rungs.
SMALL = [
    "train.ssid.steps=4",
    "train.apbsn.steps=6",
    "train.apbsn.checkpoint_every=3",
    "data.synthetic.val_images=2",  # a selection subset needs two images
]


def _sweep(tmp: Path, text: str) -> int:
    space = tmp / "space.yaml"
    space.write_text(text)
    args = ["--space", str(space), "--profile", "tiny", "--out", str(tmp / "runs")]
    args += ["--tracking-uri", f"sqlite:///{tmp / 'db'}"]
    sets = [f"data.cache_dir={tmp / 'data'}", *SMALL]
    return sweep.main([*args, *(a for s in sets for a in ("--set", s))])


def test_variants_follow_tunes_grid_and_random_sampling():
    base = load_profile("smoke")
    cfg = SweepConfig(
        ablations=("lgbpn",),
        samples=3,
        seed=1,
        space={"train.lgbpn.optim.lr": {"loguniform": [1e-4, 1e-2]}, "models.lgbpn.width": {"grid": [8, 16]}},
    )
    vs = variants(base, cfg)
    assert len(vs) == 6 and {v.values["models.lgbpn.width"] for v in vs} == {8, 16}
    assert all(1e-4 <= v.study.train["lgbpn"].optim.lr <= 1e-2 for v in vs)
    assert all(v.study.models["lgbpn"]["width"] == v.values["models.lgbpn.width"] for v in vs)
    assert vs[0].label.startswith("lr=") and ",width=" in vs[0].label
    assert [v.label for v in variants(base, cfg)] == [v.label for v in vs]  # seeded
    grid = SweepConfig(samples=3, space={"models.lgbpn.width": {"grid": [8, 16]}})
    assert len(variants(base, grid)) == 2  # a repeated grid point is one study


def test_sweep_shares_untouched_stages_and_tracks_each_variant(ray_local, tmp_path, capsys):
    # Two learning rates for SSID's UNet: the BNN and LAN do not depend on it and train once.
    text = "ablations: [ssid]\nspace:\n  overrides.ssid.unet.train.optim.lr: {grid: [0.001, 0.0001]}\n"
    assert _sweep(tmp_path, text) == 0
    out = capsys.readouterr().out
    assert "[sweep] 2 variant(s)" in out and "trained 4 stage(s), reused 0" in out
    assert "| ssid[lr=0.001] |" in out and "| ssid[lr=0.0001] |" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'db'}")
    exp = client.get_experiment_by_name("sweep-space")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("denoise.kind") == "ablation"]
    assert sorted(p.data.params["overrides.ssid.unet.train.optim.lr"] for p in parents) == ["0.0001", "0.001"]
    assert _sweep(tmp_path, text) == 0  # again: nothing to train
    assert "trained 0 stage(s), reused 4" in capsys.readouterr().out


def test_asha_stops_trials_early(ray_local, tmp_path, capsys):
    text = (
        "ablations: [apbsn]\nsamples: 1\nspace:\n  train.apbsn.optim.lr: {grid: [0.001, 0.1, 1.0, 10.0]}\n"
        "asha: {metric: loss, mode: min, grace_period: 1, reduction_factor: 4}\n"
    )
    assert _sweep(tmp_path, text) == 0
    printed = capsys.readouterr()
    out, err = printed.out, printed.err
    rows = (tmp_path / "runs" / "results.csv").read_text().splitlines()[1:]
    rows = [r for r in rows if r.split(",")[1] != "reference"]
    assert len(rows) == 4 and any(",finished," in r for r in rows)
    stopped = [r for r in rows if ",stopped early," in r]
    assert stopped, out  # with a reduction factor of 4, at most one in four goes on at each rung
    assert "FAILED" not in out + err and "stopped early apbsn[" in err
    assert "| stopped early |" in out and "failed" not in out.split("| ablation |")[1]
    (best,) = [line for line in out.splitlines() if line.startswith("best configuration by")]
    assert "by the selection subset (2 blocks of sidd, eval.select=4)" in best and "95% CI" not in best
