"""Progress lines for long jobs: plain text that reads well in a terminal and in ``ray job logs``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class Progress:
    """Counts finished items and prints ``[name] done/total pct rate ETA note`` at most every
    ``every_s`` seconds, and always for the first and the last item.

    Args:
        name: prefix of each line.
        total: number of items expected.
        every_s: minimum seconds between two lines.
        stream: where lines go (stdout by default).
    """

    def __init__(self, name: str, total: int, *, every_s: float = 2.0, stream: TextIO | None = None):
        self.name, self.total, self.every_s = name, total, every_s
        self.stream = stream or sys.stdout
        self.done = 0
        self.start = time.perf_counter()
        self._last = -float("inf")

    def update(self, n: int = 1, *, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if self.done in (1, self.total) or now - self._last >= self.every_s:
            self._last = now
            self.stream.write(self.line(note) + "\n")
            self.stream.flush()

    def line(self, note: str = "") -> str:
        elapsed = time.perf_counter() - self.start
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"[{self.name}] {self.done}/{self.total} ({pct:.0f}%) {_duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f", ETA {_duration(elapsed / self.done * (self.total - self.done))}"
        return f"{text}  {note}" if note else text
