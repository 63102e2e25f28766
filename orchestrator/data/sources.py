"""Data sources: where training images and evaluation pairs come from, by name, like models.

A source is named on the command line as ``SOURCE:PATH`` (``--train-data``, ``--eval-data``; an
evaluation source may be given a name of its own, ``NAME=SOURCE:PATH``). Each registered source
kind has an indexer that validates everything it will read up front and names every bad file in
one :class:`~orchestrator.data.files.DatasetError` before any trial starts:

- ``sidd``: a SIDD root (Medium pairs; validation and benchmark ``.mat`` blocks); an empty path is
  the synthetic SIDD-like tree, generated once.
- ``folder``: any tree of noisy images (PNG, JPEG, TIFF; 8 or 16 bits); training only, no clean image.
- ``pairs``: noisy/clean pairs, by twin folders or by a pair of file-name patterns.
- ``blocks``: a ``.mat`` or ``.npy`` array of noisy blocks (SIDD's benchmark blocks, say).
- ``dnd``: the DND sRGB layout (``images_srgb/*.mat`` v7.3, ``info.mat`` with bounding boxes).

A :class:`TrainingSet` lists noisy images by item (a file, or a block array) and has a content key:
the stage keys of what trains on it. An :class:`EvalSet` holds noisy/clean blocks and the image each
block comes from (the unit a bootstrap resamples). Per-kind options are config keys
(``data.folder.glob``, ``data.pairs.block``, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.config import ConfigError
from orchestrator.schema import DataConfig

__all__ = [
    "SourceSpec",
    "SourceKind",
    "TrainItem",
    "TrainingSet",
    "EvalSet",
    "register_source",
    "source_names",
    "parse_source",
    "training_source",
    "evaluation_sources",
    "read_item",
    "index_training",
    "index_data",
    "StudyData",
]


@dataclass(frozen=True)
class SourceSpec:
    """A source as the user named it: its kind, path and (evaluation) name."""

    kind: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


@dataclass(frozen=True)
class TrainItem:
    """A unit the patch shards are cut from: one image file, or an array of blocks.

    Args:
        key: unique within its source (a relative path, ``<file>#<block>``...).
        path: the file.
        reader: how to read it (a name in :data:`READERS`), and ``arg`` its argument.
        shapes: (H, W) of each image it holds.
        fingerprint: size and a digest of the file's first and last 64 KiB.
    """

    key: str
    path: str
    reader: str
    shapes: tuple[tuple[int, int], ...]
    arg: str = ""
    fingerprint: str = ""


@dataclass(frozen=True)
class TrainingSet:
    """The noisy images a study trains on, validated."""

    spec: SourceSpec
    items: tuple[TrainItem, ...]
    root: str = ""
    note: str = ""  # what an indexer wants the user to see (e.g. the SIDD summary)

    @property
    def key(self) -> str:
        """Content key: the source kind, each item's key, shapes and fingerprint (not where the
        files are: the same data copied elsewhere keeps its key)."""
        blob = [self.spec.kind, [(i.key, i.shapes, i.reader, i.arg, i.fingerprint) for i in self.items]]
        return hashlib.sha256(json.dumps(blob).encode()).hexdigest()

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [s for i in self.items for s in i.shapes]

    def summary(self) -> str:
        n = len(self.sizes)
        head = f"training data {self.spec}: {n} image(s) in {len(self.items)} file(s)"
        return "\n".join(x for x in (self.note, head) if x)


@dataclass
class EvalSet:
    """Noisy/clean blocks to score on, with the image each block comes from.

    ``noisy`` and ``clean`` are uint8 (N, H, W, 3) arrays, or lists of (H, W, 3) arrays when the
    blocks differ in size (whole images). ``name`` is the source's name: metrics over it are named
    ``val_<name>_*`` (SIDD's validation blocks keep the names they have always had, ``val_*``).
    """

    name: str
    spec: SourceSpec
    noisy: np.ndarray | list[np.ndarray]
    clean: np.ndarray | list[np.ndarray]
    image: np.ndarray  # (N,) int: the image (a unit for resampling) each block comes from
    key: str = ""

    @property
    def prefix(self) -> str:
        return "val" if self.name == "sidd" else f"val_{self.name}"

    def __len__(self) -> int:
        return len(self.noisy)

    def split(self, select: int) -> tuple[np.ndarray, np.ndarray]:
        """(selection blocks, reported blocks) by whole images: with the source's images numbered
        0, 1, ... in the order of their ids, image r is in the selection subset when
        ``r % select == 0`` (one image in ``select``; image 0 always), every other image is
        reported. ``select`` 0: no selection subset, every block reported.

        Raises:
            ConfigError: ``select`` > 0 and the source has fewer than two images.
        """
        every = np.arange(len(self))
        if select <= 0:
            return every[:0], every
        ids = np.unique(self.image)
        if len(ids) < 2:
            raise ConfigError(
                "eval.select",
                f"evaluation source {self.name!r} ({self.spec}) has {len(ids)} image(s); a selection "
                "subset takes whole images and needs at least 2 (or set eval.select=0)",
            )
        chosen = np.isin(self.image, ids[np.arange(len(ids)) % select == 0])
        return every[chosen], every[~chosen]


@dataclass(frozen=True)
class SourceKind:
    """What a source kind can do: index training images, load evaluation pairs, list noisy/clean
    pairs of whole images (the correlation job), each a function of (path, data config)."""

    name: str
    describe: str
    train: Callable[[SourceSpec, DataConfig], TrainingSet] | None = None
    evaluate: Callable[[SourceSpec, DataConfig], EvalSet] | None = None
    pairs: Callable[[SourceSpec, DataConfig, bool], object] | None = None
    uses: tuple[str, ...] = field(default_factory=tuple)


SOURCES: dict[str, SourceKind] = {}
READERS: dict[str, Callable[[TrainItem], list[np.ndarray]]] = {}


_MEMO: dict | None = None


@contextlib.contextmanager
def one_index() -> Iterator[None]:
    """Within this block, a source indexed twice (a SIDD root trained on and evaluated on) is
    indexed once; outside it every call reads the files again."""
    global _MEMO
    outer, _MEMO = _MEMO, {} if _MEMO is None else _MEMO
    try:
        yield
    finally:
        _MEMO = outer


def memo(key: tuple, make: Callable[[], object]):
    """``make()``, or its result from earlier in the same :func:`one_index` block."""
    if _MEMO is None:
        return make()
    if key not in _MEMO:
        _MEMO[key] = make()
    return _MEMO[key]


def register_source(kind: SourceKind) -> SourceKind:
    if kind.name in SOURCES:
        raise ValueError(f"data source {kind.name!r} is already registered")
    SOURCES[kind.name] = kind
    return kind


def register_reader(name: str):
    def deco(fn):
        READERS[name] = fn
        return fn

    return deco


def source_names() -> list[str]:
    _load()
    return sorted(SOURCES)


def _load() -> None:
    """Import the modules that register the source kinds (explicitly, no scanning)."""
    from orchestrator.data import blocks, dataset, dnd, folders  # noqa: F401


_SPEC = re.compile(r"^(?:(?P<name>[A-Za-z][A-Za-z0-9_-]*)=)?(?P<kind>[a-z]+):(?P<path>.*)$")


def parse_source(text: str, *, key: str) -> SourceSpec:
    """``SOURCE:PATH`` or ``NAME=SOURCE:PATH``; ConfigError naming ``key`` otherwise."""
    _load()
    m = _SPEC.match(text.strip())
    if not m or m["kind"] not in SOURCES:
        raise ConfigError(
            key, f"{text!r} is not SOURCE:PATH (or NAME=SOURCE:PATH) with SOURCE one of {sorted(SOURCES)}"
        )
    return SourceSpec(m["kind"], m["path"].strip(), m["name"] or m["kind"])


def read_item(item: TrainItem) -> list[np.ndarray]:
    """The uint8 (H, W, 3) images of a training item."""
    _load()
    return READERS[item.reader](item)


def fingerprint(path: str | Path) -> str:
    """A file's size and a digest of its first and last 64 KiB: cheap, and different for every
    changed PNG in practice (its pixel data ends with the file)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1 << 16)
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    return f"{size}:{hashlib.sha256(head + tail).hexdigest()[:16]}"


