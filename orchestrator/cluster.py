"""Connecting to Ray: an existing cluster (``ray job submit``, ``RAY_ADDRESS``) or an embedded local one.

Every Ray job of the platform starts through :func:`connect`, so the same script runs unchanged on
a laptop and under ``ray job submit``. An unreachable address fails within seconds with a message
instead of Ray's minute-long hang.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping

from orchestrator.errors import RunFailure
from orchestrator.schema import RayConfig


class ClusterError(RunFailure):
    """Ray cannot be reached or cannot provide what a job asks for."""


def _host_port(address: str) -> tuple[str, int] | None:
    if address in ("auto", "local") or "://" in address:
        return None  # resolved by Ray itself (a local session file, or a client URI)
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not host:port, 'auto' or a ray:// URI")
    return host, int(port)


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at ``address`` (host:port of the cluster's GCS)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster at {address} ({exc}); start one with 'ray start --head' or 'ray up "
            "cluster.yaml', or unset RAY_ADDRESS to run on an embedded local Ray"
        ) from exc


def quiet_ray_data() -> None:
    """Ray Data without its progress bars and start-up banner: the jobs print their own progress."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def prompt_dispatch(wait_s: float = 0.02) -> None:
    """Let Ray Data start the next task soon after any running one finishes.

    Ray Data's streaming executor waits in ``ray.wait`` for *all* its running tasks, up to 0.1 s,
    before it dispatches again. With tasks of about a second and one task per CPU, every worker
    then idles for up to 0.1 s after each task: with 2 workers the gap between tasks measured
    0.17 s against 0.04 s with a 0.02 s bound (``bench/correlation.py``). The shorter bound costs
    the driver a few more wake-ups. A Ray without this setting is left alone.
    """
    try:
        from ray.data._internal.execution import streaming_executor_state as state
    except ImportError:  # pragma: no cover - another Ray layout
        return
    current = getattr(state, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", None)
    if isinstance(current, int | float) and current > wait_s:
        state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = wait_s


@contextlib.contextmanager
def connect(cfg: RayConfig | None = None, *, quiet: bool = True) -> Iterator[dict]:
    """Use the running Ray session, attach to a cluster, or start a local Ray; yield its resources.

    A session started here is shut down on exit; one that was already running is left alone.
    """
    import ray

    cfg = cfg or RayConfig()
    started = False
    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS", "")
        kwargs: dict = {"log_to_driver": not quiet, "logging_level": "WARNING"}
        if address:
            check_reachable(address)
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cfg.num_cpus or None, include_dashboard=False, **kwargs)
        started = True
    try:
        yield ray.cluster_resources()
    finally:
        if started:
            ray.shutdown()


def trial_resources(cpu: float, gpu: float, custom: Mapping[str, float]) -> dict[str, float]:
    """One trial's resource request in Ray's names (``CPU``, ``GPU``, custom)."""
    req = {"CPU": float(cpu), "GPU": float(gpu), **{k: float(v) for k, v in custom.items()}}
    return {k: v for k, v in req.items() if v > 0}


def worker_bundle(request: Mapping[str, float]) -> dict[str, float]:
    """One Ray Train worker's resources: a trial's request, with at least 1 CPU (Train's default)."""
    out = {k: float(v) for k, v in request.items() if v > 0}
    out.setdefault("CPU", 1.0)
    return out


def _nodes() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Each live node's resources, and the same less Ray's ``node:`` labels (for messages)."""
    import ray

    nodes = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    return nodes, [{k: v for k, v in n.items() if not k.startswith("node:")} for n in nodes]


def _fits(node: Mapping[str, float], bundle: Mapping[str, float]) -> int:
    """How many ``bundle`` a node holds."""
    return int(min((node.get(k, 0.0) // v for k, v in bundle.items() if v > 0), default=1 << 30))


def check_resources(request: Mapping[str, float], workers: Mapping[str, int] | None = None) -> None:
    """Fail unless the cluster can hold one trial (Tune would otherwise wait forever) and, for
    each stage in ``workers`` (label: ``trial.workers``) above 1, all its Ray Train workers at
    once, each holding ``request`` (:func:`worker_bundle`), packed on any of the live nodes."""
    nodes, have = _nodes()
    many = {label: n for label, n in (workers or {}).items() if n > 1}
    in_trial = len(many) < len(workers) if workers else True  # some stage trains in its trial
    if in_trial and not any(_fits(n, request) for n in nodes):
        raise ClusterError(
            f"no node of the cluster can run a stage: each trial asks for {dict(request)}, and the "
            f"nodes have {have}. Lower trial.cpu/trial.gpu (--set trial.gpu=0 to train on CPU), or "
            "add nodes with those resources"
        )
    bundle = worker_bundle(request)
    room = sum(_fits(n, bundle) for n in nodes)
    short = {label: n for label, n in many.items() if n > room}
    if short:
        label, n = max(short.items(), key=lambda kv: kv[1])
        raise ClusterError(
            f"stage {label} asks for trial.workers={n} Ray Train workers of {bundle} each, and the "
            f"cluster's nodes hold {room} such worker(s) at most ({have}). Lower trial.workers or "
            "trial.cpu/trial.gpu, or add nodes with those resources"
        )
