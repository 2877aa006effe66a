"""Train the many linear heads of one evaluation together, with each head's numbers its own.

The linear head's first layer is Linear(D'→D') applied to every (clip, segment) before the max
over time. Its inputs are codebook rows: a batch of 80 clips x 10 segments holds 800 rows but
only the few hundred distinct codes the encoder chose (at most K = 400 per level). So the first
layer is computed on the distinct rows of the batch and gathered, and its weight gradient is the
sum over distinct rows of the gradient routed to each row (for a clip head only the segment that
wins the max of a unit gets a gradient). That is the same function and the same gradient as
the per-row computation, with fewer multiply-adds; only the rounding order differs, so results
agree with `toc.eval.heads.train_linear_head` (the per-row autograd loop) to float64 rounding,
not bit for bit.

Many heads (variants x seeds of one direction) are trained in lockstep: each step computes every
head's gradients, then one fused Adam call updates all of them. Heads are split by size over
forked worker processes (threads where fork is not the safe default), each on one intra-op
thread: these matrices are too small for several threads to help, and a step is many small
torch calls, between which threads would keep passing Python's lock back and forth.

Group independence: every floating-point operation of a head reads only that head's tensors,
each in its own allocation, with the same shapes and in the same order, on one intra-op thread,
whatever else is in its group or worker. Clipping norms and Adam work tensor by tensor. So a
head trained in a group of N gives bit-identical weights, epoch scores and predictions to the
same head trained alone (a group of one); tests/test_head_groups.py checks this.

Why not one stacked matmul over heads (torch.bmm / vmap): heads of one group see different
batches (their own shuffles), so their distinct-row counts differ and would need padding, and
whether a BLAS result row is independent of the batch size, padding and alignment is not
something MKL promises. The per-head matrices ([U, D'] x [D', D'] with U in the hundreds) are
large enough that one call per head costs little (benchmarks/eval_scale.py); the costs that are
left are mostly the max over time and Adam, which batching would not remove.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from toc.errors import ConfigError, TocError
from toc.eval.heads import (
    ClipHead,
    EpochJudge,
    EpochRecord,
    ExpLogLoss,
    HeadPredictor,
    LinearHeadConfig,
    LinearHeadResult,
    SegmentHead,
    torch_threads,
)

# How an evaluation trains its linear heads: grouped (all heads of a direction together, here),
# single (the same code one head at a time: identical numbers), autograd (the per-head nn.Module
# loop, toc.eval.heads.train_linear_head).

# ---------------------------------------------------------------------- factored features


@dataclass(frozen=True)
class FactoredFeatures:
    """Features [N, T, sum(D_l)] as per-level tables of distinct rows and row indices.

    Level l contributes the columns `tables[l][indices[l]]`; the levels are concatenated in
    order. Each table holds distinct rows in a canonical order (sorted by their bytes), so the
    same features give the same factorisation whether they arrive as dense arrays or as codes.
    """

    tables: tuple[torch.Tensor, ...]  # float64 [R_l, D_l]
    indices: tuple[torch.Tensor, ...]  # int64 [N, T]

    @property
    def n(self) -> int:
        return int(self.indices[0].shape[0])

    @property
    def steps(self) -> int:
        return int(self.indices[0].shape[1])

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(t.shape[1]) for t in self.tables)

    @property
    def width(self) -> int:
        return sum(self.widths)

    def dense(self) -> np.ndarray:
        """The features as one float64 array [N, T, D] (for checks; training never needs it)."""
        parts = [table[index].numpy() for table, index in zip(self.tables, self.indices, strict=True)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def _canonical_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a float64 [M, D] array sorted by their bytes, and each row's index."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if rows.shape[0] == 0:
        return rows, np.zeros(0, np.int64)
    # Bytes, not values: -0.0 and 0.0 (and NaNs) stay apart, so the table reproduces the input
    # exactly.
    keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], np.asarray(inverse, dtype=np.int64).reshape(-1)


def factor_dense(features: np.ndarray, widths: Sequence[int] | None = None) -> FactoredFeatures:
    """Factor float [N, T, D] features; `widths` splits D into levels (default: one level)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 3:
        raise ConfigError(f"head features must be [N, T, D], got shape {list(features.shape)}")
    n, steps, width = features.shape
    widths = (width,) if widths is None else tuple(int(w) for w in widths)
    if sum(widths) != width or any(w < 1 for w in widths):
        raise ConfigError(f"level widths {list(widths)} do not add up to the feature width {width}")
    tables, indices = [], []
    start = 0
    for level_width in widths:
        block = features[:, :, start : start + level_width].reshape(n * steps, level_width)
        table, inverse = _canonical_rows(block)
        tables.append(torch.from_numpy(table))
        indices.append(torch.from_numpy(inverse.reshape(n, steps)))
        start += level_width
    return FactoredFeatures(tuple(tables), tuple(indices))


