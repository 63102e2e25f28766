"""The data-layer demo behind ``jobs/demo.py`` (until the main ablation job exists)."""

from __future__ import annotations

import numpy as np

from orchestrator.correlation.report import REFERENCE_MAPS
from orchestrator.correlation.stats import PROFILE_DISTANCES, noise_of, radial_profile, rgb_pearson_sums
from orchestrator.data import dataset
from orchestrator.data.sidd import load_pair, load_validation
from orchestrator.schema import DemoConfig
from orchestrator.train import metrics


def run_demo(cfg: DemoConfig) -> dict:
    """Generate (if needed), index, read back and summarise a SIDD tree; return the numbers."""
    print("[1/4] resolving the dataset", flush=True)
    index = dataset.resolve(cfg.data)
    print(index.summary(), flush=True)

    print("[2/4] reading validation blocks and scoring the noisy input against ground truth", flush=True)
    noisy, gt = load_validation(index)
    scores = metrics.MetricAccumulator()
    scores.update(noisy, gt)
    result = {"noisy_input": scores.result()}
    r = result["noisy_input"]
    print(
        f"  noisy input: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, "
        f"SSIM-uniform7 {r['ssim_uniform7']:.4f} over {scores.count} blocks",
        flush=True,
    )

    pairs = index.pairs[: cfg.max_pairs]
    print(
        f"[3/4] noise-correlation map (radius {cfg.correlation_radius}) over {len(pairs)} pairs", flush=True
    )
    pooled = None
    for i, rec in enumerate(pairs, 1):
        n, c = load_pair(rec)
        s = rgb_pearson_sums(noise_of(n, c), cfg.correlation_radius)
        pooled = s if pooled is None else pooled + s
        print(f"  {i}/{len(pairs)} {rec.key} ({rec.info.camera}, ISO {rec.info.iso})", flush=True)
    dists = tuple(d for d in PROFILE_DISTANCES if d <= cfg.correlation_radius)
    profile = radial_profile(pooled.map(), dists)
    reference = radial_profile(np.load(REFERENCE_MAPS["sidd"]), dists)
    result["correlation"] = profile
    print("[4/4] summary")
    print("  distance  synthetic  real SIDD (authors' map)")
    for d in dists:
        print(f"  {d:8d}  {profile[d]:9.3f}  {reference[d]:9.3f}")
    print(
        "  The main ablation job (jobs/ablations.py) is not part of this build yet: this demo runs "
        "the data layer end to end."
    )
    return {**result, "pairs": len(index.pairs), "val_blocks": int(np.prod(index.validation.shape[:2]))}
