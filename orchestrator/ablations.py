"""The ablation catalogue: the originals and every variant of the paper's Table 1, as data.

An entry names its family (whose stages it starts from), overrides of those stages as dotted paths
(``"bsn.model.kwargs.fusion": "average"``) and the paper's published numbers. Adding an ablation is
adding one :class:`Ablation` to :data:`CATALOGUE` (or, without code, one entry under ``custom`` in a
profile; see :class:`StudyConfig`).

How a stage is resolved, later steps winning:
1. the family's stages (:data:`FAMILIES`), the profile's ``train.<family>`` in each;
2. the entry's overrides (the ablation itself);
3. the profile's ``overrides.<entry>`` (nested, e.g. a smaller BNN for L-1 under ``smoke``);
4. the profile's ``models.<model name>`` as defaults of the model's keyword arguments.
Every resolved stage is type-checked, its model arguments and loss checked, and the stage graph
checked (targets are ``noisy`` or earlier stages), before anything trains.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.config import (
    ConfigError,
    DataConfig,
    RayConfig,
    TrackingConfig,
    TrialConfig,
    build,
    flatten,
    merge,
    to_dict,
)
from orchestrator.stages import NOISY, ModelSpec, OptimConfig, StageConfig, TrainConfig, stage_from_dict

Family = Literal["ssid", "lgbpn", "apbsn"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Published:
    """A published result. ``ssim_kind``: the SSIM convention it was most likely measured with."""

    psnr: float
    ssim: float
    ssim_kind: Literal["ssim", "ssim_uniform7"]
    source: str


@dataclass(frozen=True)
class Ablation:
    """One row of the results table: a family's stages with some values overridden."""

    name: str
    family: Family
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    published: Published | None = None


FAMILIES: dict[str, tuple[StageConfig, ...]] = {
    "ssid": (
        StageConfig(name="bnn", model=ModelSpec("ssid_bnn"), loss="l1", targets=(NOISY,)),
        StageConfig(name="lan", model=ModelSpec("ssid_lan"), loss="l1", targets=("bnn",)),
        StageConfig(name="unet", model=ModelSpec("ssid_unet"), loss="ssid_adaptive", targets=("bnn", "lan")),
    ),
    "lgbpn": (StageConfig(name="bsn", model=ModelSpec("lgbpn"), loss="l1", targets=(NOISY,)),),
    "apbsn": (StageConfig(name="bsn", model=ModelSpec("apbsn"), loss="l1", targets=(NOISY,)),),
}

_TABLE1 = "the paper's Table 1 (SIDD validation)"
_THEIR_RUN = "the paper's Table 1 (their run; SSIM assumed scikit-image's default window)"

