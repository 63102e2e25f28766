"""MLflow, and only here: experiments, runs, params, metrics, artifacts (STYLE.md 9).

Everything goes through :class:`Tracker`, an explicit :class:`mlflow.MlflowClient` with an absolute
tracking URI and explicit experiment and run ids: nothing is set at import, so a Ray worker whose
working directory is a temp folder logs to the same store as the driver.

Who owns a run: the driver (:mod:`orchestrator.study.run`) creates every run of a study, parents
and stage children, and alone sets their status (RUNNING when it opens them, FINISHED, FAILED or
KILLED when the study ends). A trial only adds to its stage's run through :class:`TrialLog`:
metrics, checkpoints, the finished model, and the ``denoise.stage_done`` tag once all of it has
arrived (the index that stage reuse searches).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailure
from orchestrator.schema import TrackingConfig

__all__ = [
    "Tracker",
    "TrialLog",
    "TrackingUnavailable",
    "resolve_uri",
    "safe_params",
    "parse_run_uri",
    "STAGE_KEY",
    "STAGE_DONE",
]

_SECRET = re.compile(r"(token|secret|password|passwd|api[_-]?key|access[_-]?key|credential)", re.IGNORECASE)
_MAX_PARAM = 6000  # MLflow's limit on a param value's length
_RUN_URI = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})(?:/(?P<path>.*))?$")


def resolve_uri(uri: str = "", *, cwd: str | Path | None = None) -> str:
    """An absolute tracking URI: '' -> ``sqlite:///<cwd>/mlflow.db``; relative sqlite/file paths
    are anchored at ``cwd``; http(s) and databricks URIs pass through."""
    base = Path(cwd or Path.cwd()).resolve()
    if not uri:
        return f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        return uri if path.is_absolute() else f"sqlite:///{base / path}"
    if "://" in uri or uri.startswith("databricks"):
        return uri
    return (base / uri).resolve().as_uri()  # a bare path: a file store


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow strings; values of secret-looking keys are never logged."""
    out = {}
    for key, value in params.items():
        text = "***" if _SECRET.search(key) else str(value)
        out[key] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."
    return out


def parse_run_uri(uri: str) -> tuple[str, str]:
    """``runs:/<run_id>[/<path>]`` -> (run_id, path); ValueError naming the URI otherwise."""
    m = _RUN_URI.match(uri)
    if not m:
        raise ValueError(f"{uri!r} is not an MLflow run URI of the form runs:/<32-hex run id>[/<path>]")
    return m["run"], m["path"] or ""


