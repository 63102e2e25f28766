"""Blind regions as data: which neighbours of a pixel a blind network must not see.

A blind region is a square boolean array of odd side, True at the offsets (dy, dx) from the centre
that are hidden (the centre itself included). LG-BPN hides the radius-4 diamond (L1 distance <= 4,
41 offsets) in its 9x9 local kernel; :func:`from_correlation` derives a region from a measured
noise-correlation map instead (the paper's Sec. 3.2 prior), and :func:`save` / :func:`load` keep
it with its provenance in one ``.npz`` (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "diamond",
    "from_correlation",
    "kernel_taps",
    "save",
    "load",
    "offsets",
    "from_offsets",
    "chebyshev_radius",
    "DEFAULT_THRESHOLD",
    "PEARSON_THRESHOLD",
]

# On the real SIDD Medium map (the paper's rgb_pearson) this threshold gives exactly LG-BPN's
# radius-4 diamond.
DEFAULT_THRESHOLD = 0.02
# For the ordinary Pearson coefficient (pearson, residual): a network that sees a neighbour whose
# noise correlates by r with the pixel's can carry up to r^2 of the noise variance through it;
# above 0.2 (4 %) the neighbour is hidden.
PEARSON_THRESHOLD = 0.2


def diamond(radius: int = 4, *, size: int | None = None) -> np.ndarray:
    """Offsets with ``|dy| + |dx| <= radius``, in a ``size`` x ``size`` array (2*radius+1 by default)."""
    size = 2 * radius + 1 if size is None else size
    if radius < 0 or size < 2 * radius + 1 or size % 2 == 0:
        raise ValueError(f"need radius >= 0 and an odd size >= 2*radius+1, got radius={radius}, size={size}")
    ks = np.abs(np.arange(size) - size // 2)
    return (ks[:, None] + ks[None, :]) <= radius


def from_correlation(corr_map: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The connected region (4-neighbour) around the centre where the coefficient exceeds ``threshold``.

    The centre is always hidden. NaN cells (offsets without pairs) count as below the threshold.

    Args:
        corr_map: (2R+1, 2R+1) correlation map, centre at [R, R].
        threshold: coefficient above which a neighbour is too correlated to be seen.
    """
    m = np.asarray(corr_map, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] % 2 == 0:
        raise ValueError(f"correlation map must be square with an odd side, got shape {m.shape}")
    above = np.nan_to_num(m, nan=-np.inf) > threshold
    r = m.shape[0] // 2
    region = np.zeros_like(above)
    region[r, r] = True
    frontier = [(r, r)]
    while frontier:  # flood fill; at most (2R+1)^2 cells
        y, x = frontier.pop()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= ny < m.shape[0] and 0 <= nx < m.shape[1] and above[ny, nx] and not region[ny, nx]:
                region[ny, nx] = True
                frontier.append((ny, nx))
    return region


def offsets(blind: np.ndarray) -> list[tuple[int, int]]:
    """The hidden offsets (dy, dx) of a region, the centre included, in row order."""
    b = np.asarray(blind, dtype=bool)
    r = b.shape[0] // 2
    return [(int(y) - r, int(x) - r) for y, x in np.argwhere(b)]


def from_offsets(hidden) -> np.ndarray:
    """The smallest region (square, odd side) hiding the offsets ``hidden`` and the centre."""
    pairs = [(int(dy), int(dx)) for dy, dx in hidden] + [(0, 0)]
    r = max(max(abs(dy), abs(dx)) for dy, dx in pairs)
    out = np.zeros((2 * r + 1, 2 * r + 1), dtype=bool)
    for dy, dx in pairs:
        out[r + dy, r + dx] = True
    return out


def chebyshev_radius(blind: np.ndarray) -> int:
    """The largest ``max(|dy|, |dx|)`` over the hidden offsets of a region."""
    return max(max(abs(dy), abs(dx)) for dy, dx in offsets(blind))


def kernel_taps(blind: np.ndarray, size: int) -> np.ndarray:
    """Active taps (1.0) of a ``size`` x ``size`` kernel that sees nothing in ``blind`` (0.0 there)."""
    b = np.asarray(blind, dtype=bool)
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    rb, rk = b.shape[0] // 2, size // 2
    out = np.ones((size, size))
    # Centre both arrays on each other; parts of the region beyond the kernel do not matter.
    lo, hi = max(rb - rk, 0), min(rb + rk + 1, b.shape[0])
    off = rk - rb
    out[lo + off : hi + off, lo + off : hi + off][b[lo:hi, lo:hi]] = 0.0
    return out


def save(path: str | Path, blind: np.ndarray, **meta: object) -> Path:
    """Write ``blind`` and JSON-able provenance (threshold, statistic, source, ...) to ``path`` (.npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, blind=np.asarray(blind, dtype=bool), meta_json=np.array(json.dumps(meta, sort_keys=True)))
    return path


def load(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a region written by :func:`save`: (blind, meta). Raises ValueError naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            blind, meta = z["blind"], json.loads(str(z["meta_json"]))
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a blind-region file written by models.masks.save ({exc})") from exc
    if blind.dtype != bool or blind.ndim != 2 or blind.shape[0] != blind.shape[1] or blind.shape[0] % 2 == 0:
        raise ValueError(f"{path}: 'blind' must be a square boolean array of odd side, got {blind.shape}")
    return blind, meta
