"""Run a study: data, plan, reuse, patch shards, Tune trials, MLflow runs, the results table.

The main job's data flow (``docs/ORCHESTRATION.md``):

1. index the dataset (every bad file reported before anything is asked of the cluster);
2. plan every selected ablation (or sweep variant) into stages with content keys; stages with
   the same key are one computation, trained once;
3. find stages already finished, in the stage store (``OUT/stages``) or in MLflow's stage index
   (a run tagged with the key and ``denoise.stage_done``), and reuse them;
4. cut the training pairs into patch shards with Ray Data (once per data and cut);
5. open the MLflow runs: a parent per ablation and a child per stage, found again by tags on a
   later job, so running the same study twice adds nothing twice (:mod:`.records`);
6. run the remaining stages as Ray Tune trials in dependency order (:mod:`orchestrator.study.tune`);
7. report: the table (measured beside published numbers, reused stages, training time), the
   visual comparison grid, both written to ``OUT`` and logged to every parent run.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.cluster import connect
from orchestrator.config import to_yaml
from orchestrator.data.sources import index_data
from orchestrator.errors import JOB_ERRORS, exit_status, fail
from orchestrator.schema import StudyConfig
from orchestrator.study import cost, grid, prior, records, render, report
from orchestrator.study.catalogue import Resolved
from orchestrator.study.evaluate import Job, StudyEvaluation, selection_key
from orchestrator.study.plan import PlannedAblation, plan, selected_stage, with_seed
from orchestrator.study.references import reference_spec, spec_tag
from orchestrator.study.trials import TrainJob
from orchestrator.train.loop import Selection
from orchestrator.train.store import Stage, StageResult, best_file, best_header

__all__ = [
    "Variant",
    "Planned",
    "StudyOutcome",
    "SearchOptions",
    "StageState",
    "run_study",
    "run_variants",
    "run_job",
]


@dataclass
class Variant:
    """One configuration of a study: the study itself, or one point of a sweep (``label`` names
    its values, e.g. ``lr=0.001``; the ablations of a variant are reported as ``name[label]``).
    ``resolved``: its ablations, as the job resolved them (resolved here when None)."""

    study: StudyConfig
    label: str = ""
    values: dict = field(default_factory=dict)
    resolved: Mapping[str, Resolved] | None = None

    def name(self, ablation: str) -> str:
        return f"{ablation}[{self.label}]" if self.label else ablation


@dataclass
class Planned:
    """One planned ablation of one variant and one seed (``seed`` of ``seeds``)."""

    variant: Variant
    pa: PlannedAblation
    seed: int = 0
    seeds: int = 1

    @property
    def name(self) -> str:
        """The table's row (and the MLflow parent run) it belongs to."""
        return self.variant.name(self.pa.entry.name)

    @property
    def run_name(self) -> str:
        """The row, and the seed when there are several (``ssid#1``)."""
        return self.name if self.seeds == 1 else f"{self.name}#{self.seed}"

    @property
    def final(self) -> Stage:
        return self.pa.stages[-1]


@dataclass
class StageState:
    """What this job does with one stage (unique by key) and which ablations use it."""

    stage: Stage
    users: list[str]
    state: str = "train"  # train | reused | skipped
    result: StageResult | None = None
    error: str = ""
    trained_here: bool = False
    run_ids: dict[str, str] = field(default_factory=dict)  # ablation -> its child run

    @property
    def label(self) -> str:
        return self.stage.label


@dataclass
class StudyOutcome:
    table: list[dict]
    failed: dict[str, str]  # stage label -> why
    out: Path
    tracking_uri: str = ""
    experiment_id: str = ""
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    best: str = ""  # a sweep's verdict (report.best_line)


@dataclass
class SearchOptions:
    """Tune options of a sweep: an early-stopping scheduler (made fresh per run) and its metric."""

    scheduler_factory: Callable[[], object] | None = None
    metric: str | None = None
    mode: str | None = None


def run_study(
    study: StudyConfig, *, resolved: Mapping[str, Resolved] | None = None, progress: bool = True
) -> StudyOutcome:
    """Train and evaluate every selected ablation of ``study``; see the module's docstring."""
    return run_variants([Variant(study, resolved=resolved)], progress=progress)


def run_variants(
    variants: list[Variant], *, progress: bool = True, search: SearchOptions | None = None
) -> StudyOutcome:
    """Run several variants of one study (a sweep) as one Tune experiment, sharing equal stages."""
    return _Study(variants, progress).run(search or SearchOptions())


