from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SIDD-like tree, made once per session by the project's generator."""
    from orchestrator.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("sidd")
    spec = SyntheticSpec(
        seed=7,
        scenes=5,
        size=(96, 128),
        val_images=2,
        val_blocks=4,
        block_size=32,
        bench_images=2,
        bench_blocks=3,
    )
    return generate(root, spec)


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for the session (2 CPUs); jobs attach to it instead of starting theirs."""
    import ray

    if not ray.is_initialized():
        # address="local": always a new instance, never a cluster some other process started here
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING"
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on loopback with proxied artifacts; yields its URL and folders."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "mlflow-server"
    root.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}"]
    cmd += ["--artifacts-destination", str(root / "artifacts")]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        yield {"url": url, "root": root}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers
        proc.wait()
