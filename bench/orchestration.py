"""What Tune and MLflow cost per trial, and how close the catalogue's makespan is to its critical path.

    python bench/orchestration.py [--ablations A,B] [--gpus 8] [--out DIR] [--set key=value ...]

Runs a study (the whole smoke catalogue by default) on an embedded local Ray in which every trial
asks for one simulated GPU (a custom resource, ``--gpus`` of them) and a quarter of a CPU, so as
many stages run at once as the stage graph allows. From the same run it reports:

* per trial: its wall time as Tune saw it (trial start to end) against the time spent inside the
  stage's training loop and final evaluation (``train_s``): the difference is what Tune and
  MLflow add (actor start, loading upstream stages, reporting, checkpoint and artifact logging);
* the makespan (first trial start to last trial end) against the critical path: the longest
  chain of dependent stages, each counted with its own measured wall time.

Both are ratios from one run, so the machine's speed cancels out. Figures: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# The project root first, and not this folder: its models.py would shadow the models package in
# the Ray workers, which inherit the driver's import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]


def critical_path(deps: dict[str, set[str]], wall: dict[str, float]) -> tuple[float, list[str]]:
    """The longest chain through ``deps`` (stage -> the stages it waits for) by ``wall`` time."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def best(k: str) -> tuple[float, list[str]]:
        if k not in memo:
            ups = [best(u) for u in deps[k]]
            length, chain = max(ups, default=(0.0, []))
            memo[k] = (length + wall[k], [*chain, k])
        return memo[k]

    return max((best(k) for k in deps), default=(0.0, []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablations", help="comma-separated (default: the whole catalogue)")
    ap.add_argument("--profile", default="smoke", help="profile of the study (default smoke)")
    ap.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default 8)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    import ray
    import torch

    from orchestrator.study.catalogue import load_profile
    from orchestrator.study.run import run_study

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    sets = [
        f"out={json.dumps(str(out / 'runs'))}",
        f"tracking.uri={json.dumps(f'sqlite:///{out}/mlflow.db')}",
        "trial.cpu=0.25",
        "trial.custom={sim_gpu: 1}",
        *([f"ablations={json.dumps(args.ablations.split(','))}"] if args.ablations else []),
        *args.overrides,
    ]
    study = load_profile(args.profile, sets)
    ray.init(  # always a local Ray of its own: never a cluster some other process started here
        address="local",
        num_cpus=args.cpus,
        resources={"sim_gpu": args.gpus},
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        outcome = run_study(study, progress=False)
    finally:
        ray.shutdown()
    record = json.loads((outcome.out / "last_experiment.json").read_text())
    times = {k: (v[0], v[1]) for k, v in record["times"].items()}
    metas = {}
    for model in (outcome.out / "stages").glob("*/model.pt"):
        meta = torch.load(model, map_location="cpu", weights_only=True)["meta"]
        if meta["key"] in times:
            metas[meta["key"]] = meta
    wall = {k: end - start for k, (start, end) in times.items()}
    deps = {k: {u for u in metas[k].get("upstream", {}).values() if u in wall} for k in wall}
    length, chain = critical_path(deps, wall)
    makespan = max(e for _, e in times.values()) - min(s for s, _ in times.values())
    print(f"study: {len(wall)} trials on {args.cpus} CPUs and {args.gpus} simulated GPUs; out: {out}")
    print(f"{'stage':14s} {'trial wall s':>12s} {'train_s':>9s} {'overhead s':>10s} {'overhead':>9s}")
    total_wall = total_train = 0.0
    for k in sorted(wall, key=lambda k: -wall[k]):
        m = metas[k]
        label = f"{m['ablation']}.{m['name']}"
        over = wall[k] - m["train_s"]
        total_wall += wall[k]
        total_train += m["train_s"]
        print(f"{label:14s} {wall[k]:12.1f} {m['train_s']:9.1f} {over:10.1f} {over / wall[k]:9.1%}")
    print(
        f"all trials: wall {total_wall:.1f} s, in training {total_train:.1f} s, "
        f"Tune+MLflow overhead {(total_wall - total_train) / total_wall:.1%} of trial wall time"
    )
    labels = [f"{metas[k]['ablation']}.{metas[k]['name']}" for k in chain]
    print(f"critical path: {' -> '.join(labels)} = {length:.1f} s")
    ratio = makespan / length
    print(f"makespan (first trial start to last end): {makespan:.1f} s = {ratio:.3f} x critical path")
    print(f"Tuner.fit wall time: {record['wall_s']:.1f} s")
    return 0 if not outcome.failed else 1


if __name__ == "__main__":
    sys.exit(main())
