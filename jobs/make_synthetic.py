"""Write SIDD-like synthetic data in SIDD's layout: ``python jobs/make_synthetic.py --out DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.data import camera
from orchestrator.data.sidd import index_sidd
from orchestrator.data.synthetic import generate
from orchestrator.schema import SyntheticSpec


def main(argv: list[str] | None = None) -> int:
    d = SyntheticSpec()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="root folder to write (SIDD layout)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--scenes", type=int, default=d.scenes, help="scene folders (2 frames each)")
    ap.add_argument("--size", type=int, nargs=2, default=list(d.size), metavar=("H", "W"))
    ap.add_argument("--val-images", type=int, default=d.val_images)
    ap.add_argument("--val-blocks", type=int, default=d.val_blocks)
    ap.add_argument("--block-size", type=int, default=d.block_size)
    ap.add_argument("--bench-images", type=int, default=d.bench_images)
    ap.add_argument("--bench-blocks", type=int, default=d.bench_blocks)
    ap.add_argument(
        "--cameras", default=",".join(d.cameras), help=f"comma-separated, from {sorted(camera.PROFILES)}"
    )
    args = ap.parse_args(argv)
    try:
        spec = SyntheticSpec(
            seed=args.seed,
            scenes=args.scenes,
            size=tuple(args.size),
            val_images=args.val_images,
            val_blocks=args.val_blocks,
            block_size=args.block_size,
            bench_images=args.bench_images,
            bench_blocks=args.bench_blocks,
            cameras=tuple(c.strip() for c in args.cameras.split(",") if c.strip()),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    print(f"writing {spec.scenes} scenes of {spec.size[0]}x{spec.size[1]} to {args.out}", flush=True)
    generate(args.out, spec, progress=True)
    print(index_sidd(args.out).summary())
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
