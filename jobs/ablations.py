"""Train and evaluate the ablation catalogue as Ray Tune trials, tracked in MLflow.

``python jobs/ablations.py`` alone runs every catalogue entry under the CPU-sized ``smoke`` profile
on an embedded local Ray, on synthetic SIDD-layout data, with MLflow at ``sqlite:///<cwd>/mlflow.db``.
On a cluster: ``ray job submit --working-dir . -- python jobs/ablations.py --profile paper
--data /data/SIDD --out /shared/runs`` (the job attaches to the cluster).

Each stage is a trial that starts when its upstream stages are done. A stage whose content key
already has a finished run (in ``OUT/stages`` or MLflow) is reused, not trained: SSID and S-2 share
their BNN, and a second run of the same job trains nothing. An interrupted job resumes each
unfinished stage from its last checkpoint when started again (``--resume`` reuses the saved
config). The results table is printed and written to ``OUT/results.md`` and ``OUT/results.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.cli import STUDY_FLAGS, add_config_arguments, add_study_arguments, run_overrides
from orchestrator.config import ConfigError, apply_overrides, from_yaml_text, to_yaml
from orchestrator.errors import JOB_ERRORS, fail
from orchestrator.schema import StudyConfig
from orchestrator.study.catalogue import catalogue, load_profile, profiles, resolve_all


def parse(argv: list[str] | None) -> argparse.Namespace:
    listed = "\n".join(f"  {name:7s} {what}" for name, what in profiles().items())
    ap = argparse.ArgumentParser(
        description=__doc__,
        epilog=f"profiles (--profile NAME; times measured on 2 CPU cores):\n{listed}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--ablations", metavar="A,B", help="comma-separated catalogue names (default: all)")
    add_study_arguments(ap, out="runs")
    ap.add_argument("--resume", action="store_true", help="continue the study saved in OUT/study.yaml")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    add_config_arguments(ap, example="train.ssid.steps=1000")
    return ap.parse_args(argv)


_FLAGS = STUDY_FLAGS | {"ablations": "ablations"}


def load_study(args: argparse.Namespace) -> StudyConfig:
    """The study of the command line, or with ``--resume`` the one saved by the previous run."""
    if args.ablations:
        args.ablations = args.ablations.split(",")
    flags = run_overrides(args, _FLAGS)
    if args.resume:
        saved = Path(args.out or "runs") / "study.yaml"
        if not saved.is_file():
            raise ConfigError("--resume", f"{saved} does not exist: no study to resume in that folder")
        return apply_overrides(from_yaml_text(StudyConfig, saved.read_text()), [*flags, *args.overrides])
    return load_profile(args.profile, [*flags, *args.overrides])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        study = load_study(args)
        resolved = resolve_all(study)  # every selected ablation, once: errors before anything runs
    except JOB_ERRORS as exc:
        return fail(exc)
    if args.list:
        for name, entry in catalogue(study).items():
            pub = f"{entry.published.psnr:.3f} dB / {entry.published.ssim:.4f}" if entry.published else "-"
            print(f"{name:8s} {entry.family:6s} {pub:22s} {entry.description}")
        return 0
    if args.print_config:
        print(to_yaml(study), end="")
        return 0
    from orchestrator.study.run import run_job, run_study

    return run_job(lambda: run_study(study, resolved=resolved), out=study.out)


if __name__ == "__main__":
    sys.exit(main())
