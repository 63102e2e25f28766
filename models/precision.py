"""Numeric precision of a forward pass: ``fp32`` (exact, the default) or ``bf16`` autocast.

Under ``bf16``, convolutions and matrix products run in bfloat16 (8-bit mantissa, each rounding
within 0.4 %); the parameters and the optimizer stay in float32 (mixed precision). On a CPU with
AVX512-BF16 that made every model family 2-5x faster than float32 in ``bench/models.py``, with
whole-network outputs 0.4-1.2 % RMS away from float32 (``docs/BENCHMARKS.md``). Golden
comparisons and reported metrics use ``fp32``.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "autocast", "check_precision"]

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The context in which a forward pass runs at ``precision`` on ``device``'s kind."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
