"""Training crops per second from the Parquet patch shards, per CPU worker, at paper sizes.

    python bench/data.py [--images 8] [--size 1536x2048] [--batch 8] [--patch 256] [--batches 40]

It writes ``--images`` noisy PNGs (random content: cropping does not depend on it) as a ``folder``
source, cuts them into the trials' patch shards with Ray Data (512 px tiles at stride 384, as
AP-BSN and LG-BPN prepare SIDD), and times what a trial does each step on one thread: draw
``--batch`` crops of ``--patch`` px with flips and transposes (``orchestrator/data/crops.py``)
from the shards (``TileSet``). Three cases:

- ``cold``: a tile cache of one tile, so every crop reads a Parquet row group;
- ``warm``: the default 1 GiB tile cache, after one pass (a trial's steady state on SIDD-sized data
  that fits; the cache holds what a trial samples from);
- ``prefetched``: ``cold`` through the trial's ``Prefetcher`` (one background thread) beside a
  step of ``--compute-ms`` that holds the main thread: the crops/s the loop sees.

Prints crops/s for each, and the GPU consumption it must exceed (see ``docs/BENCHMARKS.md``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rate(fn, batches: int, batch: int) -> float:
    fn(0)  # warm-up: opens the Parquet files
    t0 = time.perf_counter()
    for step in range(1, batches + 1):
        fn(step)
    return batches * batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", default="1536x2048", help="HxW of each image")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=40, help="timed batches per case")
    ap.add_argument(
        "--compute-ms", type=float, default=50.0, help="the simulated step of the prefetched case"
    )
    args = ap.parse_args(argv)
    from orchestrator.cluster import connect
    from orchestrator.data.crops import CropSampler, Prefetcher
    from orchestrator.data.images import write_image
    from orchestrator.data.shards import TileSet, build_shards
    from orchestrator.data.sources import index_training
    from orchestrator.schema import DataConfig

    h, w = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        for i in range(args.images):
            write_image(folder / f"img{i:02d}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        items = index_training(DataConfig(train=f"folder:{folder}")).items
        with connect():  # the running Ray session, or a local one for the cut
            shards = build_shards(items, Path(tmp) / "shards", tile=512, stride=384, progress=False)
        aug = ("hflip", "vflip", "transpose")

        def sampler(cache_bytes: int) -> CropSampler:
            tiles = TileSet(shards, cache_bytes=cache_bytes)
            return CropSampler(
                tiles, patch=args.patch, batch=args.batch, seed=0, augment=aug, shapes=tiles.shapes
            )

        cold = _rate(sampler(1).batch, args.batches, args.batch)
        warm_sampler = sampler(1 << 30)
        for step in range(args.batches + 1):
            warm_sampler.batch(step)
        warm = _rate(warm_sampler.batch, args.batches, args.batch)
        pre = Prefetcher(sampler(1))

        def step(s: int) -> None:
            pre.batch(s)
            time.sleep(args.compute_ms / 1000)  # the step's compute (it releases the GIL, as torch does)

        seen = _rate(step, args.batches, args.batch)
        pre.close()
        n_tiles = len(TileSet(shards))
    print(
        f"{args.images} images of {h}x{w} -> {n_tiles} tiles of 512 px; batch {args.batch} of {args.patch}^2"
    )
    print("| case | crops/s on one thread |\n|---|---|")
    print(f"| cold (every crop reads its tile from Parquet) | {cold:.0f} |")
    print(f"| warm (tiles in the LRU cache) | {warm:.0f} |")
    bound = args.batch / (args.compute_ms / 1000)
    print(f"| prefetched beside a {args.compute_ms:.0f} ms step (at most {bound:.0f}) | {seen:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