class _Study:
    """One run of the main job's data flow (the module's docstring), its state between the steps."""

    def __init__(self, variants: list[Variant], progress: bool):
        self.base, self.progress = variants[0].study, progress
        self.out = Path(self.base.out).expanduser().resolve()
        self.data = index_data(self.base.data)  # every bad file, before anything else runs
        self.say(self.data.summary())
        self.variants = variants
        self._plan()  # every config error before Ray starts (a measured prior plans again)
        first = self.data.evals[0] if self.data.evals else None
        self.selection = None
        if first is not None and self.base.eval.select:
            index, _ = first.split(self.base.eval.select)
            self.selection = Selection(
                tuple(int(i) for i in index), selection_key(first, self.base.eval.select)
            )

    def _plan(self) -> None:
        """Every variant, seed and ablation planned into stages with content keys."""
        store = self.out / "stages"
        self.planned: list[Planned] = []
        for v in self.variants:
            n = v.study.seeds
            for k in range(n):
                study = with_seed(v.study, k)
                resolved = v.resolved if k == 0 else None
                seed = k if n > 1 else None
                for pa in plan(
                    study, self.data.train, store=store, resolved=resolved, label=v.label, seed=seed
                ):
                    self.planned.append(Planned(v, pa, k, n))
        self.stages = _unique_stages(self.planned)

    def measure_prior(self) -> None:
        """With ``prior.measure``: the blind region from the training images' noise
        (:mod:`orchestrator.study.prior`), set in every variant, then the plan again."""
        if not self.base.prior.measure or self.data.train is None:
            return
        self.say("[prior] measuring the training images' noise correlation (residual statistic)")
        blind = prior.measure(self.base, self.out)
        self.say(f"[prior] blind region: {prior.describe(blind)}")
        self.variants = [
            dataclasses.replace(v, study=prior.with_region(v.study, blind), resolved=None)
            for v in self.variants
        ]
        self.base = self.variants[0].study
        self._plan()

    def say(self, text: str) -> None:
        if self.progress:
            print(text, flush=True)

    def run(self, search: SearchOptions) -> StudyOutcome:
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        with connect(self.base.ray, quiet=True) as resources:
            self.measure_prior()
            base = self.base
            (out / "study.yaml").write_text(to_yaml(base))
            tracker, exp_id = records.open_tracker(base)
            self.exp_id = exp_id
            self.train(resources, tracker, exp_id, search)
            scores = self.score(resources)
            table = report.study_table(self, scores, self.costs())
            figure = grid.study_grid(self, scores)
            (out / "results.csv").write_text(render.to_csv(table))
            best = report.best_line(self, scores)
            (out / "results.md").write_text(render.to_markdown(table, best=best))
            failed = {s.label: s.error for s in self.stages.values() if s.error}
            if tracker:
                try:
                    records.close_runs(tracker, self, table, scores, figure)
                except Exception as exc:  # the results are on disk; a rerun records them
                    failed["mlflow"] = (
                        f"could not record the results at {tracker.uri} ({type(exc).__name__}: {exc}); "
                        f"they are in {out}, and running the job again records them"
                    )
        stages = self.stages.values()
        return StudyOutcome(
            table=table,
            failed=failed,
            out=out,
            tracking_uri=tracker.uri if tracker else "",
            experiment_id=exp_id,
            trained=[s.label for s in stages if s.trained_here and s.result is not None],
            reused=[s.label for s in stages if s.state == "reused"],
            best=best,
        )

    def train(self, resources: dict, tracker, exp_id: str, search: SearchOptions) -> None:
        """Find what is finished, open the MLflow runs, train the rest as Tune trials."""
        stages = self.stages
        _find_finished(stages, tracker, self.say)
        todo = {k: s for k, s in stages.items() if s.state == "train"}
        reused = sum(s.state == "reused" for s in stages.values())
        self.say(f"[study] {len(stages)} stage(s): {len(todo)} to train, {reused} already finished")
        self.parents, self.seed_runs = (
            records.open_runs(tracker, exp_id, self.planned, stages) if tracker else ({}, {})
        )
        if todo:
            job = TrainJob(self.base, self.data, self.out, resources, tracker, self.progress)
            job.run(todo, stages, search, selection=self.selection)
        for s in stages.values():
            if s.stage.model_file.is_file() and s.result is None:
                s.result = StageResult.finished(s.stage)
            if s.state == "train" and s.result is None and not s.error:
                s.error = "did not finish"

    def reported(self, source) -> np.ndarray:
        """The blocks of ``source`` the table reports: its reported subset (``eval.select``; a
        source other than the first with a single image is reported whole, since selection reads
        only the first source), cut to the first ``eval.blocks`` when that is set."""
        e = self.base.eval
        single = len(np.unique(source.image)) < 2 and source is not self.data.evals[0]
        _, index = source.split(0 if single else e.select)
        return index[: e.blocks] if e.blocks > 0 else index

    def score(self, resources: dict) -> dict:
        """Every score the report needs, computed in one pass (:mod:`orchestrator.study.evaluate`):
        ``{(row, seed, source, kind): Scores}`` with kind ``last`` (the final stage's last model),
        ``best`` (its selected checkpoint, on the reported blocks) and ``sel`` (the selected
        checkpoint on the selection subset); ``{("reference", method, source, "last"): Scores}``."""
        gpus = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        workers = int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1))
        evaluation = StudyEvaluation(
            self.out,
            self.data.evals,
            references=Path(self.base.data.cache_dir).expanduser().resolve() / "references",
            batch=self.base.eval.batch,
            workers=max(1, workers),
            gpus_per_worker=gpus,
            progress=self.progress,
        )
        jobs: dict[tuple, Job] = {}
        specs = self.reference_specs()
        for source in self.data.evals:
            index = tuple(int(i) for i in self.reported(source))
            for method, spec in specs.items():
                job = Job(spec_tag(spec), spec, source.name, index)
                jobs[("reference", method, source.name, "last")] = job
            for p in self.planned:
                final = self.stages[p.final.key]
                if final.result is None:
                    continue
                key, seed = final.stage.key[:16], final.stage.config.train.seed
                row = (p.name, p.seed, source.name)
                jobs[(*row, "last")] = Job(
                    f"{key}-last", str(final.stage.model_file), source.name, index, seed
                )
                best = self.best_file(final.stage)
                if best is not None:
                    tag = f"{key}-best-{self.selection.key[:8]}"
                    jobs[(*row, "best")] = Job(tag, str(best), source.name, index, seed)
                    if source is self.data.evals[0]:
                        jobs[(*row, "sel")] = Job(tag, str(best), source.name, self.selection.index, seed)
        if not jobs:
            return {}
        done = evaluation.run(list(dict.fromkeys(jobs.values())))
        return {k: done[j] for k, j in jobs.items()}

    def costs(self) -> dict[str, dict]:
        """``params`` and ``ms_per_block`` of every row's denoiser (:mod:`orchestrator.study.cost`):
        the model its row reports (first seed), and each reference method."""
        specs = self.reference_specs()
        for p in self.planned:
            final = self.stages[p.final.key]
            if p.seed == 0 and final.result is not None:
                specs[p.name] = str(self.best_file(final.stage) or final.stage.model_file)
        return cost.costs(
            specs,
            blocks=self.base.eval.cost_blocks,
            out=self.out / "evaluations" / "cost.json",
            progress=self.say,
        )

    def reference_specs(self) -> dict[str, str]:
        """Each reference method of the study and the spec that names it with its settings."""
        e = self.base.eval
        return {m: reference_spec(m, e.classical) for m in e.references}

    def best_file(self, stage: Stage) -> Path | None:
        """``stage``'s selected checkpoint on this study's selection subset, if it has one."""
        if self.selection is None:
            return None
        path = best_file(stage, self.selection.key)
        return path if best_header(path) is not None else None


