"""Every config a user can set: the dataclasses that ``--config`` and ``--set`` reach.

Each job builds one of the top-level configs (:class:`StudyConfig`, :class:`CorrelationConfig`,
:class:`EvaluateConfig`, :class:`DenoiseConfig`, :class:`SweepConfig`) through the engine in
:mod:`orchestrator.config`; the nested ones (data, train, eval, trial, ray, tracking, ...) are
shared. Data only: no I/O, no imports from the rest of the project but the engine. One module per
part (data, stage, study, jobs), all names importable from here.
"""

from orchestrator.schema.data import (
    CAMERA_CODES,
    BlocksOptions,
    DataConfig,
    FolderOptions,
    PairsOptions,
    SyntheticSpec,
)
from orchestrator.schema.jobs import (
    CorrelationConfig,
    CorrelationFigures,
    DenoiseConfig,
    EvaluateConfig,
)
from orchestrator.schema.stage import (
    NOISY,
    MaskConfig,
    ModelSpec,
    OptimConfig,
    StageConfig,
    StageTrial,
    TrainConfig,
)
from orchestrator.schema.study import (
    AshaConfig,
    ClassicalOptions,
    EvalConfig,
    PriorConfig,
    RayConfig,
    StudyConfig,
    SweepConfig,
    TrackingConfig,
    TrialConfig,
)

__all__ = [
    "NOISY",
    "CAMERA_CODES",
    "SyntheticSpec",
    "FolderOptions",
    "PairsOptions",
    "BlocksOptions",
    "DataConfig",
    "RayConfig",
    "TrialConfig",
    "TrackingConfig",
    "MaskConfig",
    "ModelSpec",
    "OptimConfig",
    "TrainConfig",
    "StageConfig",
    "StageTrial",
    "ClassicalOptions",
    "EvalConfig",
    "PriorConfig",
    "StudyConfig",
    "AshaConfig",
    "SweepConfig",
    "CorrelationFigures",
    "CorrelationConfig",
    "DenoiseConfig",
    "EvaluateConfig",
]
