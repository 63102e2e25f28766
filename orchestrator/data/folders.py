"""The ``folder`` and ``pairs`` sources: image files as people keep them.

``folder``: every PNG, JPEG or TIFF image (8 or 16 bits) under a root, recursively unless told
otherwise, optionally those whose path relative to the root matches ``data.folder.glob``. Noisy
images only: nothing else is required or ever opened. Training only.

``pairs``: noisy/clean pairs of the same size. By default twin folders ``noisy/`` and ``clean/``
under the root, matched by their path relative to each (``noisy/a/x.png`` with ``clean/a/x.png``).
With ``data.pairs.noisy_pattern`` and ``clean_pattern`` (``*_real.png`` and ``*_mean.png``), files
anywhere under the root whose names match, paired by folder and by what the ``*`` stands for.
Evaluation scores whole images, or non-overlapping blocks of ``data.pairs.block`` px (a remainder
at the right and bottom edges is left out); training, as ``--train-data``, uses the noisy half.

Images are refused (one line each, every one found before anything runs) when they cannot be
read, are truncated, have one channel or an alpha channel; pairs when their sizes differ or a half
is missing; a pattern that matches nothing, and two files taking the same pair, are named too.
16-bit images train and are scored at 8 bits (rounded), the range every network here works in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

import numpy as np

from orchestrator.data.files import DatasetError
from orchestrator.data.images import SUFFIXES, ImageError, probe, read_image, to_uint8
from orchestrator.data.sources import (
    EvalSet,
    SourceKind,
    SourceSpec,
    TrainingSet,
    TrainItem,
    fingerprint,
    register_reader,
    register_source,
)
from orchestrator.schema import DataConfig

__all__ = ["image_files", "index_pairs", "Pair"]


def _root(spec: SourceSpec) -> Path:
    root = Path(spec.path).expanduser()
    if not spec.path or not root.is_dir():
        raise DatasetError([(root, f"{spec.kind} source: not a folder")])
    return root


def image_files(root: Path, *, recursive: bool = True, glob: str = "") -> list[Path]:
    """Image files under ``root`` (sorted by relative path), those matching ``glob`` if given."""
    found = root.rglob("*") if recursive else root.glob("*")
    out = []
    for f in found:
        rel = f.relative_to(root).as_posix()
        if f.is_file() and f.suffix.lower() in SUFFIXES and (not glob or fnmatch.fnmatch(rel, glob)):
            out.append(f)
    return sorted(out, key=lambda f: f.relative_to(root).as_posix())


def _checked(files: list[Path], problems: list) -> dict[Path, tuple[int, int]]:
    """(H, W) of each readable image; a problem for each that is not."""
    shapes = {}
    for f in files:
        try:
            info = probe(f)
        except ImageError as exc:
            problems.append((f, exc.reason))
            continue
        shapes[f] = (info.height, info.width)
    return shapes


def _items(root: Path, shapes: dict[Path, tuple[int, int]]) -> tuple[TrainItem, ...]:
    return tuple(
        TrainItem(
            f.relative_to(root).as_posix(), str(f.resolve()), "image", (hw,), fingerprint=fingerprint(f)
        )
        for f, hw in shapes.items()
    )


def folder_train(spec: SourceSpec, cfg: DataConfig) -> TrainingSet:
    root = _root(spec)
    opts = cfg.folder
    files = image_files(root, recursive=opts.recursive, glob=opts.glob)
    if not files:
        what = f"matching {opts.glob!r}" if opts.glob else ""
        where = "under" if opts.recursive else "in"
        raise DatasetError(
            [(root, f"no PNG, JPEG or TIFF images {what} {where} this folder".replace("  ", " "))]
        )
    problems: list = []
    shapes = _checked(files, problems)
    if problems:
        raise DatasetError(problems)
    return TrainingSet(spec, _items(root, shapes), root=str(root.resolve()))


@register_reader("image")
def _read_image(item: TrainItem) -> list[np.ndarray]:
    return [to_uint8(read_image(item.path))]


# ------------------------------------------------------------------------------------------- pairs


class Pair:
    """A noisy/clean pair: its key (relative to the root), both files and its size."""

    def __init__(self, key: str, noisy: Path, clean: Path, shape: tuple[int, int]):
        self.key, self.noisy, self.clean, self.shape = key, noisy, clean, shape


def _by_pattern(root: Path, pattern: str, problems: list) -> dict[str, Path]:
    """Files whose names match ``pattern`` (one ``*``), keyed by folder and what ``*`` stands for."""
    head, _, tail = pattern.partition("*")
    found: dict[str, Path] = {}
    for f in image_files(root):
        if not fnmatch.fnmatch(f.name, pattern):
            continue
        stem = f.name[len(head) : len(f.name) - len(tail)]
        key = (f.parent.relative_to(root) / stem).as_posix()
        if key in found:
            problems.append((f, f"takes the same pair {key!r} as {found[key].name} (pattern {pattern!r})"))
            continue
        found[key] = f
    return found


def _halves(root: Path, cfg: DataConfig, problems: list) -> tuple[dict[str, Path], dict[str, Path]]:
    o = cfg.pairs
    if o.noisy_pattern or o.clean_pattern:
        if o.noisy_pattern.count("*") != 1 or o.clean_pattern.count("*") != 1:
            raise DatasetError(
                [(root, "data.pairs.noisy_pattern and clean_pattern need one '*' each, e.g. *_real.png")]
            )
        halves = _by_pattern(root, o.noisy_pattern, problems), _by_pattern(root, o.clean_pattern, problems)
        for pattern, half in zip((o.noisy_pattern, o.clean_pattern), halves, strict=True):
            if not half:
                problems.append((root, f"no file under this folder matches {pattern!r}"))
        return halves
    dirs = (root / o.noisy_dir, root / o.clean_dir)
    for d in dirs:
        if not d.is_dir():
            problems.append(
                (d, "missing (a pairs source holds noisy/ and clean/ folders, or set the patterns)")
            )
    if problems:
        return {}, {}
    return tuple({f.relative_to(d).as_posix(): f for f in image_files(d)} for d in dirs)


def index_pairs(spec: SourceSpec, cfg: DataConfig) -> list[Pair]:
    """Every pair of the source, each half checked, or one error naming every bad file."""
    root = _root(spec)
    problems: list = []
    noisy, clean = _halves(root, cfg, problems)
    for key in sorted(set(noisy) ^ set(clean)):
        have, other = (noisy[key], "clean") if key in noisy else (clean[key], "noisy")
        problems.append((have, f"has no {other} partner ({key})"))
    keys = sorted(set(noisy) & set(clean))
    if not keys and not problems:
        problems.append((root, "no noisy/clean pairs found"))
    shapes = _checked([f for k in keys for f in (noisy[k], clean[k])], problems)
    pairs = []
    for k in keys:
        a, b = shapes.get(noisy[k]), shapes.get(clean[k])
        if a and b and a != b:
            problems.append(
                (noisy[k], f"size {a[0]}x{a[1]} differs from its clean {clean[k].name}'s {b[0]}x{b[1]}")
            )
        elif a and b:
            pairs.append(Pair(k, noisy[k], clean[k], a))
    if problems:
        raise DatasetError(problems)
    return pairs


def pairs_train(spec: SourceSpec, cfg: DataConfig) -> TrainingSet:
    root = _root(spec)
    pairs = index_pairs(spec, cfg)
    items = tuple(
        TrainItem(p.key, str(p.noisy.resolve()), "image", (p.shape,), fingerprint=fingerprint(p.noisy))
        for p in pairs
    )
    return TrainingSet(spec, items, root=str(root.resolve()))


def pairs_evaluate(spec: SourceSpec, cfg: DataConfig) -> EvalSet:
    """Every pair, whole or cut into blocks of ``data.pairs.block`` px."""
    pairs = index_pairs(spec, cfg)
    side = cfg.pairs.block
    noisy, clean, image, digest = [], [], [], hashlib.sha256()
    for i, p in enumerate(pairs):
        n, c = to_uint8(read_image(p.noisy)), to_uint8(read_image(p.clean))
        digest.update(json.dumps([p.key, fingerprint(p.noisy), fingerprint(p.clean)]).encode())
        if side <= 0:
            noisy.append(n), clean.append(c), image.append(i)
            continue
        h, w = p.shape
        if min(h, w) < side:
            raise DatasetError([(p.noisy, f"{h}x{w} is smaller than data.pairs.block={side}")])
        for y in range(0, h - side + 1, side):
            for x in range(0, w - side + 1, side):
                noisy.append(n[y : y + side, x : x + side]), clean.append(c[y : y + side, x : x + side])
                image.append(i)
    if side > 0 or len({a.shape for a in noisy}) == 1:
        noisy, clean = np.stack(noisy), np.stack(clean)
    digest.update(str(side).encode())
    return EvalSet(spec.name, spec, noisy, clean, np.asarray(image), key=digest.hexdigest())


def pairs_of(spec: SourceSpec, cfg: DataConfig, strict: bool = True):
    """The pairs as (key, noisy path, clean path, shape), for the correlation job."""
    return index_pairs(spec, cfg)


register_source(
    SourceKind("folder", "a tree of noisy images (no clean image needed); training only", train=folder_train)
)
register_source(
    SourceKind(
        "pairs",
        "noisy/clean pairs (twin folders or name patterns); evaluation, and training on the noisy half",
        train=pairs_train,
        evaluate=pairs_evaluate,
        pairs=pairs_of,
    )
)
