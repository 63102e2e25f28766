"""The training package is plain PyTorch and files: it imports with Ray and MLflow unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_imports_without_ray_or_mlflow() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # a None entry makes 'import ray' raise ImportError
        "sys.modules['mlflow'] = None\n"
        "import orchestrator.train, orchestrator.train.loop, orchestrator.train.store\n"
        "import orchestrator.train.evaluation, orchestrator.train.metrics\n"
        "import orchestrator.schema, orchestrator.config, models\n"
        "loaded = [m for m in sys.modules if sys.modules[m] and m.split('.')[0] in ('ray', 'mlflow')]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
