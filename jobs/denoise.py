"""Denoise your own sRGB images with any trained or imported checkpoint.

``python jobs/denoise.py INPUT --checkpoint SOURCE [--out OUT] [--memory-mb MB | --tile N]``

INPUT is an image or a folder of them: PNG, JPEG or TIFF, 8 or 16 bits per channel, three
channels, any size. SOURCE is a stage's ``model.pt``, an MLflow URI (``runs:/<run id>``: a stage's
run, or an ablation's parent run, which leads to its final stage; ``models:/<name>/<version>``),
or, with ``--original CLASS [--original-kwargs JSON]``, weights saved by an original
implementation (e.g. ``--original network.bnn.BNN``). Checkpoints are read with
``torch.load(weights_only=True)``: nothing in them is executed.

Large images are processed in overlapping tiles that fit ``--memory-mb`` (default 2048; 0 with no
``--tile``: whole images) and blended without seams; outputs keep each input's name, format and
bit depth. Runs on the GPU when there is one. Exit status: 0 all written, 1 some inputs skipped
(listed), 2 bad arguments or input path, 3 the checkpoint cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="an image file or a folder of images")
    ap.add_argument("--checkpoint", required=True, metavar="SOURCE", help="model.pt, runs:/..., models:/...")
    ap.add_argument("--out", default="denoised", help="output folder (default: denoised)")
    ap.add_argument("--tracking-uri", default="", help="MLflow store of runs:/ and models:/ URIs")
    ap.add_argument("--original", default="", metavar="CLASS", help="the original class of a raw state dict")
    ap.add_argument("--original-kwargs", default="{}", metavar="JSON", help="its constructor arguments")
    ap.add_argument("--memory-mb", type=float, default=2048.0, help="memory bound for one tile (MB)")
    ap.add_argument("--tile", type=int, default=0, help="tile core side in px, a multiple of 32 (overrides)")
    ap.add_argument("--margin", type=int, default=160, help="context around each tile, multiple of 32")
    ap.add_argument("--blend", type=int, default=16, help="width of the blending band in px")
    ap.add_argument("--device", default="", help="cuda, cpu (default: cuda when available)")
    ap.add_argument("--seed", type=int, default=0, help="seed of random inference steps (R3)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from orchestrator.checkpoints import CheckpointError, load_denoiser
    from orchestrator.denoise_job import DenoiseOptions, collect_inputs, denoise_files

    try:
        kwargs = json.loads(args.original_kwargs)
    except json.JSONDecodeError as exc:
        print(f"error: --original-kwargs is not JSON ({exc})", file=sys.stderr)
        return 2
    try:
        files = collect_inputs(args.input)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: {args.input}: no PNG, JPEG or TIFF files in it", file=sys.stderr)
        return 2
    try:
        den = load_denoiser(
            args.checkpoint, tracking_uri=args.tracking_uri, original=args.original, original_kwargs=kwargs
        )
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"denoiser: {den.description}", flush=True)
    opts = DenoiseOptions(args.tile, args.memory_mb, args.margin, args.blend, args.device, args.seed)
    try:
        summary = denoise_files(den.model, files, Path(args.out), opts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mode = f"tiles of {summary.tile}px" if summary.tile else "whole images"
    print(f"wrote {len(summary.written)} image(s) to {args.out} in {summary.seconds:.1f} s ({mode})")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} file(s):", file=sys.stderr)
        for path, why in summary.skipped:
            print(f"  {path}: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
