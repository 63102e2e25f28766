"""Time the noise-correlation map on one SIDD-sized (4032x3024) pair, methods side by side.

    python bench/correlation.py [--noisy N.PNG --clean C.PNG] [--repeat 5] [--loop-pixels 600]

Without a pair, one is synthesized with the project's camera pipeline (camera GP, ISO 800).
Reports, per pair, single-threaded:
  (a) a per-pixel loop as the authors' script does it (timed on a crop, scaled by pixel count),
  (b) a straightforward NumPy loop over the 441 offsets,
  (c) this project's FFT implementation (orchestrator.correlation.stats.rgb_pearson_sums),
  (d) decoding the two PNGs,
and checks that (b) and (c) agree. With ``--ray-pairs N`` (N > 0), it also times the Ray Data job
(orchestrator.correlation.job.compute_rows) over N copies of the pair laid out as a SIDD tree, with 1
and with 2 concurrent workers on one local Ray of 2 CPUs, and reports pairs per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from orchestrator.correlation.stats import noise_of, rgb_pearson_sums  # noqa: E402
from orchestrator.data import camera, synthetic  # noqa: E402
from orchestrator.data.files import read_png, write_png  # noqa: E402


def per_pixel_loop(noise: np.ndarray, radius: int, pixels: int) -> tuple[float, int]:
    """The first ``pixels`` pixels of a per-pixel Python loop over a zero-padded image."""
    h, w, _ = noise.shape
    pad = np.zeros((h + 2 * radius, w + 2 * radius, 3))
    pad[radius : radius + h, radius : radius + w] = noise
    size = 2 * radius + 1
    s, n = np.zeros((size, size)), np.zeros((size, size))
    t0 = time.perf_counter()
    done = 0
    for i in range(h):
        for j in range(w):
            centre = pad[i + radius, j + radius]
            cc = centre - centre.mean()
            window = pad[i : i + size, j : j + size]
            wc = window - window.mean(axis=2, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (wc @ cc) / (np.linalg.norm(wc, axis=2) * np.linalg.norm(cc))
            ok = ~np.isnan(r)
            s[ok] += r[ok]
            n[ok] += 1
            done += 1
            if done >= pixels:
                return time.perf_counter() - t0, done
    return time.perf_counter() - t0, done


def per_offset_numpy(noise: np.ndarray, radius: int) -> np.ndarray:
    """One NumPy pass per offset over the whole image."""
    x = noise.astype(np.float64)
    c = x - x.mean(axis=2, keepdims=True)
    norm = np.linalg.norm(c, axis=2)
    ok = norm > 0
    u = np.where(ok[..., None], c / np.where(ok, norm, 1.0)[..., None], 0.0)
    h, w = norm.shape
    size = 2 * radius + 1
    s, n = np.zeros((size, size)), np.zeros((size, size))
    for k in range(-radius, radius + 1):
        for l in range(-radius, radius + 1):
            a = (slice(max(0, -k), h - max(0, k)), slice(max(0, -l), w - max(0, l)))
            b = (slice(max(0, k), h - max(0, -k)), slice(max(0, l), w - max(0, -l)))
            s[k + radius, l + radius] = np.einsum("hwc,hwc->", u[a], u[b])
            n[k + radius, l + radius] = np.count_nonzero(ok[a] & ok[b])
    return s / n


def sidd_tree(root: Path, noisy: Path, clean: Path, pairs: int) -> Path:
    """``pairs`` scene folders in SIDD's layout, each holding hard links to the same pair."""
    for i in range(pairs):
        scene = root / "SIDD_Medium_Srgb" / "Data" / f"{i + 1:04d}_001_GP_00800_00100_4400_N"
        scene.mkdir(parents=True)
        for src, kind in ((noisy, "NOISY"), (clean, "GT")):
            dst = scene / f"{i + 1:04d}_{kind}_SRGB_010.PNG"
            try:
                os.link(src, dst)
            except OSError:
                dst.write_bytes(src.read_bytes())
    return root


