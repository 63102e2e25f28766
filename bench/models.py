"""Time every model family on CPU: inference on 1x3x256x256 and one training step, 2 threads.

    python bench/models.py [--threads 2] [--repeat 3] [--families ssid_bnn,apbsn,...] [--size 256]
                           [--channels-last] [--precision fp32|bf16] [--checkpoint] [--reuse-memory]

Each case runs in its own process (so its peak resident memory is its own) and reports the median
of ``--repeat`` timed calls after one warm-up. The training step is forward, L1 loss against the
input, backward and an Adam step, on 4x3x128x128 (4x3x120x120 for AP-BSN and LG-BPN, as their
references were timed). Beside each figure: the original implementation's time on the same
machine kind with 2 threads, as given in the project's model requirements (the original code is not part
of this project, so it is not re-timed here), and the speed-up. With ``--precision bf16`` the
forward passes run under bfloat16 autocast (``models.precision``), and a last column gives the
inference output's RMS deviation from the float32 output of the same weights and input, relative
to the float32 output's RMS. ``--reuse-memory`` calls ``models.runtime.reuse_freed_memory()`` in
each case's process first (large blocks kept in malloc's heap instead of mmap'd anew each time).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name: (builder kwargs, inference call, train crop, reference inference s, reference train-step s)
CASES = {
    "ssid_bnn": ({}, "forward", 128, 2.05, 6.3),
    "ssid_lan": ({}, "forward", 128, 0.29, 0.50),
    "ssid_unet": ({}, "forward", 128, 0.33, 0.78),
    "apbsn": ({"r3": False}, "denoise", 120, 4.85, 18.4),
    "apbsn_r3": ({"r3": True}, "denoise", 120, 42.8, None),
    "lgbpn": ({"r3": False}, "denoise", 120, 77.0, 27.0),
}
REFERENCE_PEAK_GB = {"lgbpn": 7.7}


def run_case(
    name: str,
    threads: int,
    repeat: int,
    size: int,
    channels_last: bool = False,
    checkpoint: bool = False,
    precision: str = "fp32",
    reuse_memory: bool = False,
    device: str = "cpu",
    compiled: bool = False,
) -> dict:
    import torch

    from models import create_model
    from models.precision import autocast
    from models.runtime import reuse_freed_memory

    if reuse_memory and not reuse_freed_memory():
        raise RuntimeError("--reuse-memory: this C library has no glibc mallopt")

    torch.set_num_threads(threads)
    kwargs, method, crop, _, _ = CASES[name]
    if checkpoint and name == "lgbpn":
        kwargs = {**kwargs, "checkpoint": True}
    model = create_model(name.removesuffix("_r3"), **kwargs)
    x = torch.rand(1, 3, size, size) * 255
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    x = x.to(device).contiguous(memory_format=fmt)
    model.eval()
    call = getattr(model, method)
    forward = torch.compile(model) if compiled else model  # the training step's forward
    if compiled and method == "forward":
        call = forward
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def infer():
        torch.manual_seed(0)  # R3's masks
        with torch.no_grad(), autocast(precision, torch.device(device)):
            y = call(x)
        sync()
        return y

    out = {"name": name, "params": sum(p.numel() for p in model.parameters())}
    out["infer_s"] = _median(infer, repeat)
    if precision != "fp32":
        with torch.no_grad():
            torch.manual_seed(0)
            exact = call(x)
        rms = exact.pow(2).mean().sqrt()
        out["deviation"] = float((infer().float() - exact).pow(2).mean().sqrt() / rms)
    if CASES[name][4] is not None:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        batch = (torch.rand(4, 3, crop, crop, device=device) * 255).contiguous(memory_format=fmt)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast(precision, torch.device(device)):
                y = forward(batch)
            torch.nn.functional.l1_loss(y.float(), batch).backward()
            opt.step()
            sync()

        out["train_s"] = _median(step, repeat)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _median(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _vs(reference: float | None, ours: float | None) -> str:
    if reference is None or not ours:
        return f"{'-':>7s} {'-':>8s}"
    return f"{reference:7.2f} {reference / ours:7.1f}x"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=256, help="inference image side")
    ap.add_argument(
        "--families", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES)
    )
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and inputs")
    ap.add_argument(
        "--checkpoint", action="store_true", help="LG-BPN with activation checkpointing (checkpoint=True)"
    )
    ap.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: forward passes under autocast"
    )
    ap.add_argument(
        "--reuse-memory", action="store_true", help="keep freed memory in malloc's heap (models.runtime)"
    )
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile the forward passes (warm-up compiles)"
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = ap.parse_args(argv)
    if args.one:
        flags = (
            args.channels_last,
            args.checkpoint,
            args.precision,
            args.reuse_memory,
            args.device,
            args.compile,
        )
        case = run_case(args.one, args.threads, args.repeat, args.size, *flags)
        print(json.dumps(case))
        return 0
    names = [n for n in args.families.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown families {unknown}; choose from {list(CASES)}", file=sys.stderr)
        return 2
    layout = "NHWC" if args.channels_last else "NCHW"
    print(
        f"{args.device.upper()}, {args.threads} threads, median of {args.repeat}; "
        f"inference 1x3x{args.size}x{args.size}; "
        f"{args.precision}, {layout}"
        + (", LG-BPN checkpointed" if args.checkpoint else "")
        + (", freed memory reused" if args.reuse_memory else "")
        + (", torch.compile" if args.compile else "")
    )
    print(
        f"{'model':10s} {'params':>10s} {'infer s':>9s} {'ref s':>7s} {'speed-up':>8s} "
        f"{'train s':>9s} {'ref s':>7s} {'speed-up':>8s} {'peak GB':>8s}"
        + (f" {'deviation':>9s}" if args.precision != "fp32" else "")
    )
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--threads",
            str(args.threads),
            "--repeat",
            str(args.repeat),
            "--size",
            str(args.size),
        ]
        cmd += ["--channels-last"] if args.channels_last else []
        cmd += ["--checkpoint"] if args.checkpoint else []
        cmd += ["--precision", args.precision]
        cmd += ["--reuse-memory"] if args.reuse_memory else []
        cmd += ["--device", args.device] + (["--compile"] if args.compile else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        _, _, _, ref_i, ref_t = CASES[name]
        if args.size != 256:  # the references were timed at 256 only
            ref_i = None
        t = r.get("train_s")
        cols = [f"{name:10s} {r['params']:10,d} {r['infer_s']:9.3f}", _vs(ref_i, r["infer_s"])]
        cols += [f"{t:9.3f}" if t else f"{'-':>9s}", _vs(ref_t, t), f"{r['peak_rss_gb']:8.2f}"]
        cols += [f"{r['deviation']:9.2e}"] if "deviation" in r else []
        print(" ".join(cols), flush=True)
    print("reference peak memory of the original LG-BPN training step: 7.7 GB resident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
