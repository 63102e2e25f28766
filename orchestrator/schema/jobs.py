"""The configs of the jobs beside the study: correlation, denoise, evaluate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.config import ConfigError
from orchestrator.schema.data import DataConfig
from orchestrator.schema.study import RayConfig, TrackingConfig


@dataclass(frozen=True)
class CorrelationFigures:
    """What the correlation report looks at.

    ``offsets``: (dy, dx) offsets whose distribution across images is plotted (the paper's Fig. 7);
    empty: (0, 1), (2, 2), (0, 5), (7, 3), those within the map's radius.
    An image is an outlier when its coefficient exceeds ``outlier_threshold`` at some offset outside
    the central (2*``inner_radius``+1)^2 square (9x9 by default; the paper saw values above 0.2).
    ``reference``: a map drawn beside the pooled one: ``sidd`` (the authors' real SIDD Medium map),
    a ``.npy`` path, or '' for none.
    """

    offsets: tuple[tuple[int, int], ...] = ()
    outlier_threshold: float = 0.2
    inner_radius: int = 4
    log_floor: float = 1e-3
    reference: str = "sidd"


@dataclass(frozen=True)
class CorrelationConfig:
    """The Ray Data noise-correlation job (``jobs/correlation.py``).

    ``workers``: concurrent per-pair tasks (0: one per CPU of the cluster). ``threads``: FFT threads
    in each task (each task reserves that many CPUs). ``strict``: stop on any bad dataset file
    instead of leaving it out with its reason. ``resume``: reuse per-image results already in
    ``out`` for the same radius, statistic and unchanged files. ``statistic``: ``rgb_pearson`` (the
    paper's) or ``pearson`` of ``noisy - clean`` over the sources' pairs; ``residual``, the noise
    estimated from the training source's noisy images alone (no clean twin needed;
    :mod:`orchestrator.correlation.residual`). ``mask_threshold``: the coefficient above which an
    offset joins the derived blind region (None: 0.02 for ``rgb_pearson``, which gives LG-BPN's
    diamond on the real SIDD map; 0.2 for the ordinary Pearson coefficients, :mod:`models.masks`).
    """

    data: DataConfig = DataConfig()
    out: str = "correlation_out"
    radius: int = 10
    statistic: Literal["rgb_pearson", "pearson", "residual"] = "rgb_pearson"
    workers: int = 0
    threads: int = 1
    max_pairs: int = 0
    strict: bool = False
    resume: bool = True
    figures: CorrelationFigures = CorrelationFigures()
    mask_threshold: float | None = None
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        for name, low in (("radius", 1), ("workers", 0), ("threads", 1), ("max_pairs", 0)):
            if getattr(self, name) < low:
                raise ConfigError(name, f"must be >= {low}, got {getattr(self, name)}")

    @property
    def threshold(self) -> float:
        """``mask_threshold``, or the statistic's default."""
        from models.masks import DEFAULT_THRESHOLD, PEARSON_THRESHOLD

        if self.mask_threshold is not None:
            return self.mask_threshold
        return DEFAULT_THRESHOLD if self.statistic == "rgb_pearson" else PEARSON_THRESHOLD


@dataclass(frozen=True)
class DenoiseConfig:
    """``jobs/denoise.py``: ``tile`` > 0 is the tile core side; 0: chosen from ``memory_mb`` (0 as
    well: whole images). ``margin``: context around each tile; ``blend``: the blending band.
    ``device``: ``cuda``, ``cpu`` ('' : CUDA when there is one). ``seed``: random inference (R3).
    ``data``: the options of a source given as ``SOURCE:PATH`` (``data.folder.glob`` ...).
    ``method_name``: the submission's ``MethodName``."""

    out: str = "denoised"
    tile: int = 0
    memory_mb: float = 2048.0
    margin: int = 160
    blend: int = 16
    device: str = ""
    seed: int = 0
    method_name: str = ""
    data: DataConfig = DataConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="")


@dataclass(frozen=True)
class EvaluateConfig:
    """``jobs/evaluate.py``: ``blocks`` 0 scores every validation block; ``workers`` 0 is one actor
    per GPU of the cluster, else per CPU; ``gpus_per_worker`` unset: 1 with GPUs, else 0.
    ``experiment``: the study whose ablation ``--ablation`` names ('': the newest finished run of
    that ablation in any experiment)."""

    data: DataConfig = DataConfig()
    out: str = "evaluation"
    blocks: int = 0
    batch: int = 8
    workers: int = 0
    gpus_per_worker: float | None = None
    seed: int = 0
    benchmark: bool = False
    method_name: str = ""
    experiment: str = ""
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig(experiment="evaluations")
