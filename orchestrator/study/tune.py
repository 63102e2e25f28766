"""Ray Tune: every stage a trial, released when its upstream stages are done.

One Tune experiment runs a whole study. Its search algorithm,
:class:`~orchestrator.study.graph.StageGraphSearcher`, is the stage graph: it hands Tune a stage
only once every stage it depends on has finished, so a trial never holds a GPU while it waits,
and independent stages (SSID's BNN, each LG-BPN variant) run side by side as far as the cluster's
resources allow. Stages on the longest remaining chain go first, which keeps the makespan close
to the critical path.

A trial (:func:`stage_trainable`) trains its stage with :func:`orchestrator.train.loop.train_stage`,
in its own process or, with ``trial.workers`` above 1, on that many Ray Train workers
(:mod:`orchestrator.study.workers`), and checkpoints in the stage's folder. Each checkpoint is
also reported to Tune, so ``FailureConfig`` retries (a lost node, a killed worker) resume from
the newest one, whichever of the two copies is newer: resumption never depends on Tune's
experiment snapshot alone. Metrics go to Tune every ``report_every`` steps and to the stage's
MLflow run at each checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray.tune import Callback

from orchestrator.schema import EvalConfig
from orchestrator.study.graph import StageGraphSearcher, chain_lengths
from orchestrator.train.loop import Selection
from orchestrator.train.store import Stage, checkpoint_name, checkpoint_step, latest_checkpoint

__all__ = [
    "TrialSettings",
    "StageGraphSearcher",
    "stage_trainable",
    "run_trials",
]


@dataclass(frozen=True)
class TrialSettings:
    """What the trials of one Tune experiment share besides their stages' records.

    Args:
        eval: the final evaluation's size, samples and batch.
        threads: torch threads of a trial whose stage does not set ``train.threads``.
        tile_cache_bytes: patch-shard tiles a trial keeps in memory.
        report_every: steps between two results reported to Tune.
        shards: each stage key's patch-shard folder.
        run_ids: each stage key's MLflow run (none: not tracked).
        tracking_uri, tracking_wait_s: the MLflow store, and how long a finished stage waits for it.
        selection: checkpoint selection on the validation blocks (``eval.select``), or None.
        resources: one trial's request (``CPU``, ``GPU``, custom), each worker's for a stage with
            ``trial.workers`` > 1 (:mod:`orchestrator.study.workers`).
        storage: the Tune experiment's storage; the Ray Train runs of such stages go under it.
    """

    eval: EvalConfig
    threads: int
    tile_cache_bytes: int
    report_every: int
    shards: Mapping[str, str]
    run_ids: Mapping[str, str]
    tracking_uri: str = ""
    tracking_wait_s: float = 600.0
    selection: Selection | None = None
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    storage: str = ""


# ---------------------------------------------------------------------------------- the trial


def _adopt_tune_checkpoint(ckpt_dir: Path) -> None:
    """Copy Tune's restored checkpoint into the stage folder when it is newer than what is there
    (a retry on another node whose disk does not hold the stage folder's checkpoints)."""
    from ray import tune

    ck = tune.get_checkpoint()
    if ck is None:
        return
    latest = latest_checkpoint(ckpt_dir)
    have = checkpoint_step(latest) if latest else -1
    with ck.as_directory() as d:
        for f in Path(d).glob("step_*.pt"):
            if checkpoint_step(f) > have:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                tmp = ckpt_dir / (f.name + ".tmp")
                shutil.copyfile(f, tmp)
                os.replace(tmp, ckpt_dir / f.name)


class TrialHooks:
    """What a stage's trial does with its training's progress, whether it trains in the trial or
    on Ray Train workers (:mod:`orchestrator.study.workers`, which relays rank 0's): metrics to
    MLflow (buffered, sent at each checkpoint), results to Tune every ``report_every`` steps,
    each checkpoint to Tune and MLflow, and each attempt's start to ``attempts.jsonl``."""

    def __init__(self, stage: Stage, settings: TrialSettings):
        from orchestrator.tracking import TrialLog

        self.stage, self.out, self.total = stage, stage.path, stage.total_steps
        self.every = max(1, settings.report_every)
        run_id = settings.run_ids.get(stage.key, "")
        self.log = TrialLog(
            settings.tracking_uri, run_id, spool=self.out / ".mlflow-queue", wait_s=settings.tracking_wait_s
        )
        self.last: dict = {}

    def on_start(self, step: int, **where) -> None:
        self.log.start(step)
        note_start(self.out, step, self.total, **where)

    def on_step(self, step: int, record: dict) -> None:
        from ray import tune

        self.log.add(record)
        self.last = dict(record)
        checkpointing = step % self.stage.config.train.checkpoint_every == 0 and step < self.total
        due = step % self.every == 0 or any(k.startswith(("val", "sel_")) for k in record)
        if due and not checkpointing:
            tune.report(dict(record))

    def on_checkpoint(self, step: int, path: Path) -> None:  # called right after on_step(step)
        from ray import tune

        if not path.is_file():  # relayed, and already replaced by a newer one (keep_checkpoints)
            tune.report(dict(self.last))
            return
        self.log.artifact(path, "checkpoints")  # also sends the buffered metrics
        with tempfile.TemporaryDirectory() as d:
            shutil.copyfile(path, Path(d) / checkpoint_name(step))
            tune.report(dict(self.last), checkpoint=tune.Checkpoint.from_directory(d))

    def final(self, result) -> dict:
        """The trial's last result: the stage's final step, loss and metrics, ``stage_done``."""
        final = {"step": result.steps, "loss": self.last.get("loss", float("nan")), **result.metrics}
        return final | {"stage_done": 1, "reused": int(result.reused)}


def stage_trainable(
    config: dict, *, stages: Mapping[str, Stage], settings: TrialSettings, validation
) -> None:
    """The Tune function trainable of one stage (``config["key"]`` names it in ``stages``): trained
    here, or on ``trial.workers`` Ray Train workers that this trial starts."""
    import torch
    from ray import tune

    from orchestrator.data.shards import TileSet
    from orchestrator.train.loop import StageContext, train_stage

    stage = stages[config["key"]]
    torch.set_num_threads(stage.config.train.threads or settings.threads)
    hooks = TrialHooks(stage, settings)
    try:
        _adopt_tune_checkpoint(stage.path / "checkpoints")
        if stage.config.trial.workers > 1 and not (stage.pretrained or stage.model_file.is_file()):
            from orchestrator.study.workers import train_on_workers

            result = train_on_workers(stage, settings, validation, hooks)
        else:
            tiles = TileSet(settings.shards[stage.key], cache_bytes=settings.tile_cache_bytes)
            ctx = StageContext(
                tiles,
                tiles.names,
                validation,
                settings.eval,
                selection=settings.selection,
                shapes=tiles.shapes,
                progress=False,
                on_start=hooks.on_start,
                on_step=hooks.on_step,
                on_checkpoint=hooks.on_checkpoint,
            )
            result = train_stage(stage, ctx)
        hooks.log.finish(result.steps, result.metrics, stage.path)
    except BaseException as exc:
        hooks.log.fail(exc)
        raise
    tune.report(hooks.final(result))


def note_start(out: Path, step: int, total: int, **where) -> None:
    """Append where this attempt trains and the step it starts from (``attempts.jsonl``): this
    process's node and pid, or ``where`` says them (``node``, ``pid`` of a Ray Train worker of rank
    0, and ``workers``: the node of each worker by rank)."""
    import ray

    entry = {
        "time": time.time(),
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "from_step": step,
        "total": total,
    } | where
    with (out / "attempts.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


# ------------------------------------------------------------------------------ resources, fit


class _Progress(Callback):
    """A Tune callback: a line per stage start, per result every ``every_s`` seconds, and per end;
    it also records each trial's start and end time (used by the report and ``bench/``)."""

    def __init__(self, labels: Mapping[str, str], totals: Mapping[str, int], every_s: float, quiet: bool):
        super().__init__()
        self.labels, self.totals, self.every_s, self.quiet = dict(labels), dict(totals), every_s, quiet
        self.times: dict[str, list[float]] = {}
        self._last: dict[str, float] = {}

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def _key(self, trial) -> str:
        return trial.config.get("key", "")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        key = self._key(trial)
        self.times.setdefault(key, [time.time(), float("nan")])
        self._say(f"[tune] started  {self.labels.get(key, key)} ({key[:12]})")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        key = self._key(trial)
        now = time.monotonic()
        if result.get("stage_done") or now - self._last.get(key, -1e9) < self.every_s:
            return
        self._last[key] = now
        loss = result.get("loss", float("nan"))
        where = f"step {result.get('step')}/{self.totals[key]}"
        self._say(f"[tune] {self.labels.get(key, key)}: {where} loss {loss:.4g}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        done = (trial.last_result or {}).get("stage_done")
        self._end(trial, "finished" if done else "stopped early")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "FAILED")

    def _end(self, trial, what: str) -> None:
        key = self._key(trial)
        self.times.setdefault(key, [time.time(), float("nan")])[1] = time.time()
        self._say(f"[tune] {what} {self.labels.get(key, key)}")


@dataclass
class TrialOutcome:
    """What the Tune experiment did: finished keys, and the error (or stop reason) of the others."""

    done: set[str]
    errors: dict[str, str]
    times: dict[str, list[float]]
    experiment_path: str
    wall_s: float


def run_trials(
    stages: Mapping[str, Stage],
    deps: Mapping[str, set[str]],
    *,
    settings: TrialSettings,
    resources: Mapping[str, float],
    storage: str,
    name: str,
    max_failures: int,
    max_concurrent: int = 0,
    keep_checkpoints: int = 2,
    scheduler=None,
    metric: str | None = None,
    mode: str | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    quiet: bool = False,
) -> TrialOutcome:
    """Run ``stages`` (by key) as one Tune experiment under ``storage/name``; returns when all are
    done, failed, or unreachable because an upstream stage failed."""
    from ray import tune

    # Tune's own console output repeats what the progress lines say; keep the job's log readable.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if scheduler is not None:  # a result without the scheduler's metric (e.g. val64_psnr) is fine
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    totals = {k: s.total_steps for k, s in stages.items()}
    searcher = StageGraphSearcher(deps, chain_lengths(deps, {k: float(n) for k, n in totals.items()}))
    progress = _Progress({k: s.label for k, s in stages.items()}, totals, every_s=10.0, quiet=quiet)
    trainable = tune.with_resources(
        tune.with_parameters(stage_trainable, stages=dict(stages), settings=settings, validation=validation),
        trial_bundles(stages, resources),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=len(stages),
            max_concurrent_trials=max_concurrent or None,
            scheduler=scheduler,
            metric=metric,
            mode=mode,
            reuse_actors=True,
            trial_name_creator=lambda t: stages[t.config["key"]].label,
            trial_dirname_creator=lambda t: f"{stages[t.config['key']].label}-{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            verbose=0,
            callbacks=[progress],
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=max(1, keep_checkpoints)),
        ),
    )
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    done, errors = _results(grid, stages, deps, scheduled=scheduler is not None)
    return TrialOutcome(done, errors, progress.times, str(Path(storage) / name), wall)


