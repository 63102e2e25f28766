"""``cluster.yaml`` is a valid Ray cluster launcher file (checked offline with Ray's own validator)
that keeps the dashboard, job API and MLflow off public interfaces and comments every key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def _validate(cfg: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def test_ray_validates_it_and_rejects_a_typo():
    cfg = yaml.safe_load(CLUSTER.read_text())
    _validate(cfg)
    bad = copy.deepcopy(cfg)
    bad["available_node_types"]["gpu_worker"]["min_workerz"] = 1
    with pytest.raises(Exception, match="min_workerz"):
        _validate(bad)


def test_every_key_has_a_comment():
    lines = CLUSTER.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*-?\s*[A-Za-z_][\w-]*:", line) and not line.lstrip().startswith("- {"):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") or "#" in line, f"cluster.yaml line {i + 1} has no comment: {line}"


def test_services_stay_off_public_interfaces():
    cfg = yaml.safe_load(CLUSTER.read_text())
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head  # the dashboard and job API: SSH tunnel only
    assert "0.0.0.0" not in CLUSTER.read_text()  # MLflow binds the private address
    assert "--artifacts-destination" in head and "mlflow server" in head
    assert "RAY_AUTH_MODE=disabled" not in CLUSTER.read_text()  # token authentication stays on
    rules = cfg["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["IpRanges"][0]["CidrIp"].endswith("/32")) for r in rules] == [(22, True)]
    assert any("pip install" in c and "-e ~/denoise-lab" in c for c in cfg["setup_commands"])
    assert cfg["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1
