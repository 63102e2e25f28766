"""The stage graph as a Tune search algorithm: a stage is released once its upstream stages are
done, the stages heading the longest chains first (:mod:`orchestrator.study.tune` runs it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ray.tune.search import Searcher

__all__ = ["StageGraphSearcher", "chain_lengths"]


class StageGraphSearcher(Searcher):
    """A Tune search algorithm that releases stages in dependency order.

    Args:
        deps: for each stage key to run, the keys (among those to run) it waits for.
        priority: higher first among ready stages (the length of the chain a stage heads).
    """

    def __init__(self, deps: Mapping[str, set[str]], priority: Mapping[str, float]):
        super().__init__()
        self.deps = {k: set(v) for k, v in deps.items()}
        self.pending = sorted(self.deps, key=lambda k: -priority.get(k, 0.0))
        self.running: dict[str, str] = {}
        self.done: set[str] = set()
        self.stopped: set[str] = set()  # errored, or stopped early by a scheduler

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        state = {k: getattr(self, k) for k in ("deps", "pending", "running", "done", "stopped")}
        Path(checkpoint_path).write_bytes(json.dumps({k: _jsonable(v) for k, v in state.items()}).encode())

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self.deps = {k: set(v) for k, v in state["deps"].items()}
        self.pending, self.running = state["pending"], state["running"]
        self.done, self.stopped = set(state["done"]), set(state["stopped"])

    def suggest(self, trial_id: str):
        for key in self.pending:
            if self.deps[key] <= self.done:
                self.pending.remove(key)
                self.running[trial_id] = key
                return {"key": key}
        if self.running:
            return None  # wait: a running stage may release others
        return self.FINISHED  # what is left waits on stages that did not finish

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.running.pop(trial_id, None)
        if key is None:
            return
        if not error and result and result.get("stage_done"):
            self.done.add(key)
        else:
            self.stopped.add(key)


def _jsonable(v):
    if isinstance(v, set):
        return sorted(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def chain_lengths(deps: Mapping[str, set[str]], cost: Mapping[str, float]) -> dict[str, float]:
    """For each stage, the cost of the longest chain starting at it (itself included)."""
    children: dict[str, list[str]] = {k: [] for k in deps}
    for k, ups in deps.items():
        for u in ups:
            children[u].append(k)
    memo: dict[str, float] = {}

    def length(k: str) -> float:
        if k not in memo:
            memo[k] = cost.get(k, 1.0) + max((length(c) for c in children[k]), default=0.0)
        return memo[k]

    return {k: length(k) for k in deps}
