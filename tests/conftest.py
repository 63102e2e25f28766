from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# hypothesis keeps caches in ./.hypothesis by default: keep them out of the checkout.
_HYPOTHESIS_DIR = os.path.join(tempfile.gettempdir(), "denoise-lab-hypothesis")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_DIR)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SIDD-like tree, made once per session by the project's generator."""
    from orchestrator.data.synthetic import generate
    from orchestrator.schema import SyntheticSpec

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


def pytest_collection_modifyitems(items) -> None:
    """A test that asks for a Ray session is a ``ray`` test, whether or not it says so, so that
    ``make test-fast`` (``-m "not slow and not ray"``) never starts Ray."""
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)


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


class MlflowServer:
    """A real ``mlflow server`` on loopback with proxied artifacts, which a test can stop and
    start again on the same port, store and artifact folder."""

    def __init__(self, root: Path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", "1"]
        cmd += ["--backend-store-uri", f"sqlite:///{self.root / 'server.db'}"]
        cmd += ["--artifacts-destination", str(self.root / "artifacts")]
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow server did not start: {tail}") from None
                time.sleep(0.5)

    def stop(self) -> None:
        import signal

        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its workers
            self.proc.wait()
            self.proc = None


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A running :class:`MlflowServer`, stopped after the test."""
    root = tmp_path / "mlflow-server"
    root.mkdir()
    server = MlflowServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ``make test`` (scripts/run-tests.sh) runs these files in a pytest process of their own, beside
# the one that runs the rest: they start neither Ray nor a job, so they cannot meet a Ray instance
# on a port. Every other test may start Ray and runs in the main process, in order.
NO_RAY = (
    "tests/models/",
    "tests/orchestrator/data/",
    "tests/orchestrator/test_ablations.py",
    "tests/orchestrator/test_config.py",
    "tests/orchestrator/test_correlation.py",
    "tests/orchestrator/test_correlation_report.py",
    "tests/orchestrator/test_layering.py",
    "tests/orchestrator/test_metrics.py",
    "tests/orchestrator/test_references.py",
    "tests/orchestrator/test_residual.py",
    "tests/orchestrator/test_selection.py",
    "tests/orchestrator/test_stages.py",
    "tests/orchestrator/test_tracking.py",
    "tests/orchestrator/test_uncertainty.py",
    "tests/reliability/test_fuzz.py",
    "tests/reliability/test_security.py",
    "tests/test_cluster_yaml.py",
    "tests/test_lint.py",
    "tests/test_sizes.py",
)

# Run beside the main process too, after NO_RAY: each of these tests starts its Ray in processes
# of its own at an explicit address (jobs with ray.address=local, a ray.cluster_utils.Cluster or a
# `ray start` head the job is pointed at), so it cannot attach to the main process's Ray, nor that
# process's jobs to its (they run in the Ray the process already holds, or at address "local").
OWN_RAY = (
    "tests/jobs/test_real_noise.py",
    "tests/jobs/test_submit.py",
    "tests/orchestrator/test_node_loss.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_tracking_outage.py",
    "tests/test_bench_workers.py",
)
