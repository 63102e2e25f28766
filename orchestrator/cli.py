"""What the jobs' command lines share: ``--config FILE``, ``--set key=value``, ``--print-config``,
and the data, output and tracking options of the jobs that run on a dataset."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from orchestrator.config import ConfigError, build, to_yaml
from orchestrator.errors import fail

T = TypeVar("T")


def add_config_arguments(ap: argparse.ArgumentParser, *, example: str = "data.synthetic.scenes=4") -> None:
    ap.add_argument("--config", type=Path, help="YAML file over the defaults")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"dotted override, e.g. --set {example} (repeatable)",
    )
    ap.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``key=value`` overrides from shorthand options (``{attribute: config key}``) that were given.

    Values are JSON-quoted so that they go through the same typed path as ``--set`` and a path
    such as "2024" or "yes" stays a string.
    """
    return [
        f"{key}={json.dumps(getattr(args, name))}"
        for name, key in flags.items()
        if getattr(args, name, None) is not None
    ]


def resolve_config(cls: type[T], args: argparse.Namespace, flags: Iterable[str] = ()) -> tuple[T | None, int]:
    """Build ``cls`` from defaults, ``--config``, ``flags`` (shorthand options) then ``--set``.

    Returns (config, 0) to go on, or (None, exit code) when the job should stop here: 2 after a
    config error (printed), 0 after ``--print-config``.
    """
    try:
        cfg = build(cls, args.config, [*flags, *args.overrides])
    except ConfigError as exc:
        return None, fail(exc)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return None, 0
    return cfg, 0


# Shorthand options and the config keys they set, for jobs that read a dataset and log to MLflow.
DATA_FLAGS = {"data": "data.root", "train_data": "data.train", "eval_data": "data.eval"}
RUN_FLAGS = DATA_FLAGS | {"out": "out", "tracking_uri": "tracking.uri"}
# ... and for the jobs that run a study as Tune trials.
STUDY_FLAGS = RUN_FLAGS | {"storage": "trial.storage", "seeds": "seeds", "distill": "distill"}


def add_data_arguments(ap: argparse.ArgumentParser, *, train: bool = True) -> None:
    """``--data`` (the SIDD shorthand), ``--train-data`` and ``--eval-data`` (repeatable): the same
    in every job that reads data (``docs/DATA.md``)."""
    from orchestrator.data.sources import source_names

    names = "|".join(source_names())
    ap.add_argument("--data", metavar="DIR", help="SIDD root (default: synthetic SIDD-like data)")
    if train:
        ap.add_argument(
            "--train-data",
            metavar="SOURCE:PATH",
            help=f"training source, SOURCE one of {names} (default: sidd)",
        )
    ap.add_argument(
        "--eval-data",
        metavar="[NAME=]SOURCE:PATH",
        action="append",
        help="evaluation source (repeatable; default: SIDD's validation blocks when training on SIDD)",
    )


def add_run_arguments(ap: argparse.ArgumentParser, *, out: str) -> None:
    """The data options, ``--out``, ``--tracking-uri``, ``--no-tracking``."""
    add_data_arguments(ap)
    ap.add_argument("--out", metavar="OUT", help=f"output folder (default: {out})")
    ap.add_argument("--tracking-uri", metavar="URI", help="MLflow URI (default sqlite:///<cwd>/mlflow.db)")
    ap.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def add_study_arguments(ap: argparse.ArgumentParser, *, out: str) -> None:
    """``--profile`` and ``--storage`` besides :func:`add_run_arguments`' options."""
    ap.add_argument(
        "--profile", default="smoke", help="a profile of configs/ (default smoke), or a YAML file"
    )
    add_run_arguments(ap, out=out)
    ap.add_argument("--storage", metavar="DIR_OR_URI", help="Tune's storage path (default OUT/ray_results)")
    ap.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="train each ablation with N seeds: the table's mean, std and interval cover them (study.seeds)",
    )
    ap.add_argument(
        "--distill",
        nargs="?",
        const="ssid_unet",
        metavar="MODEL",
        help="add a row X+D per ablation X: MODEL (default ssid_unet) trained on X's output (study.distill)",
    )


def run_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """:func:`flag_overrides` plus ``tracking.enabled=false`` for ``--no-tracking``."""
    return flag_overrides(args, flags) + (["tracking.enabled=false"] if args.no_tracking else [])
