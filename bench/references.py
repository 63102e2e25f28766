"""The classical reference rows under several settings, side by side in one process: the noise level
each estimator gives, and the PSNR and seconds per image of non-local means and BM3D with it.

    python bench/references.py --pairs ../shared/data/polyu100 [--every 10] [--threads 1]
    python bench/references.py --synthetic [--every 1]

``--pairs`` reads a ``pairs`` source (``noisy/`` and ``clean/`` twins); ``--synthetic`` the
SIDD-like generator's medium pairs under the demo profile's spec (cut to 256x256). Every
``--every``-th image is used. Each variant runs on the same images one after the other with
``--threads`` threads; the table gives the mean PSNR gain over the noisy input, the estimated
sigma against the std of noisy - clean (0-255 scale), and the seconds per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (name, settings over the defaults, methods): the noise-level estimators with NLM and the real
# profile's fast BM3D, then BM3D's speed settings with the default estimator
FAST = {"bm3d_step": 8, "bm3d_window": 15}
VARIANTS = (
    ("wavelet sigma", {"sigma": "wavelet", **FAST}, ("nlm", "bm3d")),
    ("pd sigma, stride 2", {"sigma_stride": 2, **FAST}, ("nlm", "bm3d")),
    ("pd sigma, stride 3", {"sigma_stride": 3, **FAST}, ("nlm", "bm3d")),
    ("pd sigma, stride 4; bm3d step 8, window 15 (real profile)", FAST, ("nlm", "bm3d")),
    ("pd sigma, stride 4; bm3d step 6, window 19", {"bm3d_step": 6, "bm3d_window": 19}, ("bm3d",)),
    ("pd sigma, stride 4; bm3d step 3, window 39 (the package's)", {}, ("bm3d",)),
)


def load_pairs(args) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) uint8 images of the chosen source, every ``--every``-th."""
    if args.synthetic:
        import tempfile

        from orchestrator.data.files import read_png
        from orchestrator.data.synthetic import generate
        from orchestrator.schema import SyntheticSpec

        spec = SyntheticSpec(scenes=6, size=(256, 320), noise_gain=4.0, zoom=4.0)
        root = generate(Path(tempfile.mkdtemp()) / "sidd", spec)
        noisy = sorted(root.glob("SIDD_Medium_Srgb/Data/*/*NOISY*"))
        pairs = [(read_png(n), read_png(Path(str(n).replace("NOISY", "GT")))) for n in noisy]
        pairs = [(n[:256, :256], c[:256, :256]) for n, c in pairs]
    else:
        from orchestrator.data.folders import index_pairs
        from orchestrator.data.images import read_image, to_uint8
        from orchestrator.data.sources import parse_source
        from orchestrator.schema import DataConfig

        found = index_pairs(parse_source(f"pairs:{args.pairs}", key="--pairs"), DataConfig())
        pairs = [(to_uint8(read_image(p.noisy)), to_uint8(read_image(p.clean))) for p in found]
    return pairs[:: args.every]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="a pairs source: a folder with noisy/ and clean/ twins")
    src.add_argument("--synthetic", action="store_true", help="the generator's pairs (demo's spec)")
    ap.add_argument("--every", type=int, default=10, help="use every n-th image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=0, help="score the top-left NxN of each image (0: whole)")
    args = ap.parse_args(argv)

    from orchestrator.schema import ClassicalOptions
    from orchestrator.study.references import estimate_sigma, reference, reference_spec
    from orchestrator.train.evaluation import to_images, to_tensor
    from orchestrator.train.metrics import evaluate as block_metrics

    torch.set_num_threads(args.threads)
    pairs = load_pairs(args)
    if args.crop > 0:
        pairs = [(n[: args.crop, : args.crop], c[: args.crop, : args.crop]) for n, c in pairs]
    base = [float(block_metrics(n[None], c[None])["psnr"][0]) for n, c in pairs]
    true = np.mean([np.std(n.astype(np.float64) - c) for n, c in pairs])
    h, w = pairs[0][0].shape[:2]
    print(
        f"{len(pairs)} images of {h}x{w}; noisy input {np.mean(base):.3f} dB; std(noisy - clean) {true:.2f}"
    )
    print(f"({args.threads} thread(s), one image at a time)\n")
    print("| method | settings | sigma | PSNR | gain over noisy | s per image |")
    print("|---|---|---|---|---|---|")
    for label, settings, methods in VARIANTS:
        options = ClassicalOptions(**settings)
        sigma = np.mean([estimate_sigma(n.astype(np.float64) / 255.0, options) * 255.0 for n, _ in pairs])
        for method in methods:
            model = reference(reference_spec(method, options))
            psnr, seconds = [], 0.0
            for n, c in pairs:
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = to_images(model(to_tensor(n[None].copy())))
                seconds += time.perf_counter() - t0
                psnr.append(float(block_metrics(out, c[None])["psnr"][0]))
            gain = np.mean(psnr) - np.mean(base)
            print(
                f"| {method} | {label} | {sigma:.2f} | {np.mean(psnr):.3f} | {gain:+.3f} | "
                f"{seconds / len(pairs):.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
