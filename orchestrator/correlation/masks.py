"""Resolve a :class:`MaskConfig` to a blind region: LG-BPN's diamond, or one derived from a measured
noise-correlation map (``mask: from_correlation``) found on disk or in an MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from models import masks
from orchestrator.schema import MaskConfig, TrackingConfig

MASK_FILE = "mask.npz"
MAP_FILE = "pooled_map.npy"


def _from_path(path: Path, threshold: float) -> tuple[np.ndarray, dict]:
    if path.is_dir():
        if (path / MASK_FILE).is_file():
            return masks.load(path / MASK_FILE)
        if (path / MAP_FILE).is_file():
            path = path / MAP_FILE
        else:
            raise ValueError(f"mask.source: {path} holds neither {MASK_FILE} nor {MAP_FILE}")
    if not path.is_file():
        raise ValueError(f"mask.source: {path} does not exist")
    if path.suffix == ".npz":
        return masks.load(path)
    if path.suffix == ".npy":
        try:
            corr_map = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"mask.source: cannot read the correlation map {path} ({exc})") from exc
        blind = masks.from_correlation(corr_map, threshold=threshold)
        return blind, {"source": str(path), "threshold": threshold}
    raise ValueError(
        f"mask.source: {path} is not a .npz blind region, a .npy map or a correlation output folder"
    )


def resolve_mask(cfg: MaskConfig, *, tracking: TrackingConfig | None = None) -> tuple[np.ndarray, dict]:
    """The blind region ``cfg`` names, with its provenance.

    ``from_correlation`` with ``source`` = ``runs:/<run_id>[/<artifact>]`` downloads the run's
    ``mask.npz`` (or the named artifact) from the MLflow store of ``tracking``.
    """
    if cfg.kind == "diamond":
        return masks.diamond(cfg.radius), {"kind": "diamond", "radius": cfg.radius}
    if not cfg.source:
        raise ValueError(
            "mask.source: empty; from_correlation needs a mask.npz, a map, a folder or runs:/<id>"
        )
    if cfg.source.startswith("runs:/"):
        from orchestrator.tracking import Tracker, parse_run_uri

        run_id, artifact = parse_run_uri(cfg.source)
        with tempfile.TemporaryDirectory() as tmp:
            local = Tracker(tracking).download(run_id, artifact or MASK_FILE, tmp)
            blind, meta = _from_path(local, cfg.threshold)
        return blind, {**meta, "kind": "from_correlation", "run": cfg.source}
    blind, meta = _from_path(Path(cfg.source).expanduser(), cfg.threshold)
    return blind, {**meta, "kind": "from_correlation"}
