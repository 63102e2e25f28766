"""A stage on several devices: its Tune trial runs a Ray Train ``TorchTrainer`` of
``trial.workers`` processes (DistributedDataParallel; ``gloo`` on CPU, ``nccl`` on CUDA).

The trial itself holds no CPU or GPU (:func:`orchestrator.study.tune.trial_bundles`); each worker
holds ``trial.cpu`` and ``trial.gpu``, and the workers are packed on as few nodes as hold them.
Every worker runs :func:`orchestrator.train.loop.train_stage` on its share of each batch
(:mod:`orchestrator.train.ddp`); rank 0 alone writes the stage folder, and relays its start, each
step's record, each checkpoint and its result to the trial through a queue. The trial hands them
to the same :class:`~orchestrator.study.tune.TrialHooks` as a one-worker trial: one MLflow run,
Tune results and checkpoints, ``attempts.jsonl``. A failed worker fails the Train run and with it
the trial; Tune retries the trial (``trial.max_failures``), whose new workers resume from the
stage's last checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path

from orchestrator.cluster import worker_bundle
from orchestrator.train.store import Stage, StageResult

__all__ = ["train_on_workers"]

RELAY_S = 0.2  # rank 0 sends its step records at most this often (and at every checkpoint)
HALT_S = 60.0  # how long a stopped trial waits for its workers to stop


class Halted(RuntimeError):
    """The trial of these workers stopped: rank 0 stops the Train run."""


def train_on_workers(stage: Stage, settings, validation, hooks) -> StageResult:
    """Inside ``stage``'s Tune trial: train it on ``trial.workers`` Ray Train workers, passing
    rank 0's progress to ``hooks`` as it comes; returns rank 0's result."""
    import ray
    from ray import train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    bundle = worker_bundle(settings.resources)
    gpu = bundle.get("GPU", 0.0) > 0
    relay, halt = Queue(actor_options={"num_cpus": 0}), Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        _worker,
        train_loop_config={
            "stage": stage,
            "settings": settings,
            "validation": ray.put(validation) if validation is not None else None,
            "relay": relay,
            "halt": halt,
        },
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=train.ScalingConfig(
            num_workers=stage.config.trial.workers,
            use_gpu=gpu,
            resources_per_worker=bundle,
            placement_strategy="PACK",
        ),
        run_config=train.RunConfig(
            name=f"{stage.label}-{stage.key[:12]}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=f"{settings.storage}/train" if settings.storage else None,
            failure_config=train.FailureConfig(max_failures=0),  # Tune retries the trial
        ),
    )
    result: list[StageResult] = []
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="train")
    fit = pool.submit(trainer.fit)
    try:
        while True:
            finished = fit.done()  # then every message rank 0 sent is in the queue
            for kind, *body in relay.get_nowait_batch(relay.qsize()):
                _hand(hooks, kind, body, result)
            if finished:
                break
            concurrent.futures.wait([fit], timeout=0.1)
        fit.result()  # a failed run raises here
    except BaseException:  # the trial stopped (a scheduler, an interrupt) or failed: so do the workers
        halt.put(True)
        concurrent.futures.wait([fit], timeout=HALT_S)
        raise
    finally:
        pool.shutdown(wait=False)
        relay.shutdown()
        halt.shutdown()
    if not result:
        raise RuntimeError(f"{stage.label}: the workers finished without a result")
    return result[0]


def _hand(hooks, kind: str, body: list, result: list) -> None:
    """One message of rank 0 to the trial's hooks."""
    if kind == "start":
        hooks.on_start(body[0], **body[1])
    elif kind == "steps":
        for step, record in body[0]:
            hooks.on_step(step, record)
    elif kind == "checkpoint":
        hooks.on_checkpoint(body[0], Path(body[1]))
    elif kind == "done":
        result.append(body[0])


class _Relay:
    """Rank 0's side of the queues: step records batched, sent at most every :data:`RELAY_S`;
    at each sending, whether the trial asks the workers to stop."""

    def __init__(self, queue, halt):
        self.queue, self.halt, self.steps, self.sent = queue, halt, [], time.monotonic()

    def send(self, *message) -> None:
        self.flush()
        self.queue.put(message)

    def step(self, step: int, record: dict) -> None:
        self.steps.append((step, dict(record)))
        if time.monotonic() - self.sent >= RELAY_S:
            self.flush()

    def flush(self) -> None:
        if self.steps:
            self.queue.put(("steps", self.steps))
            self.steps = []
        self.sent = time.monotonic()
        if self.halt.qsize():
            raise Halted("the stage's trial stopped (a scheduler or an interrupt); the workers stop too")


def _worker(config: dict) -> None:
    """One Ray Train worker of a stage; rank 0 relays its progress to the trial."""
    import ray
    import torch
    import torch.distributed as dist
    from ray import train
    from ray.train.torch import get_device

    from orchestrator.data.shards import TileSet
    from orchestrator.train.ddp import Share
    from orchestrator.train.loop import StageContext, train_stage

    stage, settings = config["stage"], config["settings"]
    context = train.get_context()
    share = Share(context.get_world_rank(), context.get_world_size())
    torch.set_num_threads(stage.config.train.threads or settings.threads)
    device = get_device()
    if device.type == "cuda":  # nccl's collectives (all_gather_object too) run on this device
        torch.cuda.set_device(device)
    nodes: list = [None] * share.world  # where each rank runs, for attempts.jsonl
    node = ray.get_runtime_context().get_node_id()
    dist.all_gather_object(nodes, node)
    ref = config["validation"]
    lead = share.lead
    relay = _Relay(config["relay"], config["halt"]) if lead else None
    where = {"node": node, "pid": os.getpid(), "workers": nodes}
    tiles = TileSet(settings.shards[stage.key], cache_bytes=settings.tile_cache_bytes)
    ctx = StageContext(
        tiles,
        tiles.names,
        ray.get(ref) if lead and ref is not None else None,
        settings.eval,
        selection=settings.selection if lead else None,
        shapes=tiles.shapes,
        device=str(device),
        share=share,
        progress=False,
        on_start=(lambda step: relay.send("start", step, where)) if lead else None,
        on_step=relay.step if lead else None,
        on_checkpoint=(lambda step, path: relay.send("checkpoint", step, str(path))) if lead else None,
    )
    result = train_stage(stage, ctx)
    if lead:
        relay.send("done", result)
