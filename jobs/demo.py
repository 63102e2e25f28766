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

from orchestrator.cli import add_config_arguments, resolve_config
from orchestrator.demo import run_demo
from orchestrator.errors import JOB_ERRORS, fail
from orchestrator.schema import DemoConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(ap)
    cfg, code = resolve_config(DemoConfig, ap.parse_args(argv))
    if cfg is None:
        return code
    t0 = time.perf_counter()
    try:
        run_demo(cfg)
    except JOB_ERRORS as exc:
        return fail(exc)
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
