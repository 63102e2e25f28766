"""Teacher outputs for a distilled stage: computed on the fly each step, or once per training image
and cropped with the noisy crops. Both side by side in one process, at a profile's sizes.

    python bench/distill.py [--profile smoke] [--teachers apbsn,lgbpn] [--steps 5] [--threads 2]

For each teacher (its profile's network size and R3 passes; random weights: the time does not
depend on them) it reports, with the student ``ssid_unet`` at the profile's ``train.distill`` batch
and crop:
- ``step on the fly``: the teacher's inference on the batch (R3 included) plus the student's
  forward, L1, backward and Adam step: what ``orchestrator/train/loop.py`` does;
- ``student step``: the student's step alone, which is what a step costs with cached targets;
- ``cache build``: the teacher's inference over every training image of the profile's synthetic
  data once (what a per-image cache costs before the first step), and the steps after which it
  pays for itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_teacher(study, name: str, repeat: int) -> tuple[float, float, float]:
    """(step on the fly, student step alone, cache build) seconds for ``name``'s distilled stage."""
    from orchestrator.study.catalogue import resolve
    from orchestrator.train.evaluation import infer, infer_any
    from orchestrator.train.store import build_model

    t, spec = study.train["distill"], study.data.synthetic
    stages = resolve(study, name + "+D").stages
    teacher = build_model(stages[-2].model, seed=0).eval()
    student = build_model(stages[-1].model, seed=0)
    opt = torch.optim.Adam(student.parameters(), lr=1e-4)
    x = torch.rand(t.batch, 3, t.patch, t.patch) * 255

    def student_step(target):
        loss = (student(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def on_the_fly():
        with torch.no_grad():
            target = infer(teacher, x)
        student_step(target)

    cached = torch.rand_like(x) * 255
    fly = _median(on_the_fly, repeat)
    alone = _median(lambda: student_step(cached), repeat)
    image = torch.rand(1, 3, *spec.size) * 255
    with torch.no_grad():
        one = _median(lambda: infer_any(teacher, image), 1)
    return fly, alone, one * spec.scenes * 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--teachers", default="apbsn,lgbpn", help="catalogue entries whose final stage teaches")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from orchestrator.study.catalogue import load_profile

    study = load_profile(args.profile, ["distill=ssid_unet"])
    spec, t = study.data.synthetic, study.train["distill"]
    student = f"{study.distill} {study.distill_kwargs}"
    crop = f"batch {t.batch} of {t.patch}x{t.patch}"
    print(f"profile {args.profile}: student {student}, {crop}, {args.threads} threads")
    print(f"training images: {spec.scenes * 2} of {spec.size[0]}x{spec.size[1]} (the profile's data)\n")
    print(
        "| teacher | step on the fly s | student step s | teacher share | cache build s | cache pays after |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.teachers.split(","):
        fly, alone, build = time_teacher(study, name, args.steps)
        share, pays = (fly - alone) / fly, build / max(fly - alone, 1e-9)
        print(f"| {name} | {fly:.3f} | {alone:.3f} | {share:.0%} | {build:.1f} | {pays:.0f} steps |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