def factor_codes(tables: Sequence[np.ndarray], codes: Sequence[np.ndarray]) -> FactoredFeatures:
    """Factor features given as codes: level l is `tables[l][codes[l]]` (no dense array built).

    Gives exactly what `factor_dense` gives on the dense features (codes whose rows are equal
    byte for byte share one table row).
    """
    out_tables, out_indices = [], []
    for table, level_codes in zip(tables, codes, strict=True):
        level_codes = np.asarray(level_codes, dtype=np.int64)
        used = np.unique(level_codes)
        rows, inverse = _canonical_rows(np.asarray(table, dtype=np.float64)[used])
        index = inverse[np.searchsorted(used, level_codes)] if used.size else level_codes.copy()
        out_tables.append(torch.from_numpy(rows))
        out_indices.append(torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)))
    return FactoredFeatures(tuple(out_tables), tuple(out_indices))


def factor_view(view, encoded, rows: np.ndarray) -> FactoredFeatures:
    """The features of a `toc.eval.variants.ChannelView` on an `EncodedSet`'s rows, factored."""
    tables = [encoded.codebooks[level][:, channels] for level, channels in zip(view.levels, view.channels, strict=True)]
    codes = [encoded.codes[level][rows] for level in view.levels]
    return factor_codes(tables, codes)


def as_factored(features, widths: Sequence[int] | None = None) -> FactoredFeatures:
    return features if isinstance(features, FactoredFeatures) else factor_dense(features, widths)


# ---------------------------------------------------------------------- one head's arithmetic


class _Weights:
    """A head's parameters: the first layer split into one block per level, each its own tensor."""

    def __init__(self, w1: list[torch.Tensor], b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor):
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2

    def tensors(self) -> list[torch.Tensor]:
        return [*self.w1, self.b1, self.w2, self.b2]


@dataclass
class _Hidden:
    """The first layer on one batch, kept per distinct input row of the batch.

    A batch's input rows are tuples of table rows (one per level). `values[r]` is the first
    layer's output for distinct tuple r; `inverse` [B, T] maps every (clip, segment) to its
    tuple; `levels` holds per level the distinct table rows used (`rows`) and, with several
    levels, each tuple's position among them (`of_tuple`).
    """

    values: torch.Tensor  # float64 [R, D']
    inverse: torch.Tensor  # int64 [B, T]
    rows: list[torch.Tensor]  # per level: float64 [U_l, D_l]
    of_tuple: list[torch.Tensor] | None  # per level: int64 [R] (None with one level)


def _first_layer(weights: _Weights, tables: Sequence[torch.Tensor], index: Sequence[torch.Tensor]) -> _Hidden:
    """b1 + sum_l W1_l x_l, computed once per distinct row of the batch (the rows are code rows)."""
    rows, outputs, inverses = [], [], []
    for level, (table, level_index) in enumerate(zip(tables, index, strict=True)):
        distinct, inverse = torch.unique(level_index, sorted=True, return_inverse=True)
        level_rows = table.index_select(0, distinct)
        if level == 0:
            outputs.append(torch.addmm(weights.b1, level_rows, weights.w1[0].t()))
        else:
            outputs.append(torch.mm(level_rows, weights.w1[level].t()))
        rows.append(level_rows)
        inverses.append(inverse)
    if len(tables) == 1:
        return _Hidden(outputs[0], inverses[0], rows, None)
    # Distinct tuples of the batch: a mixed-radix number per (clip, segment), then unique.
    combined = inverses[0]
    for inverse, level_rows in zip(inverses[1:], rows[1:], strict=True):
        combined = combined * level_rows.shape[0] + inverse
    tuples, inverse = torch.unique(combined, sorted=True, return_inverse=True)
    of_tuple = []
    for level_rows in reversed(rows):
        of_tuple.append(tuples % level_rows.shape[0])
        tuples = tuples // level_rows.shape[0]
    of_tuple.reverse()
    values = outputs[0].index_select(0, of_tuple[0])
    for output, position in zip(outputs[1:], of_tuple[1:], strict=True):
        values.add_(output.index_select(0, position))
    return _Hidden(values, inverse, rows, of_tuple)