class Tracker:
    """One MLflow store.

    Args:
        cfg: the tracking config (URI resolved with :func:`resolve_uri`).
        fail_fast: one quick attempt per request instead of MLflow's minutes of retries (a trial
            queues what a request could not send; see :class:`TrialLog`). MLflow reads this
            setting from the process environment only, so it is set there, for this process.
    """

    def __init__(self, cfg: TrackingConfig | None = None, *, fail_fast: bool = False):
        from mlflow import MlflowClient

        if fail_fast:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        cfg = cfg or TrackingConfig()
        # A new sqlite store logs its table creation at INFO on stderr: noise around every job.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        self.uri = resolve_uri(cfg.uri)
        self.cfg = cfg
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def _artifact_root(self) -> str | None:
        # With an sqlite store, keep artifacts beside the database (never relative to the cwd);
        # a server decides for itself (proxied artifacts).
        if self.uri.startswith("sqlite:///"):
            return (Path(self.uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
        return None

    def experiment(self, name: str | None = None) -> str:
        """The id of experiment ``name`` (the config's by default), created if missing."""
        from mlflow.exceptions import MlflowException

        name = name or self.cfg.experiment
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = self._artifact_root()
        try:
            return self.client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        except MlflowException:  # created meanwhile by another process
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        *,
        experiment_id: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """Create a run, yield its id, and end it FINISHED, or FAILED if the body raises."""
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id or self.experiment(), tags=all_tags, run_name=name)
        run_id = run.info.run_id
        try:
            yield run_id
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in safe_params(params).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self.log_history(run_id, [{**metrics, "step": step}])

    def log_history(self, run_id: str, records: list[Mapping[str, Any]]) -> None:
        """Log records ``{"step": k, name: value, ...}``, each value at its record's step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, int(r["step"]))
            for r in records
            for k, v in r.items()
            if k != "step" and isinstance(v, int | float)
        ]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i : i + 1000])

    def log_artifacts(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a folder's contents."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def download(self, run_id: str, path: str, dst: str | Path) -> Path:
        """Download artifact ``path`` of ``run_id`` into ``dst``; a clear error if either is missing."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            raise ValueError(f"MLflow run {run_id} not found in {self.uri}") from exc
        try:
            return Path(self.client.download_artifacts(run_id, path, str(dst)))
        except (MlflowException, OSError) as exc:
            raise ValueError(f"run {run_id} has no artifact {path!r} ({exc})") from exc

    # ------------------------------------------------------------------ studies: runs found by tags

    def find_run(self, experiment_id: str | None, tags: Mapping[str, str]) -> str | None:
        """The newest run of the experiment (None: of any experiment) carrying all ``tags``, or None."""
        clause = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        exps = (
            [experiment_id] if experiment_id else [e.experiment_id for e in self.client.search_experiments()]
        )
        if not exps:
            return None
        runs = self.client.search_runs(
            exps, filter_string=clause, max_results=1, order_by=["attributes.start_time DESC"]
        )
        return runs[0].info.run_id if runs else None

    def open_run(
        self,
        name: str,
        *,
        experiment_id: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """The run identified by ``tags`` (found again on a later job) or a new one; left RUNNING.

        A job run twice on the same study therefore adds to the same parent and stage runs instead
        of duplicating them.
        """
        ident = dict(tags) | ({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})
        run_id = self.find_run(experiment_id, ident)
        if run_id is None:
            run_id = self.client.create_run(experiment_id, tags=ident, run_name=name).info.run_id
            if params:
                self.log_params(run_id, params)
        elif self.client.get_run(run_id).info.status != "FINISHED":
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self.client.log_batch(run_id, tags=items)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def model_source(self, uri: str) -> tuple[str, str]:
        """(run id, artifact path) of the model a URI names: ``models:/<name>/<version>`` or
        ``models:/<name>@<alias>`` (a registered version's run), or ``runs:/<run id>[/<path>]``; a
        run without a path holds ``model.pt``, and an ablation's parent run leads to the run of its
        final stage (tag ``denoise.final_run``).

        Raises:
            ValueError: the model, version or run is not in this store.
        """
        from mlflow.exceptions import MlflowException

        try:
            if uri.startswith("models:/"):
                name, _, version = uri[len("models:/") :].partition("/")
                name, _, alias = name.partition("@")
                get = self.client.get_model_version_by_alias if alias else self.client.get_model_version
                run_id, artifact = get(name, alias or version).run_id, "model.pt"
            else:
                run_id, artifact = parse_run_uri(uri)
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            raise ValueError(f"not found in the MLflow store {self.uri} ({exc})") from None
        final = run.data.tags.get("denoise.final_run")
        if final and not artifact:  # an ablation's parent run: its final stage holds the model
            run_id = final
        return run_id, artifact or "model.pt"

    def run_state(self, run_id: str) -> tuple[str, dict[str, str]]:
        """(status, tags) of a run."""
        run = self.client.get_run(run_id)
        return run.info.status, dict(run.data.tags)

    def experiment_id(self, name: str) -> str | None:
        """The id of an existing experiment ``name``, or None (nothing is created)."""
        exp = self.client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else None

    def finished_stage(self, key: str) -> str | None:
        """The run, in any experiment, that trained the stage with content ``key`` to the end."""
        return self.find_run(None, {STAGE_KEY: key, STAGE_DONE: "true"})


# Tags that make runs findable: the stage index of reuse, and parent/child identity.
STAGE_KEY = "denoise.stage_key"
STAGE_DONE = "denoise.stage_done"


class TrackingUnavailable(RunFailure):
    """MLflow stayed out of reach longer than a trial waits for it at the end of a stage."""


class TrialLog:
    """A stage run's metrics and artifacts on their way to MLflow, from inside its trial.

    Metrics are buffered and sent in batches (at each checkpoint and at the end). Nothing is lost
    while the tracking server is out of reach: a batch or an artifact that cannot be sent stays
    queued, training goes on, and the queue is sent at the next checkpoint. At the end of the
    stage the log waits up to ``wait_s`` for the server, then tags the run ``stage_done``; if the
    server is still away, the trial fails with :class:`TrackingUnavailable` (a retry of the trial,
    or a rerun of the job, finds the finished ``model.pt`` and records it then). The run's status
    is the driver's to set (see the module's docstring). Without a run id the log does nothing.
    """

    def __init__(
        self, uri: str, run_id: str, *, spool: Path | None = None, wait_s: float = 600.0, quiet: bool = False
    ):
        self.run_id, self.spool, self.wait_s, self.quiet = run_id, spool, wait_s, quiet
        self.tracker = Tracker(TrackingConfig(uri=uri), fail_fast=True) if uri and run_id else None
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

    def finish(self, step: int, metrics: Mapping[str, float], out: Path) -> None:
        """Send the final metrics and the stage folder's files, then tag the run ``stage_done``."""
        if not self.tracker:
            return
        self.buffer.append({"step": step, **metrics})
        for name in ("model.pt", "config.yaml", "history.jsonl"):
            self.pending.append((out / name, None))
        deadline = time.monotonic() + self.wait_s
        while not (self.flush() and self._try(self.tracker.set_tags, self.run_id, {STAGE_DONE: "true"})):
            if time.monotonic() > deadline:
                raise TrackingUnavailable(
                    f"MLflow at {self.tracker.uri} unreachable for {self.wait_s:.0f} s at the end of the "
                    f"stage; its model is saved in {out} and is recorded when the job runs again"
                )
            time.sleep(min(5.0, max(0.5, self.wait_s / 20)))

    def fail(self, exc: BaseException) -> None:
        """Send what is queued if the server is there (the driver marks the run failed)."""
        if self.tracker and not isinstance(exc, TrackingUnavailable):
            self.flush()
