"""The Ray Data correlation job end to end: real local Ray, real PNGs in SIDD's layout, real MLflow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs import correlation as job
from models import masks
from orchestrator.correlation.masks import resolve_mask
from orchestrator.correlation.stats import correlation_sums, noise_of
from orchestrator.data.files import write_png
from orchestrator.data.sidd import index_sidd, load_pair
from orchestrator.schema import MaskConfig, TrackingConfig

pytestmark = pytest.mark.ray


def _direct(root: Path, radius: int, statistic: str, skip: set[str] = frozenset()):
    pooled = None
    for rec in index_sidd(root, strict=False).pairs:
        if rec.key in skip:
            continue
        s = correlation_sums(noise_of(*load_pair(rec)), radius, statistic=statistic)
        pooled = s if pooled is None else pooled + s
    return pooled


def _run(tree: Path, out: Path, *extra: str) -> int:
    return job.main(
        ["--data", str(tree), "--out", str(out), "--tracking-uri", f"sqlite:///{out.parent}/ml.db", *extra]
    )


def test_job_writes_exact_maps_parquet_figures_mask_and_mlflow(ray_local, synthetic_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(synthetic_tree, out) == 0
    printed = capsys.readouterr().out
    assert "[correlation] 10/10 (100%)" in printed and "logged to MLflow" in printed

    direct = _direct(synthetic_tree, 10, "rgb_pearson")
    for name, want in (
        ("pooled_sum", direct.sum),
        ("pooled_count", direct.count),
        ("pooled_map", direct.map()),
    ):
        got = np.load(out / f"{name}.npy")
        assert got.dtype == np.float64 and got.shape == (21, 21)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.array_equal(np.load(out / "pooled_count.npy"), direct.count)

    table = pq.read_table(out / "per_image.parquet")
    assert table.num_rows == 10
    assert {"key", "scene_name", "camera", "iso", "status", "reason", "sum", "count", "map"} <= set(
        table.column_names
    )
    rows = table.to_pylist()
    assert {r["status"] for r in rows} == {"ok"}
    one = next(r for r in rows if r["key"].endswith("_010"))
    rec = next(p for p in index_sidd(synthetic_tree).pairs if p.key == one["key"])
    np.testing.assert_allclose(one["map"], correlation_sums(noise_of(*load_pair(rec)), 10).map().ravel())
    assert one["camera"] == rec.info.camera and one["iso"] == rec.info.iso

    for fig in (
        "pooled_map_log",
        "offset_distributions",
        "outliers",
        "by_camera",
        "by_iso",
        "versus_reference",
    ):
        with Image.open(out / "figures" / f"{fig}.png") as im:
            assert im.format == "PNG" and min(im.size) > 100
    blind, meta = masks.load(out / "mask.npz")
    assert np.array_equal(blind, masks.from_correlation(direct.map(), threshold=0.02))
    assert meta["statistic"] == "rgb_pearson"

    summary = json.loads((out / "summary.json").read_text())
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/ml.db")
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["radius"] == "10" and "profile_d1" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"pooled_map.npy", "per_image.parquet", "mask.npz", "figures"} <= arts
    assert "figures/pooled_map_log.png" in {a.path for a in client.list_artifacts(run.info.run_id, "figures")}

    # mask: from_correlation, from the folder, the map with another threshold, and the MLflow run
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path}/ml.db")
    got, _ = resolve_mask(MaskConfig(kind="from_correlation", source=str(out)))
    assert np.array_equal(got, blind)
    got, meta = resolve_mask(
        MaskConfig(kind="from_correlation", source=str(out / "pooled_map.npy"), threshold=0.3)
    )
    assert (
        np.array_equal(got, masks.from_correlation(direct.map(), threshold=0.3)) and meta["threshold"] == 0.3
    )
    got, meta = resolve_mask(
        MaskConfig(kind="from_correlation", source=f"runs:/{run.info.run_id}"), tracking=tracking
    )
    assert np.array_equal(got, blind) and meta["run"].endswith(run.info.run_id)
    with pytest.raises(ValueError, match="not found"):
        resolve_mask(MaskConfig(kind="from_correlation", source="runs:/" + "0" * 32), tracking=tracking)


def _break(tree: Path) -> dict[str, str]:
    """Damage a copy of the tree: an unpaired file, a size mismatch, zero noise, an undecodable PNG."""
    pairs = index_sidd(tree).pairs
    unpaired, mismatch, zero, corrupt = pairs[0], pairs[2], pairs[4], pairs[6]
    Path(unpaired.clean_path).unlink()
    write_png(mismatch.clean_path, np.zeros((mismatch.height - 2, mismatch.width, 3), np.uint8))
    shutil.copy(zero.clean_path, zero.noisy_path)
    data = Path(corrupt.noisy_path).read_bytes()
    Path(corrupt.noisy_path).write_bytes(data[: len(data) // 2])  # caught only when decoded
    return {"unpaired": unpaired.key, "mismatch": mismatch.key, "zero": zero.key, "corrupt": corrupt.key}


def test_bad_input_is_recorded_and_the_other_maps_are_kept(ray_local, synthetic_tree, tmp_path, capsys):
    tree = tmp_path / "tree"
    shutil.copytree(synthetic_tree, tree)
    broken = _break(tree)
    out = tmp_path / "out"
    # Image checks off: the truncated PNG reaches a worker, which must record it, not crash the job.
    assert _run(tree, out, "--no-tracking", "--set", "data.check_images=false") == 0
    printed = capsys.readouterr().out
    rows = {r["key"]: r for r in pq.read_table(out / "per_image.parquet").to_pylist()}
    assert rows[broken["zero"]]["status"] == "nan" and "noise is zero" in rows[broken["zero"]]["reason"]
    assert np.isnan(rows[broken["zero"]]["map"]).all()
    bad = rows[broken["corrupt"]]
    assert bad["status"] == "error" and ("corrupt" in bad["reason"] or "truncated" in bad["reason"])
    assert np.isnan(bad["map"]).all() and not np.any(bad["count"])
    mismatch = rows[broken["mismatch"]]  # not caught at indexing without image checks
    assert mismatch["status"] == "error" and "shape mismatch" in mismatch["reason"]
    assert broken["unpaired"] not in rows and len(rows) == 9
    assert "has no GT partner" in (out / "skipped_files.csv").read_text()
    assert f"error: {broken['corrupt']}" in printed and f"nan: {broken['zero']}" in printed
    direct = _direct(tree, 10, "rgb_pearson", skip={broken["corrupt"], broken["mismatch"]})
    np.testing.assert_allclose(np.load(out / "pooled_sum.npy"), direct.sum, atol=1e-9)

    # With image checks (the default) the mismatch and the truncated PNG are left out at indexing.
    assert _run(tree, tmp_path / "checked", "--no-tracking") == 0
    skipped = (tmp_path / "checked" / "skipped_files.csv").read_text()
    assert "has no GT partner" in skipped and "shape mismatch" in skipped and "truncated" in skipped
    assert json.loads((tmp_path / "checked" / "summary.json").read_text())["pairs"] == 7
    capsys.readouterr()

    # --strict stops before any work and names the bad files.
    assert _run(tree, tmp_path / "strict", "--no-tracking", "--strict") == 2
    err = capsys.readouterr().err
    assert "has no GT partner" in err and Path(broken["unpaired"]).parts[0] in err
    assert not (tmp_path / "strict" / "per_image.parquet").exists()


def test_rerun_computes_only_the_missing_pairs(ray_local, synthetic_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(synthetic_tree, out, "--no-tracking", "--max-pairs", "4", "--radius", "3") == 0
    capsys.readouterr()
    # A run interrupted after some pairs leaves them in parts/; fake that by moving the results there.
    (out / "parts").mkdir()
    (out / "per_image.parquet").rename(out / "parts" / "part-000000-1.parquet")
    assert _run(synthetic_tree, out, "--no-tracking", "--radius", "3") == 0
    assert "10 pairs: 4 already in" in capsys.readouterr().out
    direct = _direct(synthetic_tree, 3, "rgb_pearson")
    np.testing.assert_allclose(np.load(out / "pooled_sum.npy"), direct.sum, atol=1e-9)
    assert not (out / "parts").exists()
    # Results for another radius are not silently mixed in.
    assert _run(synthetic_tree, out, "--no-tracking", "--radius", "4") == 1
    assert "holds results for" in capsys.readouterr().err


def test_pearson_statistic(ray_local, synthetic_tree, tmp_path):
    out = tmp_path / "out"
    assert _run(synthetic_tree, out, "--no-tracking", "--statistic", "pearson", "--radius", "2") == 0
    direct = _direct(synthetic_tree, 2, "pearson")
    np.testing.assert_allclose(np.load(out / "pooled_map.npy"), direct.map(), atol=1e-12)
    np.testing.assert_allclose(
        np.load(out / "pooled_map_per_channel.npy"), direct.map(per_channel=True), atol=1e-12
    )
    assert np.load(out / "pooled_count.npy").shape == (5, 5)


def test_config_errors_come_before_any_work(tmp_path, capsys):
    assert job.main(["--out", str(tmp_path / "o"), "--set", "figures.offsets=[[0, 11]]"]) == 1
    assert "offset (0, 11) lies outside the radius-10 map" in capsys.readouterr().err
    assert job.main(["--statistic", "pearson", "--set", "radius=-1", "--print-config"]) == 2
    assert "config key 'radius': must be >= 1, got -1" in capsys.readouterr().err
    assert job.main(["--statistic", "pearson", "--set", "radius=3", "--print-config"]) == 0
    assert "radius: 3" in capsys.readouterr().out
    assert job.main(["--out", "2024", "--data", "yes", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "out: '2024'" in printed and "root: 'yes'" in printed  # flag values stay strings
    assert job.main(["--set", "nope=1"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_job_runs_on_a_pairs_source(ray_local, synthetic_tree, tmp_path, capsys):
    """Any source with clean references is measured: the SIDD pairs copied into a ``pairs`` source
    give exactly the map of the SIDD tree they came from."""
    from tests.layouts import pairs_folder

    pairs = pairs_folder(synthetic_tree, tmp_path / "pairs")
    out = tmp_path / "out"
    args = ["--train-data", f"pairs:{pairs}", "--out", str(out), "--no-tracking", "--radius", "3"]
    assert job.main(args) == 0
    assert "[correlation] 10/10 (100%)" in capsys.readouterr().out
    direct = _direct(synthetic_tree, 3, "rgb_pearson")
    np.testing.assert_allclose(np.load(out / "pooled_map.npy"), direct.map(), rtol=0, atol=1e-9)
    assert np.array_equal(np.load(out / "pooled_count.npy"), direct.count)
    assert pq.read_table(out / "per_image.parquet").num_rows == 10
