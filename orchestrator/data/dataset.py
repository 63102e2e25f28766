"""Resolve a data config to a validated SIDD root: a real download, or synthetic data made once."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from orchestrator.config import to_dict
from orchestrator.data import synthetic
from orchestrator.data.sidd import SiddIndex, index_sidd
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


def resolve(cfg: DataConfig, *, progress: bool = True, strict: bool = True) -> SiddIndex:
    """Index ``cfg.root`` if set, else the (generated if needed) synthetic tree.

    ``strict=False`` leaves bad files out and lists them in ``SiddIndex.problems``.
    """
    root = Path(cfg.root).expanduser() if cfg.root else ensure_synthetic(cfg, progress=progress)
    return index_sidd(root, check_images=cfg.check_images, strict=strict)
