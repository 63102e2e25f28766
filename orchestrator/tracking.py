"""MLflow, and only here: experiments, runs, params, metrics, artifacts (STYLE.md 9).

Everything goes through an explicit :class:`mlflow.MlflowClient` with an absolute tracking URI and
explicit experiment and run ids: nothing is set at import or in the process environment, so a Ray
worker whose working directory is a temp folder logs to the same store as the driver.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.config import TrackingConfig

__all__ = ["Tracker", "resolve_uri", "safe_params", "parse_run_uri", "STAGE_KEY", "STAGE_DONE"]

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
    """

    def __init__(self, cfg: TrackingConfig | None = None):
        from mlflow import MlflowClient

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
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i : i + 1000])

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

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        """The newest run of the experiment carrying all ``tags``, or None."""
        clause = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs(
            [experiment_id], filter_string=clause, max_results=1, order_by=["attributes.start_time DESC"]
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

    def finished_stage(self, key: str) -> str | None:
        """The run, in any experiment, that trained the stage with content ``key`` to the end."""
        exps = [e.experiment_id for e in self.client.search_experiments()]
        if not exps:
            return None
        clause = f"tags.`{STAGE_KEY}` = '{key}' and tags.`{STAGE_DONE}` = 'true'"
        runs = self.client.search_runs(exps, filter_string=clause, max_results=1)
        return runs[0].info.run_id if runs else None


# Tags that make runs findable: the stage index of reuse, and parent/child identity.
STAGE_KEY = "denoise.stage_key"
STAGE_DONE = "denoise.stage_done"
