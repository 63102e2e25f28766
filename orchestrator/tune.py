"""Ray Tune: every stage a trial, released when its upstream stages are done.

One Tune experiment runs a whole study. Its search algorithm, :class:`StageGraphSearcher`, is the
stage graph: it hands Tune a stage only once every stage it depends on has finished, so a trial
never holds a GPU while it waits, and independent stages (SSID's BNN, each LG-BPN variant) run
side by side as far as the cluster's resources allow. Stages on the longest remaining chain go
first, which keeps the makespan close to the critical path.

A trial (:func:`stage_trainable`) trains its stage with :func:`orchestrator.stages.train_stage`
and checkpoints in the stage's folder. Each checkpoint is also reported to Tune, so
``FailureConfig`` retries (a lost node, a killed worker) resume from the newest one, whichever of
the two copies is newer: resumption never depends on Tune's experiment snapshot alone. Metrics go
to Tune every ``report_every`` steps and to the stage's MLflow run at each checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback
from ray.tune.search import Searcher

from orchestrator.cluster import ClusterError
from orchestrator.stages import (
    StageConfig,
    StageContext,
    StageResult,
    checkpoint_name,
    checkpoint_step,
    latest_checkpoint,
    total_steps,
    train_stage,
)

__all__ = [
    "StageTask",
    "StageGraphSearcher",
    "TrialLog",
    "stage_trainable",
    "trial_resources",
    "check_resources",
    "run_trials",
]


@dataclass
class UpstreamRef:
    """A finished upstream stage a trial loads: its key, folder and config."""

    key: str
    path: str
    config: StageConfig


@dataclass
class StageTask:
    """Everything one stage's trial needs; pickled into the trial with :func:`tune.with_parameters`."""

    key: str
    label: str  # "<ablation>.<stage>", for people
    config: StageConfig
    path: str
    shards: str
    steps_per_epoch: int
    upstream: dict[str, UpstreamRef] = field(default_factory=dict)
    eval_blocks: int = 0
    eval_samples: int = 4
    eval_batch: int = 8
    threads: int = 1
    tile_cache_bytes: int = 1 << 30
    report_every: int = 10
    tracking_uri: str = ""
    run_id: str = ""
    tracking_wait_s: float = 600.0
    meta_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return total_steps(self.config.train, self.steps_per_epoch)


# ------------------------------------------------------------------------------------ the graph


class StageGraphSearcher(Searcher):
    """A Tune search algorithm that releases stages in dependency order.

    Args:
        deps: for each stage key to run, the keys (among those to run) it waits for.
        priority: higher first among ready stages (the length of the chain a stage heads).
    """

    def __init__(self, deps: Mapping[str, set[str]], priority: Mapping[str, float]):
        super().__init__()
        self.deps = {k: set(v) for k, v in deps.items()}
        self.pending = sorted(self.deps, key=lambda k: -priority.get(k, 0.0))
        self.running: dict[str, str] = {}
        self.done: set[str] = set()
        self.stopped: set[str] = set()  # errored, or stopped early by a scheduler

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        state = {k: getattr(self, k) for k in ("deps", "pending", "running", "done", "stopped")}
        Path(checkpoint_path).write_bytes(json.dumps({k: _jsonable(v) for k, v in state.items()}).encode())

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self.deps = {k: set(v) for k, v in state["deps"].items()}
        self.pending, self.running = state["pending"], state["running"]
        self.done, self.stopped = set(state["done"]), set(state["stopped"])

    def suggest(self, trial_id: str):
        for key in self.pending:
            if self.deps[key] <= self.done:
                self.pending.remove(key)
                self.running[trial_id] = key
                return {"key": key}
        if self.running:
            return None  # wait: a running stage may release others
        return self.FINISHED  # what is left waits on stages that did not finish

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.running.pop(trial_id, None)
        if key is None:
            return
        if not error and result and result.get("stage_done"):
            self.done.add(key)
        else:
            self.stopped.add(key)


