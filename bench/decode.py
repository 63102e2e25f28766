"""Decode a 16-bit RGB PNG whose rows are all Paeth-filtered (as camera tools write them), with the
project's reader and with the reader it replaced, side by side in one process.

    python bench/decode.py [--size 3000x4000] [--repeat 3] [--before REV]

The image (12 MP by default) is a smooth gradient with noise, so that zlib compresses it as it
would a photo. The reader replaced is the pure-Python row unfiltering of ``orchestrator/data/
images.py`` at git revision ``--before`` (default the last one that had it), loaded from git so
that it is timed exactly as it shipped. Each reader is timed ``--repeat`` times (the old one once:
it takes tens of seconds); the outputs must be identical. Prints a Markdown table and the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEFORE = "67a82ad"  # the last revision with the Python unfiltering


def paeth_png16(path: Path, a: np.ndarray) -> None:
    """Write ``a`` (uint16, H x W x 3) as a PNG with filter 4 (Paeth) on every row."""
    from orchestrator.data.images import png_chunk

    h, w, _ = a.shape
    raw = a.astype(">u2").reshape(h, -1).view(np.uint8).astype(np.int16)
    bpp = 6
    up = np.vstack([np.zeros((1, raw.shape[1]), np.int16), raw[:-1]])
    left = np.hstack([np.zeros((h, bpp), np.int16), raw[:, :-bpp]])
    ul = np.hstack([np.zeros((h, bpp), np.int16), up[:, :-bpp]])
    p = left + up - ul
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
    rows = np.hstack([np.full((h, 1), 4, np.uint8), ((raw - pred) % 256).astype(np.uint8)])
    ihdr = np.array([w, h], ">u4").tobytes() + bytes([16, 2, 0, 0, 0])
    idat = zlib.compress(rows.tobytes(), 6)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def old_reader(rev: str):
    """``read_image`` of ``orchestrator/data/images.py`` at git revision ``rev``."""
    try:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:orchestrator/data/images.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot load the old reader from git revision {rev!r}: {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="images-before-"))
    (folder / "images_before.py").write_text(src)
    spec = importlib.util.spec_from_file_location("images_before", folder / "images_before.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.read_image


def timed(fn, path: Path, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(path)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3000x4000", help="HxW (default 3000x4000, 12 MP)")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls of the current reader")
    ap.add_argument("--before", default=BEFORE, help=f"git revision of the old reader (default {BEFORE})")
    args = ap.parse_args(argv)
    from orchestrator.data.images import read_image

    h, w = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([yy / h, xx / w, (yy + xx) / (h + w)], -1) * 50000 + 5000
    a = np.clip(base + rng.normal(0, 800, base.shape), 0, 65535).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paeth16.png"
        paeth_png16(path, a)
        mb = path.stat().st_size / 1e6
        new_s, new = timed(read_image, path, args.repeat)
        old_s, old = timed(old_reader(args.before), path, 1)
    if not (np.array_equal(new, a) and np.array_equal(old, a)):
        print("error: a reader returned different pixels", file=sys.stderr)
        return 1
    print(f"16-bit RGB PNG, {h}x{w} ({h * w / 1e6:.1f} MP), every row Paeth-filtered, {mb:.1f} MB")
    print("| reader | decode s |\n|---|---|")
    print(f"| before ({args.before}: Python row unfiltering) | {old_s:.2f} |")
    print(f"| now (libpng through imagecodecs, CRCs checked first) | {new_s:.3f} |")
    print(f"speed-up: {old_s / new_s:.0f}x (identical pixels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
