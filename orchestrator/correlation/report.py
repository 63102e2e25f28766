"""Findings and figures from per-image correlation maps: the paper's Figs. 6 and 7, outliers, groups.

Figures are drawn with matplotlib's object API (no pyplot global state) and written as PNG.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from orchestrator.correlation.stats import CorrelationSums
from orchestrator.schema import CorrelationFigures

__all__ = [
    "REFERENCE_MAPS",
    "load_reference",
    "check_offsets",
    "stack_maps",
    "group_maps",
    "find_outliers",
    "plot_heatmap",
    "plot_offset_distributions",
    "plot_map_grid",
    "plot_side_by_side",
    "write_report",
]


# Named maps to draw beside a measured one: the authors' pooled map over real SIDD Medium.
REFERENCE_MAPS = {"sidd": Path(__file__).parent / "reference" / "sidd_medium_noise_correlation_21x21.npy"}


def load_reference(name_or_path: str, radius: int) -> np.ndarray | None:
    """A reference map by name (:data:`REFERENCE_MAPS`) or ``.npy`` path, cropped to ``radius``;
    None for ''. Raises ValueError naming the value when it cannot be used."""
    if not name_or_path:
        return None
    path = REFERENCE_MAPS.get(name_or_path, Path(name_or_path).expanduser())
    try:
        m = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"figures.reference: cannot read {path} ({exc})") from exc
    r = (m.shape[-1] - 1) // 2
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] % 2 == 0:
        raise ValueError(f"figures.reference: {path} is not a square map of odd side (shape {m.shape})")
    if r <= radius:
        return m  # drawn at its own size
    return m[r - radius : r + radius + 1, r - radius : r + radius + 1]


DEFAULT_OFFSETS = ((0, 1), (2, 2), (0, 5), (7, 3))


def check_offsets(offsets: Iterable[tuple[int, int]], radius: int) -> tuple[tuple[int, int], ...]:
    """The offsets to plot: the given ones, each checked to lie in the map, or the defaults that do."""
    offsets = tuple(offsets)
    if not offsets:
        return tuple(o for o in DEFAULT_OFFSETS if max(map(abs, o)) <= radius)
    for dy, dx in offsets:
        if max(abs(dy), abs(dx)) > radius:
            raise ValueError(f"figures.offsets: offset ({dy}, {dx}) lies outside the radius-{radius} map")
    return offsets


def stack_maps(rows: Sequence[dict], radius: int) -> np.ndarray:
    """(N, 2R+1, 2R+1) per-image maps (NaN for images without a map)."""
    side = 2 * radius + 1
    if not rows:
        return np.zeros((0, side, side))
    return np.stack([np.asarray(r["map"], dtype=np.float64).reshape(side, side) for r in rows])


def group_maps(
    rows: Sequence[dict], column: str, sums: Sequence[CorrelationSums]
) -> dict[object, tuple[np.ndarray, int]]:
    """Pooled map per value of ``column`` (e.g. camera, iso) over the images with status ok."""
    pooled: dict[object, tuple[CorrelationSums, int]] = {}
    for row, s in zip(rows, sums, strict=True):
        if row["status"] != "ok":
            continue
        key = row[column]
        acc, n = pooled.get(key, (None, 0))
        pooled[key] = (s if acc is None else acc + s, n + 1)
    return {k: (acc.map(), n) for k, (acc, n) in sorted(pooled.items(), key=lambda kv: str(kv[0]))}


def find_outliers(
    rows: Sequence[dict], maps: np.ndarray, *, inner_radius: int, threshold: float
) -> list[dict]:
    """Images whose coefficient exceeds ``threshold`` somewhere outside the central square.

    Returns one dict per outlier image (largest first): key, camera, iso, value, dy, dx.
    """
    if not len(maps):
        return []
    r = (maps.shape[-1] - 1) // 2
    ks = np.arange(-r, r + 1)
    outside = (np.abs(ks)[:, None] > inner_radius) | (np.abs(ks)[None, :] > inner_radius)
    found = []
    for row, m in zip(rows, maps, strict=True):
        vals = np.where(outside & np.isfinite(m), m, -np.inf)
        i = int(np.argmax(vals))
        value = float(vals.flat[i])
        if value > threshold:
            dy, dx = divmod(i, m.shape[1])
            found.append(
                {
                    "key": row["key"],
                    "camera": row["camera"],
                    "iso": int(row["iso"]),
                    "value": value,
                    "dy": dy - r,
                    "dx": dx - r,
                }
            )
    return sorted(found, key=lambda o: -o["value"])


def _log_image(ax, corr_map: np.ndarray, floor: float, *, colorbar_fig: Figure | None = None):
    r = (corr_map.shape[-1] - 1) // 2
    shown = np.log10(np.clip(np.nan_to_num(corr_map, nan=floor), floor, 1.0))
    im = ax.imshow(
        shown, cmap="magma", vmin=np.log10(floor), vmax=0.0, extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5)
    )
    neg = np.argwhere(~(corr_map > 0))  # zero, negative or NaN: below the log scale
    if len(neg) and len(neg) < corr_map.size:
        ax.scatter(neg[:, 1] - r, neg[:, 0] - r, marker="x", s=8, c="cyan", linewidths=0.6)
    ax.set_xlabel("dx")
    ax.set_ylabel("dy")
    if colorbar_fig is not None:
        colorbar_fig.colorbar(im, ax=ax, label="log10(coefficient)")
    return im


def plot_heatmap(corr_map: np.ndarray, path: Path, *, title: str, floor: float = 1e-3) -> Path:
    """The map on a log scale (the paper's Fig. 6); cells at or below zero are marked x."""
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.add_subplot()
    _log_image(ax, corr_map, floor, colorbar_fig=fig)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=120)
    return path


