"""Evaluate a checkpoint, an MLflow run or an ablation on the validation blocks, and write the SIDD
benchmark submission.

``python jobs/evaluate.py (--checkpoint SOURCE | --ablation NAME) [--data DIR] [--out OUT]
[--blocks N] [--benchmark] [--tracking-uri URI] [--config FILE] [--set key=value ...]``

SOURCE is what ``jobs/denoise.py`` takes: a stage's ``model.pt``, ``runs:/<run id>``,
``models:/<name>/<version>``, or original weights with ``--original CLASS``. ``--ablation NAME``
takes the newest finished run of that ablation (in the study ``--experiment`` names, or in any).
Every validation block (1280 in SIDD) is denoised by a Ray Data actor pool, one actor per GPU of
the cluster (``--gpus-per-worker``) or per CPU locally, and scored with PSNR, SSIM and
SSIM-uniform7, through the same evaluation path as training: the numbers equal a trained stage's
own final evaluation, however many workers. They are printed,
written to ``OUT/metrics.json`` and ``OUT/per_block.csv``, and logged to MLflow (experiment
``evaluations``). ``--benchmark`` also denoises ``SIDD_Benchmark/BenchmarkNoisyBlocksSrgb.mat`` and
writes ``OUT/SubmitSrgb.mat`` for the SIDD server. Exit status (``docs/BAD_INPUTS.md``): 0 done,
2 bad arguments or data, 3 the checkpoint cannot be used, 1 the run failed.
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

from orchestrator.cli import add_config_arguments, add_data_arguments, flag_overrides, resolve_config
from orchestrator.errors import JOB_ERRORS, fail
from orchestrator.schema import EvaluateConfig

_FLAGS = {
    "data": "data.root",
    "eval_data": "data.eval",
    "out": "out",
    "blocks": "blocks",
    "benchmark": "benchmark",
    "method_name": "method_name",
    "batch": "batch",
    "workers": "workers",
    "gpus_per_worker": "gpus_per_worker",
    "seed": "seed",
    "experiment": "experiment",
    "tracking_uri": "tracking.uri",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", metavar="SOURCE", help="model.pt, runs:/..., models:/...")
    which.add_argument("--ablation", metavar="NAME", help="an ablation's newest finished run")
    ap.add_argument("--experiment", help="the study of --ablation (default: any)")
    ap.add_argument("--original", default="", metavar="CLASS", help="the original class of a raw state dict")
    ap.add_argument("--original-kwargs", default="{}", metavar="JSON", help="its constructor arguments")
    add_data_arguments(ap, train=False)
    ap.add_argument("--out", help="output folder (default: evaluation)")
    ap.add_argument("--blocks", type=int, help="only the first N blocks (default 0: all)")
    ap.add_argument("--benchmark", action="store_true", default=None, help="also write OUT/SubmitSrgb.mat")
    ap.add_argument("--method-name", help="OptionalData.MethodName of the submission")
    ap.add_argument("--batch", type=int, help="blocks per batch (default 8)")
    ap.add_argument("--workers", type=int, help="actors (default: one per GPU, else per CPU)")
    ap.add_argument("--gpus-per-worker", type=float, help="default: 1 with GPUs, else 0")
    ap.add_argument("--seed", type=int, help="seed of random inference steps (R3)")
    ap.add_argument("--tracking-uri", help="MLflow URI (default sqlite:///<cwd>/mlflow.db)")
    ap.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    add_config_arguments(ap, example="workers=4")
    return ap.parse_args(argv)


def _source(args: argparse.Namespace, cfg: EvaluateConfig) -> str:
    from orchestrator.tools.load import CheckpointError
    from orchestrator.tracking import Tracker

    if args.checkpoint:
        return args.checkpoint
    name, experiment = args.ablation, cfg.experiment
    tracker = Tracker(cfg.tracking)
    exp = tracker.experiment_id(experiment) if experiment else None
    if experiment and exp is None:
        raise CheckpointError(
            f"--ablation {name!r}: no experiment {experiment!r} in {tracker.uri} (train it with "
            "jobs/ablations.py first, or name the experiment that holds it with --experiment)"
        )
    run_id = tracker.find_run(exp, {"denoise.ablation": name, "denoise.status": "finished"})
    if run_id is None:
        where = f"experiment {experiment!r}" if experiment else f"any experiment of {tracker.uri}"
        raise CheckpointError(
            f"--ablation {name!r}: no finished run of it in {where} (train it with jobs/ablations.py first)"
        )
    return f"runs:/{run_id}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    flags = flag_overrides(args, _FLAGS) + (["tracking.enabled=false"] if args.no_tracking else [])
    cfg, code = resolve_config(EvaluateConfig, args, flags)
    if cfg is None:
        return code
    from orchestrator.tools.load import load_named

    try:
        source = _source(args, cfg)
        den = load_named(
            source,
            tracking_uri=cfg.tracking.uri,
            original=args.original,
            original_kwargs=args.original_kwargs,
        )
        print(f"denoiser: {den.description}", flush=True)
        results, submission, workers = _evaluate(cfg, den, source)
    except JOB_ERRORS as exc:
        return fail(exc)
    for name, result in results.items():
        m = {k.removeprefix(f"{result.prefix}_"): v for k, v in result.metrics.items()}
        print(
            f"{name}: {int(m['blocks'])} blocks: PSNR {m['psnr']:.3f} dB, SSIM {m['ssim']:.4f}, "
            f"SSIM-uniform7 {m['ssim_uniform7']:.4f} ({result.seconds:.1f} s, {workers} worker(s))"
        )
    if submission:
        print(f"benchmark submission: {submission}")
    if cfg.tracking.enabled:
        _log(cfg, args, source, den, results, submission)
    return 0


def _evaluate(cfg: EvaluateConfig, den, source: str):
    """Score every evaluation source (and write the submission); returns (results, submission,
    workers), ``results`` one :class:`EvalResult` per source."""
    from orchestrator.cluster import connect
    from orchestrator.config import ConfigError
    from orchestrator.data.sources import index_data
    from orchestrator.tools.evaluate import evaluate_blocks
    from orchestrator.train.evaluation import write_per_block

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    evals = index_data(cfg.data, train=False).evals
    if not evals:
        raise ConfigError("data.eval", "no evaluation source: give one with --eval-data SOURCE:PATH")
    results, submission = {}, None
    with connect(cfg.ray) as resources:
        gpus = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else float(resources.get("GPU", 0) > 0)
        slots = resources.get("GPU", 0) / gpus if gpus > 0 else resources.get("CPU", 1)
        workers = cfg.workers or max(1, int(slots))
        opts = {"batch": cfg.batch, "workers": workers, "gpus_per_worker": gpus, "seed": cfg.seed}
        for e in evals:
            results[e.name] = evaluate_blocks(
                den.model, e.noisy, e.clean, blocks=cfg.blocks, prefix=e.prefix, **opts
            )
            name = "per_block.csv" if e.prefix == "val" else f"per_block_{e.name}.csv"
            write_per_block(out / name, results[e.name].per_block)
        if cfg.benchmark:
            submission = _benchmark(cfg, den, source, out, opts)
    metrics = {k: v for r in results.values() for k, v in r.metrics.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return results, submission, workers


def _benchmark(cfg: EvaluateConfig, den, source: str, out: Path, opts: dict) -> Path:
    """SIDD's benchmark blocks (at ``--data``) denoised into ``SubmitSrgb.mat``."""
    from orchestrator.data.blocks import write_submission
    from orchestrator.data.dataset import resolve as resolve_sidd
    from orchestrator.data.files import DatasetError, load_blocks
    from orchestrator.data.sidd import BENCHMARK_NOISY
    from orchestrator.tools.evaluate import run_blocks

    index = resolve_sidd(cfg.data)
    if index.benchmark is None:
        raise DatasetError([(Path(index.root) / BENCHMARK_NOISY, "benchmark blocks not present")])
    bench = load_blocks(index.benchmark.noisy_path, BENCHMARK_NOISY.stem)
    flat = bench.reshape(-1, *bench.shape[2:])
    t0 = time.perf_counter()
    rows = sorted(run_blocks(den.model, flat, None, **opts), key=lambda r: int(r["index"][0]))
    per_mp = (time.perf_counter() - t0) / (flat.shape[0] * flat.shape[1] * flat.shape[2] / 1e6)
    denoised = np.concatenate([r["denoised"] for r in rows]).reshape(bench.shape)
    optional = {"MethodName": cfg.method_name or den.description, "Source": source}
    return write_submission(out / "SubmitSrgb.mat", denoised, per_mp, optional)