def _clip_max(hidden: _Hidden) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over each clip's segments per unit [B, D'], and which distinct tuple won it [B, D'].

    A clip often repeats a code over segments; a repeat cannot change the max, so only each
    tuple's first segment in the clip enters (in segment order). embedding_bag's max then reads
    those rows in place (no [B, T, D'] copy). Ties go to the earliest segment, as torch.max does.
    """
    inverse = hidden.inverse
    n, steps = inverse.shape
    earlier = torch.ones(steps, steps, dtype=torch.bool).tril_(-1)  # [t, s]: s < t
    repeat = ((inverse.unsqueeze(2) == inverse.unsqueeze(1)) & earlier).any(dim=2)
    first = ~repeat
    counts = first.sum(dim=1)
    offsets = torch.zeros(n, dtype=torch.int64)
    torch.cumsum(counts[:-1], dim=0, out=offsets[1:])
    pooled, _, _, winner = torch.embedding_bag(hidden.values, inverse[first], offsets, False, 2)
    return pooled, winner


def _logits(kind: str, weights: _Weights, hidden: _Hidden) -> torch.Tensor:
    """clip: [B, C]; segment: [B*T, C] (computed per distinct tuple, then gathered)."""
    if kind == "clip":
        return torch.addmm(weights.b2, _clip_max(hidden)[0], weights.w2.t())
    per_tuple = torch.addmm(weights.b2, hidden.values, weights.w2.t())
    return per_tuple.index_select(0, hidden.inverse.reshape(-1))


def _gradients(kind, weights, alphas, tables, index, targets):
    """Gradients of the head's loss on one batch: (per-tensor list as weights.tensors(), alpha grad)."""
    hidden = _first_layer(weights, tables, index)
    if kind == "clip":
        pooled, winner = _clip_max(hidden)
        logits = torch.addmm(weights.b2, pooled, weights.w2.t())
        rows_out = logits.shape[0]
        # Cross-entropy, mean over clips: (softmax - one_hot) / B.
        grad_logits = torch.softmax(logits, dim=1).mul_(1.0 / rows_out)
        grad_logits[torch.arange(rows_out), targets] -= 1.0 / rows_out
        grad_w2 = torch.mm(grad_logits.t(), pooled)
        grad_b2 = grad_logits.sum(dim=0)
        grad_pooled = torch.mm(grad_logits, weights.w2)
        grad_b1 = grad_pooled.sum(dim=0)
        # Only the tuple that wins a unit's max passes that unit's gradient on, straight to the
        # table row of each level that the tuple holds.
        grad_w1 = []
        for level, level_rows in enumerate(hidden.rows):
            won = winner if hidden.of_tuple is None else hidden.of_tuple[level][winner]
            per_row = torch.zeros(level_rows.shape[0], grad_pooled.shape[1], dtype=torch.float64)
            per_row.scatter_add_(0, won, grad_pooled)
            grad_w1.append(torch.mm(per_row.t(), level_rows))
        return [*grad_w1, grad_b1, grad_w2, grad_b2], None
    else:
        per_tuple = torch.addmm(weights.b2, hidden.values, weights.w2.t())
        flat_inverse = hidden.inverse.reshape(-1)
        logits = per_tuple.index_select(0, flat_inverse)
        rows_out = logits.shape[0]
        y = targets.reshape(rows_out, -1)
        # BCEWithLogits, mean over all entries.
        grad_logits = (torch.sigmoid(logits) - y).div_(y.numel())
        # ExpLogLoss: -mean_rows sum_c y_c w_c log_softmax_c with w_c = exp(-alpha_c) (float32).
        exp_alpha = torch.exp(-alphas)
        yw = y * exp_alpha.to(torch.float64)
        grad_logits.add_((torch.softmax(logits, dim=1) * yw.sum(dim=1, keepdim=True) - yw).div_(rows_out))
        grad_w = -(y * torch.log_softmax(logits, dim=1)).sum(dim=0).div_(rows_out)
        alpha_grad = -(grad_w.to(torch.float32) * exp_alpha)
        # Segments with the same tuple share one row of the second layer's input.
        grad_per_tuple = torch.zeros_like(per_tuple).index_add_(0, flat_inverse, grad_logits)
        grad_w2 = torch.mm(grad_per_tuple.t(), hidden.values)
        grad_b2 = grad_logits.sum(dim=0)
        grad_values = torch.mm(grad_per_tuple, weights.w2)
        grad_b1 = grad_values.sum(dim=0)
    grad_w1 = []
    if hidden.of_tuple is None:
        grad_w1.append(torch.mm(grad_values.t(), hidden.rows[0]))
    else:
        for level_rows, position in zip(hidden.rows, hidden.of_tuple, strict=True):
            per_row = torch.zeros(level_rows.shape[0], grad_values.shape[1], dtype=torch.float64)
            per_row.index_add_(0, position, grad_values)
            grad_w1.append(torch.mm(per_row.t(), level_rows))
    return [*grad_w1, grad_b1, grad_w2, grad_b2], alpha_grad


def _clip_(grads: list[torch.Tensor], max_norm: float) -> None:
    """In place: scale `grads` so their joint L2 norm is at most max_norm (as clip_grad_norm_)."""
    norms = torch._foreach_norm(grads) if len(grads) > 1 else [torch.linalg.vector_norm(grads[0])]
    total = torch.linalg.vector_norm(torch.stack(norms))
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(coefficient)


def _predict(kind: str, weights: _Weights, features: FactoredFeatures, batch_size: int) -> np.ndarray:
    n, steps = features.n, features.steps
    outputs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = [level_index[start : start + batch_size] for level_index in features.indices]
            logits = _logits(kind, weights, _first_layer(weights, features.tables, index))
            if kind == "clip":
                outputs.append(torch.argmax(logits, dim=-1).numpy().astype(np.int64))
            else:
                outputs.append((torch.sigmoid(logits) > 0.5).numpy().reshape(-1, steps, logits.shape[-1]))
    if not outputs:
        n_out = int(weights.b2.shape[0])
        return np.zeros((0,), np.int64) if kind == "clip" else np.zeros((0, steps, n_out), bool)
    return np.concatenate(outputs)


class FactoredPredictor(HeadPredictor):
    """Predictions of a head trained here, on dense or factored features (same numbers either way)."""

    def __init__(self, kind: str, weights: _Weights, batch_size: int = 1024):
        self.kind, self._weights, self.batch_size = kind, weights, batch_size

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(w.shape[1]) for w in self._weights.w1)

    def predict(self, features) -> np.ndarray:
        """clip: int64 [N] argmax (ties → lowest index); segment: bool [N,T,C] at sigmoid > 0.5."""
        return _predict(self.kind, self._weights, as_factored(features, self.widths), self.batch_size)

    @property
    def module(self) -> nn.Module:
        """The head as the reference module (`linear` / `event_classifier` keys), a copy."""
        w = self._weights
        width, n_out = sum(self.widths), int(w.b2.shape[0])
        module = ClipHead(width, n_out) if self.kind == "clip" else SegmentHead(width, n_out)
        with torch.no_grad():
            module.linear.weight.copy_(torch.cat(w.w1, dim=1))
            module.linear.bias.copy_(w.b1)
            module.event_classifier.weight.copy_(w.w2)
            module.event_classifier.bias.copy_(w.b2)
        return module


# ---------------------------------------------------------------------- jobs and groups


FactoredForEpoch = FactoredFeatures | np.ndarray | Callable[[int], "FactoredFeatures | np.ndarray"]


@dataclass
class LinearHeadJob:
    """One head to train: what `toc.eval.heads.train_linear_head` takes, with factored features.

    `features` is FactoredFeatures, a dense float [N,T,D] array, or a function of the epoch
    returning either (re-encoding per epoch). `widths` splits dense features into levels.
    `observe`, if given, is called after each epoch's judge with the same arguments; what it
    returns comes back per epoch in `GroupedHeadResult.observed`. (In worker processes a judge's
    side effects stay in the worker: what a caller needs from every epoch comes back this way.)
    """

    kind: str
    features: FactoredForEpoch
    targets: np.ndarray
    n_outputs: int
    seed: int
    judge: EpochJudge
    key: Hashable = None
    widths: tuple[int, ...] | None = None
    observe: Callable[[int, HeadPredictor], object] | None = None


@dataclass
class GroupedHeadResult(LinearHeadResult):
    """A `LinearHeadResult` with what the job's `observe` returned after every epoch."""

    observed: list = field(default_factory=list)


@dataclass
class _HeadState:
    job: LinearHeadJob
    weights: _Weights
    alphas: torch.Tensor | None
    generator: torch.Generator
    targets: torch.Tensor
    features: FactoredFeatures
    predictor: FactoredPredictor
    history: list[EpochRecord] = field(default_factory=list)
    observed: list = field(default_factory=list)
    best_score: float = -np.inf
    best_epoch: int = 0
    best_state: list[torch.Tensor] | None = None

    def parameters(self) -> list[torch.Tensor]:
        return self.weights.tensors() + ([self.alphas] if self.alphas is not None else [])


def _features_for(job: LinearHeadJob, epoch: int) -> FactoredFeatures:
    features = job.features(epoch) if callable(job.features) else job.features
    return as_factored(features, job.widths)


def _new_state(job: LinearHeadJob) -> _HeadState:
    if job.kind not in ("clip", "segment"):
        raise ConfigError(f"unknown task kind {job.kind!r}")
    features = _features_for(job, 0)
    if features.n == 0:
        raise ConfigError("no training clips: the split left the training set empty")
    # The initial weights are exactly today's: the reference modules built under the seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        module = ClipHead(features.width, job.n_outputs) if job.kind == "clip" else SegmentHead(features.width, job.n_outputs)
        exp_log = ExpLogLoss(job.n_outputs) if job.kind == "segment" else None
    w1 = module.linear.weight.detach()
    blocks, start = [], 0
    for width in features.widths:
        blocks.append(w1[:, start : start + width].clone())
        start += width
    weights = _Weights(
        blocks, module.linear.bias.detach().clone(), module.event_classifier.weight.detach().clone(),
        module.event_classifier.bias.detach().clone(),
    )
    alphas = torch.stack([a.detach() for a in exp_log.alphas]).clone() if exp_log is not None else None
    if job.kind == "clip":
        targets = torch.from_numpy(np.asarray(job.targets, dtype=np.int64))
    else:
        targets = torch.from_numpy(np.asarray(job.targets, dtype=np.float64))
    if targets.shape[0] != features.n:
        raise ConfigError(f"{targets.shape[0]} targets for {features.n} training clips")
    return _HeadState(
        job, weights, alphas, torch.Generator().manual_seed(job.seed), targets, features,
        FactoredPredictor(job.kind, weights),
    )


class _Adam:
    """Adam (PyTorch's defaults, no weight decay) over a list of tensors, tensor by tensor.

    Calls the fused kernel directly where torch has it for CPU (2.4+): one pass per tensor,
    and no `torch.optim` import (whose first step pulls in torch._dynamo, several seconds).
    Elsewhere, the single-tensor formula of `torch.optim.Adam`. Either way each tensor's update
    reads only that tensor's state, so a head's update never depends on the other heads.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, parameters: list[torch.Tensor]):
        self.parameters = parameters
        self.exp_avgs = [torch.zeros_like(p) for p in parameters]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in parameters]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in parameters]
        self.by_dtype: dict[torch.dtype, list[int]] = {}
        for i, p in enumerate(parameters):
            self.by_dtype.setdefault(p.dtype, []).append(i)

    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        beta1, beta2 = self.betas
        if _fused_adam_available():
            for members in self.by_dtype.values():
                steps = [self.steps[i] for i in members]
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(
                    [self.parameters[i] for i in members], [grads[i] for i in members],
                    [self.exp_avgs[i] for i in members], [self.exp_avg_sqs[i] for i in members], [],
                    steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
                    amsgrad=False, maximize=False,
                )
            return
        for p, g, m, v, t in zip(self.parameters, grads, self.exp_avgs, self.exp_avg_sqs, self.steps, strict=True):
            t += 1
            step = float(t)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / (1 - beta1**step))


_FUSED_ADAM: bool | None = None


def _fused_adam_available() -> bool:
    global _FUSED_ADAM
    if _FUSED_ADAM is None:
        try:
            p, g = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
            m, v, t = torch.zeros_like(p), torch.zeros_like(p), torch.ones((), dtype=torch.float32)
            torch._fused_adam_([p], [g], [m], [v], [], [t], lr=0.1, beta1=0.9, beta2=0.999,
                               weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
            _FUSED_ADAM = True
        except (AttributeError, NotImplementedError, RuntimeError):  # pragma: no cover - older torch
            _FUSED_ADAM = False
    return _FUSED_ADAM


class _Stopped(Exception):
    """Another worker failed or the caller was interrupted: stop this worker's heads."""


def _train_group(states: list[_HeadState], config: LinearHeadConfig, stop: threading.Event | None = None) -> None:
    """Train heads in lockstep: per step every head's gradients, then one Adam call for all."""
    n = states[0].features.n
    if any(state.features.n != n for state in states):
        raise ConfigError("heads trained in one group need the same number of training clips")
    optimizer = _Adam([p for state in states for p in state.parameters()])
    lr = config.lr
    milestones: dict[int, int] = {}
    for m in config.milestones:
        milestones[m] = milestones.get(m, 0) + 1
    for epoch in range(config.epochs):
        if epoch > 0:
            for state in states:
                if callable(state.job.features):
                    state.features = _features_for(state.job, epoch)
        orders = [torch.randperm(n, generator=state.generator) for state in states]
        for start in range(0, n, config.batch_size):
            if stop is not None and stop.is_set():
                raise _Stopped
            all_grads: list[torch.Tensor] = []
            for state, order in zip(states, orders, strict=True):
                rows = order[start : start + config.batch_size]
                index = [level_index.index_select(0, rows) for level_index in state.features.indices]
                grads, alpha_grad = _gradients(
                    state.job.kind, state.weights, state.alphas, state.features.tables, index,
                    state.targets[rows],
                )
                # The reference clips each module on its own norm.
                _clip_(grads, config.clip_norm)
                if alpha_grad is not None and config.clip_loss_alphas:
                    _clip_([alpha_grad], config.clip_norm)
                all_grads += grads if alpha_grad is None else [*grads, alpha_grad]
            optimizer.step(all_grads, lr)
        # MultiStepLR: at each milestone the learning rate is multiplied by gamma (per count).
        if epoch + 1 in milestones:
            lr = lr * config.gamma ** milestones[epoch + 1]
        for state in states:
            score, metrics = state.job.judge(epoch, state.predictor)
            state.history.append(EpochRecord(epoch, float(score), metrics))
            if state.job.observe is not None:
                state.observed.append(state.job.observe(epoch, state.predictor))
            if score > state.best_score:
                state.best_score, state.best_epoch = score, epoch
                state.best_state = [t.detach().clone() for t in state.weights.tensors()]
    for state in states:
        if state.best_state is not None:
            for t, best in zip(state.weights.tensors(), state.best_state, strict=True):
                t.copy_(best)
            state.best_state = None


def _partition(costs: Sequence[int], workers: int) -> list[list[int]]:
    """Split indices into at most `workers` groups of similar total cost (largest first)."""
    bins: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        target = loads.index(min(loads))
        bins[target].append(i)
        loads[target] += costs[i]
    return [sorted(b) for b in bins if b]


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup (v2) CPU quota if any."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max", encoding="ascii").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


_THREADS_LOCK = threading.Lock()


def _parallel_mode(parallel: str) -> str:
    if parallel not in ("auto", "process", "thread"):
        raise ConfigError(f"unknown head parallelism {parallel!r}; choose auto, process or thread")
    if parallel != "auto":
        return parallel
    # Processes sidestep the GIL, which threads stepping through many small ops keep passing back
    # and forth (and which stalls both when the OS preempts its holder on a busy machine). fork
    # shares the heads' data without copying or pickling it; where fork is not the safe default
    # (macOS, Windows) threads are used.
    return "process" if sys.platform.startswith("linux") else "thread"


def _portable(error: BaseException) -> BaseException:
    """The error itself if it survives pickling, else a TocError with its message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any pickling failure
        return TocError(f"{type(error).__name__}: {error}")


def _process_worker(states: list[_HeadState], group: list[int], config: LinearHeadConfig, threads: int, conn) -> None:
    """In a forked child: train `group`, send back each head's weights, best epoch and history."""
    try:
        torch.set_num_threads(threads)
        with torch.no_grad():
            _train_group([states[i] for i in group], config)
        payload = ("ok", [
            ([t.numpy() for t in states[i].weights.tensors()], states[i].best_epoch, states[i].history, states[i].observed)
            for i in group
        ])
    except BaseException as error:  # noqa: BLE001 - everything goes back to the parent
        payload = ("error", _portable(error))
    conn.send(payload)
    conn.close()


def _run_processes(states: list[_HeadState], groups: list[list[int]], config: LinearHeadConfig, threads: int) -> None:
    context = multiprocessing.get_context("fork")
    workers = []
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a process with threads (torch's idle intra-op pool);
        # the child only runs torch on one thread and numpy, and never takes a lock of theirs.
        warnings.simplefilter("ignore", DeprecationWarning)
        for group in groups:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_process_worker, args=(states, group, config, threads, send), daemon=True)
            process.start()
            send.close()
            workers.append((process, receive, group))
    try:
        pending = {receive: (process, group) for process, receive, group in workers}
        while pending:
            for receive in multiprocessing.connection.wait(list(pending)):
                process, group = pending.pop(receive)
                try:
                    status, payload = receive.recv()
                except EOFError:
                    process.join(5)
                    raise TocError(f"a head-training worker process died (exit code {process.exitcode})") from None
                if status == "error":
                    raise payload
                for i, (tensors, best_epoch, history, observed) in zip(group, payload, strict=True):
                    for t, value in zip(states[i].weights.tensors(), tensors, strict=True):
                        t.copy_(torch.from_numpy(value))
                    states[i].best_epoch, states[i].history, states[i].observed = best_epoch, history, observed
    finally:
        for process, receive, _ in workers:
            if process.is_alive():
                process.terminate()
            process.join()
            receive.close()


def train_linear_heads(
    jobs: Sequence[LinearHeadJob], config: LinearHeadConfig, *, workers: int | None = None,
    parallel: str = "auto",
) -> list[GroupedHeadResult]:
    """Train every job's head with `config`; one result per job, in order.

    Jobs with the same number of training clips share lockstep groups, spread over `workers`
    (default: the usable CPU cores) forked processes or threads (`parallel`: auto = processes
    on Linux), each on `config.threads` intra-op threads (default 1). A head's result does not
    depend on the other jobs, on `workers`, on `parallel` or on the grouping. With processes
    the judges run in the workers, so their side effects stay there.
    """
    if not jobs:
        return []
    workers = usable_cpus() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"head workers must be at least 1, got {workers}")
    mode = _parallel_mode(parallel)
    threads = 1 if config.threads is None else config.threads
    states = [_new_state(job) for job in jobs]
    by_size: dict[int, list[int]] = {}
    for i, state in enumerate(states):
        by_size.setdefault(state.features.n, []).append(i)
    groups: list[list[int]] = []
    for indices in by_size.values():
        # A head's cost is about its first layer's size (width x width multiply-adds per row).
        costs = [states[i].features.width ** 2 for i in indices]
        for part in _partition(costs, min(workers, len(indices))):
            groups.append([indices[i] for i in part])

    stop = threading.Event()

    def run(group: list[int]) -> None:
        # Every worker thread sets its own intra-op thread count (OpenMP keeps it per thread).
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                _train_group([states[i] for i in group], config, stop)
        except BaseException:
            stop.set()  # the other workers stop at their next step instead of finishing
            raise

    with _THREADS_LOCK, torch_threads(threads):
        if workers == 1 or len(groups) == 1:
            for group in groups:
                run(group)
        elif mode == "process":
            _run_processes(states, groups, config, threads)
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(groups))) as pool:
                futures = [pool.submit(run, group) for group in groups]
                try:
                    errors = [f.exception() for f in futures]
                except BaseException:  # e.g. Ctrl-C while waiting
                    stop.set()
                    raise
                # The first real error, not a worker that merely stopped because of it.
                for error in sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, _Stopped)):
                    raise error
    return [GroupedHeadResult(state.predictor, state.best_epoch, state.history, state.observed) for state in states]
