"""Training on several processes with torch.distributed: one process per device, started by
torchrun (`torchrun --nproc-per-node N -m cli train ...`, multi-node through its rendezvous) or
by `toc train --nproc N`, which runs torchrun's launcher (`torch.distributed.run`) itself.

The rule that makes N processes train the same model as one: a step's batch is the batch one
process would take (the same `batch_size`, the same seeded epoch order); each rank reads its
contiguous shard of it, and everything that couples the rows of a batch is computed on the
whole batch.

* Terms that are means over rows (reconstruction, commitment, the CLUB log-likelihood) stay
  local; gradients are averaged (DDP for the main modules, an all-reduce for each CLUB
  estimator), weighted by the shard sizes, so the average is the one-process gradient.
* Terms that compare rows (Cross-CPC and its clip-level InfoNCE, the cross-modal code matching,
  the CLUB bound's batch permutation, the alignment and gap remedies) see the whole batch: every
  rank gathers the rows of all ranks and computes the same full-batch term (`gather_batch`), so
  the negatives are global, not local.
* The MM-EMA statistics of the batch (code counts, cross-modal sums) are all-reduced before each
  EMA step, and the codes used by any rank decide the dead-code patience.
* Random choices that concern the whole batch are drawn on rank 0 and broadcast: the CPC time
  index, the CLUB permutations, the dead-code replacements (rank 0's draws, then its codebook).
  Rank 0's RNG streams are the ones a checkpoint stores; ranks >= 1 draw only their own dropout
  masks, from a stream seeded by (seed, rank, step), so a resumed run draws them again exactly.
* k-means codebook initialisation runs on rank 0 only; rank 0's states are broadcast at start.
* Only rank 0 writes (checkpoints, metrics.jsonl, config.json, diagnostics).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hdcid.errors import ModelError, SettingsError, literal

# Metrics that are counts over the batch (summed over ranks); every other metric is a mean over
# rows or the same full-batch value on every rank (averaged with the shard sizes as weights).
COUNT_METRICS = ("equal_num",)
# The loss totals (`loss`, `loss_level1`, ...): each rank's objective, averaged with equal weights.
TOTAL_PREFIX = "loss"
# How long a rank waits in a collective: the others wait while rank 0 writes checkpoints and runs
# the epoch's diagnostics (nccl's own default is 10 minutes).
GROUP_TIMEOUT = timedelta(minutes=60)
# Ranks >= 1 seed their dropout stream from (seed, rank, step) with these multipliers.
RANK_STREAM = 1_000_003
STEP_STREAM = 7919


# DDP must not overwrite the codebook buffers with rank 0's before each forward: the quantizer
# keeps them equal itself (reduced statistics, broadcast resets). torch >= 2.13 names this
# `forward_sync_buffers=False` (and warns about the old `broadcast_buffers=False`).
_NO_BUFFER_BROADCAST = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


@dataclass(frozen=True)
class World:
    """Where this process sits among those of one run (torchrun's environment)."""

    rank: int
    size: int
    local_rank: int

    @staticmethod
    def from_environment(environ: Mapping[str, str] | None = None) -> World | None:
        """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; None outside torchrun
        or for a world of one process (which trains exactly as without torchrun)."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return None
        values = {}
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            text = env.get(name, "0" if name == "LOCAL_RANK" else "")
            if not text.isdigit():
                raise ModelError(
                    f"environment variable {name}: expected a whole number (as torchrun sets it), got {literal(repr(text))}"
                )
            values[name] = int(text)
        if values["WORLD_SIZE"] < 1 or values["RANK"] >= values["WORLD_SIZE"]:
            raise ModelError(
                f"environment: RANK {values['RANK']} does not fit WORLD_SIZE {values['WORLD_SIZE']} (expected 0 <= RANK < WORLD_SIZE)"
            )
        if values["WORLD_SIZE"] == 1:
            return None
        return World(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def under_launcher(environ: Mapping[str, str] | None = None) -> bool:
    """Whether torchrun (or another launcher of torch.distributed) started this process."""
    return "WORLD_SIZE" in (os.environ if environ is None else environ)


def backend_for(device: torch.device) -> str:
    """gloo on CPU, nccl on CUDA."""
    return "nccl" if device.type == "cuda" else "gloo"


def local_device(device: str, world: World) -> torch.device:
    """The device this rank trains on: `cuda` means the rank's own GPU (LOCAL_RANK)."""
    target = torch.device(device)
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", world.local_rank)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    return target


# ---------------------------------------------------------------------- autograd gather


class _GatherBatch(torch.autograd.Function):
    """All ranks' rows of one tensor, in rank order (the batch one process would hold).

    Contract: every rank computes the same function of the gathered tensor (a full-batch term),
    so the gradient of the gathered tensor is the same on every rank; a rank's own rows get that
    gradient times the world size, which the gradient averaging divides back.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, collective: Collective) -> torch.Tensor:  # type: ignore[override]
        counts = collective.counts
        ctx.offset = collective.offset
        ctx.rows = counts[collective.rank]
        ctx.size = collective.size
        return collective.all_rows(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad[ctx.offset : ctx.offset + ctx.rows] * ctx.size, None


class _StepForward(nn.Module):
    """The main modules as one DDP module; its forward runs a step's loss computation, so DDP
    sees the graph of the whole loss (the step calls several modules and their methods)."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        self.trained = nn.ModuleList(modules)

    def forward(self, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        return compute()


# ---------------------------------------------------------------------- the collective


class Collective:
    """The process group as the trainer, the step and the quantizer use it."""

    def __init__(self, world: World, device: torch.device):
        self.world = world
        self.rank = world.rank
        self.size = world.size
        self.device = device
        self.counts: list[int] = [0] * self.size  # rows of the current batch on each rank
        self.offset = 0  # where this rank's rows start in the batch
        self._ddp: DistributedDataParallel | None = None

    # -------------------------------------------------------------- set-up
    @staticmethod
    def join(device: str, *, init_method: str | None = None, world: World | None = None) -> Collective | None:
        """Join the process group torchrun describes (None when this is not a distributed run).
        `init_method` / `world` let tests start the group without torchrun's environment."""
        world = world if world is not None else World.from_environment()
        if world is None:
            return None
        target = local_device(device, world)
        if not dist.is_initialized():
            dist.init_process_group(
                backend_for(target), init_method=init_method or "env://", rank=world.rank, world_size=world.size,
                timeout=GROUP_TIMEOUT,
            )
        return Collective(world, target)

    def close(self, *, finished: bool = True) -> None:
        """End the process group. After a finished run every process first waits for the others
        (rank 0 may still be writing): a process that tore its group down while a peer still
        used it was aborted by gloo ("terminate called without an active exception"). After a
        failure there is no waiting: the peers may never arrive."""
        if dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_run(self, n_clips: int, batch_size: int, method: str | None) -> None:
        """Refuse what N processes cannot train the one-process way (before the first step)."""
        if method == "fcid":
            raise SettingsError(
                f"FCID pretraining runs on one process; got a world of {self.size} processes (drop {{}} / torchrun)",
                settings=("nproc",),
            )
        last = n_clips % batch_size or batch_size
        smallest = min(batch_size, last, n_clips)
        if smallest < self.size:
            raise SettingsError(
                f"every batch is split over the {self.size} processes, but a batch of {smallest} clip(s) "
                f"({n_clips} clips, {{}} {batch_size}) leaves a process without clips; "
                f"use a batch size whose last batch has at least {self.size} clips",
                settings=("batch_size",),
            )

    def attach(self, model: nn.Module, normalization: dict[str, torch.Tensor] | None):
        """Start from rank 0's states (weights, codebooks, EMA statistics, input statistics), hand
        the quantizer this collective and wrap the main modules in DDP. Returns the input statistics."""
        for state in model.checkpoint_states().values():
            self.broadcast_(list(state.values()))
        shared = [normalization]
        dist.broadcast_object_list(shared, src=0)
        model.quantizer.collective = self
        self._ddp = DistributedDataParallel(
            _StepForward(model.main_modules()),
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            # Unused in some steps: level 2 before it starts, the text branch without text.
            find_unused_parameters=True,
            **_NO_BUFFER_BROADCAST,
        )
        return shared[0]

    # -------------------------------------------------------------- batches
    def shard(self, rows: Sequence[int]) -> list[int]:
        """This rank's contiguous part of a batch (sizes differ by at most one, earlier ranks
        larger), remembered for the gathers of the step."""
        n, base = len(rows), len(rows) // self.size
        self.counts = [base + (1 if r < n % self.size else 0) for r in range(self.size)]
        self.offset = sum(self.counts[: self.rank])
        return list(rows[self.offset : self.offset + self.counts[self.rank]])

    @property
    def batch_rows(self) -> int:
        return sum(self.counts)

    @property
    def row_share(self) -> float:
        """This rank's share of the batch's rows."""
        return self.counts[self.rank] / self.batch_rows

    @property
    def local_scale(self) -> float | None:
        """Factor on this rank's row-mean terms so that averaging over ranks gives the batch mean
        (None when the shards are equal, the usual case)."""
        scale = self.row_share * self.size
        return None if scale == 1.0 else scale

    def seed_step(self, seed: int, step: int) -> None:
        """Ranks >= 1: a dropout stream of their own, a function of (seed, rank, step)."""
        if self.rank:
            torch.manual_seed(seed * RANK_STREAM + self.rank * STEP_STREAM + step)

    # -------------------------------------------------------------- collectives
    def all_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows of `x` (no gradient; see gather_batch)."""
        largest = max(self.counts)
        padded = x.detach()
        if padded.shape[0] < largest:
            padded = torch.cat([padded, padded.new_zeros((largest - padded.shape[0], *padded.shape[1:]))])
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:count] for part, count in zip(parts, self.counts, strict=True)])

    def gather_batch(self, x: torch.Tensor) -> torch.Tensor:
        """The whole batch of `x` [n_rank, ...] → [B, ...], differentiable (for full-batch terms)."""
        if not x.requires_grad:
            return self.all_rows(x)
        return _GatherBatch.apply(x, self)

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """All-reduce (sum) tensors of one dtype in place, in one message."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        start = 0
        for t in tensors:
            t.copy_(flat[start : start + t.numel()].view_as(t))
            start += t.numel()

    def broadcast_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Rank 0's values of `tensors` on every rank (in place, one message per dtype)."""
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            start = 0
            with torch.no_grad():
                for t in group:
                    t.copy_(flat[start : start + t.numel()].view_as(t))
                    start += t.numel()

    def used_codes(self, used: torch.Tensor, n_codes: int) -> torch.Tensor:
        """The codes any rank used in this batch (sorted indices), from this rank's `used`."""
        mask = torch.zeros(n_codes, dtype=torch.int32, device=used.device)
        mask[used] = 1
        dist.all_reduce(mask)
        return torch.nonzero(mask).flatten()

    def shared_permutation(self, n: int, device: torch.device) -> torch.Tensor:
        """A permutation of the batch drawn on rank 0 (its RNG, as one process draws it)."""
        permutation = torch.randperm(n, device=device) if self.is_main else torch.empty(n, dtype=torch.long, device=device)
        dist.broadcast(permutation, src=0)
        return permutation

    def shared_integer(self, draw: Callable[[], int]) -> int:
        """An integer drawn on rank 0 (e.g. the CPC time index) and sent to every rank."""
        value = torch.tensor([draw() if self.is_main else 0], dtype=torch.long, device=self.device)
        dist.broadcast(value, src=0)
        return int(value)

    def combine_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """The batch gradient from each rank's gradient of its row mean (weighted by shard size)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        for g in grads:
            g.mul_(self.row_share)
        self.sum_(grads)

    def forward(self, compute: Callable[[], tuple]) -> tuple:
        """Run a step's loss computation through DDP; `compute()` returns (total, *rest) and DDP
        averages the gradients of `total` over ranks during its backward pass."""
        if self._ddp is None:
            raise RuntimeError("Collective.attach() must run before a step")
        kept: list[tuple] = []

        def total_only() -> torch.Tensor:
            kept.append(compute())
            return kept[0][0]

        total = self._ddp(total_only)
        return (total, *kept[0][1:])

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """One step's metrics for the whole batch: row means weighted by shard size, counts summed,
        full-batch values unchanged. (`batch_codes_*`: the weighted mean of the ranks' counts.)"""
        names = sorted(metrics)
        weights = [self._metric_weight(n) for n in names]
        values = [metrics[n] * w for n, w in zip(names, weights, strict=True)]
        values = torch.tensor(values, dtype=torch.float64, device=self.device)  # nccl reduces device tensors only
        dist.all_reduce(values)
        return {n: float(v) for n, v in zip(names, values.tolist(), strict=True)}

    def _metric_weight(self, name: str) -> float:
        if name.removesuffix("_2") in COUNT_METRICS:
            return 1.0
        if name.startswith(TOTAL_PREFIX):
            # A rank's total already weights its row means by its shard (local_scale).
            return 1.0 / self.size
        return self.row_share

    def describe(self) -> dict[str, Any]:
        """What config.json records about the processes."""
        return {"world_size": self.size, "backend": backend_for(self.device)}


# ---------------------------------------------------------------------- launching


def launch_local(nproc: int, arguments: Sequence[str]) -> int:
    """Run `python -m cli ARGUMENTS` in `nproc` processes on this machine through torchrun's
    launcher (a standalone rendezvous on a free local port); the exit code of the run."""
    # Imported here: the launcher's modules are only needed by the process that launches.
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "--module", "cli", *without_option(arguments, "--nproc")])
    except ChildFailedError:
        return 1
    return 0


def without_option(arguments: Sequence[str], option: str) -> list[str]:
    """`arguments` without `option VALUE` / `option=VALUE` (torchrun's parser would take
    `--nproc` for an abbreviation of its own `--nproc-per-node`)."""
    out, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == option:
            skip = True
        elif not argument.startswith(option + "="):
            out.append(argument)
    return out
