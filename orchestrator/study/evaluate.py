"""A study's final scores: every model (the last and the selected checkpoint of each ablation's
final stage, per seed) and every reference method, on every evaluation source, in one Ray Data
pass through the one evaluation path, cached.

Scores are per block (PSNR, SSIM, SSIM-uniform7), so the report can average them, bootstrap them
over images and compare two methods block by block. A model's are cached under
``OUT/evaluations/<source>-<source key>/<name>-<blocks>.npz`` by its stage key and checkpoint; a
reference method's, which depend on nothing of the study, under
``<data.cache_dir>/references/<source>-<source key>/`` by the method and its settings, so that
every later job on that source reuses them. A rerun scores nothing; an evaluation source added
later scores only itself; a stage's key does not depend on the evaluation sources, so nothing
retrains.

All the scoring left to do runs as one Ray Data dataset of (job, block) rows on an actor pool (one
actor per GPU of the cluster, or per CPU locally): each actor holds the sources once and loads a
job's model the first time it meets it. A block's output depends neither on its batch nor on its
actor (R3 is seeded per block), so the scores equal those of ``jobs/evaluate.py``.

The sample blocks of the comparison grid are the most textured of the first source's reported
blocks (:func:`textured_blocks`); their outputs are computed again in this process by the same
path, with the same per-block seeds, as the pool's.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrator.cluster import prompt_dispatch, quiet_ray_data
from orchestrator.data.sources import EvalSet
from orchestrator.progress import Progress
from orchestrator.train.evaluation import device_for, score_batch
from orchestrator.train.metrics import METRICS

__all__ = ["Scores", "Job", "StudyEvaluation", "selection_key", "textured_blocks", "sample_strips"]


@dataclass
class Scores:
    """Per-block scores of one method on blocks ``block`` of one source, and the seconds of
    compute they took (summed over the workers)."""

    block: np.ndarray
    values: dict[str, np.ndarray]  # metric -> (blocks,)
    seconds: float

    def mean(self, metric: str = "psnr") -> float:
        return float(self.values[metric].mean())

    def metrics(self, prefix: str) -> dict[str, float]:
        """``<prefix>_psnr`` ... and ``<prefix>_blocks``, as every evaluation names them."""
        out = {f"{prefix}_{k}": self.mean(k) for k in METRICS}
        return out | {f"{prefix}_blocks": float(len(self.block))}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, block=self.block, seconds=self.seconds, **self.values)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Scores:
        with np.load(path) as z:
            return cls(z["block"], {k: z[k] for k in METRICS}, float(z["seconds"]))


@dataclass(frozen=True)
class Job:
    """Scores to compute: ``model`` (a ``model.pt``-like file, or ``ref:<method>``) on the blocks
    ``index`` of source ``source``, R3 seeded by ``seed``; cached as ``name``."""

    name: str
    model: str
    source: str
    index: tuple[int, ...]
    seed: int = 0


def selection_key(source: EvalSet, select: int) -> str:
    """The name of ``source``'s selection subset under ``eval.select = select``: its content key
    and the rule (:meth:`EvalSet.split`)."""
    return hashlib.sha256(f"{source.key}:images%{select}==0".encode()).hexdigest()


def textured_blocks(source: EvalSet, count: int, index: np.ndarray | None = None) -> list[int]:
    """The ``count`` blocks (among ``index``) whose clean block has the highest mean gradient
    magnitude: where denoisers differ most visibly (flat blocks look alike under any of them)."""
    index = np.arange(len(source)) if index is None else np.asarray(index)

    def texture(i: int) -> float:
        c = source.clean[i].astype(np.float64).mean(axis=2)
        return float(np.hypot(np.diff(c, axis=0)[:, :-1], np.diff(c, axis=1)[:-1]).mean())

    ranked = sorted(index.tolist(), key=lambda i: -texture(i))
    return sorted(ranked[: max(0, count)])


def load_model(spec: str) -> nn.Module:
    """The network a job names: ``ref:<method>[:<settings>]`` (:mod:`orchestrator.study.references`),
    or a file (a stage's ``model.pt`` or a selected checkpoint written like one)."""
    if spec.startswith("ref:"):
        from orchestrator.study.references import reference

        return reference(spec)
    from orchestrator.tools.load import load_denoiser

    return load_denoiser(spec).model


class StudyScorer:
    """Ray Data actor: scores (job, block) rows; holds the sources and each job's model once."""

    def __init__(self, jobs: list[Job], sources, threads: int = 1):
        import ray

        if threads > 0:
            torch.set_num_threads(threads)
        self.jobs = jobs
        self.sources = ray.get(sources) if isinstance(sources, ray.ObjectRef) else sources
        self.models: dict[str, nn.Module] = {}

    def _model(self, spec: str) -> nn.Module:
        if spec not in self.models:
            self.models[spec] = load_model(spec).to(device_for()).eval()
        return self.models[spec]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = defaultdict(list)
        rows = list(zip(batch["job"].tolist(), batch["block"].tolist(), strict=True))
        start = 0
        while start < len(rows):
            j, first = rows[start]
            noisy, clean = self.sources[self.jobs[j].source]
            stop = start + 1
            while (
                stop < len(rows) and rows[stop][0] == j and noisy[rows[stop][1]].shape == noisy[first].shape
            ):
                stop += 1
            index = np.array([b for _, b in rows[start:stop]])
            t0 = time.perf_counter()
            scored = score_batch(
                self._model(self.jobs[j].model),
                np.stack([noisy[i] for i in index]),
                np.stack([clean[i] for i in index]),
                index,
                seed=self.jobs[j].seed,
            )
            share = (time.perf_counter() - t0) / len(index)
            out["job"] += [j] * len(index)
            out["block"] += index.tolist()
            out["seconds"] += [share] * len(index)
            for k in METRICS:
                out[k] += scored[k].tolist()
            start = stop
        return {k: np.asarray(v) for k, v in out.items()}


class StudyEvaluation:
    """The final scores of a study, computed on a Ray Data actor pool when not cached.

    Args:
        out: the study's output folder (the models' cache is ``out/evaluations``).
        sources: the evaluation sources.
        references: the cache of the reference methods' scores (``<data.cache_dir>/references``).
        batch, workers, gpus_per_worker: the pool (one actor per worker).
        progress: print what is scored.
    """

    def __init__(
        self,
        out: Path,
        sources: list[EvalSet],
        *,
        references: Path,
        batch: int,
        workers: int,
        gpus_per_worker: float,
        progress: bool = True,
    ):
        self.out, self.references, self.progress = out / "evaluations", references, progress
        self.sources = {s.name: s for s in sources}
        self.batch, self.workers, self.gpus = batch, workers, gpus_per_worker

    def _path(self, job: Job) -> Path:
        source = self.sources[job.source]
        blocks = hashlib.sha256(np.asarray(job.index, dtype=np.int64).tobytes()).hexdigest()[:8]
        root = self.references if job.model.startswith("ref:") else self.out
        return root / f"{source.name}-{source.key[:12]}" / f"{job.name}-{blocks}.npz"

    def _cached(self, job: Job) -> Scores | None:
        path = self._path(job)
        if path.is_file():
            found = Scores.load(path)
            if np.array_equal(found.block, np.asarray(job.index)):
                return found
        return None

    def run(self, jobs: list[Job]) -> dict[Job, Scores]:
        """The scores of every job: from the cache, the rest computed in one pass."""
        done = {j: s for j in jobs if (s := self._cached(j)) is not None}
        todo = [j for j in jobs if j not in done]
        if todo:
            done |= self._compute(todo)
        return done

    def _compute(self, todo: list[Job]) -> dict[Job, Scores]:
        import ray

        quiet_ray_data()
        prompt_dispatch()
        blocks = sum(len(j.index) for j in todo)
        bar = Progress(f"score {len(todo)} model(s) x source(s), {blocks} blocks", blocks, every_s=10.0)
        sources = ray.put({n: (s.noisy, s.clean) for n, s in self.sources.items()})
        items = [{"job": k, "block": i} for k, j in enumerate(todo) for i in j.index]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // self.batch, 200)))
        ds = ds.map_batches(
            StudyScorer,
            fn_constructor_kwargs={"jobs": todo, "sources": sources},
            batch_size=self.batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, min(self.workers, len(items)))),
            num_gpus=self.gpus,
            num_cpus=0 if self.gpus > 0 else 1,
        )
        rows: dict[int, list] = defaultdict(list)
        for got in ds.iter_batches(batch_format="numpy", batch_size=None):
            for r in range(len(got["job"])):
                rows[int(got["job"][r])].append({k: got[k][r] for k in ("block", "seconds", *METRICS)})
            if self.progress:
                bar.update(len(got["job"]))
        out = {}
        for k, job in enumerate(todo):
            found = sorted(rows[k], key=lambda r: int(r["block"]))
            scores = Scores(
                np.array([int(r["block"]) for r in found]),
                {m: np.array([float(r[m]) for r in found]) for m in METRICS},
                float(sum(r["seconds"] for r in found)),
            )
            scores.save(self._path(job))
            out[job] = scores
        return out


def sample_strips(model: nn.Module, source: EvalSet, blocks: list[int], *, seed: int) -> list[np.ndarray]:
    """noisy | output | clean strips of ``blocks``, computed as the pool computes them."""
    model.eval()
    strips = []
    for i in blocks:
        out = score_batch(model, source.noisy[i][None], None, np.array([i]), seed=seed)["denoised"][0]
        strips.append(np.concatenate([source.noisy[i], out, source.clean[i]], axis=1))
    return strips