def training_source(cfg: DataConfig) -> SourceSpec:
    """The training source of a data config: ``data.train``, else SIDD at ``data.root``."""
    return parse_source(cfg.train, key="data.train") if cfg.train else SourceSpec("sidd", cfg.root, "sidd")


def evaluation_sources(cfg: DataConfig) -> list[SourceSpec]:
    """The evaluation sources: ``data.eval``; if none are given and the training source is SIDD's
    (the default), SIDD's validation blocks at ``data.root``. Names must be distinct."""
    if cfg.eval:
        specs = [parse_source(t, key=f"data.eval[{i}]") for i, t in enumerate(cfg.eval)]
    elif not cfg.train:
        specs = [SourceSpec("sidd", cfg.root, "sidd")]
    else:
        specs = []
    names = [s.name for s in specs]
    for i, s in enumerate(specs):
        if SOURCES[s.kind].evaluate is None:
            raise ConfigError(
                f"data.eval[{i}]",
                f"{s}: a {s.kind!r} source has no clean images, so it cannot be evaluated on "
                f"(sources with clean images: {sorted(k for k, v in SOURCES.items() if v.evaluate)})",
            )
        if s.name in names[:i]:
            raise ConfigError(
                f"data.eval[{i}]", f"two evaluation sources are named {s.name!r}; name them NAME=SOURCE:PATH"
            )
    return specs


