"""The results table: every ablation's measured numbers on every evaluation source, with their
uncertainty, beside classical references and the published numbers (``docs/METRICS.md``).

One row per ablation (over its seeds) and evaluation source (``eval_source``), and one per reference
method (family ``reference``: the noisy input, non-local means, BM3D) and source, first. Every mean
has a 95 % bootstrap interval over images (and seeds); each ablation is compared block by block with
its family's original (``delta_psnr_vs_original`` and its interval; ``delta_significant`` when the
interval excludes 0) and, every row, with the best reference row of its source
(``delta_vs_best_reference``, ``delta_ref_ci_low``, ``delta_ref_ci_high``: the classical method, or
the noisy input, with the highest mean PSNR there, named in ``best_reference``); ``flag`` says when a
row is below the noisy input, or else below a classical reference (the best one it is below).
With ``eval.select`` the row reports the checkpoint selected on the selection subset, on the
reported subset, at ``step``; ``last_psnr`` and ``last_ssim`` are the last checkpoint's. Measured
SSIM is given under both conventions (``ssim``: Gaussian window; ``ssim_uniform7``: scikit-image's
default); the published column says which one the paper most likely used.
"""

from __future__ import annotations

import numpy as np

from orchestrator.study.catalogue import catalogue
from orchestrator.study.references import NOISY

BELOW_NOISY = f"below {NOISY}"


def _status(chain) -> str:
    failed = [s for s in chain if s.result is None]
    if not failed:
        return "finished"
    if any(s.error.startswith("stopped early") for s in chain):
        return "stopped early"
    return f"failed: {failed[0].stage.config.name}: {failed[0].error}"


def _rows(planned) -> dict[str, list]:
    """The planned ablations of each row (one per seed), in plan order."""
    rows: dict[str, list] = {}
    for p in planned:
        rows.setdefault(p.name, []).append(p)
    return rows


def _originals(planned) -> dict[str, str]:
    """Each row's family original in the same variant (``S-1`` -> ``ssid``; ``S-1+D`` -> ``S-1``),
    where it is planned."""
    names = {p.name for p in planned}
    out = {}
    for p in planned:  # a distilled row is compared with its teacher
        original = p.variant.name(p.pa.entry.teacher or p.pa.entry.family)
        if original != p.name and original in names:
            out[p.name] = original
    return out


def _values(scores, row: str, seeds: list[int], source: str, kind: str, metric: str):
    """(seeds x blocks) values of ``row`` on ``source`` (``kind``: best where there is one, else
    last), the blocks, the seeds' Scores; None when no seed was scored."""
    found = []
    for k in seeds:
        sc = scores.get((row, k, source, "best")) if kind == "best" else None
        sc = sc or scores.get((row, k, source, "last"))
        if sc is not None:
            found.append(sc)
    if not found:
        return None
    return np.stack([f.values[metric] for f in found]), found[0].block, found


def _interval(values: np.ndarray, image: np.ndarray, resamples: int):
    from orchestrator.train.uncertainty import bootstrap

    return bootstrap(values, image, resamples=resamples)


def _ends(i) -> tuple[float | None, float | None]:
    """An interval's ends for the table; none (not a zero-width one) from a single image."""
    return (i.low, i.high) if i.defined else (None, None)


def _reference_rows(study, scores) -> list[dict]:
    out = []
    descriptions = {
        NOISY: "the noisy blocks as they are",
        "nlm": "non-local means (scikit-image), sigma estimated per image from the noisy image",
        "bm3d": "BM3D (bm3d package), sigma estimated per image from the noisy image",
    }
    for source in study.data.evals:
        best = best_reference(study, scores, source)
        for method in study.base.eval.references:
            sc = scores.get(("reference", method, source.name, "last"))
            if sc is None:
                continue
            image = source.image[sc.block]
            psnr = _interval(sc.values["psnr"][None], image, study.base.eval.resamples)
            ssim = _interval(sc.values["ssim"][None], image, study.base.eval.resamples)
            row = {
                "ablation": method,
                "family": "reference",
                "stage": "-",
                "status": "finished",
                "psnr": psnr.mean,
                "ssim": ssim.mean,
                "ssim_uniform7": sc.mean("ssim_uniform7"),
                "blocks": len(sc.block),
                "train_s": 0.0,
                "eval_s": round(sc.seconds, 1),
                "description": descriptions.get(method, method),
                "eval_source": source.name,
                "psnr_ci_low": _ends(psnr)[0],
                "psnr_ci_high": _ends(psnr)[1],
                "psnr_std": 0.0,
                "ssim_ci_low": _ends(ssim)[0],
                "ssim_ci_high": _ends(ssim)[1],
                "seeds": 1,
                "reused": "",
                "flag": "",
            }
            if best is not None and best[0] != method:
                row |= versus_best(sc.values["psnr"][None], sc.block, best, image, study.base.eval.resamples)
            out.append(row)
    return out


