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
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
