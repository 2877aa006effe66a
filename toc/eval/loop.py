"""The one evaluation loop: per direction, variant, head and seed, train (or not) and score.

It reads codes from an encode-once cache, views them through a variant, trains (or builds)
a head on one modality and scores the other; each result is a `ResultRecord`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from toc.codebook.selection import SelectionFile
from toc.data.base import TaskData
from toc.errors import ConfigError, SettingsError
from toc.eval.cache import CodeCache, EncodedSet
from toc.eval.heads import (
    HEADS,
    ClipPrototypePredictor,
    HeadPredictor,
    LinearHeadConfig,
    SegmentPrototypePredictor,
    train_linear_head,
)
from toc.eval.metrics import clip_accuracy, segment_metrics
from toc.eval.protocols import (
    DIRECTIONS,
    PROTOCOLS,
    DirectionPlan,
    Rows,
    default_n_epoch,
    epochs_to_train,
    plan_direction,
)
from toc.eval.records import ResultRecord
from toc.eval.variants import ChannelView, check_applicable, family_of_checkpoint, resolve_view
from toc.progress import LogFn, no_log


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate; every combination of directions × variants × heads × seeds is run."""

    variants: Sequence[str]
    directions: Sequence[str] = DIRECTIONS
    heads: Sequence[str] = ("linear",)
    protocol: str = "strict"
    seeds: Sequence[int] = (0,)
    epochs: int | None = None  # None: protocols.default_n_epoch
    batch_size: int = 80
    dtype: str = "float32"
    selection: SelectionFile | None = None  # for the +toc variants
    split_seed: int = 0
    head_threads: int | None = None  # torch threads for linear-head steps (None: torch default)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; choose from {', '.join(PROTOCOLS)}")
        for head in self.heads:
            if head not in HEADS:
                raise ConfigError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
        if not self.seeds:
            raise ConfigError("no seed given")
        if self.batch_size < 1:
            raise SettingsError(f"{{}} must be at least 1, got {self.batch_size}", settings=("batch_size",))


def score(kind: str, predicted: np.ndarray, labels: np.ndarray, n_classes: int, protocol: str, batch_size: int) -> dict[str, float]:
    """The metrics dict: `accuracy` for clip tasks; P/R/F1/macro-F1 for segment tasks (all %)."""
    if kind == "clip":
        return {"accuracy": clip_accuracy(predicted, labels)}
    return segment_metrics(predicted, labels, n_classes, protocol, batch_size)


class _Features:
    """Float64 feature arrays per (view, encoded set, rows), built once and reused by every head."""

    def __init__(self):
        self._store: dict[tuple, np.ndarray] = {}

    def get(self, view: ChannelView, encoded: EncodedSet, rows: Rows) -> np.ndarray:
        key = (view.variant, id(encoded), rows.set_name, rows.rows.tobytes())
        if key not in self._store:
            self._store[key] = view.features(encoded, rows.rows)
        return self._store[key]


def run_evaluation(data: TaskData, cache: CodeCache, request: EvalRequest, *, log: LogFn = no_log) -> Iterator[ResultRecord]:
    """Yield one record per (direction, variant, head, seed), encoding each set at most once."""
    say = log
    model_family = getattr(cache.source, "family", None)
    check_applicable(request.variants, cache.source.levels, model_family)
    variant_family = family_of_checkpoint(model_family, cache.source.levels)
    n_epoch = request.epochs if request.epochs is not None else default_n_epoch(data.task, request.protocol, variant_family)
    epochs = epochs_to_train(request.protocol, n_epoch, cache.source.epoch) if "linear" in request.heads else None
    notes = []
    if request.protocol == "reference":
        notes.append(
            "reference quirk Q2 approximated: one dropout-on encoding of the training set per seed, "
            "reused by every epoch (the reference draws new dropout masks each epoch)"
        )
        if cache.source.epoch is None and epochs is not None:
            notes.append("checkpoint stores no epoch: trained the requested epochs (quirk Q1 not applied)")
        if variant_family == "fcid":
            notes.append(
                "FCID reference: n_epoch and the epoch rule of the published FCID scripts; a segment F1 "
                "with P + R = 0 is reported as 0 (the published AVVP script divides by zero there)"
            )
    selection = request.selection
    if selection is not None and selection.checkpoint_sha256 not in ("", cache.source.sha256):
        notes.append(
            f"the selection file {selection.source} was made from checkpoint sha256 "
            f"{selection.checkpoint_sha256[:16]}..., not from this checkpoint"
        )
        say(f"warning: {notes[-1]}")
    for direction in request.directions:
        plan = plan_direction(
            data, direction, request.protocol, split_seed=request.split_seed, variant_family=variant_family,
        )
        train_set, eval_set = data.sets[plan.train.set_name], data.sets[plan.evaluate.set_name]
        say(f"{data.task} {direction}: train {train_set.name} ({len(plan.train)}), evaluate {eval_set.name} ({len(plan.evaluate)})")
        train_codes = cache.get(data.task, train_set, request.dtype)
        eval_codes = cache.get(data.task, eval_set, request.dtype)
        features = _Features()
        views = [resolve_view(name, train_codes.codebooks, request.selection) for name in request.variants]
        for view in views:
            for head in request.heads:
                for seed in request.seeds:
                    start = time.perf_counter()
                    trained_codes = train_codes
                    if plan.dropout_during_training:
                        trained_codes = cache.get(data.task, train_set, request.dtype, dropout_seed=seed)
                    record = _evaluate_one(
                        data, plan, view, head, seed, request, epochs, features,
                        trained_codes, train_codes, eval_codes,
                    )
                    record = replace(
                        record, seconds=round(time.perf_counter() - start, 4),
                        checkpoint_sha256=cache.source.sha256, notes=list(notes),
                    )
                    say(f"{data.task} {direction} {view.variant} {head} seed {seed}: {_short(record.metrics)}")
                    yield record


