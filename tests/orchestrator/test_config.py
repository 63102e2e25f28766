"""Config loading: defaults <- YAML <- overrides, strict keys and types, YAML round trip."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from orchestrator import config as C
from orchestrator import schema as S
from orchestrator.config import ConfigError


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    schedule: Literal["cosine", "step", "none"] = "cosine"
    milestones: tuple[int, ...] = (8, 16)


@dataclass(frozen=True)
class Exp:
    name: str = "exp"
    steps: int = 10
    patch: tuple[int, int] = (64, 64)
    resume_from: str | None = None
    amp: bool = False
    optim: Optim = Optim()
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def test_defaults_yaml_then_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("steps: 20\noptim:\n  lr: 3.0e-4\n  schedule: step\ntags: {study: paper}\n")
    cfg = C.build(Exp, y, ["optim.lr=1e-3", "patch=[32, 48]", "resume_from=ckpt.pt", "amp=true"])
    assert cfg.steps == 20 and cfg.optim.lr == 1e-3 and cfg.optim.schedule == "step"
    assert cfg.patch == (32, 48) and cfg.resume_from == "ckpt.pt" and cfg.amp is True
    assert cfg.optim.milestones == (8, 16) and cfg.tags == {"study": "paper"}
    assert isinstance(cfg.optim.lr, float)
    assert C.build(Exp, None, ["optim.lr=1"]).optim.lr == 1.0  # ints widen to float
    assert C.build(Exp, None, ["optim.lr=2E-5"]).optim.lr == 2e-5  # YAML 1.1 reads this as text
    with pytest.raises(ConfigError, match="expected float, got 'fast'"):
        C.build(Exp, None, ["optim.lr=fast"])


def test_round_trip() -> None:
    cfg = C.build(Exp, None, ["name=x", "optim.milestones=[1,2,3]", "resume_from=null", "tags.a=b"])
    text = C.to_yaml(cfg)
    assert C.from_yaml_text(Exp, text) == cfg
    assert C.flatten(cfg)["optim.milestones"] == [1, 2, 3]
    assert C.flatten(cfg)["tags.a"] == "b"


def test_string_field_keeps_literal_text() -> None:
    assert C.build(Exp, None, ["name=123"]).name == "123"
    assert C.build(Exp, None, ["name=true"]).name == "true"


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("stepz=3", "stepz", "unknown key; Exp has"),
        ("optim.lrr=3", "optim.lrr", "unknown key; Optim has"),
        ("steps=ten", "steps", "expected int, got 'ten'"),
        ("steps=1.5", "steps", "expected int, got 1.5"),
        ("amp=1", "amp", "expected bool"),
        ("optim.schedule=linear", "optim.schedule", "expected one of ['cosine', 'step', 'none']"),
        ("patch=[1,2,3]", "patch", "expected 2 items"),
        ("optim.milestones=[1,x]", "optim.milestones[1]", "expected int"),
        ("optim=3", "optim", "expected a mapping for Optim"),
        ("name.sub=3", "name.sub", "has no sub-keys"),
        ("steps", "steps", "not of the form key.sub=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        C.build(Exp, None, [override])
    assert exc.value.key == key
    assert fragment in str(exc.value)
    assert repr(key) in str(exc.value)


def test_bad_yaml_files(tmp_path: Path) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text("optim:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match=r"'optim.momentum': unknown key.*bad.yaml"):
        C.build(Exp, y)
    y.write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        C.build(Exp, y)
    y.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        C.build(Exp, y)
    with pytest.raises(ConfigError, match="not found"):
        C.build(Exp, tmp_path / "missing.yaml")
    y.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not UTF-8 text \(byte 6\)"):
        C.build(Exp, y)
    with pytest.raises(ConfigError, match="cannot be read"):
        C.build(Exp, tmp_path)  # a folder


def test_an_override_below_a_value_an_earlier_one_set():
    """Each override is checked as it is applied: ``optim=`` (not a mapping) is named, and a
    later ``optim.lr=`` does not fail on it with a TypeError."""
    with pytest.raises(ConfigError) as exc:
        C.build(Exp, None, ["optim=", "optim.lr=0.1"])
    assert exc.value.key == "optim" and "expected a mapping for Optim" in str(exc.value)
    with pytest.raises(ConfigError, match=r"extra.a is 'x', not a mapping with a key 'b'"):
        C.build(Exp, None, ["extra.a=x", "extra.a.b=y"])


def test_project_configs_load() -> None:
    cfg = C.build(S.CorrelationConfig, None, ["data.synthetic.scenes=2", "data.synthetic.size=[32,32]"])
    assert cfg.data.synthetic.scenes == 2 and cfg.data.synthetic.size == (32, 32)
    assert C.from_yaml_text(S.CorrelationConfig, C.to_yaml(cfg)) == cfg
    # the spec's own validation runs when built from config
    with pytest.raises(ConfigError, match="unknown camera code"):
        C.build(S.CorrelationConfig, None, ["data.synthetic.cameras=[ZZ]"])


def test_shipped_profiles_load_and_say_what_they_cost() -> None:
    """Every profile in configs/ builds a study whose every entry resolves, and its header (shown
    by ``jobs/ablations.py --help``) gives its expected time."""
    from orchestrator.study.catalogue import load_profile, profiles, resolve_all

    shipped = profiles()
    assert {"tiny", "smoke", "demo", "desk", "paper"} <= set(shipped)
    for name, header in shipped.items():
        expected = re.search(r"\d+ (s|min|h)\b|days", header)
        assert expected, f"configs/{name}.yaml: no expected time in its header {header!r}"
        study = load_profile(name)
        assert study.profile == name and resolve_all(study)
