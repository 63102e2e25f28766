"""The ablation catalogue: the originals and every variant of the paper's Table 1, as data.

An entry names its family (whose stages it starts from), overrides of those stages as dotted paths
(``"bsn.model.kwargs.fusion": "average"``) and the paper's published numbers. Adding an ablation is
adding one :class:`Ablation` to :data:`CATALOGUE` (or, without code, one entry under ``custom`` in a
profile; see :class:`~orchestrator.schema.StudyConfig`).

How a stage is resolved, later steps winning, each value set by :func:`orchestrator.config.set_value`:
1. the family's stages (:data:`FAMILIES`), the profile's ``train.<family>`` in each;
2. the entry's overrides (the ablation itself);
3. the profile's ``overrides.<entry>`` (nested, e.g. a smaller BNN for L-1 under ``smoke``);
4. the study's measured blind region (``prior``) in every blind network's unset arguments;
5. the profile's ``models.<model name>`` as defaults of the model's keyword arguments.
Every resolved stage is type-checked, its model arguments and loss checked, and the stage graph
checked (targets are ``noisy`` or earlier stages), before anything trains. An error names the key
the user wrote (``overrides.L-2.bsn.model.kwargs.widht``, ``models.ssid_bnn.depth``,
``train.ssid.batch``): each value set remembers where it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from models.masks import from_offsets
from models.registry import fit_region, is_model, list_models
from orchestrator.config import ConfigError, build, flatten, set_value
from orchestrator.schema import NOISY, ModelSpec, StageConfig, StageTrial, StudyConfig
from orchestrator.study.checks import check_stage

Family = Literal["ssid", "lgbpn", "apbsn"]


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
    custom: bool = False  # from the study's ``custom`` section, not the built-in catalogue
    teacher: str = ""  # ``X+D``: the entry it distils (``study.distill``)


DISTILLED = "+D"


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


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def load_profile(profile: str = "paper", overrides: tuple[str, ...] | list[str] = ()) -> StudyConfig:
    """``configs/<profile>.yaml`` (or a YAML path) over the defaults, then dotted overrides."""
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIGS / f"{profile}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
            raise ConfigError("profile", f"no profile {profile!r} in {CONFIGS} (known: {known})")
    return build(StudyConfig, path, overrides)


def profiles() -> dict[str, str]:
    """The profiles in ``configs/``, each with its header: the first comment line of its file,
    which says what it is for and how long it takes on 2 CPU cores."""
    out = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        first = path.read_text().splitlines()[:1]
        out[path.stem] = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
    return out


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
            name, entry["family"], entry.get("description", ""), dict(entry.get("overrides", {})), custom=True
        )
    if study is not None and study.distill:
        for name, entry in list(out.items()):
            out[name + DISTILLED] = Ablation(
                name + DISTILLED,
                entry.family,
                f"{name} distilled into {study.distill} (L1 to its final output)",
                custom=entry.custom,
                teacher=name,
            )
    return out


class Resolved(NamedTuple):
    """A catalogue entry and its resolved, checked stages in training order."""

    entry: Ablation
    stages: tuple[StageConfig, ...]


class _Stages:
    """An ablation's stages while they are resolved: each value set through the one setter, and
    for each the key the user wrote (an error in a checked stage is named by that key)."""

    def __init__(self, name: str, family: str, study: StudyConfig):
        self.name = name
        train, trial = study.train[family], StageTrial(workers=study.trial.workers)
        self.stages = {s.name: dataclasses.replace(s, train=train, trial=trial) for s in FAMILIES[family]}
        # per stage, (path in the stage, key the user wrote) of every value set, in order
        self.origins = {s: [("train", f"train.{family}"), ("trial", "trial")] for s in self.stages}

    def set(self, stage: str, path: str, value: Any, *, prefix: str) -> None:
        """Set ``path`` of ``stage`` to ``value``; ``prefix.path`` is the key the user wrote."""
        self.stages[stage] = set_value(self.stages[stage], path, value, prefix=prefix)
        self.origins[stage].append((path, f"{prefix}.{path}"))

    def model_defaults(self, stage: str, values: Mapping[str, Any], *, prefix: str) -> None:
        """Fill the stage's model arguments it does not set from ``values`` (``models.<its
        model>``, or the prior's fitted arguments); ``prefix``: the key the user wrote."""
        cfg = self.stages[stage]
        kwargs = cfg.model.kwargs
        for path, value in flatten(values).items():
            if not _has(cfg.model.kwargs, path):  # a default: what the stage sets wins
                kwargs = set_value(kwargs, path, value, prefix=prefix, tp=dict[str, Any])
                self.origins[stage].append((f"model.kwargs.{path}", f"{prefix}.{path}"))
        self.stages[stage] = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs=kwargs))

    def blame(self, exc: ConfigError, stage: str) -> ConfigError:
        """``exc``, raised for ``<name>.<stage>.<path>``, named by the key the user set there: the
        last value set at or below that path, else the nearest one above it."""
        path = exc.key.removeprefix(f"{self.name}.{stage}").lstrip(".")
        origins = self.origins[stage]
        below = [(p, k) for p, k in origins if p == path or p.startswith(f"{path}.")]
        if below:
            p, k = below[-1]
            return ConfigError(k[: len(k) - len(p) + len(path)], exc.reason)
        above = [(p, k) for p, k in origins if path.startswith(f"{p}.")]
        if above:
            p, k = max(above, key=lambda o: len(o[0]))
            return ConfigError(k + path[len(p) :], exc.reason)
        return exc


