"""MLflow through orchestrator/tracking.py, on a real sqlite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.schema import TrackingConfig
from orchestrator.tracking import Tracker, parse_run_uri, resolve_uri, safe_params


def test_uris_are_made_absolute(tmp_path: Path) -> None:
    assert resolve_uri("", cwd=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_uri("sqlite:///rel/x.db", cwd=tmp_path) == f"sqlite:///{tmp_path}/rel/x.db"
    assert resolve_uri("sqlite:////abs/x.db", cwd=tmp_path) == "sqlite:////abs/x.db"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert resolve_uri("mlruns", cwd=tmp_path) == (tmp_path / "mlruns").as_uri()


def test_secret_values_are_never_logged() -> None:
    p = safe_params({"tracking.token": "abc", "aws_secret_access_key": "k", "lr": 0.1, "long": "x" * 7000})
    assert p["tracking.token"] == "***" and p["aws_secret_access_key"] == "***" and p["lr"] == "0.1"
    assert len(p["long"]) == 6000


def test_run_uri() -> None:
    assert parse_run_uri("runs:/" + "a" * 32 + "/mask.npz") == ("a" * 32, "mask.npz")
    with pytest.raises(ValueError, match="runs:/<32-hex run id>"):
        parse_run_uri("runs:/nope")


def test_runs_params_metrics_artifacts_and_failure(tmp_path: Path) -> None:
    t = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path}/ml.db", experiment="e"))
    exp = t.experiment()
    assert t.experiment("e") == exp  # get, not create twice
    (tmp_path / "a.txt").write_text("hi")
    with t.run("parent") as parent, t.run("child", parent_run_id=parent) as child:
        t.log_params(child, {f"p{i}": i for i in range(150)})  # more than one batch
        t.log_metrics(child, {"psnr": 30.5}, step=3)
        t.log_artifacts(child, tmp_path / "a.txt", "files")
    r = t.client.get_run(child)
    assert r.info.status == "FINISHED" and len(r.data.params) == 150 and r.data.metrics["psnr"] == 30.5
    assert r.data.tags["mlflow.parentRunId"] == parent
    assert r.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert (t.download(child, "files/a.txt", tmp_path / "dl")).read_text() == "hi"
    with pytest.raises(ValueError, match="no artifact"):
        t.download(child, "missing.txt", tmp_path / "dl")
    with pytest.raises(RuntimeError), t.run("bad") as bad:
        raise RuntimeError("boom")
    assert t.client.get_run(bad).info.status == "FAILED"