def _jsonable(v):
    if isinstance(v, set):
        return sorted(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def chain_lengths(deps: Mapping[str, set[str]], cost: Mapping[str, float]) -> dict[str, float]:
    """For each stage, the cost of the longest chain starting at it (itself included)."""
    children: dict[str, list[str]] = {k: [] for k in deps}
    for k, ups in deps.items():
        for u in ups:
            children[u].append(k)
    memo: dict[str, float] = {}

    def length(k: str) -> float:
        if k not in memo:
            memo[k] = cost.get(k, 1.0) + max((length(c) for c in children[k]), default=0.0)
        return memo[k]

    return {k: length(k) for k in deps}


# ---------------------------------------------------------------------------------- the trial


class TrackingUnavailable(RuntimeError):
    """MLflow stayed out of reach longer than the trial waits for it at the end of a stage."""


class TrialLog:
    """A stage run's metrics and artifacts on their way to MLflow, and the run's status.

    Metrics are buffered and sent in batches (at each checkpoint and at the end). Nothing is lost
    while the tracking server is out of reach: a batch or an artifact that cannot be sent stays
    queued, training goes on, and the queue is sent at the next checkpoint. At the end of the
    stage the log waits up to ``wait_s`` for the server; if it is still away, the trial fails with
    :class:`TrackingUnavailable` and the run is never marked finished (a retry of the trial, or a
    rerun of the job, finds the finished ``model.pt`` and records it then). Without a run id the
    log does nothing.
    """

    def __init__(
        self, uri: str, run_id: str, *, spool: Path | None = None, wait_s: float = 600.0, quiet: bool = False
    ):
        self.run_id, self.spool, self.wait_s, self.quiet = run_id, spool, wait_s, quiet
        self.tracker = None
        if uri and run_id:
            from orchestrator.config import TrackingConfig
            from orchestrator.tracking import Tracker

            # One quick attempt per call: the queue, not MLflow's own minutes of retries, waits.
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            self.tracker = Tracker(TrackingConfig(uri=uri))
        self.buffer: list[dict] = []
        self.pending: list[tuple[Path, str | None]] = []
        self.unsent_since: float | None = None

    def _try(self, fn, *args) -> bool:
        try:
            fn(*args)
        except Exception as exc:  # the server away, a timeout, a refused connection
            if self.unsent_since is None:
                self.unsent_since = time.monotonic()
                if not self.quiet:
                    print(f"[tracking] MLflow unreachable ({type(exc).__name__}); queueing", flush=True)
            return False
        return True

    def start(self, step: int) -> None:
        if self.tracker:
            self._try(self.tracker.client.update_run, self.run_id, "RUNNING")
            self._try(self.tracker.set_tags, self.run_id, {"denoise.started_at_step": step})

    def add(self, record: dict) -> None:
        if self.tracker:
            self.buffer.append(record)

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Queue ``path`` and send the queue. A file is first linked into the spool folder, so the
        stage may delete it (``keep_checkpoints``) before an outage ends without losing it."""
        if not self.tracker:
            return
        if self.spool is not None and path.is_file():
            queued = self.spool / path.name
            try:
                self.spool.mkdir(parents=True, exist_ok=True)
                queued.unlink(missing_ok=True)
                try:
                    os.link(path, queued)
                except OSError:
                    shutil.copyfile(path, queued)
                path = queued
            except OSError:  # a full or read-only disk: send the file itself; the stage says why
                pass
        self.pending.append((path, artifact_path))
        self.flush()

    def flush(self) -> bool:
        """Send what is queued; True when nothing is left."""
        if not self.tracker:
            return True
        if self.buffer and self._try(self.tracker.log_history, self.run_id, self.buffer):
            self.buffer = []
        left = []
        for path, where in self.pending:
            if not path.exists():
                continue
            if not self._try(self.tracker.log_artifacts, self.run_id, path, where):
                left.append((path, where))
            elif self.spool is not None and path.parent == self.spool:
                path.unlink()
        self.pending = left
        done = not self.buffer and not self.pending
        if done and self.unsent_since is not None:
            if not self.quiet:
                away = time.monotonic() - self.unsent_since
                print(f"[tracking] MLflow reachable again after {away:.0f} s; queue sent", flush=True)
            self.unsent_since = None
        return done

    def finish(self, result: StageResult, out: Path) -> None:
        if not self.tracker:
            return
        from orchestrator.tracking import STAGE_DONE

        self.buffer.append({"step": result.steps, **result.metrics})
        for name in ("model.pt", "config.yaml", "metrics.json", "history.jsonl"):
            self.pending.append((out / name, None))
        self.pending.append((out / "samples", "samples"))
        deadline = time.monotonic() + self.wait_s
        while True:
            sent = self.flush() and self._try(self.tracker.set_tags, self.run_id, {STAGE_DONE: "true"})
            if sent and self._try(self.tracker.end, self.run_id, "FINISHED"):
                return
            if time.monotonic() > deadline:
                raise TrackingUnavailable(
                    f"MLflow at {self.tracker.uri} unreachable for {self.wait_s:.0f} s at the end of the "
                    f"stage; its model is saved in {out} and is recorded when the job runs again"
                )
            time.sleep(min(5.0, max(0.5, self.wait_s / 20)))

    def fail(self, exc: BaseException) -> None:
        if self.tracker and not isinstance(exc, TrackingUnavailable):
            self.flush()
            self._try(
                self.tracker.set_tags, self.run_id, {"denoise.error": f"{type(exc).__name__}: {exc}"[:5000]}
            )
            self._try(self.tracker.end, self.run_id, "FAILED")


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


def stage_trainable(config: dict, *, tasks: Mapping[str, StageTask], validation) -> None:
    """The Tune function trainable of one stage (``config["key"]`` names it in ``tasks``)."""
    import torch
    from ray import tune

    from orchestrator.data.shards import TileSet
    from orchestrator.plan import load_upstream

    task = tasks[config["key"]]
    cfg = task.config
    out = Path(task.path)
    torch.set_num_threads(cfg.train.threads or task.threads)
    log = TrialLog(task.tracking_uri, task.run_id, spool=out / ".mlflow-queue", wait_s=task.tracking_wait_s)
    try:
        _adopt_tune_checkpoint(out / "checkpoints")
        tiles = TileSet(task.shards, cache_bytes=task.tile_cache_bytes)
        total = task.total_steps
        every = max(1, task.report_every)
        last: dict = {}

        def on_step(step: int, record: dict) -> None:
            log.add(record)
            last.clear()
            last.update(record)
            checkpointing = step % cfg.train.checkpoint_every == 0 and step < total
            if not checkpointing and (step % every == 0 or any(k.startswith("val") for k in record)):
                tune.report(dict(record))

        def on_start(step: int) -> None:
            log.start(step)
            _note_start(out, step, total)

        def on_checkpoint(step: int, path: Path) -> None:  # called right after on_step(step)
            log.artifact(path, "checkpoints")  # also sends the buffered metrics
            with tempfile.TemporaryDirectory() as d:
                shutil.copyfile(path, Path(d) / checkpoint_name(step))
                tune.report(dict(last), checkpoint=tune.Checkpoint.from_directory(d))

        ctx = StageContext(
            key=task.key,
            out_dir=out,
            sampler_images=tiles,
            sampler_names=tiles.names,
            sampler_shapes=tiles.shapes,
            validation=validation,
            upstream=load_upstream(task.upstream, who=task.label),
            steps_per_epoch=task.steps_per_epoch,
            eval_final_blocks=task.eval_blocks,
            eval_samples=task.eval_samples,
            eval_batch=task.eval_batch,
            progress=False,
            on_start=on_start,
            on_step=on_step,
            on_checkpoint=on_checkpoint,
            meta_extra=task.meta_extra,
        )
        result = train_stage(cfg, ctx)
        log.finish(result, out)
    except BaseException as exc:
        log.fail(exc)
        raise
    final = {"step": result.steps, "loss": last.get("loss", float("nan")), **result.metrics}
    tune.report(final | {"stage_done": 1, "reused": int(result.reused)})


def _note_start(out: Path, step: int, total: int) -> None:
    """Append where this attempt trains and the step it starts from (``attempts.jsonl``)."""
    import ray

    entry = {
        "time": time.time(),
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "from_step": step,
        "total": total,
    }
    with (out / "attempts.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


# ------------------------------------------------------------------------------ resources, fit


def trial_resources(cpu: float, gpu: float, custom: Mapping[str, float]) -> dict[str, float]:
    """One trial's resource request in Ray's names (``CPU``, ``GPU``, custom)."""
    req = {"CPU": float(cpu), "GPU": float(gpu), **{k: float(v) for k, v in custom.items()}}
    return {k: v for k, v in req.items() if v > 0}


def check_resources(request: Mapping[str, float]) -> None:
    """Fail unless some live node can hold one trial (Tune would otherwise wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if any(all(n["Resources"].get(k, 0.0) >= v for k, v in request.items()) for n in nodes):
        return
    have = [{k: v for k, v in n["Resources"].items() if not k.startswith("node:")} for n in nodes]
    raise ClusterError(
        f"no node of the cluster can run a stage: each trial asks for {dict(request)}, and the nodes "
        f"have {have}. Lower trial.cpu/trial.gpu (--set trial.gpu=0 to train on CPU), or add nodes "
        "with those resources"
    )


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
        self._end(trial, "finished")

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
    tasks: Mapping[str, StageTask],
    deps: Mapping[str, set[str]],
    *,
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
    """Run ``tasks`` as one Tune experiment under ``storage/name``; returns when all are done,
    failed, or unreachable because an upstream stage failed."""
    from ray import tune

    # Tune's own console output repeats what the progress lines say; keep the job's log readable.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if scheduler is not None:  # a result without the scheduler's metric (e.g. val64_psnr) is fine
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    totals = {k: t.total_steps for k, t in tasks.items()}
    searcher = StageGraphSearcher(deps, chain_lengths(deps, {k: float(n) for k, n in totals.items()}))
    progress = _Progress({k: t.label for k, t in tasks.items()}, totals, every_s=10.0, quiet=quiet)
    trainable = tune.with_resources(
        tune.with_parameters(stage_trainable, tasks=dict(tasks), validation=validation),
        tune.PlacementGroupFactory([dict(resources)]),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=len(tasks),
            max_concurrent_trials=max_concurrent or None,
            scheduler=scheduler,
            metric=metric,
            mode=mode,
            reuse_actors=True,
            trial_name_creator=lambda t: tasks[t.config["key"]].label,
            trial_dirname_creator=lambda t: f"{tasks[t.config['key']].label}-{t.trial_id}",
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
    done, errors = set(), {}
    for res in grid:
        key = res.config.get("key") if res.config else None
        if key is None:
            continue
        if res.error is None and (res.metrics or {}).get("stage_done"):
            done.add(key)
        else:
            errors[key] = _short_error(res.error) if res.error else "stopped early by the scheduler"
    for key in tasks:
        if key not in done and key not in errors:
            ups = [tasks[u].label for u in deps[key] if u not in done]
            errors[key] = f"not run: upstream {ups} did not finish"
    return TrialOutcome(done, errors, progress.times, str(Path(storage) / name), wall)


def _short_error(exc: BaseException) -> str:
    """The root cause of a trial's error, one line."""
    text = str(exc).strip().splitlines()
    last = [line for line in text if line.strip()][-1:] or [type(exc).__name__]
    return last[0].strip()[:500]