def _short(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())


def _labels(data: TaskData, rows: Rows) -> np.ndarray:
    return np.asarray(data.sets[rows.set_name].labels)[rows.rows]


def _evaluate_one(
    data: TaskData, plan: DirectionPlan, view: ChannelView, head: str, seed: int, request: EvalRequest,
    epochs: int | None, features: _Features, trained_codes: EncodedSet, train_codes: EncodedSet,
    eval_codes: EncodedSet,
) -> ResultRecord:
    n_classes = data.n_classes
    x_train = features.get(view, trained_codes, plan.train)
    y_train = _labels(data, plan.train)
    select_codes = eval_codes if plan.select.set_name == plan.evaluate.set_name else train_codes
    x_select = features.get(view, select_codes, plan.select) if len(plan.select) else None
    y_select = _labels(data, plan.select)
    x_eval = features.get(view, eval_codes, plan.evaluate)
    y_eval = _labels(data, plan.evaluate)
    x_same = features.get(view, train_codes, plan.same_modality) if len(plan.same_modality) else None
    y_same = _labels(data, plan.same_modality)

    def measure(predictor: HeadPredictor, x: np.ndarray | None, y: np.ndarray) -> dict[str, float] | None:
        if x is None:
            return None
        return score(data.kind, predictor.predict(x), y, n_classes, request.protocol, request.batch_size)

    best_epoch = None
    selection_metric = None
    if head == "prototype":
        predictor: HeadPredictor = (
            ClipPrototypePredictor(x_train, y_train, n_classes)
            if data.kind == "clip"
            else SegmentPrototypePredictor(x_train, y_train, n_classes)
        )
        val_metrics = measure(predictor, x_select, y_select)
        trained_epochs = None
    else:
        if epochs is None:  # pragma: no cover - set whenever a linear head is requested
            raise ConfigError("no epoch count for the linear head")
        selection_metric = plan.selection_metric
        n_outputs = n_classes if data.kind == "clip" else n_classes + 1
        config = LinearHeadConfig(
            epochs=epochs, batch_size=request.batch_size, clip_loss_alphas=data.task == "ave-avvp",
            threads=request.head_threads,
        )

        own_best: dict[str, float] = {}

        def judge(_epoch: int, predictor: HeadPredictor) -> tuple[float, dict]:
            if plan.same_modality_own_best:
                same_now = measure(predictor, x_same, y_same) or {}
                if same_now and same_now.get(selection_metric, -np.inf) > own_best.get(selection_metric, -np.inf):
                    own_best.clear()
                    own_best.update(same_now)
            metrics = measure(predictor, x_select, y_select)
            # Without validation rows there is nothing to select on: scoring by the epoch number
            # keeps the final head.
            if metrics is None:
                return float(_epoch), {}
            return metrics[selection_metric], metrics

        result = train_linear_head(data.kind, x_train, y_train, n_outputs, config, seed, judge)
        predictor = result.predictor
        best_epoch = result.best_epoch
        val_metrics = result.best.metrics or None
        trained_epochs = epochs
    metrics = measure(predictor, x_eval, y_eval) or {}
    same = measure(predictor, x_same, y_same) or {}
    if head != "prototype" and plan.same_modality_own_best and own_best:
        same = dict(own_best)  # the FCID AVE script's independent same-modality maximum
    return ResultRecord(
        task=data.task, direction=plan.direction, variant=view.variant, head=head, protocol=request.protocol,
        seed=seed, metrics=metrics, same_modality=same, val_metrics=val_metrics,
        n_train=len(plan.train), n_eval=len(plan.evaluate), n_val=len(plan.select),
        n_same_modality=len(plan.same_modality), train_set=plan.train.set_name, eval_set=plan.evaluate.set_name,
        split=plan.split, channels=view.channels_json(), levels=list(view.levels), checkpoint_sha256="",
        dtype=request.dtype, epochs_trained=trained_epochs, best_epoch=best_epoch,
        selection_metric=selection_metric, seconds=0.0,
    )
