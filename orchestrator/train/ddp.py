"""What each of a stage's data-parallel workers does differently from a single process.

A stage with ``trial.workers`` N > 1 trains in N processes (Ray Train workers, one
``torch.distributed`` group: ``gloo`` on CPU, ``nccl`` on CUDA). Every process builds the same model
from the same seed, resumes from the same checkpoint and draws the same global batch of step k from
(seed, k); process r trains on the r-th of N equal, contiguous shares of its crops. The loss of a
share is its mean, DistributedDataParallel averages the gradients, so each step is the step of one
process on the whole batch (the order of floating-point sums aside). Rank 0 alone writes: history,
checkpoints, the selected best model, ``model.pt``, metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Share", "wrap", "mean_across", "check_same_step"]


@dataclass(frozen=True)
class Share:
    """Which share of each step's crops this process trains on: ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Whether this process writes the stage's files and reports (rank 0)."""
        return self.rank == 0

    def of(self, batch: int) -> slice:
        """The indices of this share in a global batch of ``batch`` crops."""
        if batch % self.world:
            raise ValueError(f"a batch of {batch} does not split into {self.world} equal shares")
        n = batch // self.world
        return slice(self.rank * n, (self.rank + 1) * n)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel. Batch-norm layers, if any, become synchronised ones
    (statistics over the whole batch, as in one process; ``nccl`` only)."""
    from torch.nn.parallel import DistributedDataParallel

    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        if device.type != "cuda":
            raise ValueError(
                "batch-norm layers need CUDA to synchronise their statistics across workers; "
                "train this stage with trial.workers=1 on CPU"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type != "cuda":
        return DistributedDataParallel(model)
    return DistributedDataParallel(model, device_ids=[device.index or 0])


def mean_across(value: torch.Tensor) -> float:
    """The mean of a scalar over the processes (each share's loss: the whole batch's loss)."""
    import torch.distributed as dist

    total = value.detach().float().reshape(1).clone()
    dist.all_reduce(total)
    return float(total.item()) / dist.get_world_size()


def check_same_step(step: int, who: str, device: torch.device) -> None:
    """Fail unless every process resumes from the same step: a worker that sees an older
    checkpoint is on a node whose disk does not hold the stage folder."""
    import torch.distributed as dist

    steps = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(steps, torch.tensor([step], dtype=torch.long, device=device))
    found = [int(s.item()) for s in steps]
    if len(set(found)) > 1:
        raise RuntimeError(
            f"{who}: the workers found different checkpoints (steps {found} by rank): the stage "
            "folder must be on storage that every node shares (--out)"
        )
