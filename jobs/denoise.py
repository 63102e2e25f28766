"""Denoise your own sRGB images with any trained or imported checkpoint.

``python jobs/denoise.py INPUT --checkpoint SOURCE [--out OUT] [--memory-mb MB | --tile N]
[--config FILE] [--set key=value ...]``

INPUT is an image or a folder of them: PNG, JPEG or TIFF, 8 or 16 bits per channel, three
channels, any size; or a data source, ``SOURCE:PATH``: ``folder:`` and ``pairs:`` (the noisy half)
are written as a tree of images, ``blocks:`` and ``sidd:`` (its benchmark blocks) as the SIDD
server's ``OUT/SubmitSrgb.mat``, ``dnd:`` in DND's submission layout (``OUT/bundled/``).

SOURCE is a stage's ``model.pt``, an MLflow URI (``runs:/<run id>``: a stage's run, or an
ablation's parent run, which leads to its final stage; ``models:/<name>/<version>``), or, with
``--original CLASS [--original-kwargs JSON]``, weights saved by an original implementation (e.g.
``--original network.bnn.BNN``). Checkpoints are read with
``torch.load(weights_only=True)``: nothing in them is executed.

Large images are processed in overlapping tiles that fit ``--memory-mb`` (default 2048; 0 with no
``--tile``: whole images) and blended without seams; outputs keep each input's name, format and
bit depth. Runs on the GPU when there is one. Exit status (``docs/BAD_INPUTS.md``): 0 all written,
1 some inputs skipped (listed), 2 bad arguments or input path, 3 the checkpoint cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.cli import add_config_arguments, flag_overrides, resolve_config
from orchestrator.errors import JOB_ERRORS, fail
from orchestrator.schema import DenoiseConfig

_FLAGS = {
    "out": "out",
    "tracking_uri": "tracking.uri",
    "memory_mb": "memory_mb",
    "tile": "tile",
    "margin": "margin",
    "blend": "blend",
    "device": "device",
    "seed": "seed",
    "method_name": "method_name",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="an image file, a folder of images, or SOURCE:PATH")
    ap.add_argument("--checkpoint", required=True, metavar="SOURCE", help="model.pt, runs:/..., models:/...")
    ap.add_argument("--out", help="output folder (default: denoised)")
    ap.add_argument("--tracking-uri", help="MLflow store of runs:/ and models:/ URIs")
    ap.add_argument("--original", default="", metavar="CLASS", help="the original class of a raw state dict")
    ap.add_argument("--original-kwargs", default="{}", metavar="JSON", help="its constructor arguments")
    ap.add_argument("--memory-mb", type=float, help="memory bound for one tile (MB, default 2048)")
    ap.add_argument("--tile", type=int, help="tile core side in px, a multiple of 32 (overrides)")
    ap.add_argument("--margin", type=int, help="context around each tile, multiple of 32 (default 160)")
    ap.add_argument("--blend", type=int, help="width of the blending band in px (default 16)")
    ap.add_argument("--device", help="cuda, cpu (default: cuda when available)")
    ap.add_argument("--seed", type=int, help="seed of random inference steps (R3)")
    ap.add_argument("--method-name", help="OptionalData.MethodName of a SIDD submission")
    add_config_arguments(ap, example="memory_mb=1024")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg, code = resolve_config(DenoiseConfig, args, flag_overrides(args, _FLAGS))
    if cfg is None:
        return code
    from orchestrator.data.sources import parse_source, source_names
    from orchestrator.tools.denoise import collect_inputs, denoise_files, denoise_source
    from orchestrator.tools.load import load_named

    try:
        is_source = args.input.partition(":")[0] in source_names()
        spec = parse_source(args.input, key="input") if is_source else None
        files = collect_inputs(args.input) if spec is None else []
        den = load_named(
            args.checkpoint,
            tracking_uri=cfg.tracking.uri,
            original=args.original,
            original_kwargs=args.original_kwargs,
        )
        print(f"denoiser: {den.description}", flush=True)
        if spec is None:
            summary = denoise_files(den.model, files, Path(cfg.out), cfg)
        else:
            summary = denoise_source(den.model, spec, cfg.data, Path(cfg.out), cfg)
    except JOB_ERRORS as exc:
        return fail(exc)
    if spec is not None and spec.kind not in ("folder", "pairs"):
        print(f"wrote {summary.written[0]} ({spec.kind} submission) in {summary.seconds:.1f} s")
        return 0
    mode = f"tiles of {summary.tile}px" if summary.tile else "whole images"
    print(f"wrote {len(summary.written)} image(s) to {cfg.out} in {summary.seconds:.1f} s ({mode})")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} file(s):", file=sys.stderr)
        for path, why in summary.skipped:
            print(f"  {path}: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
