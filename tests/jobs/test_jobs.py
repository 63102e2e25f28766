"""The job entry points, called as ``main(argv)`` with small synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jobs import demo, make_synthetic
from orchestrator.data.sidd import index_sidd


def test_make_synthetic_writes_sidd_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sidd"
    rc = make_synthetic.main(
        [
            "--out",
            str(out),
            "--scenes",
            "2",
            "--size",
            "40",
            "48",
            "--val-images",
            "1",
            "--val-blocks",
            "2",
            "--block-size",
            "16",
            "--bench-images",
            "1",
            "--bench-blocks",
            "2",
            "--cameras",
            "GP,S6",
        ]
    )
    assert rc == 0
    index = index_sidd(out)
    assert {p.info.camera for p in index.pairs} == {"GP", "S6"}
    assert (out / "SIDD_Validation" / "ValidationNoisyBlocksSrgb.mat").is_file()
    assert (out / "SIDD_Benchmark" / "BenchmarkNoisyBlocksSrgb.mat").is_file()
    assert "medium pairs: 4 in 2 scene folders" in capsys.readouterr().out
    assert make_synthetic.main(["--out", str(out), "--cameras", "XX"]) == 2


def test_demo_runs_the_correlation_map_and_the_main_job(ray_local, tmp_path: Path, capsys) -> None:
    """``make demo``'s path under the tiny profile: the map and its figures, then the ablations
    with the reference rows, the table, where everything is, and how to open MLflow."""
    out = tmp_path / "demo"
    args = ["--profile", "tiny", "--ablations", "S-2,apbsn", "--out", str(out)]
    args += [
        "--set",
        f"data.cache_dir={tmp_path / 'data'}",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'm.db'}",
    ]
    assert demo.main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "step 1/2: the noise-correlation map" in printed and "step 2/2: the ablations S-2, apbsn" in printed
    )
    assert (out / "correlation" / "pooled_map.npy").is_file()
    assert list((out / "correlation" / "figures").glob("*.png"))
    for row in ("| noisy input |", "| nlm |", "| S-2 |", "| apbsn |"):
        assert row in printed
    assert (out / "results.md").is_file() and (out / "comparison_grid.png").is_file()
    assert f"comparison grid: {out / 'comparison_grid.png'}" in printed
    assert "ui --backend-store-uri sqlite:///" in printed and '"Model training"' in printed
    assert f"its figures: {out / 'correlation' / 'figures'}" in printed
    # the map is logged in the study's own experiment, beside its ablations
    assert "[correlation] logged to MLflow" in printed and "MLflow logging failed" not in printed
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    exp = client.get_experiment_by_name("ablations-tiny")
    names = {r.info.run_name for r in client.search_runs([exp.experiment_id])}
    assert "correlation-rgb_pearson-r10" in names and {"S-2", "apbsn"} <= names


def test_demo_reports_config_and_dataset_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert demo.main(["--set", "data.synthetic.scenez=2"]) == 2
    assert "'data.synthetic.scenez': unknown key" in capsys.readouterr().err
    assert demo.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset root is not a directory" in capsys.readouterr().err
    assert demo.main(["--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "profile: demo" in printed and "- S-2" in printed
    assert demo.main(["--list"]) == 0 and "S-2" in capsys.readouterr().out


def test_ablations_job_lists_checks_and_trains(ray_local, tmp_path: Path, capsys) -> None:
    from jobs import ablations

    assert ablations.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "S-2" in listed and "25.320" in listed
    assert ablations.main(["--set", "train.ssid.stepz=1"]) == 2
    assert "train.ssid.stepz" in capsys.readouterr().err
    assert ablations.main(["--ablations", "L-9"]) == 2
    assert ablations.main(["--profile", "paper", "--print-config"]) == 0
    assert "steps: 400000" in capsys.readouterr().out
    # One short SSID-family run end to end: data generated in SIDD layout, stages, table.
    out = tmp_path / "run"
    args = ["--profile", "tiny", "--ablations", "S-2", "--out", str(out)]
    args += [
        "--set",
        f"data.cache_dir={tmp_path / 'data'}",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    assert ablations.main(args) == 0
    printed = capsys.readouterr().out
    assert "| S-2 |" in printed and "mlflow ui --backend-store-uri sqlite:///" in printed
    table = (out / "results.csv").read_text().splitlines()
    assert table[0].startswith("ablation,family,stage,status,psnr")
    assert table[1].startswith("noisy input,reference,-,finished,")  # the reference rows first
    assert any(r.startswith("S-2,ssid,unet,finished,") for r in table)
    assert len(list((out / "stages").glob("*/model.pt"))) == 3
    assert list((out / "stages").glob("unet-*/samples/block_*.png"))
