"""What every job's command line shares: ``--config FILE``, ``--set key=value``, ``--print-config``."""

from __future__ import annotations

import argparse
import json
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


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``key=value`` overrides from shorthand options (``{attribute: config key}``) that were given.

    Values are JSON-quoted so that they go through the same typed path as ``--set`` and a path
    such as "2024" or "yes" stays a string.
    """
    return [
        f"{key}={json.dumps(getattr(args, name))}"
        for name, key in flags.items()
        if getattr(args, name) is not None
    ]


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