def index_training(cfg: DataConfig, spec: SourceSpec | None = None) -> TrainingSet:
    """The training source of ``cfg`` (or ``spec``), indexed and checked."""
    spec = spec or training_source(cfg)
    kind = SOURCES[spec.kind]
    if kind.train is None:
        raise ConfigError("data.train", f"{spec}: a {spec.kind!r} source cannot be trained on")
    return kind.train(spec, cfg)


@dataclass
class StudyData:
    """What a study trains on and is scored on, every file checked."""

    train: TrainingSet | None
    evals: list[EvalSet]

    def summary(self) -> str:
        lines = [self.train.summary()] if self.train is not None else []
        for e in self.evals:
            lines.append(
                f"evaluation source {e.name!r} ({e.spec}): {len(e)} block(s) of {len(set(e.image))} image(s)"
            )
        if not self.evals:
            lines.append("no evaluation source: nothing will be scored (--eval-data SOURCE:PATH adds one)")
        return "\n".join(lines)


def index_data(cfg: DataConfig, *, train: bool = True, evaluation: bool = True) -> StudyData:
    """Index the training source and load every evaluation source (either may be left out); every
    bad file of all of them in one :class:`~orchestrator.data.files.DatasetError`, before anything
    runs."""
    from orchestrator.data.files import DatasetError

    specs = evaluation_sources(cfg) if evaluation else []
    problems: list = []
    evals = []
    with one_index():
        try:
            train = index_training(cfg) if train else None
        except DatasetError as exc:
            problems += exc.problems
        for spec in specs:
            try:
                evals.append(SOURCES[spec.kind].evaluate(spec, cfg))
            except DatasetError as exc:
                problems += exc.problems
    if problems:
        raise DatasetError(problems)
    return StudyData(train, evals)


# The source kinds register themselves when their modules are imported (explicitly, as the model
# families do); importing them last gives them every name above.
_load()
