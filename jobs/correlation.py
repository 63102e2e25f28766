"""The noise-correlation prior: exact per-image and pooled maps over a SIDD tree, on Ray Data.

``python jobs/correlation.py [--data DIR] [--out OUT] [--radius R] [--statistic STATISTIC]``
``python jobs/correlation.py --train-data folder:PHOTOS --statistic residual``: no clean image needed.

``--data`` is a SIDD root holding ``SIDD_Medium_Srgb/Data/<scene>/...``; without it, SIDD-like
synthetic data is generated (once, cached). Runs on an embedded local Ray, or on the cluster it is
submitted to (``ray job submit --working-dir . -- python jobs/correlation.py --data /shared/SIDD``;
the data must then be readable at that path on every node). Writes to OUT: ``pooled_map.npy``,
``pooled_sum.npy``, ``pooled_count.npy``, ``per_image.parquet``, ``mask.npz``, ``summary.json``,
``outliers.csv``, ``group_maps.json`` and ``figures/``; logs them to MLflow. Rerunning with the same
OUT computes only the pairs not done yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.cli import RUN_FLAGS, add_config_arguments, add_run_arguments, resolve_config, run_overrides
from orchestrator.correlation.job import run_correlation
from orchestrator.errors import JOB_ERRORS, exit_status, fail
from orchestrator.schema import CorrelationConfig

# Flags that are shorthands for config keys (applied before --set).
_FLAGS = RUN_FLAGS | {
    "radius": "radius",
    "statistic": "statistic",
    "workers": "workers",
    "max_pairs": "max_pairs",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(ap, out="correlation_out")
    ap.add_argument("--radius", type=int, metavar="R", help="map radius; 10 gives 21x21 (default 10)")
    ap.add_argument(
        "--statistic",
        choices=["rgb_pearson", "pearson", "residual"],
        help="default rgb_pearson; residual: the training images' noise, estimated from them alone",
    )
    ap.add_argument("--workers", type=int, metavar="N", help="concurrent pairs (default: one per CPU)")
    ap.add_argument("--max-pairs", type=int, metavar="N", help="only the first N pairs (0: all)")
    ap.add_argument("--strict", action="store_true", help="stop on any bad dataset file")
    add_config_arguments(ap, example="figures.outlier_threshold=0.1")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    flags = run_overrides(args, _FLAGS)
    flags += ["strict=true"] if args.strict else []
    cfg, code = resolve_config(CorrelationConfig, args, flags)
    if cfg is None:
        return code
    try:
        summary = run_correlation(cfg)
    except JOB_ERRORS as exc:
        return fail(exc)
    except KeyboardInterrupt as exc:
        print(
            f"interrupted: finished maps are kept in {cfg.out}; run again to compute the rest",
            file=sys.stderr,
        )
        return exit_status(exc)
    return 1 if "mlflow_error" in summary else 0


if __name__ == "__main__":
    sys.exit(main())
