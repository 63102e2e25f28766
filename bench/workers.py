"""Training steps per second of one stage on 1 worker and on N data-parallel workers.

    python bench/workers.py [--profile smoke] [--ablation apbsn] [--steps 200] [--batch 8]
                            [--workers 2] [--gpu]

Trains the ablation's one stage (``apbsn`` or ``lgbpn``: a single stage) the same number of steps
at the same global batch three ways, each a fresh study, one after the other on one local Ray:

* ``1 worker, 1 thread``: the stage in its Tune trial with ``trial.cpu=1``;
* ``1 worker, N threads``: the same with ``trial.cpu=N``: the cores N workers hold, used by one
  process's intra-op threads;
* ``N workers``: ``trial.workers=N`` with ``trial.cpu=1`` each (DistributedDataParallel, gloo).

With ``--gpu`` (a machine with several GPUs) it compares 1 worker on one GPU with N workers on N
GPUs (``--workers`` defaults to every GPU there, nccl). Steps per second are the training loop's
(``train_s`` in ``model.pt``: rank 0's loop, with its all-reduces); the trial's wall time adds
process start-up, and for N workers Ray Train's worker group. The ratios are side by side from
one run. Figures: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# The project root first, and not this folder: its models.py would shadow the models package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]


def _train(profile: str, sets: list[str], out: Path) -> dict:
    """One study of one stage on the running Ray; its steps, ``train_s`` and trial wall time."""
    import torch

    from orchestrator.study.catalogue import load_profile
    from orchestrator.study.run import run_study

    study = load_profile(profile, [f"out={json.dumps(str(out))}", *sets])
    outcome = run_study(study, progress=False)
    if outcome.failed:
        raise SystemExit(f"bench: the study in {out} failed; see its results.md")
    (model,) = (out / "stages").glob("*/model.pt")
    meta = torch.load(model, map_location="cpu", weights_only=True)["meta"]
    times = json.loads((out / "last_experiment.json").read_text())["times"]
    (start, end) = times[meta["key"]]
    return {"steps": meta["step"], "train_s": meta["train_s"], "wall_s": end - start}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", help="profile of the study (default smoke)")
    ap.add_argument("--ablation", default="apbsn", choices=["apbsn", "lgbpn"], help="default apbsn")
    ap.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    ap.add_argument("--batch", type=int, default=8, help="global batch (default 8)")
    ap.add_argument("--patch", type=int, default=0, help="crop side (default: the profile's)")
    ap.add_argument("--workers", type=int, default=0, help="N (default 2 on CPU, every GPU with --gpu)")
    ap.add_argument("--gpu", action="store_true", help="1 GPU against N GPUs")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    import torch

    gpus = torch.cuda.device_count() if args.gpu else 0
    if args.gpu and gpus < 2:
        print(f"bench: --gpu needs a machine with 2 or more GPUs; this one has {gpus}: nothing run")
        return 0
    n = args.workers or (gpus if args.gpu else 2)
    if args.batch % n:
        print(f"bench: --batch {args.batch} must be a multiple of --workers {n}", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-workers-"))
    fam = args.ablation
    sets = [
        f"ablations=[{fam}]",
        f"data.cache_dir={json.dumps(str(out / 'data'))}",
        "tracking.enabled=false",
        "eval.samples=0",
        "eval.references=[]",
        "eval.cost_blocks=0",
        f"train.{fam}.steps={args.steps}",
        f"train.{fam}.batch={args.batch}",
        f"train.{fam}.checkpoint_every={max(1, args.steps // 2)}",
        *([f"train.{fam}.patch={args.patch}"] if args.patch else []),
        *args.overrides,
    ]
    if args.gpu:
        ways = {
            "1 worker, 1 GPU": ["trial.gpu=1"],
            f"{n} workers, 1 GPU each": ["trial.gpu=1", f"trial.workers={n}"],
        }
        cpus = max(2, 2 * n)
    else:
        ways = {
            "1 worker, 1 thread": ["trial.cpu=1", "trial.gpu=0"],
            f"1 worker, {n} threads": [f"trial.cpu={n}", "trial.gpu=0"],
            f"{n} workers, 1 thread each": ["trial.cpu=1", "trial.gpu=0", f"trial.workers={n}"],
        }
        cpus = n
    import ray

    found = {}  # each way a study of its own, one after the other, on one local Ray of this run
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        for i, (name, extra) in enumerate(ways.items()):
            print(f"[bench] {name} ...", flush=True)
            found[name] = _train(args.profile, [*sets, *extra], out / f"run{i}")
    finally:
        ray.shutdown()
    base = next(iter(found.values()))
    base_sps = base["steps"] / base["train_s"]
    cmd = " ".join(["python bench/workers.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"\n{fam} under {args.profile}: {args.steps} steps, global batch {args.batch}; `{cmd}`\n")
    print("| run | steps/s | x first row | trial wall s |")
    print("|---|---|---|---|")
    for name, r in found.items():
        sps = r["steps"] / r["train_s"]
        print(f"| {name} | {sps:.2f} | {sps / base_sps:.2f} | {r['wall_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
