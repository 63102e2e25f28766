"""What kind of failure an error is, and the exit status every job gives for it.

Each error class of the project derives from one of three kinds, and :func:`exit_status` maps a
kind to the one exit status all jobs share (``docs/BAD_INPUTS.md`` lists them with what each job
prints):

- 2, :class:`InputError`: the command line, a config, a dataset or an input image is refused;
  nothing was computed from it.
- 3, :class:`CheckpointUnusable`: a checkpoint, or a finished stage's ``model.pt`` a plan relies
  on, is missing, unreadable or from another configuration.
- 1, :class:`RunFailure` (and any ``OSError`` or other ``ValueError``): the run itself failed: the
  cluster, storage, tracking or a stage. What finished is kept.
- 130: interrupted (``KeyboardInterrupt``); what finished is kept.
"""

from __future__ import annotations

import sys

__all__ = [
    "InputError",
    "CheckpointUnusable",
    "RunFailure",
    "JOB_ERRORS",
    "exit_status",
    "error_text",
    "fail",
]


class InputError(ValueError):
    """Input refused before anything was computed from it (exit status 2)."""


class CheckpointUnusable(ValueError):
    """A checkpoint or finished stage cannot be used (exit status 3)."""


class RunFailure(RuntimeError):
    """The run failed: cluster, storage, tracking, a stage (exit status 1)."""


# The errors a job turns into one line and an exit status; anything else is a bug (a traceback).
JOB_ERRORS = (InputError, CheckpointUnusable, RunFailure, OSError, ValueError)

_STATUS = ((InputError, 2), (CheckpointUnusable, 3), (KeyboardInterrupt, 130))


def exit_status(exc: BaseException) -> int:
    """The exit status of a job that stopped on ``exc``."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 1)


def error_text(exc: BaseException) -> str:
    """A job's error in one line; an ``OSError`` (an output folder that is a file, read-only or
    full) names its file: ``PATH: reason``."""
    if not isinstance(exc, OSError) or exc.filename is None:
        return str(exc)
    where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{where}: {exc.strerror}"


def fail(exc: BaseException) -> int:
    """Print ``error: <one line>`` on stderr; return the exit status."""
    print(f"error: {error_text(exc)}", file=sys.stderr)
    return exit_status(exc)
