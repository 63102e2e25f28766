"""The ``sidd`` source: a SIDD root (a real download), or synthetic SIDD-like data made once.

An empty path is the synthetic tree for ``data.synthetic``, generated under ``data.cache_dir`` and
keyed by its spec. Training uses the noisy half of the Medium pairs; evaluation the validation
blocks (an image is one of the 40 scenes: its 32 blocks go together when resampled); the
correlation job the Medium pairs; ``jobs/evaluate.py --benchmark`` the benchmark blocks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from orchestrator.config import to_dict
from orchestrator.data import synthetic
from orchestrator.data.files import read_png
from orchestrator.data.sidd import SiddIndex, index_sidd, load_validation
from orchestrator.data.sources import (
    EvalSet,
    SourceKind,
    SourceSpec,
    TrainingSet,
    TrainItem,
    fingerprint,
    memo,
    register_reader,
    register_source,
)
from orchestrator.schema import DataConfig

_DONE = ".complete.json"


def synthetic_root(cfg: DataConfig) -> Path:
    """Where the synthetic tree for ``cfg.synthetic`` lives: keyed by the spec's content."""
    spec = to_dict(cfg.synthetic)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.cache_dir).resolve() / f"synthetic-{digest}"


def ensure_synthetic(cfg: DataConfig, *, progress: bool = True) -> Path:
    """Generate the synthetic tree unless a complete one with the same spec exists."""
    root = synthetic_root(cfg)
    if (root / _DONE).is_file():
        return root
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"generating SIDD-like synthetic data in {root} ...", flush=True)
    synthetic.generate(tmp, cfg.synthetic, progress=progress)
    (tmp / _DONE).write_text(json.dumps(to_dict(cfg.synthetic), indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)  # atomic: a killed generation never looks complete
    return root


def sidd_root(cfg: DataConfig, path: str = "", *, progress: bool = True) -> Path:
    """``path`` (default ``data.root``), or the (generated if needed) synthetic tree."""
    path = path or cfg.root
    return Path(path).expanduser() if path else ensure_synthetic(cfg, progress=progress)


def resolve(cfg: DataConfig, *, progress: bool = True, strict: bool = True, path: str = "") -> SiddIndex:
    """Index the SIDD root of ``cfg`` (``path``, else ``data.root``, else the synthetic tree).

    ``strict=False`` leaves bad files out and lists them in ``SiddIndex.problems``.
    """
    root = sidd_root(cfg, path, progress=progress)
    key = ("sidd", str(root.resolve()), cfg.check_images, strict)
    return memo(key, lambda: index_sidd(root, check_images=cfg.check_images, strict=strict))


def sidd_train(spec: SourceSpec, cfg: DataConfig) -> TrainingSet:
    index = resolve(cfg, path=spec.path)
    items = tuple(
        TrainItem(p.key, p.noisy_path, "png", ((p.height, p.width),), fingerprint=fingerprint(p.noisy_path))
        for p in index.pairs
    )
    return TrainingSet(spec, items, root=index.root, note=index.summary())


def sidd_evaluate(spec: SourceSpec, cfg: DataConfig) -> EvalSet:
    index = resolve(cfg, path=spec.path)
    noisy, clean = load_validation(index)
    per_image = index.validation.shape[1]
    key = fingerprint(index.validation.noisy_path) + fingerprint(index.validation.gt_path)
    return EvalSet(spec.name, spec, noisy, clean, np.arange(len(noisy)) // per_image, key=key)


def sidd_pairs(spec: SourceSpec, cfg: DataConfig, strict: bool = True) -> SiddIndex:
    return resolve(cfg, path=spec.path, strict=strict)


@register_reader("png")
def _read(item: TrainItem) -> list[np.ndarray]:
    return [read_png(item.path)]


register_source(
    SourceKind(
        "sidd",
        "a SIDD root (Medium pairs, validation and benchmark blocks); empty: synthetic SIDD-like data",
        train=sidd_train,
        evaluate=sidd_evaluate,
        pairs=sidd_pairs,
    )
)
