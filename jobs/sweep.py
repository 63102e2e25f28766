"""Sweep config values of one or more ablations as Ray Tune trials, tracked in MLflow.

``python jobs/sweep.py --space configs/sweeps/lgbpn_lr.yaml [--profile smoke|paper]
[--ablations A,B] [--data DIR] [--out OUT] [--tracking-uri URI] [--set key=value ...]``

The sweep file gives the search space over dotted config keys (grid, choice, uniform,
loguniform, randint, quniform), the number of random samples, and optionally ASHA early stopping;
see ``orchestrator/study/sweep.py``. The best configuration is chosen on the evaluation
source's selection subset (``eval.select``, 4 unless the sweep file or ``--set`` says otherwise)
and reported on the rest, with its interval, in the table's last line. Every variant is reported
as ``<ablation>[<values>]`` in the table and as a parent run in MLflow (experiment
``sweep-<file name>``). Stages that a variant's values
do not change are trained once for all of them, and a rerun trains only what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.cli import STUDY_FLAGS, add_config_arguments, add_study_arguments, run_overrides
from orchestrator.errors import JOB_ERRORS, fail
from orchestrator.study.catalogue import load_profile, resolve_all


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", required=True, type=Path, help="the sweep file (YAML)")
    ap.add_argument("--ablations", metavar="A,B", help="override the sweep file's ablations")
    add_study_arguments(ap, out="runs/sweep-<file name>")
    add_config_arguments(ap, example="train.lgbpn.steps=100")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    from orchestrator.study.sweep import load_sweep, search_options, variants

    args = parse(argv)
    name = f"sweep-{args.space.stem}"
    args.out = args.out or f"runs/{name}"
    try:
        sweep = load_sweep(args.space)
        if args.ablations:
            sweep = replace(sweep, ablations=tuple(args.ablations.split(",")))
        flags = [f"name={json.dumps(name)}", f"eval.select={sweep.select}", *run_overrides(args, STUDY_FLAGS)]
        base = load_profile(args.profile, [*flags, *args.overrides])
        studies = [replace(v, resolved=resolve_all(v.study)) for v in variants(base, sweep)]
    except JOB_ERRORS as exc:
        return fail(exc)
    print(f"[sweep] {len(studies)} variant(s) of {list(sweep.ablations) or 'every ablation'}", flush=True)
    if args.print_config:
        for v in studies:
            print(f"{v.label}: {v.values}")
        return 0
    from orchestrator.study.run import run_job, run_variants

    run = lambda: run_variants(studies, search=search_options(sweep))  # noqa: E731
    return run_job(run, out=base.out, stopped_ok=sweep.asha is not None)


if __name__ == "__main__":
    sys.exit(main())