def ray_throughput(noisy: Path, clean: Path, pairs: int, radius: int) -> list[tuple[int, float, float]]:
    """Pairs per second of the Ray Data job with 1 and 2 workers (one local Ray, started once).

    Returns (workers, end-to-end rate, rate from the first task's start): the second leaves out
    the dataset's start-up (planning, first scheduling), paid once per run whatever its size.
    """
    from orchestrator.cluster import connect
    from orchestrator.correlation.job import compute_rows
    from orchestrator.correlation.pairs import sidd_row
    from orchestrator.data.sidd import index_sidd
    from orchestrator.schema import CorrelationConfig, RayConfig

    results = []
    with tempfile.TemporaryDirectory() as tmp, connect(RayConfig(num_cpus=2)) as resources:
        rows = [sidd_row(p) for p in index_sidd(sidd_tree(Path(tmp) / "sidd", noisy, clean, pairs)).pairs]
        # Warm-up: start both worker processes (imports, FFT buffers) before anything is timed.
        list(compute_rows(rows[:2], CorrelationConfig(radius=radius, workers=2), resources))
        for workers in (1, 2):
            cfg = CorrelationConfig(radius=radius, workers=workers)
            t0 = time.perf_counter()
            first_start = None
            for row in compute_rows(rows, cfg, resources):
                assert row["status"] == "ok", row["reason"]
                if first_start is None:
                    first_start = time.perf_counter() - row["seconds"]
            t1 = time.perf_counter()
            results.append((workers, pairs / (t1 - t0), pairs / (t1 - first_start)))
    return results


def interleaved_medians(fns: list, repeat: int) -> list[float]:
    """Median time of each function, the functions called in turn ``repeat`` times."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [float(np.median(ts)) for ts in times]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noisy", type=Path)
    ap.add_argument("--clean", type=Path)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--loop-pixels", type=int, default=600, help="pixels timed for the per-pixel loop")
    ap.add_argument("--radius", type=int, default=10)
    ap.add_argument("--ray-pairs", type=int, default=0, help="pairs for the Ray job throughput (0: skip)")
    args = ap.parse_args(argv)
    tmp = None
    if args.noisy is None:
        tmp = tempfile.TemporaryDirectory()
        print("synthesizing a 4032x3024 pair (camera GP, ISO 800) ...", flush=True)
        rng = np.random.default_rng(0)
        scene = synthetic.clean_scene(rng, 3024, 4032, synthetic._load_photos())
        noisy, clean = camera.capture(
            scene, camera.PROFILES["GP"], iso=800, illuminant=4400, exposure=0.75, rng=rng
        )
        args.noisy, args.clean = Path(tmp.name) / "n.png", Path(tmp.name) / "c.png"
        write_png(args.noisy, noisy)
        write_png(args.clean, clean)
    noisy, clean = read_png(args.noisy), read_png(args.clean)
    noise = noise_of(noisy, clean)
    h, w = noise.shape[:2]
    r = args.radius
    print(f"pair {w}x{h}, radius {r}, single thread, median of {args.repeat}", flush=True)

    rgb_pearson_sums(noise, r)  # warm-up: a worker's buffers exist after its first image
    # (c) and (d) alternate, so that load from elsewhere on the machine affects both alike.
    t_decode, t_fft = interleaved_medians(
        [lambda: (read_png(args.noisy), read_png(args.clean)), lambda: rgb_pearson_sums(noise, r)],
        args.repeat,
    )
    t0 = time.perf_counter()
    ref = per_offset_numpy(noise, r)
    t_offsets = time.perf_counter() - t0
    err = float(np.nanmax(np.abs(ref - rgb_pearson_sums(noise, r).map())))
    t_loop, done = per_pixel_loop(noise, r, args.loop_pixels)
    t_loop_full = t_loop / done * h * w

    rows = [
        (f"(a) per-pixel loop (scaled from {done} px)", t_loop_full),
        ("(b) per-offset NumPy", t_offsets),
        ("(c) FFT, this project", t_fft),
        ("(d) decode both PNGs", t_decode),
    ]
    print(f"\n{'method':44s} {'s / pair':>10s} {'vs (c)':>10s}")
    for name, t in rows:
        print(f"{name:44s} {t:10.3f} {t / t_fft:10.1f}x")
    print(f"\nper-pixel loop: {t_loop / done * 1e6:.1f} us per pixel")
    print(f"max |(b) - (c)| over the map: {err:.2e}")
    print(f"(c) / (d) = {t_fft / t_decode:.2f}")
    if args.ray_pairs:
        print(f"\nRay Data job over {args.ray_pairs} pairs (each task: decode + map, 1 thread):", flush=True)
        through = ray_throughput(args.noisy, args.clean, args.ray_pairs, r)
        print(f"  {'workers':>8s} {'pairs/s':>9s} {'pairs/s from first task':>24s}")
        for workers, rate, steady in through:
            print(f"  {workers:8d} {rate:9.3f} {steady:24.3f}")
        print(
            f"  speed-up 2 vs 1 workers: {through[1][1] / through[0][1]:.2f}x end to end, "
            f"{through[1][2] / through[0][2]:.2f}x from the first task"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
