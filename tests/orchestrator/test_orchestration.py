"""The main job on real Ray Tune, Ray Data and an MLflow sqlite store: stage graph order, patch
shards, reuse within and across jobs, MLflow's parent and child runs, failures, resources."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from jobs import ablations
from orchestrator.data.files import read_png
from orchestrator.data.shards import TileSet, build_shards, tile_origins
from orchestrator.data.sidd import index_sidd
from orchestrator.data.sources import index_training
from orchestrator.schema import DataConfig
from orchestrator.study.graph import StageGraphSearcher, chain_lengths
from orchestrator.tracking import STAGE_DONE, STAGE_KEY

pytestmark = [pytest.mark.ray]


def _run(tmp: Path, ablation_names: str, *extra: str) -> int:
    args = ["--profile", "tiny", "--ablations", ablation_names, "--out", str(tmp / "runs")]
    args += ["--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    sets = [f"data.cache_dir={tmp / 'data'}", *extra]
    return ablations.main([*args, *(a for s in sets for a in ("--set", s))])


def _runs(tmp: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ablations-tiny")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_searcher_releases_stages_after_their_upstream():
    deps = {
        "bnn": set(),
        "lan": {"bnn"},
        "unet": {"bnn", "lan"},
        "bsn": set(),
        "after_bad": {"bad"},
        "bad": set(),
    }
    cost = {"bnn": 10, "lan": 1, "unet": 1, "bsn": 5, "bad": 1, "after_bad": 1}
    lengths = chain_lengths(deps, cost)
    assert lengths["bnn"] == 12 and lengths["bsn"] == 5
    s = StageGraphSearcher(deps, lengths)
    first = [s.suggest(f"t{i}") for i in range(3)]
    assert [c["key"] for c in first] == ["bnn", "bsn", "bad"]  # longest chain first
    assert s.suggest("t3") is None  # the rest wait on running stages
    s.on_trial_complete("t2", error=True)
    s.on_trial_complete("t0", result={"stage_done": 1})
    assert s.suggest("t4") == {"key": "lan"}
    s.on_trial_complete("t4", result={"loss": 1.0})  # stopped early: no stage_done
    s.on_trial_complete("t1", result={"stage_done": 1})
    assert s.suggest("t5") == s.FINISHED  # unet and after_bad can never run
    assert s.done == {"bnn", "bsn"} and s.stopped == {"bad", "lan"}


def test_patch_shards_hold_every_tile(ray_local, synthetic_tree, tmp_path):
    assert tile_origins(100, tile=40, stride=30) == [0, 30, 60]
    assert tile_origins(512, tile=512, stride=384) == [0] and tile_origins(30, tile=40, stride=30) == [0]
    index = index_sidd(synthetic_tree)
    items = index_training(DataConfig(root=str(synthetic_tree))).items
    folder = build_shards(items, tmp_path / "s", tile=64, stride=48, progress=False)
    tiles = TileSet(folder, cache_bytes=64 * 64 * 3 * 2)  # a cache of two tiles: reads from disk
    img = read_png(index.pairs[1].noisy_path)  # 96 x 128: 2 x 3 tiles
    per_image = len(tile_origins(96, tile=64, stride=48)) * len(tile_origins(128, tile=64, stride=48))
    assert len(tiles) == per_image * len(index.pairs)
    for i, (y, x) in enumerate((y, x) for y in (0, 32) for x in (0, 48, 64)):
        assert np.array_equal(tiles[per_image + i], img[y : y + 64, x : x + 64])
    assert tiles.shapes[0] == (64, 64) and "tile 0" in tiles.names[0]
    mtime = (folder / "manifest.json").stat().st_mtime_ns
    build_shards(items, folder, tile=64, stride=48, progress=False)  # complete: not cut again
    assert (folder / "manifest.json").stat().st_mtime_ns == mtime


def test_stages_are_reused_within_and_across_jobs(ray_local, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cr3t-t0ken")  # must never reach a param
    assert _run(tmp_path, "S-2") == 0
    printed = capsys.readouterr().out
    assert "trained 3 stage(s), reused 0" in printed
    client, runs = _runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("denoise.kind") == "ablation"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [p.info.run_name for p in parents] == ["S-2"] and len(children) == 3
    refs = [r for r in runs if r.data.tags.get("denoise.kind") == "reference"]
    assert sorted(r.info.run_name for r in refs) == ["nlm", "noisy input"]  # the tiny profile's
    assert parents[0].data.metrics["psnr"] > 0 and parents[0].info.status == "FINISHED"
    unet = [c for c in children if c.data.tags["denoise.stage"] == "unet"][0]
    assert parents[0].data.tags["denoise.final_run"] == unet.info.run_id
    assert unet.data.metrics["val_psnr"] == parents[0].data.metrics["psnr"]  # scored once, logged twice
    for child in children:
        assert child.data.tags[STAGE_DONE] == "true" and child.info.status == "FINISHED"
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"model.pt", "config.yaml", "checkpoints", "history.jsonl"} <= names
        assert ("samples" in names) == (child is unet)  # the final stage's outputs on the grid's blocks
        ckpts = [a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")]
        assert ckpts == ["checkpoints/step_000000002.pt", "checkpoints/step_000000004.pt"]
        history = client.get_metric_history(child.info.run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]
        assert child.data.params["train.steps"] == "6"
    for run in runs:
        assert not any("s3cr3t" in v for v in run.data.params.values())
    # The same job again trains nothing and adds no run.
    assert _run(tmp_path, "S-2") == 0
    assert "trained 0 stage(s), reused 3" in capsys.readouterr().out
    assert len(_runs(tmp_path)[1]) == 6
    # Adding SSID trains only its own LAN and UNet; its BNN is S-2's.
    assert _run(tmp_path, "S-2,ssid") == 0
    printed = capsys.readouterr().out
    assert "trained 2 stage(s), reused 3" in printed and "ssid.lan" not in printed.split("reused")[0]
    _, runs = _runs(tmp_path)
    bnn = [r for r in runs if r.data.tags.get("denoise.stage") == "bnn"]
    trained = [r for r in bnn if r.data.tags.get(STAGE_DONE) == "true"]
    assert len(bnn) == 2 and len(trained) == 1  # the BNN trained once, used by both
    (reused,) = [r for r in bnn if r is not trained[0]]
    assert reused.data.tags["denoise.reused_from"] == trained[0].info.run_id
    assert reused.data.tags[STAGE_KEY] == trained[0].data.tags[STAGE_KEY]
    rows = (tmp_path / "runs" / "results.csv").read_text().splitlines()
    (ssid,) = [r for r in rows if r.startswith("ssid,")]
    assert ssid.startswith("ssid,ssid,unet,finished,") and ",bnn," in ssid
    assert (tmp_path / "runs" / "comparison_grid.png").is_file()
    # Each attempt records where it started; none resumed here.
    attempts = [
        json.loads(x) for f in (tmp_path / "runs" / "stages").glob("*/attempts.jsonl") for x in f.open()
    ]
    assert len(attempts) == 5 and all(a["from_step"] == 0 for a in attempts)


def test_a_failing_stage_stops_only_what_depends_on_it(ray_local, tmp_path, capsys):
    # SSID's BNN asks for crops larger than the images: its trial fails, its LAN and UNet never
    # start, and S-2's own LAN (which needs no BNN) still finishes and is kept.
    code = _run(
        tmp_path, "ssid,S-2", "overrides.ssid.bnn.train.patch=200", "overrides.S-2.bnn.train.patch=200"
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "FAILED ssid.bnn" in err and "train.patch=200 is larger than" in err
    assert "upstream ['ssid.bnn'] did not finish" in err
    finished = list((tmp_path / "runs" / "stages").glob("lan-*/model.pt"))
    assert len(finished) == 1  # S-2's LAN
    _, runs = _runs(tmp_path)
    parents = {r.info.run_name: r.info.status for r in runs if r.data.tags.get("denoise.kind") == "ablation"}
    assert parents == {"ssid": "FAILED", "S-2": "FAILED"}  # S-2's UNet needs the BNN too
    failed_bnn = [r for r in runs if r.data.tags.get("denoise.stage") == "bnn" and r.info.status == "FAILED"]
    assert failed_bnn and "larger than" in failed_bnn[0].data.tags["denoise.error"]


def test_unsatisfiable_resources_stop_before_anything_runs(ray_local, tmp_path, capsys):
    assert _run(tmp_path, "S-2", "trial.gpu=1") == 1
    err = capsys.readouterr().err
    assert "no node of the cluster can run a stage" in err and "'GPU': 1.0" in err
    assert not list((tmp_path / "runs").glob("stages/*/checkpoints"))


def test_resume_continues_the_saved_study(ray_local, tmp_path, capsys):
    assert _run(tmp_path, "apbsn") == 0
    capsys.readouterr()
    out = tmp_path / "runs"
    code = ablations.main(
        ["--resume", "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    assert code == 0
    assert "trained 0 stage(s), reused 1" in capsys.readouterr().out
    assert ablations.main(["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "no study to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_the_whole_catalogue_from_the_working_folder(ray_local, tmp_path, monkeypatch, capsys):
    """``python jobs/ablations.py`` as a newcomer runs it (synthetic data, MLflow in the working
    folder), on the tiny profile: every catalogue entry and the reference rows, then again with
    nothing to train. What the smoke profile's numbers show is tested below."""
    monkeypatch.chdir(tmp_path)
    assert ablations.main(["--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    rows = _csv(tmp_path / "runs" / "results.csv")
    table = {r["ablation"]: r for r in rows if r["family"] != "reference"}
    assert set(table) == {"lgbpn", "L-1", "L-2", "L-3", "L-4", "L-5", "ssid", "S-1", "S-2", "apbsn"}
    assert [r["ablation"] for r in rows if r["family"] == "reference"] == ["noisy input", "nlm"]
    for name, row in table.items():
        for m in ("psnr", "ssim", "ssim_uniform7"):
            assert math.isfinite(float(row[m])), (name, m, row[m])
        assert row["blocks"] == "2" and row["status"] == "finished"
        assert row["psnr_ci_low"] == "" and row["seeds"] == "1"  # one validation image: no interval
        original = {"ssid": "ssid", "lgbpn": "lgbpn", "apbsn": "apbsn"}[row["family"]]
        assert (row["delta_psnr_vs_original"] == "") == (name == original)
    assert "| S-2 |" in printed and "trained 15 stage(s), reused 0" in printed
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ablations-tiny")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("denoise.kind") == "ablation"}
    assert set(parents) == set(table)
    assert all("psnr" in p.data.metrics and "ssim" in p.data.metrics for p in parents.values())
    bnn_done = [r for r in runs if r.data.tags.get("denoise.stage") == "bnn" and r.data.tags.get(STAGE_DONE)]
    assert len({r.data.tags[STAGE_KEY] for r in bnn_done}) == len(bnn_done) == 2  # SSID/S-2's once, S-1's
    trained = [r for r in runs if r.data.tags.get(STAGE_DONE) == "true"]
    assert len(trained) == 15
    for r in trained:  # the tiny SSID's stages run past a checkpoint (AP-BSN's 2 steps do not)
        if r.info.run_name in ("bnn", "lan", "unet"):
            assert client.list_artifacts(r.info.run_id, "checkpoints"), r.info.run_name
    # Running it again trains nothing.
    assert ablations.main(["--profile", "tiny"]) == 0
    assert "trained 0 stage(s), reused 15" in capsys.readouterr().out


@pytest.mark.slow
def test_smoke_ssid_beats_its_ablation_without_the_lan(ray_local, tmp_path, capsys):
    """On the smoke profile's data, SSID's LAN and adaptive loss are worth their stages: S-2 (no
    LAN) is well below SSID, in PSNR and in SSIM, with the paired difference in the table."""
    args = ["--ablations", "ssid,S-2", "--out", str(tmp_path / "runs"), "--no-tracking"]
    sets = [f"data.cache_dir={tmp_path / 'data'}", "train.ssid.steps=200", 'eval.references=["noisy input"]']
    assert ablations.main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    capsys.readouterr()
    table = {r["ablation"]: r for r in _csv(tmp_path / "runs" / "results.csv")}
    ssid, s2, noisy = table["ssid"], table["S-2"], table["noisy input"]
    assert float(ssid["psnr"]) > float(s2["psnr"]) + 0.5 and float(ssid["ssim"]) > float(s2["ssim"]) + 0.1
    assert float(s2["delta_psnr_vs_original"]) == pytest.approx(float(s2["psnr"]) - float(ssid["psnr"]))
    assert float(ssid["psnr"]) > float(noisy["psnr"]) + 2 and ssid["flag"] == ""
    assert float(ssid["psnr_ci_low"]) < float(ssid["psnr"]) < float(ssid["psnr_ci_high"])


@pytest.mark.slow
def test_seeds_train_distinct_keys_beside_the_reference_rows(ray_local, tmp_path, capsys):
    """``--seeds 3`` under ``smoke``: three stage keys, a rerun trains none; the table has the
    mean and std over seeds and the reference rows with their times; MLflow holds the seeds' runs
    under the ablation's parent."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--ablations", "apbsn", "--seeds", "3", "--out", str(tmp_path / "runs"), "--tracking-uri", uri]
    args += ["--set", f"data.cache_dir={tmp_path / 'data'}", "--set", "eval.cost_blocks=1"]
    assert ablations.main(args) == 0
    printed = capsys.readouterr().out
    assert "trained 3 stage(s), reused 0" in printed and "| bm3d |" in printed
    assert len(list((tmp_path / "runs" / "stages").glob("bsn-*/model.pt"))) == 3
    rows = _csv(tmp_path / "runs" / "results.csv")
    refs = {r["ablation"]: r for r in rows if r["family"] == "reference"}
    assert list(refs) == ["noisy input", "nlm", "bm3d"]
    assert float(refs["bm3d"]["eval_s"]) > 0 and float(refs["nlm"]["eval_s"]) > 0
    (row,) = [r for r in rows if r["ablation"] == "apbsn"]
    assert row["seeds"] == "3" and float(row["psnr_std"]) > 0 and len(row["step"].split("/")) == 3
    assert float(row["psnr_ci_low"]) < float(row["psnr"]) < float(row["psnr_ci_high"])
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ablations-smoke").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("denoise.kind") == "ablation"]
    seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["denoise.seed"] for r in seeds) == ["0", "1", "2"]
    stages = [r for r in runs if r.data.tags.get("denoise.kind") == "stage"]
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} == {r.info.run_id for r in seeds}
    assert len({r.data.tags[STAGE_KEY] for r in stages}) == 3
    assert parent.data.metrics["psnr_std"] == pytest.approx(float(row["psnr_std"]))
    assert ablations.main(args) == 0
    assert "trained 0 stage(s), reused 3" in capsys.readouterr().out


def _csv(path: Path) -> list[dict]:
    import csv

    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_tracking_through_a_real_mlflow_server(ray_local, mlflow_server, tmp_path, capsys):
    """Runs, metrics and artifacts reach a tracking server over HTTP; artifacts are proxied into
    its ``--artifacts-destination``, not written by the trials to their own disks."""
    args = ["--profile", "tiny", "--ablations", "apbsn", "--out", str(tmp_path / "runs")]
    args += ["--tracking-uri", mlflow_server.url]
    sets = [f"data.cache_dir={tmp_path / 'data'}", "train.apbsn.checkpoint_every=1"]
    assert ablations.main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    assert f"open {mlflow_server.url}" in capsys.readouterr().out
    client = MlflowClient(mlflow_server.url)
    exp = client.get_experiment_by_name("ablations-tiny")
    runs = client.search_runs([exp.experiment_id])
    (child,) = [r for r in runs if r.data.tags.get(STAGE_DONE) == "true"]
    assert "checkpoints" in {a.path for a in client.list_artifacts(child.info.run_id)}
    stored = list((mlflow_server.root / "artifacts").rglob("model.pt"))
    assert len(stored) == 1 and stored[0].stat().st_size > 0


def test_finished_stages_are_found_in_mlflow_when_the_store_is_gone(ray_local, tmp_path, capsys):
    """MLflow is the stage index: with the stage folders deleted (another machine, a cleaned
    disk), the job downloads each finished stage from its run instead of training it again."""
    assert _run(tmp_path, "apbsn") == 0
    capsys.readouterr()
    shutil.rmtree(tmp_path / "runs" / "stages")
    assert _run(tmp_path, "apbsn") == 0
    out = capsys.readouterr().out
    assert "found finished in MLflow run" in out and "trained 0 stage(s), reused 1" in out
    assert len(list((tmp_path / "runs" / "stages").glob("bsn-*/model.pt"))) == 1
