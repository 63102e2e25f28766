"""One training stage: a model built from config, a loss against named targets, frozen upstream
stages, a deterministic crop stream, an optimizer and schedule, evaluation and checkpoints.

SSID is three stages (``bnn`` -> ``lan`` -> ``unet``); LG-BPN and AP-BSN are one (``bsn``). A
stage's ``targets`` say what its loss compares the output with: ``noisy`` (the input itself) or the
inference output of an upstream stage, by name. The loop is plain PyTorch; Ray and MLflow call it
through the hooks of :class:`StageContext`.

Determinism: the model is initialised from ``torch.manual_seed(train.seed)``, batch k is a function
of (seed, k) only, evaluation forks the RNG, and a checkpoint holds the model, optimizer, scheduler
and RNG states. Resuming from any checkpoint therefore continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.losses import create_loss
from models.precision import autocast
from models.runtime import reuse_freed_memory
from orchestrator.config import to_yaml
from orchestrator.data.crops import CropSampler, Prefetcher, tiles_per_image
from orchestrator.data.images import quantize_uint8
from orchestrator.progress import Progress
from orchestrator.schema import NOISY, EvalConfig, TrainConfig
from orchestrator.train.ddp import Share, check_same_step, mean_across, wrap
from orchestrator.train.evaluation import device_for, evaluate, infer, rng_devices, to_tensor
from orchestrator.train.metrics import METRICS
from orchestrator.train.recipe import init_output_bias, make_scheduler
from orchestrator.train.store import (
    Stage,
    StageResult,
    best_file,
    best_header,
    build_model,
    checkpoint_name,
    load_upstream,
    resume,
    save_checkpoint,
    save_model,
    writing,
)


@dataclass(frozen=True)
class Selection:
    """Checkpoint selection without leakage (``eval.select``, ``docs/METRICS.md``).

    ``index``: the validation blocks of the selection subset, the only ones it reads. They are
    scored every ``train.eval_every`` steps (``train.checkpoint_every`` when that is 0) and at the
    last step; the best by PSNR is kept as ``best-<key[:12]>.pt`` in the stage folder, in
    ``model.pt``'s format with its ``step`` and ``sel_psnr`` in the header. ``key`` names the
    subset (the source's content key and the rule), so another subset keeps a file of its own.
    """

    index: tuple[int, ...]
    key: str


@dataclass
class StageContext:
    """What a stage trains and is evaluated on, and what watches it (the stage is its record).

    Args:
        images: the noisy training images (or tiles read on demand), uint8 (H, W, 3).
        names: one per image, for errors.
        validation: (noisy, clean) blocks, uint8 (N, H, W, 3), the periodic validation's (every
            ``train.eval_every`` steps, on the first ``train.eval_blocks``), or None. A stage is
            scored once trained by the study (:mod:`orchestrator.study.evaluate`), not here.
        eval: the evaluation's batch size.
        selection: checkpoint selection on a subset of ``validation`` (:class:`Selection`); with
            one, the periodic validation is on that subset only.
        shapes: (H, W) of each image when reading one is costly.
        device: '' for CUDA when there is one, else the CPU.
        share: this process's share of each batch when the stage trains in several
            (:mod:`orchestrator.train.ddp`; the others have no ``on_*`` hooks and write nothing).
        on_start: called with the step training starts (or resumes) from.
        on_step: called with the step and its record (``step``, ``loss``, ``lr``, ``val*``...).
        on_checkpoint: called with the step and the checkpoint file, right after ``on_step``.
    """

    images: Sequence[np.ndarray]
    names: list[str]
    validation: tuple[np.ndarray, np.ndarray] | None
    eval: EvalConfig = EvalConfig()
    selection: Selection | None = None
    shapes: list[tuple[int, int]] | None = None
    device: str = ""
    share: Share = Share()
    progress: bool = True
    on_start: Callable[[int], None] | None = None
    on_step: Callable[[int, dict], None] | None = None
    on_checkpoint: Callable[[int, Path], None] | None = None


def steps_per_epoch(cfg: TrainConfig, sizes: list[tuple[int, int]]) -> int:
    """Steps in one epoch: ``cfg.steps_per_epoch`` if set, else the data's tiles over the batch."""
    if cfg.steps_per_epoch > 0:
        return cfg.steps_per_epoch
    tiles = sum(tiles_per_image(h, w, tile=cfg.epoch_tile, stride=cfg.epoch_stride) for h, w in sizes)
    return max(1, math.ceil(tiles / cfg.batch))


def _layout(t: TrainConfig) -> torch.memory_format:
    return torch.channels_last if t.channels_last else torch.contiguous_format