def plot_offset_distributions(
    maps: np.ndarray, offsets: Sequence[tuple[int, int]], path: Path, *, threshold: float
) -> Path:
    """Histogram across images of the coefficient at each offset (the paper's Fig. 7)."""
    r = (maps.shape[-1] - 1) // 2
    fig = Figure(figsize=(3.2 * len(offsets), 3.0), layout="constrained")
    axes = fig.subplots(1, len(offsets), squeeze=False)[0]
    for ax, (dy, dx) in zip(axes, offsets, strict=True):
        vals = maps[:, r + dy, r + dx]
        vals = vals[np.isfinite(vals)]
        ax.hist(vals, bins=min(30, max(5, len(vals) // 2)), color="tab:blue")
        ax.axvline(threshold, color="tab:red", lw=0.8, ls="--")
        stats = f"n={len(vals)}" + (
            f", median {np.median(vals):.3f}, max {vals.max():.3f}" if len(vals) else ""
        )
        ax.set_title(f"offset ({dy}, {dx})\n{stats}", fontsize=8)
        ax.set_xlabel("coefficient")
    axes[0].set_ylabel("images")
    fig.savefig(path, dpi=120)
    return path


def plot_map_grid(named: dict[str, np.ndarray], path: Path, *, title: str, floor: float = 1e-3) -> Path:
    """Several maps on one log scale, a panel each."""
    n = max(1, len(named))
    cols = min(n, 4)
    fig = Figure(figsize=(3.0 * cols, 2.9 * ((n + cols - 1) // cols) + 0.4), layout="constrained")
    axes = fig.subplots((n + cols - 1) // cols, cols, squeeze=False).ravel()
    im = None
    for ax, (name, m) in zip(axes, named.items(), strict=False):
        im = _log_image(ax, m, floor)
        ax.set_title(name, fontsize=8)
    for ax in axes[len(named) :]:
        ax.axis("off")
    if not named:
        axes[0].text(0.5, 0.5, "none", ha="center", va="center")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="log10(coefficient)", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def plot_side_by_side(maps: dict[str, np.ndarray], path: Path, *, floor: float = 1e-3) -> Path:
    """Maps side by side on one log scale, plus their profiles along the axes."""
    fig = Figure(figsize=(4.2 * (len(maps) + 1), 3.8), layout="constrained")
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    for ax, (name, m) in zip(axes, maps.items(), strict=False):
        im = _log_image(ax, m, floor)
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=list(axes[:-1]), label="log10(coefficient)", shrink=0.8)
    prof = axes[-1]
    for name, m in maps.items():
        r = (m.shape[-1] - 1) // 2
        d = np.arange(0, r + 1)
        axis_mean = (m[r + d, r] + m[r - d, r] + m[r, r + d] + m[r, r - d]) / 4
        prof.semilogy(d, np.clip(axis_mean, floor, None), marker="o", ms=3, label=name)
    prof.set_xlabel("distance along the axes")
    prof.set_ylabel("coefficient")
    prof.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def write_report(
    rows: Sequence[dict],
    sums: Sequence[CorrelationSums],
    pooled_map: np.ndarray,
    cfg: CorrelationFigures,
    folder: Path,
    *,
    label: str,
    reference: np.ndarray | None = None,
) -> dict:
    """Write every figure into ``folder``; return the findings (outliers, groups, figure paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    radius = (pooled_map.shape[-1] - 1) // 2
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    maps = stack_maps([rows[i] for i in ok], radius)
    figs = [
        plot_heatmap(
            pooled_map,
            folder / "pooled_map_log.png",
            title=f"{label}: pooled map (log scale)",
            floor=cfg.log_floor,
        )
    ]
    offsets = check_offsets(cfg.offsets, radius)
    if offsets:
        figs.append(
            plot_offset_distributions(
                maps, offsets, folder / "offset_distributions.png", threshold=cfg.outlier_threshold
            )
        )
    outliers = find_outliers(
        [rows[i] for i in ok], maps, inner_radius=cfg.inner_radius, threshold=cfg.outlier_threshold
    )
    by_key = {rows[i]["key"]: maps[j] for j, i in enumerate(ok)}
    named = {f"{o['key']} ({o['value']:.2f} at {o['dy']},{o['dx']})": by_key[o["key"]] for o in outliers[:8]}
    side = 2 * cfg.inner_radius + 1
    figs.append(
        plot_map_grid(
            named,
            folder / "outliers.png",
            floor=cfg.log_floor,
            title=f"images above {cfg.outlier_threshold} outside the central {side}x{side}",
        )
    )
    groups, group_figs = _group_figures(rows, sums, folder, cfg.log_floor)
    figs += group_figs
    if reference is not None:
        figs.append(
            plot_side_by_side(
                {label: pooled_map, "reference": reference},
                folder / "versus_reference.png",
                floor=cfg.log_floor,
            )
        )
    return {"outliers": outliers, "groups": groups, "figures": [str(f) for f in figs]}


def _group_figures(rows, sums, folder: Path, floor: float) -> tuple[dict, list[Path]]:
    """The pooled map per camera and per ISO: the groups, and a figure of each."""
    groups, figs = {}, []
    for column in ("camera", "iso"):
        g = group_maps(rows, column, sums)
        groups[column] = {str(k): {"images": n, "map": m} for k, (m, n) in g.items()}
        named = {f"{column} {k} ({n} images)": m for k, (m, n) in g.items()}
        path = folder / f"by_{column}.png"
        figs.append(plot_map_grid(named, path, title=f"pooled map per {column}", floor=floor))
    return groups, figs
