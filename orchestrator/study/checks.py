"""Checks of one resolved stage: its model, loss and their arguments exist, its sizes, rates and
workers are in range. An error names the key at fault, ``<ablation>.<stage>.<path>``; the catalogue
names it by the key the user wrote instead."""

from __future__ import annotations

from models.losses import list_losses, loss_arguments
from models.registry import is_model, list_models, model_arguments
from orchestrator.config import ConfigError
from orchestrator.schema import StageConfig

__all__ = ["check_stage"]


def check_stage(cfg: StageConfig, *, where: str) -> None:
    """Model, its arguments, loss and its arguments exist; sizes and rates are in range.

    Raises:
        ConfigError: naming ``where.<key>`` (``where``: the stage's path).
    """
    if not is_model(cfg.model.name):
        raise ConfigError(f"{where}.model.name", f"unknown model {cfg.model.name!r}; known: {list_models()}")
    accepted = model_arguments(cfg.model.name)
    for k in cfg.model.kwargs:
        if k not in accepted:
            raise ConfigError(
                f"{where}.model.kwargs.{k}", f"not an argument of {cfg.model.name!r} ({accepted})"
            )
    if cfg.model.mask is not None and "blind" not in accepted:
        raise ConfigError(f"{where}.model.mask", f"{cfg.model.name!r} takes no blind region")
    if cfg.loss not in list_losses():
        raise ConfigError(f"{where}.loss", f"unknown loss {cfg.loss!r}; known: {list_losses()}")
    takes = loss_arguments(cfg.loss)
    for k in cfg.loss_kwargs:
        if k not in takes:
            raise ConfigError(f"{where}.loss_kwargs.{k}", f"not an argument of loss {cfg.loss!r} ({takes})")
    if not cfg.targets:
        raise ConfigError(f"{where}.targets", "a stage needs at least one target")
    _check_train(cfg, where)


def _check_train(cfg: StageConfig, where: str) -> None:
    t = cfg.train
    for key, value in (("batch", t.batch), ("patch", t.patch), ("checkpoint_every", t.checkpoint_every)):
        if value < 1:
            raise ConfigError(f"{where}.train.{key}", f"must be >= 1, got {value}")
    if t.epochs <= 0 and t.steps < 1:
        raise ConfigError(f"{where}.train.steps", f"must be >= 1 when epochs is 0, got {t.steps}")
    if t.optim.lr <= 0:
        raise ConfigError(f"{where}.train.optim.lr", f"must be positive, got {t.optim.lr}")
    if t.optim.schedule == "step" and t.optim.decay_every <= 0 and t.optim.decay_epochs <= 0:
        raise ConfigError(f"{where}.train.optim", "schedule 'step' needs decay_every or decay_epochs > 0")
    n = cfg.trial.workers
    if n < 1:
        raise ConfigError(f"{where}.trial.workers", f"must be >= 1, got {n}")
    if t.batch % n:
        raise ConfigError(
            f"{where}.trial.workers",
            f"stage {where}: train.batch {t.batch} is not a multiple of trial.workers {n} (each worker "
            f"trains on an equal share of a step's {t.batch} crops); set a batch that {n} divides, "
            "or fewer workers",
        )