def train_stage(stage: Stage, ctx: StageContext) -> StageResult:
    """Train ``stage`` (or resume it from its latest checkpoint, or return it if finished)."""
    if stage.pretrained or stage.model_file.is_file():
        return StageResult.finished(stage)
    cfg, out, t = stage.config, stage.path, stage.config.train
    upstream = load_upstream(stage)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if t.reuse_memory and not reuse_freed_memory():
        print(f"[{cfg.name}] train.reuse_memory: not a glibc C library, left as it is", flush=True)
    ckpt_dir, lead = out / "checkpoints", ctx.share.lead
    with writing(cfg.name, out / "config.yaml", ckpt_dir):
        out.mkdir(parents=True, exist_ok=True)
        if lead:
            (out / "config.yaml").write_text(to_yaml(cfg))
    device = device_for(ctx.device)
    model = build_model(cfg.model, seed=t.seed).to(device, memory_format=_layout(t))
    opt = torch.optim.Adam(model.parameters(), lr=t.optim.lr, betas=t.optim.betas)
    sched = make_scheduler(opt, t, stage.total_steps, stage.steps_per_epoch)
    for net in upstream.values():
        net.to(device, memory_format=_layout(t))
    step = resume(ckpt_dir, stage.key, model, opt, sched)
    if ctx.share.world > 1:
        check_same_step(step, stage.label, device)
    if t.init_output_bias and step == 0:
        first = CropSampler(
            ctx.images, names=ctx.names, patch=t.patch, batch=t.batch, seed=t.seed, shapes=ctx.shapes
        )
        x = to_tensor(first.batch(0)).to(device, memory_format=_layout(t))
        note = init_output_bias(model, x)
        if ctx.progress:
            print(f"[{cfg.name}] {note}", flush=True)
    if ctx.on_start is not None:
        ctx.on_start(step)
    started = time.perf_counter()
    step = _Fit(stage, ctx, model, opt, sched, upstream).run(step)
    train_s = time.perf_counter() - started  # this run's training
    if lead:
        with writing(cfg.name, stage.model_file, ckpt_dir):
            save_model(stage, model, {"step": step, "train_s": train_s, "metrics": {}})
    return StageResult(cfg.name, stage.key, stage.model_file, {}, step, train_s=train_s)


def _with_targets(ctx: StageContext, upstream: dict, names: list[str], seed: int, label: str) -> list:
    """Each training image with the outputs of the ``names`` upstream stages on it appended as
    channels (uint8, rounded as the metrics round): cropped and flipped with it, batch by batch.
    Random inference steps (R3) draw from ``seed`` and the image's index, so a resumed stage
    computes the same targets."""
    from orchestrator.tools.tiling import denoise_image

    started, out = time.perf_counter(), []
    device = device_for(ctx.device)
    with torch.random.fork_rng(devices=rng_devices(device)):
        for i, image in enumerate(ctx.images):
            torch.manual_seed(seed * 1_000_003 + i)
            arr = np.asarray(image)
            tile = 0 if max(arr.shape[:2]) <= 1024 else 512
            outs = [
                denoise_image(upstream[n], arr.astype(np.float32), tile=tile, device=device) for n in names
            ]
            out.append(np.concatenate([arr, *(quantize_uint8(o) for o in outs)], axis=2))
    if ctx.progress:
        took = time.perf_counter() - started
        print(
            f"[{label}] targets of {names} on {len(out)} training image(s) cached in {took:.1f} s", flush=True
        )
    return out


