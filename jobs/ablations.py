"""Train and evaluate the ablation catalogue: the originals, L-1..L-5, S-1, S-2 and AP-BSN.

``python jobs/ablations.py [--profile smoke|paper|FILE.yaml] [--ablations ssid,S-2] [--data DIR]
[--out OUT] [--set key=value ...]``

Stages run one after another in this process; each finished stage is kept in ``OUT/stages`` under
its content key and reused by every later run or ablation that needs the same computation (SSID
and S-2 share their BNN). An interrupted run resumes from each stage's last checkpoint. The results
table (``OUT/results.md``, ``OUT/results.csv``) puts the measured numbers beside the published ones.
``--list`` prints the catalogue; ``--print-config`` the resolved study config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.ablations import catalogue, load_profile, resolve, selected
from orchestrator.cli import add_config_arguments, flag_overrides
from orchestrator.config import ConfigError, to_yaml
from orchestrator.data.sidd import DatasetError
from orchestrator.stages import UpstreamError


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", help="smoke (CPU-sized, default), paper, or a YAML file")
    ap.add_argument("--ablations", metavar="A,B", help="comma-separated catalogue names (default: all)")
    ap.add_argument("--data", metavar="DIR", help="SIDD root (default: synthetic data)")
    ap.add_argument("--out", metavar="OUT", help="output folder (default: runs)")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    add_config_arguments(ap, example="train.ssid.steps=1000")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.ablations:
        args.ablations = args.ablations.split(",")
    flags = flag_overrides(args, {"ablations": "ablations", "data": "data.root", "out": "out"})
    try:
        study = load_profile(args.profile, [*flags, *args.overrides])
        names = selected(study)
        for name in names:
            resolve(study, name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for name, entry in catalogue(study).items():
            pub = f"{entry.published.psnr:.3f} dB / {entry.published.ssim:.4f}" if entry.published else "-"
            print(f"{name:8s} {entry.family:6s} {pub:22s} {entry.description}")
        return 0
    if args.print_config:
        print(to_yaml(study), end="")
        return 0
    from orchestrator.study import run_study

    try:
        run_study(study)
    except (ConfigError, DatasetError, UpstreamError, ValueError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"interrupted: finished stages and checkpoints are kept in {study.out}; run again to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
