"""What every job's command line shares: ``--config FILE``, ``--set key=value``, ``--print-config``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from orchestrator.config import ConfigError, build, to_yaml

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


def resolve_config(cls: type[T], args: argparse.Namespace, flags: Iterable[str] = ()) -> tuple[T | None, int]:
    """Build ``cls`` from defaults, ``--config``, ``flags`` (shorthand options) then ``--set``.

    Returns (config, 0) to go on, or (None, exit code) when the job should stop here: 2 after a
    config error (printed), 0 after ``--print-config``.
    """
    try:
        cfg = build(cls, args.config, [*flags, *args.overrides])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    if args.print_config:
        print(to_yaml(cfg), end="")
        return None, 0
    return cfg, 0