class _Fit:
    """The training loop of one stage from a given step to its end."""

    def __init__(self, stage: Stage, ctx: StageContext, model: nn.Module, opt, sched, upstream: dict):
        self.stage, self.ctx, self.model, self.opt, self.sched = stage, ctx, model, opt, sched
        self.upstream = upstream
        t = stage.config.train
        self.loss_fn = create_loss(stage.config.loss, **stage.config.loss_kwargs)
        cached = [n for n in stage.config.targets if n != NOISY] if t.cache_targets else []
        self.cached = {name: slice(3 + 3 * i, 6 + 3 * i) for i, name in enumerate(cached)}
        # a share of each batch; the whole batch where an upstream's inference draws random numbers
        # (R3): every worker draws them as one process would, then keeps its share (docs/TRAINING.md)
        self.share, drawn = ctx.share, [n for n in stage.config.upstream if n not in self.cached]
        whole = any(getattr(upstream[n], "random_inference", False) for n in drawn)
        self.keep = ctx.share.of(t.batch) if whole else slice(None)
        self.sampler = Prefetcher(
            CropSampler(
                _with_targets(ctx, upstream, cached, t.seed, stage.config.name) if cached else ctx.images,
                names=ctx.names,
                patch=t.patch,
                batch=t.batch,
                seed=t.seed,
                augment=t.augment,
                shapes=ctx.shapes,
                share=slice(None) if whole else ctx.share.of(t.batch),
            )
        )  # the next batches cropped while this step computes
        self.device, self.layout = device_for(ctx.device), _layout(t)
        net = wrap(model, self.device) if ctx.share.world > 1 else model
        self.forward = torch.compile(net) if t.compile else net  # same weights, same function
        self.ckpt_dir, self.history_path = stage.path / "checkpoints", stage.path / "history.jsonl"
        sel = ctx.selection
        self.best_path = best_file(stage, sel.key) if sel is not None and ctx.validation is not None else None
        found = best_header(self.best_path) if self.best_path is not None else None
        self.best = float(found["sel_psnr"]) if found else -math.inf  # a resumed run keeps its best

    def _writing(self, path: Path):
        return writing(self.stage.config.name, path, self.ckpt_dir)

    def loss(self, step: int) -> torch.Tensor:
        """The loss of batch ``step`` (forward passes only)."""
        t, cfg = self.stage.config.train, self.stage.config
        crops = to_tensor(self.sampler.batch(step))
        x = crops[:, :3].to(self.device, memory_format=self.layout)
        with torch.no_grad(), autocast(t.precision, self.device):
            targets = [
                x
                if name == NOISY
                else crops[:, self.cached[name]].to(self.device)
                if name in self.cached
                else infer(self.upstream[name], x)
                for name in cfg.targets
            ]
        x, targets = x[self.keep], [y[self.keep] for y in targets]
        with autocast(t.precision, self.device):
            out = self.forward(x)
        loss = self.loss_fn(out.float(), *(y.float() for y in targets))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{cfg.name}: loss is {loss.item()} at step {step}; last checkpoint kept"
            )
        return loss

    def step(self, step: int) -> dict:
        """One optimizer step from ``step``; the record of step + 1, with validation when due."""
        t, total = self.stage.config.train, self.stage.total_steps
        loss = self.loss(step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        step += 1
        value = mean_across(loss) if self.share.world > 1 else loss.item()
        record = {"step": step, "loss": value, "lr": self.opt.param_groups[0]["lr"]}
        val = self.ctx.validation
        if not self.share.lead:
            return record
        if self.best_path is not None:
            every = t.eval_every or t.checkpoint_every
            if step % every == 0 or step == total:
                record |= self.select(step)
        elif val is not None and t.eval_every > 0 and step % t.eval_every == 0 and step < total:
            ev = evaluate(self.model, *val, blocks=t.eval_blocks, batch=self.ctx.eval.batch, seed=t.seed)
            record |= ev.metrics
        return record

    def select(self, step: int) -> dict:
        """Score the selection subset (and nothing else); keep the model if it is the best yet."""
        t, sel = self.stage.config.train, self.ctx.selection
        ev = evaluate(
            self.model, *self.ctx.validation, index=sel.index, batch=self.ctx.eval.batch, seed=t.seed
        )
        metrics = {f"sel_{k}": float(np.mean([r[k] for r in ev.per_block])) for k in METRICS}
        if metrics["sel_psnr"] > self.best:
            self.best = metrics["sel_psnr"]
            meta = {"step": step, "selection": sel.key, "metrics": metrics, "sel_psnr": self.best}
            with self._writing(self.best_path):
                save_model(self.stage, self.model, meta, self.best_path)
        return metrics | {"sel_best_psnr": self.best}

    def checkpoint(self, step: int, history) -> Path | None:
        t = self.stage.config.train
        if step % t.checkpoint_every or step >= self.stage.total_steps or not self.share.lead:
            return None
        with self._writing(self.history_path):
            history.flush()
        with self._writing(self.ckpt_dir / checkpoint_name(step)):
            return save_checkpoint(
                self.ckpt_dir, self.stage.key, step, self.model, self.opt, self.sched, t.keep_checkpoints
            )

    def run(self, step: int) -> int:
        """Train from ``step`` to the end; returns the last step."""
        ctx, name, total = self.ctx, self.stage.config.name, self.stage.total_steps
        bar = Progress(f"{name} {self.stage.key[:8]}", total) if ctx.progress else None
        if bar and step:
            bar.done = step
            print(f"[{name}] resuming at step {step} of {total}", flush=True)
        self.model.train()
        with self._writing(self.history_path):  # one writer: the others' lines go nowhere
            history = _open_history(self.history_path, step, own=self.share.lead)
        try:
            while step < total:
                record = self.step(step)
                step = record["step"]
                with self._writing(self.history_path):
                    history.write(json.dumps(record) + "\n")
                path = self.checkpoint(step, history)
                if bar:
                    bar.update(note=f"loss {record['loss']:.4g}")
                if ctx.on_step is not None:
                    ctx.on_step(step, record)
                if path is not None and ctx.on_checkpoint is not None:
                    ctx.on_checkpoint(step, path)
        except BaseException:
            with contextlib.suppress(OSError):  # what is buffered goes out if it can; the error stays first
                history.close()
            raise
        finally:
            self.sampler.close()
        with self._writing(self.history_path):
            history.close()
        return step


def _open_history(path: Path, step: int, *, own: bool = True):
    """The history file for appending, cut back to the records up to ``step`` (a resumed run
    repeats the steps after its checkpoint); ``own`` False (a worker other than rank 0): a sink."""
    if not own:
        return open(os.devnull, "w")  # noqa: SIM115 - closed by the loop, like the history file
    if path.is_file():
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # a line cut short by a full disk, or blank
                continue
        path.write_text("".join(line + "\n" for line in kept))
    return path.open("a")
