"""The parts of a stage's recipe that are not the loop: its learning-rate schedule, and the
data-dependent start of its output bias (``train.init_output_bias``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from orchestrator.config import ConfigError
from orchestrator.schema import TrainConfig

__all__ = ["make_scheduler", "init_output_bias"]


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int, steps_per_epoch: int):
    o = cfg.optim
    if o.warmup > 0:
        return _warmup_schedule(opt, cfg, total, steps_per_epoch)
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if o.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            opt, step_size=_decay_every(cfg, steps_per_epoch), gamma=o.gamma
        )
    return None


def _decay_every(cfg: TrainConfig, steps_per_epoch: int) -> int:
    o = cfg.optim
    every = o.decay_every or o.decay_epochs * steps_per_epoch
    if every <= 0:
        raise ConfigError("train.optim", "schedule 'step' needs decay_every or decay_epochs > 0")
    return every


def _warmup_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int, steps_per_epoch: int):
    """A linear warm-up over ``optim.warmup`` steps times the schedule, as one closed form."""
    o = cfg.optim
    every = _decay_every(cfg, steps_per_epoch) if o.schedule == "step" else 0

    def factor(k: int) -> float:
        warm = min(1.0, (k + 1) / o.warmup)
        if o.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(k, total) / max(1, total)))
        if o.schedule == "step":
            return warm * o.gamma ** (k // every)
        return warm

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def init_output_bias(model: nn.Module, x: torch.Tensor) -> str:
    """Shift the bias of ``model``'s output convolution (the last convolution with as many output
    channels as ``x`` has, and a bias, to run in a forward pass on ``x``) so that the mean output
    per channel equals ``x``'s: the network starts at the data's intensity. Returns what it did."""
    ran: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: ran.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.out_channels == x.shape[1] and m.bias is not None
    ]
    try:
        before = model(x).float().mean(dim=(0, 2, 3))
    finally:
        for h in hooks:
            h.remove()
    if not ran:
        return "train.init_output_bias: no output convolution with a bias; left as initialised"
    target = x.float().mean(dim=(0, 2, 3))
    ran[-1].bias += (target - before).to(ran[-1].bias.dtype)
    after = model(x).float().mean(dim=(0, 2, 3))
    fmt = lambda v: "/".join(f"{a:.1f}" for a in v.tolist())  # noqa: E731
    return f"output bias from the first batch: mean output {fmt(before)} -> {fmt(after)} (data {fmt(target)})"