def best_reference(study, scores, source) -> tuple[str, object] | None:
    """The reference row of ``source`` with the highest mean PSNR (the noisy input when no
    classical method improves on it): its name and its Scores; None without reference rows."""
    found = [(m, scores.get(("reference", m, source.name, "last"))) for m in study.base.eval.references]
    found = [(m, sc) for m, sc in found if sc is not None]
    return max(found, key=lambda f: f[1].mean("psnr")) if found else None


def versus_best(values: np.ndarray, block: np.ndarray, best, image: np.ndarray, resamples: int) -> dict:
    """A row's paired PSNR difference from the best reference row (``best``: its name and Scores)
    over the same blocks, with its interval; nothing when the blocks differ."""
    from orchestrator.train.uncertainty import paired

    name, sc = best
    if not np.array_equal(sc.block, block):
        return {}
    d = paired(values, sc.values["psnr"][None], image, resamples=resamples)
    return {
        "best_reference": name,
        "delta_vs_best_reference": d.mean,
        "delta_ref_ci_low": _ends(d)[0],
        "delta_ref_ci_high": _ends(d)[1],
    }


def _flag(psnr: float | None, references: dict[str, float]) -> str:
    """``below noisy input`` when ``psnr`` is below that row; else ``below <method>`` for the best
    classical reference row above it; else nothing."""
    if psnr is None:
        return ""
    if NOISY in references and psnr < references[NOISY]:
        return BELOW_NOISY
    above = {m: v for m, v in references.items() if m != NOISY and psnr < v}
    return f"below {max(above, key=above.get)}" if above else ""


def _steps(study, row_planned, kind: str) -> str:
    from orchestrator.train.store import best_header

    steps = []
    for p in row_planned:
        s = study.stages[p.final.key]
        best = study.best_file(s.stage) if kind == "best" else None
        if best is not None:
            steps.append(str(best_header(best)["step"]))
        elif s.result is not None:
            steps.append(str(s.result.steps))
    return "/".join(steps)


def row_numbers(
    psnr: np.ndarray,
    ssim: np.ndarray,
    image: np.ndarray,
    resamples: int,
    original: np.ndarray | None = None,
) -> dict:
    """A row's means and intervals from per-block values (seeds x blocks; ``image``: each block's
    image) and, given its family original's PSNR over the same blocks, the paired difference."""
    from orchestrator.train.uncertainty import paired

    p, s = _interval(psnr, image, resamples), _interval(ssim, image, resamples)
    out = {
        "psnr": p.mean,
        "psnr_ci_low": _ends(p)[0],
        "psnr_ci_high": _ends(p)[1],
        "psnr_std": p.std,
        "ssim": s.mean,
        "ssim_ci_low": _ends(s)[0],
        "ssim_ci_high": _ends(s)[1],
    }
    if original is not None:
        d = paired(psnr, original, image, resamples=resamples)
        out |= {
            "delta_psnr_vs_original": d.mean,
            "delta_ci_low": _ends(d)[0],
            "delta_ci_high": _ends(d)[1],
            "delta_significant": d.excludes_zero,
        }
    return out


def _common(study, entry, name: str, planned, kind: str) -> dict:
    """The columns of a row that do not depend on the evaluation source."""
    chains = [
        [study.stages[s.key] for s in p.pa.stages if study.stages[s.key].state != "skipped"] for p in planned
    ]
    unique = {s.stage.key: s for chain in chains for s in chain}
    pub = entry.published
    reused = (s.stage.config.name for s in unique.values() if not s.trained_here and s.result is not None)
    return {
        "ablation": name,
        "family": entry.family,
        "stage": chains[0][-1].stage.config.name if chains[0] else "-",
        "status": next((st for st in (_status(c) for c in chains) if st != "finished"), "finished"),
        "published_psnr": pub.psnr if pub else None,
        "published_ssim": pub.ssim if pub else None,
        "published_ssim_kind": pub.ssim_kind if pub else None,
        "reused": ",".join(dict.fromkeys(reused)),
        "train_s": round(sum(s.result.train_s for s in unique.values() if s.result is not None), 1),
        "description": entry.description,
        "step": _steps(study, planned, kind) or None,
    }


