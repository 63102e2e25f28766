"""The prior of a study: what its blind networks hide, measured on its own training images.

With ``prior.measure`` the study first runs the correlation job (:mod:`orchestrator.correlation.job`,
on the same Ray) with the ``residual`` statistic over the training source: the noise of each noisy
image estimated from the image alone, so a folder of photos with no clean twin is enough. The
region is the set of offsets connected to the centre whose pooled coefficient exceeds
``prior.threshold`` (:func:`models.masks.from_correlation`), cut to ``prior.max_radius``. Its
offsets become ``prior.hidden``, which the catalogue hands to every blind network
(:func:`models.registry.fit_region`). The job's outputs (maps, figures, ``mask.npz``) stay in
``OUT/prior/``; a rerun on the same images computes nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from models import masks
from orchestrator.schema import CorrelationConfig, StudyConfig

__all__ = ["measure", "with_region", "describe"]

FOLDER = "prior"


def measure(study: StudyConfig, out: Path) -> np.ndarray:
    """The region measured on ``study``'s training source (the correlation job in ``out/prior``)."""
    from orchestrator.correlation.job import run_correlation

    p = study.prior
    cfg = CorrelationConfig(
        data=study.data,
        out=str(out / FOLDER),
        radius=max(p.max_radius + 1, 5),
        statistic="residual",
        mask_threshold=p.threshold,
        ray=study.ray,
        tracking=dataclasses.replace(study.tracking, experiment=study.experiment),
    )
    run_correlation(cfg)
    blind, _ = masks.load(out / FOLDER / "mask.npz")
    return _cut(blind, p.max_radius)


def _cut(blind: np.ndarray, radius: int) -> np.ndarray:
    """``blind`` without the offsets beyond Chebyshev distance ``radius``."""
    return masks.from_offsets([o for o in masks.offsets(blind) if max(map(abs, o)) <= radius])


def with_region(study: StudyConfig, blind: np.ndarray) -> StudyConfig:
    """``study`` with ``prior.hidden`` set to the offsets of ``blind`` (the centre left out)."""
    hidden = tuple(o for o in masks.offsets(blind) if o != (0, 0))
    return dataclasses.replace(study, prior=dataclasses.replace(study.prior, hidden=hidden))


def describe(blind: np.ndarray) -> str:
    """One line: the region's size and what the families make of it."""
    r = masks.chebyshev_radius(blind)
    rows = ["".join("#" if v else "." for v in row) for row in blind]
    return (
        f"{int(blind.sum())} offsets within radius {r} ({' / '.join(rows)}): SSID's BNN hides a "
        f"{2 * r + 1}x{2 * r + 1} square, AP-BSN trains at pixel-shuffle stride {r + 1}, LG-BPN masks "
        "the region itself"
    )
