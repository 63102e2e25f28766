"""Files stay small enough to read at once (STYLE.md 12): no module over 400 lines and no function
over 60 lines in models/, orchestrator/ and jobs/. The failure lists every offender."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "orchestrator", "jobs")
MAX_MODULE, MAX_FUNCTION = 400, 60


def offenders() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            lines = len(text.splitlines())
            if lines > MAX_MODULE:
                found.append(f"{rel}: {lines} lines (module)")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION:
                        found.append(f"{rel}:{node.lineno} {node.name}: {length} lines (function)")
    return found


def test_no_module_or_function_is_too_long() -> None:
    found = offenders()
    assert not found, "too long:\n" + "\n".join(found)