def _scored(study, scores, name: str, rows: dict, source, kind: str, refs: dict) -> dict:
    """The columns of a row on one evaluation source (none when no seed of it was scored)."""
    seeds = [p.seed for p in rows[name]]
    got = _values(scores, name, seeds, source.name, kind, "psnr")
    if got is None:
        return {}
    psnr_v, block, found = got
    pick = lambda which, metric: _values(scores, name, seeds, source.name, which, metric)[0]  # noqa: E731
    original = _originals(study.planned).get(name)
    theirs = None
    if original:
        theirs = _values(scores, original, [p.seed for p in rows[original]], source.name, kind, "psnr")
    same_blocks = theirs is not None and np.array_equal(theirs[1], block)
    image = source.image[block]
    resamples = study.base.eval.resamples
    row = row_numbers(psnr_v, pick(kind, "ssim"), image, resamples, theirs[0] if same_blocks else None)
    best = best_reference(study, scores, source)
    if best is not None:
        row |= versus_best(psnr_v, block, best, image, resamples)
    return row | {
        "ssim_uniform7": float(pick(kind, "ssim_uniform7").mean()),
        "blocks": len(block),
        "seeds": len(found),
        "last_psnr": float(pick("last", "psnr").mean()),
        "last_ssim": float(pick("last", "ssim").mean()),
        "eval_s": round(sum(f.seconds for f in found), 1),
        "flag": _flag(row["psnr"], {m: v for (src, m), v in refs.items() if src == source.name}),
    }


def study_table(study, scores, costs: dict[str, dict] | None = None) -> list[dict]:
    """Rows of a study (:class:`orchestrator.study.run._Study`): the reference rows, then per
    ablation (or sweep variant, over its seeds) and evaluation source, from its stages' states and
    the final scores (``{(row, seed, source, kind): Scores}``), and each row's ``costs``
    (``params``, ``ms_per_block``; :mod:`orchestrator.study.cost`)."""
    entries = {}
    for p in study.planned:
        entries.update(catalogue(p.variant.study))
    table = _reference_rows(study, scores)
    refs = {(r["eval_source"], r["ablation"]): r["psnr"] for r in table}
    rows = _rows(study.planned)
    kind = "best" if study.selection is not None else "last"
    for name, planned in rows.items():
        common = _common(study, entries[planned[0].pa.entry.name], name, planned, kind)
        for source in study.data.evals or [None]:
            row = dict(common, eval_source=source.name if source is not None else "", flag="", seeds=0)
            if source is not None:
                row |= _scored(study, scores, name, rows, source, kind, refs)
            table.append(row)
    none = {"params": None, "ms_per_block": None}
    return [row | (costs or {}).get(row["ablation"], none) for row in table]


def best_line(study, scores) -> str:
    """A sweep's verdict: the row with the best mean PSNR on the selection subset (the numbers it
    was chosen by), with its interval, and its numbers on the reported subset. Without a selection
    subset (``eval.select`` 0) the choice is made on the reported blocks, and the line says so."""
    if len({p.variant.label for p in study.planned}) < 2 or not study.data.evals:
        return ""
    source, e = study.data.evals[0], study.base.eval
    kind = "sel" if study.selection is not None else "last"
    best = None
    for name, planned in _rows(study.planned).items():
        found = [scores.get((name, p.seed, source.name, kind)) for p in planned]
        found = [f for f in found if f is not None]
        if found:
            values = np.stack([f.values["psnr"] for f in found])
            if best is None or values.mean() > best[1].mean():
                best = (name, values, found[0].block)
    if best is None:
        return "best configuration: none finished"
    name, values, block = best
    ci = _interval(values, source.image[block], e.resamples)
    where = (
        f"the selection subset ({len(block)} blocks of {source.name}, eval.select={e.select})"
        if kind == "sel"
        else f"the reported blocks of {source.name} (eval.select=0: chosen on the numbers it reports)"
    )
    line = f"best configuration by {where}: {name}, PSNR {_with_interval(ci)}"
    if kind == "sel":
        seeds = [p.seed for p in _rows(study.planned)[name]]
        reported = _values(scores, name, seeds, source.name, "best", "psnr")
        if reported is not None:
            ci = _interval(reported[0], source.image[reported[1]], e.resamples)
            line += f"; on the reported subset: {_with_interval(ci)}"
    return line


def _with_interval(ci) -> str:
    ends = f"[95% CI {ci.low:.3f}, {ci.high:.3f}]" if ci.defined else "[no interval: one image]"
    return f"{ci.mean:.3f} dB {ends}"
