"""Processes of a distributed training run for the tests: gloo on 127.0.0.1, started with
torch.multiprocessing (spawn), each rank a Trainer on the same in-memory corpus."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp
from torch import nn

from hdcid.training import TrainConfig, Trainer
from hdcid.training.data import batches, epoch_order
from hdcid.training.distributed import Collective, World
from tests.train_corpus import PlantedCorpus

CORPUS = dict(n_clips=8, n_classes=3, steps=4, word_dim=8, audio_dim=16, video_dim=24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_dropout(model: nn.Module) -> None:
    """Dropout masks are per-row random draws (each rank draws its own): the equivalence tests
    switch dropout off to compare everything that is not random per row."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0


def trainer_for(run_dir: Path, settings: dict[str, Any] | None, collective: Collective | None, **options) -> Trainer:
    """A fresh run with `settings`, or (settings None) the continuation of RUN_DIR."""
    data = PlantedCorpus(**CORPUS)
    if settings is None:
        trainer = Trainer.resume_run(run_dir, data, collective=collective, **options)
    else:
        trainer = Trainer(TrainConfig(**settings), data, run_dir, collective=collective, **options)
    without_dropout(trainer.model)
    return trainer


def run_steps(trainer: Trainer) -> list[dict[str, float]]:
    """The run's steps without its checkpoints (a published-width DCID checkpoint with Adam states
    is ~170 MB in float64): the trainer's own batches, epoch by epoch; the metrics of each step."""
    config = trainer.config
    trainer.model.train()
    metrics = []
    for epoch in range(config.epochs):
        trainer.epoch = epoch
        for rows in batches(epoch_order(len(trainer.data), config.seed, epoch), config.batch_size):
            metrics.append(trainer.train_step(rows))
    return metrics


def final_states(trainer: Trainer) -> dict[str, dict[str, torch.Tensor]]:
    return {k: {n: t.detach().clone() for n, t in v.items()} for k, v in trainer.model.checkpoint_states().items()}


def _worker(rank: int, size: int, port: int, jobs: list[dict[str, Any]], out_dir: str) -> None:
    torch.set_num_threads(1)
    collective = Collective.join("cpu", init_method=f"tcp://127.0.0.1:{port}", world=World(rank, size, rank))
    try:
        for job in jobs:
            kill_after = job.get("kill_after")

            def on_step(record: dict, kill_after=kill_after) -> None:
                if kill_after is not None and record["total_step"] >= kill_after:
                    os._exit(3)  # a crash: no checkpoint, no clean-up

            trainer = trainer_for(Path(job["run_dir"]), job.get("settings"), collective, on_step=on_step)
            if job.get("steps_only"):
                steps = run_steps(trainer)
            else:
                trainer.run()
                steps = []
            states = final_states(trainer)
            states["steps"] = steps
            torch.save(states, Path(out_dir) / f"{job['name']}-rank{rank}.pt")
    finally:
        collective.close()


def run_processes(jobs: list[dict[str, Any]], out_dir: Path, size: int = 2) -> None:
    """Run `jobs` (name, run_dir, settings or None to resume, optional kill_after, steps_only)
    one after the other in `size` gloo processes; each rank saves its final states (and, with
    steps_only, every step's metrics under "steps") as OUT/NAME-rankR.pt."""
    mp.start_processes(_worker, args=(size, free_port(), jobs, str(out_dir)), nprocs=size, start_method="spawn")
