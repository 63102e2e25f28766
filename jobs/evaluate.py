"""Evaluate a checkpoint, an MLflow run or an ablation on the validation blocks, and write the SIDD
benchmark submission.

``python jobs/evaluate.py (--checkpoint SOURCE | --ablation NAME) [--data DIR] [--out OUT]
[--blocks N] [--benchmark] [--tracking-uri URI]``

SOURCE is what ``jobs/denoise.py`` takes: a stage's ``model.pt``, ``runs:/<run id>``,
``models:/<name>/<version>``, or original weights with ``--original CLASS``. ``--ablation NAME``
takes the newest finished run of that ablation in the study's experiment (``--experiment``,
default ``ablations-smoke``). Every validation block (1280 in SIDD) is denoised by a Ray Data
actor pool, one actor per GPU of the cluster (``--gpus-per-worker``) or per CPU locally, and
scored with PSNR, SSIM and SSIM-uniform7. The numbers are printed, written to
``OUT/metrics.json`` and ``OUT/per_block.csv``, and logged to MLflow (experiment
``evaluations``). ``--benchmark`` also denoises ``SIDD_Benchmark/BenchmarkNoisyBlocksSrgb.mat`` and
writes ``OUT/SubmitSrgb.mat`` for the SIDD server. Exit status: 0 done, 2 bad arguments or data,
3 the checkpoint cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", metavar="SOURCE", help="model.pt, runs:/..., models:/...")
    which.add_argument("--ablation", metavar="NAME", help="an ablation's newest finished run")
    ap.add_argument("--experiment", default="ablations-smoke", help="the study of --ablation")
    ap.add_argument("--original", default="", metavar="CLASS", help="the original class of a raw state dict")
    ap.add_argument("--original-kwargs", default="{}", metavar="JSON", help="its constructor arguments")
    ap.add_argument("--data", metavar="DIR", help="SIDD root (default: the synthetic tree)")
    ap.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    ap.add_argument("--blocks", type=int, default=0, help="only the first N blocks (default 0: all)")
    ap.add_argument("--benchmark", action="store_true", help="also write OUT/SubmitSrgb.mat")
    ap.add_argument("--method-name", default="", help="OptionalData.MethodName of the submission")
    ap.add_argument("--batch", type=int, default=8, help="blocks per batch")
    ap.add_argument("--workers", type=int, default=0, help="actors (default: one per GPU, else per CPU)")
    ap.add_argument("--gpus-per-worker", type=float, default=-1, help="default: 1 with GPUs, else 0")
    ap.add_argument("--seed", type=int, default=0, help="seed of random inference steps (R3)")
    ap.add_argument("--tracking-uri", default="", help="MLflow URI (default sqlite:///<cwd>/mlflow.db)")
    ap.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    return ap.parse_args(argv)


def _ablation_source(name: str, experiment: str, tracking_uri: str) -> str:
    from orchestrator.checkpoints import CheckpointError
    from orchestrator.config import TrackingConfig
    from orchestrator.tracking import Tracker

    tracker = Tracker(TrackingConfig(uri=tracking_uri))
    exp = tracker.client.get_experiment_by_name(experiment)
    if exp is None:
        raise CheckpointError(
            f"--ablation {name!r}: no experiment {experiment!r} in {tracker.uri} (train it with "
            "jobs/ablations.py first, or name the experiment that holds it with --experiment)"
        )
    run_id = tracker.find_run(exp.experiment_id, {"denoise.ablation": name, "denoise.status": "finished"})
    if run_id is None:
        raise CheckpointError(f"--ablation {name!r}: no finished run of it in experiment {experiment!r}")
    return f"runs:/{run_id}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from orchestrator.checkpoints import CheckpointError, load_denoiser
    from orchestrator.cli import error_text
    from orchestrator.cluster import ClusterError, connect
    from orchestrator.config import DataConfig
    from orchestrator.data.dataset import resolve as resolve_data
    from orchestrator.data.sidd import BENCHMARK_NOISY, DatasetError, load_blocks, load_validation
    from orchestrator.evaluate_job import evaluate_blocks, run_blocks, write_per_block, write_submission

    try:
        kwargs = json.loads(args.original_kwargs)
        source = args.checkpoint or _ablation_source(args.ablation, args.experiment, args.tracking_uri)
        den = load_denoiser(
            source, tracking_uri=args.tracking_uri, original=args.original, original_kwargs=kwargs
        )
    except json.JSONDecodeError as exc:
        print(f"error: --original-kwargs: {exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"denoiser: {den.description}", flush=True)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        index = resolve_data(DataConfig(root=args.data or ""))
        noisy, clean = load_validation(index)
        with connect() as resources:
            gpus = args.gpus_per_worker if args.gpus_per_worker >= 0 else float(resources.get("GPU", 0) > 0)
            slots = resources.get("GPU", 0) / gpus if gpus > 0 else resources.get("CPU", 1)
            workers = args.workers or max(1, int(slots))
            opts = {"batch": args.batch, "workers": workers, "gpus_per_worker": gpus, "seed": args.seed}
            result = evaluate_blocks(den.model, noisy, clean, blocks=args.blocks, **opts)
            submission = None
            if args.benchmark:
                if index.benchmark is None:
                    raise DatasetError([(Path(index.root) / BENCHMARK_NOISY, "benchmark blocks not present")])
                bench = load_blocks(index.benchmark.noisy_path, BENCHMARK_NOISY.stem)
                flat = bench.reshape(-1, *bench.shape[2:])
                t0 = time.perf_counter()
                rows = sorted(run_blocks(den.model, flat, None, **opts), key=lambda r: int(r["index"]))
                per_mp = (time.perf_counter() - t0) / (flat.shape[0] * flat.shape[1] * flat.shape[2] / 1e6)
                denoised = np.stack([r["denoised"] for r in rows]).reshape(bench.shape)
                optional = {"MethodName": args.method_name or den.description, "Source": source}
                submission = write_submission(out / "SubmitSrgb.mat", denoised, per_mp, optional)
    except (DatasetError, ClusterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output folder: a file, read-only, full
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 1
    write_per_block(out / "per_block.csv", result.per_block)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=1))
    m = {k.removeprefix(f"{result.prefix}_"): v for k, v in result.metrics.items()}
    print(
        f"{int(m['blocks'])} blocks: PSNR {m['psnr']:.3f} dB, SSIM {m['ssim']:.4f}, "
        f"SSIM-uniform7 {m['ssim_uniform7']:.4f} ({result.seconds:.1f} s, {workers} worker(s))"
    )
    if submission:
        print(f"benchmark submission: {submission}")
    if not args.no_tracking:
        _log(args, source, den, result, out, submission)
    return 0


def _log(args, source, den, result, out: Path, submission) -> None:
    from orchestrator.config import TrackingConfig
    from orchestrator.tracking import Tracker

    tracker = Tracker(TrackingConfig(uri=args.tracking_uri, experiment="evaluations"))
    tags = {"denoise.kind": "evaluation", "denoise.source": source}
    if source.startswith("runs:/"):
        tags["denoise.evaluated_run"] = source[len("runs:/") :].split("/")[0]
    with tracker.run(f"eval {args.ablation or Path(source).name}", tags=tags) as run_id:
        params = {"source": source, "model": den.description, "data": args.data or "synthetic"}
        tracker.log_params(run_id, params | {"blocks": len(result.per_block), "seed": args.seed})
        tracker.log_metrics(run_id, result.metrics)
        tracker.log_artifacts(run_id, out / "per_block.csv")
        tracker.log_artifacts(run_id, out / "metrics.json")
        if submission:
            tracker.log_artifacts(run_id, submission)
    print(f"MLflow: run {run_id} in experiment 'evaluations' at {tracker.uri}")


if __name__ == "__main__":
    sys.exit(main())