def _unique_stages(planned: list[Planned]) -> dict[str, StageState]:
    stages: dict[str, StageState] = {}
    for p in planned:
        for stage in p.pa.stages:
            s = stages.setdefault(stage.key, StageState(stage, []))
            s.users.append(p.run_name)
            if stage.pretrained or not selected_stage(p.variant.study, stage):
                s.state = "reused" if stage.pretrained or stage.model_file.is_file() else "skipped"
    return stages


def _find_finished(stages: dict[str, StageState], tracker, say) -> None:
    """Stages already finished in the store, or in MLflow's stage index (downloaded into the store)."""
    for s in stages.values():
        if s.state != "train":
            continue
        stage = s.stage
        if not stage.model_file.is_file() and tracker is not None:
            run_id = tracker.finished_stage(stage.key)
            if run_id:
                say(f"[study] {s.label}: found finished in MLflow run {run_id}")
                stage.path.mkdir(parents=True, exist_ok=True)
                tracker.download(run_id, "model.pt", stage.path)
        if stage.model_file.is_file():
            s.result = StageResult.finished(stage)
            s.state = "reused"


def run_job(run: Callable[[], StudyOutcome], *, out: str, stopped_ok: bool = False) -> int:
    """The end of a study job: run it, print the summary or the error; the exit status.

    0: every stage finished (with ``stopped_ok``, stages an early-stopping scheduler stopped and
    what depended on them count as finished); 1: a stage or the tracking failed; otherwise the
    status of the error that stopped the job (:mod:`orchestrator.errors`); 130: interrupted
    (finished stages and checkpoints are kept in ``out``).
    """
    try:
        outcome = run()
    except JOB_ERRORS as exc:
        return fail(exc)
    except KeyboardInterrupt as exc:
        print(
            f"interrupted: finished stages and checkpoints are kept in {out}; "
            "run the same command again (or add --resume) to finish",
            file=sys.stderr,
        )
        return exit_status(exc)
    render.print_summary(outcome)
    if stopped_ok:
        return int(
            any("stopped early" not in why and "did not finish" not in why for why in outcome.failed.values())
        )
    return 1 if outcome.failed else 0