def _log(cfg: EvaluateConfig, args, source, den, results, submission) -> None:
    from orchestrator.tracking import Tracker

    out = Path(cfg.out)
    tracker = Tracker(cfg.tracking)
    tags = {"denoise.kind": "evaluation", "denoise.source": source}
    if source.startswith("runs:/"):
        tags["denoise.evaluated_run"] = source[len("runs:/") :].split("/")[0]
    with tracker.run(f"eval {args.ablation or Path(source).name}", tags=tags) as run_id:
        params = {"source": source, "model": den.description, "data": cfg.data.root or "synthetic"}
        params |= {"eval_data": ",".join(cfg.data.eval) or "sidd", "seed": cfg.seed}
        tracker.log_params(run_id, params | {f"blocks.{n}": len(r.per_block) for n, r in results.items()})
        tracker.log_metrics(run_id, {k: v for r in results.values() for k, v in r.metrics.items()})
        for f in sorted(out.glob("per_block*.csv")):
            tracker.log_artifacts(run_id, f)
        tracker.log_artifacts(run_id, out / "metrics.json")
        if submission:
            tracker.log_artifacts(run_id, submission)
    print(f"MLflow: run {run_id} in experiment 'evaluations' at {tracker.uri}")


if __name__ == "__main__":
    sys.exit(main())
