"""Checkpoints are only ever loaded with ``weights_only=True``; no user data goes through
``pickle``, ``eval`` or ``exec``; secret-looking params are masked."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.tracking import safe_params

ROOT = Path(__file__).resolve().parents[2]
CODE = [p for d in ("models", "orchestrator", "jobs", "bench") for p in (ROOT / d).rglob("*.py")]


def _calls(text: str, name: str) -> list[str]:
    """The source of every call ``name(...)`` in ``text`` (parentheses balanced)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.start() : i])
    return out


def test_every_torch_load_is_weights_only():
    found = 0
    for path in CODE:
        for call in _calls(path.read_text(), "torch.load"):
            found += 1
            assert "weights_only=True" in call, f"{path.relative_to(ROOT)}: {call}"
    assert found >= 5  # the checks above did look at the project's loads


def test_no_pickle_eval_or_exec_of_data():
    banned = re.compile(r"^\s*(import pickle|from pickle)|(?<![\w.])(eval|exec)\(|pickle\.loads?\(", re.M)
    for path in CODE:
        hit = banned.search(path.read_text())
        assert hit is None, f"{path.relative_to(ROOT)}: {hit.group(0)!r}"


def test_secret_looking_params_are_masked():
    params = safe_params({"tracking.token": "abc", "aws_secret_access_key": "k", "train.lr": 0.1})
    assert params == {"tracking.token": "***", "aws_secret_access_key": "***", "train.lr": "0.1"}