def resolve(study: StudyConfig, name: str) -> Resolved:
    """The entry ``name`` and its fully resolved, checked stages in training order."""
    entries = catalogue(study)
    if name not in entries:
        raise ConfigError("ablations", f"unknown ablation {name!r}; known: {list(entries)}")
    entry = entries[name]
    if entry.teacher:
        return _distilled(study, entry)
    if entry.family not in study.train:
        raise ConfigError(f"train.{entry.family}", "no training settings for this family")
    st = _Stages(name, entry.family, study)
    where = f"custom.{name}.overrides" if entry.custom else f"{name}.overrides"
    for path, value in entry.overrides.items():
        stage, _, rest = path.partition(".")
        if stage not in st.stages or not rest:
            raise ConfigError(where, f"{path!r} must start with a stage name, one of {sorted(st.stages)}")
        st.set(stage, rest, value, prefix=f"{where}.{stage}")
    for stage, values in study.overrides.get(name, {}).items():
        if stage not in st.stages or not isinstance(values, Mapping):
            raise ConfigError(
                f"overrides.{name}.{stage}", f"expected a mapping under a stage in {sorted(st.stages)}"
            )
        for path, value in flatten(values).items():
            st.set(stage, path, value, prefix=f"overrides.{name}.{stage}")
    region = from_offsets(study.prior.hidden) if study.prior.hidden else None
    for stage, cfg in st.stages.items():
        if region is not None and cfg.model.mask is None and is_model(cfg.model.name):
            st.model_defaults(stage, fit_region(cfg.model.name, region), prefix="prior.hidden")
        st.model_defaults(stage, study.models.get(cfg.model.name, {}), prefix=f"models.{cfg.model.name}")
    return Resolved(entry, _checked(st))


def _distilled(study: StudyConfig, entry: Ablation) -> Resolved:
    """The teacher's stages (the same keys: a trained teacher is reused), then ``distill``: the
    student ``study.distill`` trained with L1 to the teacher's final inference output."""
    teacher = resolve(study, entry.teacher)
    if not is_model(study.distill):
        raise ConfigError("distill", f"unknown model {study.distill!r}; known: {list_models()}")
    if "distill" not in study.train:
        raise ConfigError("train.distill", "no training settings for the distilled stage")
    student = StageConfig(
        name="distill",
        model=ModelSpec(study.distill, {**study.models.get(study.distill, {}), **study.distill_kwargs}),
        loss="l1",
        targets=(teacher.stages[-1].name,),
        train=study.train["distill"],
        trial=StageTrial(workers=study.trial.workers),
    )
    check_stage(student, where=f"{entry.name}.distill")
    return Resolved(entry, (*teacher.stages, student))


def _has(kwargs: Mapping[str, Any], path: str) -> bool:
    node: Any = kwargs
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _checked(st: _Stages) -> tuple[StageConfig, ...]:
    """The stages, each checked (errors named by the user's key), and the graph: targets are
    ``noisy`` or earlier stages."""
    earlier: list[str] = []
    for stage, cfg in st.stages.items():
        try:
            check_stage(cfg, where=f"{st.name}.{stage}")
        except ConfigError as exc:
            raise st.blame(exc, stage) from None
        for t in cfg.upstream:
            if t not in earlier:
                raise ConfigError(
                    f"{st.name}.{stage}.targets", f"{t!r} is neither 'noisy' nor an earlier stage {earlier}"
                )
        earlier.append(stage)
    return tuple(st.stages.values())


def selected(study: StudyConfig) -> list[str]:
    """The study's ablations in catalogue order (all when none are named)."""
    entries = catalogue(study)
    names = list(study.ablations) or [n for n, e in entries.items() if not e.teacher]
    unknown = [n for n in names if n not in entries]
    if unknown:
        hint = f" (X{DISTILLED} rows need --distill)" if any(n.endswith(DISTILLED) for n in unknown) else ""
        known = [n for n, e in entries.items() if not e.teacher]
        raise ConfigError("ablations", f"unknown ablation(s) {unknown}; known: {known}{hint}")
    if study.distill:  # each teacher's row, then its distilled row
        teachers = dict.fromkeys(entries[n].teacher or n for n in names)
        names = [x for t in teachers for x in (t, t + DISTILLED)]
    return names


def resolve_all(study: StudyConfig) -> dict[str, Resolved]:
    """Every selected ablation resolved (once per job), and every key that names an ablation or a
    stage checked against them (a typo would otherwise be ignored)."""
    entries = catalogue(study)
    resolved = {name: resolve(study, name) for name in selected(study)}
    for section in ("overrides", "pretrained"):
        for name in getattr(study, section):
            if name not in entries:
                raise ConfigError(f"{section}.{name}", f"no such ablation; known: {list(entries)}")
    for name, chosen in study.pretrained.items():
        stages = [s.name for s in (resolved.get(name) or resolve(study, name)).stages]
        for stage in chosen:
            if stage not in stages:
                raise ConfigError(f"pretrained.{name}.{stage}", f"no such stage; {name} has {stages}")
    every = {s.name for r in resolved.values() for s in r.stages}
    unknown = [s for s in study.stages if s not in every]
    if unknown:
        raise ConfigError("stages", f"no stage named {unknown} in the selected ablations ({sorted(every)})")
    return resolved