CATALOGUE: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation(
            "lgbpn", "lgbpn", "LG-BPN as published", published=Published(37.280, 0.936, "ssim", _TABLE1)
        ),
        Ablation(
            "L-1",
            "lgbpn",
            "local branch replaced by SSID's BNN",
            {"bsn.model.kwargs.local": "ssid_bnn_branch"},
            Published(33.546, 0.8446, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "L-2",
            "lgbpn",
            "average fusion of the branches instead of concatenation",
            {"bsn.model.kwargs.fusion": "average"},
            Published(37.138, 0.8858, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "L-3",
            "lgbpn",
            "dilated conv layers replaced by dilated transformer blocks, 3 per branch",
            {
                "bsn.model.kwargs.local": "lgbpn_local_dtb",
                "bsn.model.kwargs.modules": 3,
                "bsn.model.kwargs.blocks": 3,
            },
            Published(36.798, 0.8810, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "L-4",
            "lgbpn",
            "local branch only",
            {"bsn.model.kwargs.global_": None},
            Published(36.038, 0.8629, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "L-5",
            "lgbpn",
            "global branch only",
            {"bsn.model.kwargs.local": None},
            Published(36.212, 0.8614, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation("ssid", "ssid", "SSID as published", published=Published(37.390, 0.934, "ssim", _TABLE1)),
        Ablation(
            "S-1",
            "ssid",
            "stage 1 is LG-BPN's local branch (LG-BPN without its global branch) instead of the BNN; "
            "its plain inference output (no R3) supervises the later stages",
            {"bnn.model": {"name": "lgbpn", "kwargs": {"global_": None, "r3": False}}},
            Published(36.015, 0.8732, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "S-2",
            "ssid",
            "the LAN is supervised by the noisy input instead of the BNN's output",
            {"lan.targets": [NOISY]},
            Published(25.320, 0.4047, "ssim_uniform7", _THEIR_RUN),
        ),
        Ablation(
            "apbsn",
            "apbsn",
            "AP-BSN (baseline)",
            published=Published(35.97, 0.925, "ssim", "AP-BSN with R3, SIDD benchmark (its paper)"),
        ),
    )
}


# ------------------------------------------------------------------------------------------ study


def _paper_train() -> dict[str, TrainConfig]:
    ssid = TrainConfig(steps=400_000, batch=8, patch=256, optim=OptimConfig(lr=3e-4, schedule="cosine"))
    lg = TrainConfig(
        epochs=20, batch=8, patch=256, optim=OptimConfig(lr=1e-4, schedule="step", decay_epochs=8)
    )
    ap = TrainConfig(
        epochs=20,
        batch=8,
        patch=120,
        augment=("hflip", "rot90"),
        optim=OptimConfig(lr=1e-4, schedule="step", decay_epochs=8),
    )
    return {"ssid": ssid, "lgbpn": lg, "apbsn": ap}


@dataclass(frozen=True)
class EvalConfig:
    """Final evaluation on the validation blocks: ``blocks`` 0 means all of them (the result);
    ``samples`` blocks are saved as images."""

    blocks: int = 0
    samples: int = 4
    batch: int = 8


@dataclass(frozen=True)
class StudyConfig:
    """A set of ablations trained under one profile.

    ``ablations``: catalogue names (empty: all). ``train``: per family. ``models``: default keyword
    arguments per registered model name. ``overrides``: per ablation, nested stage values.
    ``custom``: extra ablations, each ``{family, description, overrides}`` like a catalogue entry.
    ``stages``: train only these stage names (empty: all); the others must already be finished.
    ``pretrained``: ``<ablation>: {<stage>: <a finished model.pt>}`` used instead of training it
    (``--set pretrained.ssid.bnn=runs/stages/bnn-.../model.pt``).
    ``name``: the study's name (MLflow experiment). ``trial``: resources and retries of each stage's
    Tune trial. ``ray``: where Ray runs. ``tracking``: MLflow (``experiment`` empty: the name).
    """

    profile: str = "paper"
    ablations: tuple[str, ...] = ()
    out: str = "runs"
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    train: dict[str, TrainConfig] = field(default_factory=_paper_train)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    pretrained: dict[str, dict[str, str]] = field(default_factory=dict)
    name: str = ""
    trial: TrialConfig = TrialConfig()
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="")

    @property
    def study_name(self) -> str:
        """The MLflow experiment and Tune experiment prefix: ``name``, else ``ablations-<profile>``."""
        return self.name or f"ablations-{self.profile}"


def load_profile(profile: str = "paper", overrides: tuple[str, ...] | list[str] = ()) -> StudyConfig:
    """``configs/<profile>.yaml`` (or a YAML path) over the defaults, then dotted overrides."""
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIGS / f"{profile}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
            raise ConfigError("profile", f"no profile {profile!r} in {CONFIGS} (known: {known})")
    return build(StudyConfig, path, overrides)


def catalogue(study: StudyConfig | None = None) -> dict[str, Ablation]:
    """The built-in entries plus the study's ``custom`` ones."""
    out = dict(CATALOGUE)
    for name, entry in (study.custom if study else {}).items():
        if name in out:
            raise ConfigError(f"custom.{name}", "this name is already in the catalogue")
        unknown = set(entry) - {"family", "description", "overrides"}
        if unknown or entry.get("family") not in FAMILIES:
            raise ConfigError(
                f"custom.{name}",
                f"needs family in {sorted(FAMILIES)}, optional description "
                f"and overrides; got keys {sorted(entry)}",
            )
        out[name] = Ablation(
            name, entry["family"], entry.get("description", ""), dict(entry.get("overrides", {}))
        )
    return out


def _set_dotted(stages: dict[str, dict], path: str, value: Any, *, where: str) -> None:
    stage, _, rest = path.partition(".")
    if stage not in stages or not rest:
        raise ConfigError(where, f"{path!r} must start with a stage name, one of {sorted(stages)}")
    node = stages[stage]
    parts = rest.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(where, f"{path!r}: {part} is not a mapping")
    node[parts[-1]] = copy.deepcopy(value)


def resolve(study: StudyConfig, name: str) -> tuple[Ablation, tuple[StageConfig, ...]]:
    """The entry ``name`` and its fully resolved, checked stages in training order."""
    entries = catalogue(study)
    if name not in entries:
        raise ConfigError("ablations", f"unknown ablation {name!r}; known: {list(entries)}")
    entry = entries[name]
    if entry.family not in study.train:
        raise ConfigError(f"train.{entry.family}", "no training settings for this family")
    train = to_dict(study.train[entry.family])
    stages = {s.name: {**to_dict(s), "train": copy.deepcopy(train)} for s in FAMILIES[entry.family]}
    for path, value in entry.overrides.items():
        _set_dotted(stages, path, value, where=f"{name}.overrides")
    extra = study.overrides.get(name, {})
    for stage, values in extra.items():
        if stage not in stages or not isinstance(values, dict):
            raise ConfigError(
                f"overrides.{name}.{stage}", f"expected a mapping under a stage in {sorted(stages)}"
            )
        stages[stage] = merge(stages[stage], values)
    resolved = []
    for stage, d in stages.items():
        model = d.get("model", {})
        defaults = study.models.get(model.get("name", ""), {})
        d["model"] = {**model, "kwargs": merge(defaults, model.get("kwargs") or {})}
        try:
            cfg = stage_from_dict(d, where=f"{name}.{stage}")
        except ConfigError as exc:
            raise _blame(exc, study, name, stage, model.get("name", "")) from None
        earlier = [s.name for s in resolved]
        for t in cfg.upstream:
            if t not in earlier:
                raise ConfigError(
                    f"{name}.{stage}.targets", f"{t!r} is neither 'noisy' nor an earlier stage {earlier}"
                )
        resolved.append(cfg)
    return entry, tuple(resolved)


def _blame(exc: ConfigError, study: StudyConfig, name: str, stage: str, model: str) -> ConfigError:
    """The error of a resolved stage, named by the key the user set when the value is theirs:
    ``overrides.<ablation>.<stage>...``, or ``models.<model>.<argument>`` for a model default
    (the stage's own path, ``<ablation>.<stage>...``, otherwise)."""
    inside = exc.key.removeprefix(f"{name}.{stage}").lstrip(".")
    mine = flatten(study.overrides.get(name, {}).get(stage, {}))
    if inside and any(k == inside or k.startswith(f"{inside}.") or inside.startswith(f"{k}.") for k in mine):
        return ConfigError(f"overrides.{name}.{stage}.{inside}", exc.reason)
    parts = inside.split(".")
    if parts[:2] == ["model", "kwargs"] and len(parts) > 2 and parts[2] in study.models.get(model, {}):
        return ConfigError(".".join(["models", model, *parts[2:]]), exc.reason)
    return exc


def selected(study: StudyConfig) -> list[str]:
    """The study's ablations in catalogue order (all when none are named)."""
    entries = catalogue(study)
    names = list(study.ablations) or list(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise ConfigError("ablations", f"unknown ablation(s) {unknown}; known: {list(entries)}")
    return names
