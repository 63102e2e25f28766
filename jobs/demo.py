"""The first command (``make demo``): the main job end to end on this machine, in minutes.

``python jobs/demo.py [--out demo] [--profile demo] [any option of jobs/ablations.py]``

On an embedded local Ray, with MLflow in ``sqlite:///<cwd>/mlflow.db`` and synthetic data in
SIDD's layout (generated once, cached under ``data/``), it runs two steps:

1. the paper's 21x21 noise-correlation map of the training pairs, with its figures
   (``jobs/correlation.py``'s job, written to ``OUT/correlation``);
2. the main job, ``jobs/ablations.py --profile demo``: SSID against S-2 (the paper's sharpest
   finding), LG-BPN and AP-BSN, each stage a Ray Tune trial, scored with bootstrap intervals
   beside the reference rows (the noisy input, NLM, BM3D).

It ends with the table, where the figures are and the ``mlflow ui`` command. A second run reuses
every finished stage and map and trains nothing. ``--profile smoke`` runs the whole catalogue at
test size instead; ``--profile desk`` the whole catalogue in about an hour (``--help`` of
``jobs/ablations.py`` lists the profiles).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs import ablations
from orchestrator.errors import JOB_ERRORS, exit_status, fail
from orchestrator.schema import CorrelationConfig, StudyConfig


def correlation_config(study: StudyConfig) -> CorrelationConfig:
    """The correlation job on the study's training data, beside its results, in its MLflow
    store and experiment (the study's name when its tracking names none)."""
    tracking = dataclasses.replace(study.tracking, experiment=study.experiment)
    return CorrelationConfig(
        data=study.data, out=str(Path(study.out) / "correlation"), ray=study.ray, tracking=tracking
    )


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = ablations.parse(["--profile", "demo", "--out", "demo", *given])
    if args.list:
        return ablations.main(["--profile", args.profile, *given])
    t0 = time.perf_counter()
    try:
        study = ablations.load_study(args)
        resolved = ablations.resolve_all(study)  # every error before anything runs
        corr = correlation_config(study)
    except JOB_ERRORS as exc:
        return fail(exc)
    if args.print_config:
        print(ablations.to_yaml(study), end="")
        return 0
    from orchestrator.cluster import connect
    from orchestrator.correlation.job import run_correlation
    from orchestrator.study.run import run_job, run_study

    with connect(study.ray, quiet=True):  # one local Ray for both steps
        print("== step 1/2: the noise-correlation map of the training pairs ==", flush=True)
        try:
            run_correlation(corr)
        except JOB_ERRORS as exc:
            return fail(exc)
        except KeyboardInterrupt as exc:
            print(f"interrupted: finished maps are kept in {corr.out}; run make demo again", file=sys.stderr)
            return exit_status(exc)
        print(f"\n== step 2/2: the ablations {', '.join(resolved)} (profile {args.profile}) ==", flush=True)
        code = run_job(lambda: run_study(study, resolved=resolved), out=study.out)
    figures = Path(corr.out) / "figures"
    print(f"noise-correlation map: {Path(corr.out) / 'pooled_map.npy'}; its figures: {figures}/")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s (exit status {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
