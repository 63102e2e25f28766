"""End-to-end demo of the data layer: generate SIDD-like data, read it back, score and correlate.

``python jobs/demo.py [--config FILE] [--set key=value ...]``. With no ``data.root`` it generates
synthetic data in SIDD's layout (cached under ``data.cache_dir``), indexes and validates it with
the same readers a real SIDD download uses, scores the noisy validation blocks against their
ground truth (PSNR, SSIM, SSIM-uniform7), and computes the paper's 21x21 noise-correlation map.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import ConfigError, DemoConfig, build, to_yaml
from orchestrator.data.sidd import DatasetError
from orchestrator.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help="YAML file over the defaults")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. --set data.synthetic.scenes=4 (repeatable)",
    )
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = ap.parse_args(argv)
    try:
        cfg = build(DemoConfig, args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    t0 = time.perf_counter()
    try:
        run_demo(cfg)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
