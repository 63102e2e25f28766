"""Run a study (a profile and a set of ablations) in this process: data, plan, stages, table."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator import report
from orchestrator.ablations import StudyConfig, catalogue
from orchestrator.config import to_yaml
from orchestrator.data.crops import load_noisy
from orchestrator.data.dataset import resolve as resolve_data
from orchestrator.data.sidd import load_validation
from orchestrator.plan import LocalData, plan, run_local


def run_study(study: StudyConfig, *, progress: bool = True) -> list[dict]:
    """Train and evaluate every selected ablation; write ``results.md``/``.csv`` to ``study.out``.

    Everything is checked (configs, stage graphs, dataset files, pretrained stages) before the
    first training step.
    """
    out = Path(study.out)
    index = resolve_data(study.data, progress=progress)
    plans = plan(study, index, store=out / "stages")
    if progress:
        print(index.summary(), file=sys.stderr)
    images, names = load_noisy(index.pairs, progress=progress)
    data = LocalData(images, names, load_validation(index))
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(to_yaml(study))
    results = run_local(study, plans, data, progress=progress)
    # The last stage run of each ablation (the final one unless `stages` stopped earlier).
    final = {name: list(stages.items())[-1] for name, stages in results.items() if stages}
    table = report.rows(catalogue(study), {n: (stage, r.metrics) for n, (stage, r) in final.items()})
    (out / "results.csv").write_text(report.to_csv(table))
    md = report.to_markdown(table)
    (out / "results.md").write_text(md)
    if progress:
        print(md)
    return table
