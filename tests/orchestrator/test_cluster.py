"""Connecting to Ray fails fast and clearly when no cluster listens."""

from __future__ import annotations

import socket
import time

import pytest

from orchestrator.cluster import ClusterError, check_reachable, connect, prompt_dispatch
from orchestrator.schema import RayConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address_fails_in_seconds() -> None:
    t0 = time.perf_counter()
    with pytest.raises(ClusterError, match="no Ray cluster at 127.0.0.1"):
        check_reachable(f"127.0.0.1:{_free_port()}", timeout_s=2)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ClusterError, match="not host:port"):
        check_reachable("nowhere")
    check_reachable("auto")  # left to Ray


def test_connect_with_a_dead_address_raises_before_ray_starts(monkeypatch) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_free_port()}")
    with pytest.raises(ClusterError), connect(RayConfig()):
        pass
    assert not ray.is_initialized()


@pytest.mark.ray
def test_connect_reuses_the_running_session(ray_local) -> None:
    with connect(RayConfig()) as resources:
        assert resources["CPU"] == 2
    assert ray_local.is_initialized()  # not shut down: it was not started here


def test_prompt_dispatch_shortens_ray_datas_wait_and_never_lengthens_it(monkeypatch) -> None:
    from ray.data._internal.execution import streaming_executor_state as state

    # The setting must exist in the pinned Ray, or the workaround silently does nothing.
    monkeypatch.setattr(state, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", 0.1)
    prompt_dispatch()
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == 0.02
    prompt_dispatch(0.05)
    assert state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S == 0.02