def trial_bundles(stages: Mapping[str, Stage], resources: Mapping[str, float]):
    """Each trial's placement group: ``resources`` for a stage trained in its trial; for one with
    ``trial.workers`` > 1 a token (1 byte of memory), its Ray Train workers reserving their own
    (docs/ORCHESTRATION.md: a trial holding a CPU beside its workers could wait forever)."""
    from ray import tune

    one, token = tune.PlacementGroupFactory([dict(resources)]), tune.PlacementGroupFactory([{"memory": 1}])
    many = {k for k, s in stages.items() if s.config.trial.workers > 1}
    return lambda config: token if config["key"] in many else one


INTERRUPTED = "interrupted before it finished: its checkpoints are kept; run the same command again to resume"


def _results(
    grid, stages: Mapping[str, Stage], deps: Mapping[str, set[str]], *, scheduled: bool = True
) -> tuple[set[str], dict]:
    """The keys that finished, and why each other stage did not. A trial that ended with no
    error and unfinished was stopped by the scheduler (``scheduled``), else by an interrupt."""
    done, errors = set(), {}
    for res in grid:
        key = res.config.get("key") if res.config else None
        if key is None:
            continue
        if res.error is None and (res.metrics or {}).get("stage_done"):
            done.add(key)
        else:
            stopped = "stopped early by the scheduler" if scheduled else INTERRUPTED
            errors[key] = _short_error(res.error) if res.error else stopped
    for key in stages:  # in plan order: an upstream stage comes before what needs it
        if key not in done and key not in errors:
            ups = [u for u in deps[key] if u not in done]
            labels = [stages[u].label for u in ups]
            if any(errors.get(u, "").startswith("stopped early") for u in ups):
                errors[key] = f"stopped early: not run, upstream {labels} was stopped early"
            elif ups:
                errors[key] = f"not run: upstream {labels} did not finish"
            else:  # nothing it needs failed: the job ended (an interrupt) before it started
                errors[key] = "not run: the job ended before it started; run the same command again"
    return done, errors


def _short_error(exc: BaseException) -> str:
    """The root cause of a trial's error, one line."""
    text = str(exc).strip().splitlines()
    last = [line for line in text if line.strip()][-1:] or [type(exc).__name__]
    return last[0].strip()[:500]
