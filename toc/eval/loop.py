"""The one evaluation loop: per split seed, direction, variant, head and seed, train (or not)
and score.

It reads codes from an encode-once cache, views them through a variant, trains (or builds)
a head on one modality and scores the other; each result is a `ResultRecord` with the per-unit
outcomes a bootstrap over the evaluated clips or videos needs. `validation_fits` is the same
fitting scored on the validation rows alone, for the budget sweep of `--channels auto`
(toc.eval.budget).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hdcid.vocabulary import DEFAULT_DTYPE
from toc.codebook.selection import SelectionFile
from toc.data.base import TaskData
from toc.errors import ConfigError, SettingsError
from toc.eval.cache import CodeCache, EncodedSet
from toc.eval.code_head import CodeIdInputs, code_counts, fit_code_head
from toc.eval.head_groups import GroupedHeadResult, LinearHeadJob, factor_view, train_linear_heads
from toc.eval.heads import (
    ClipPrototypePredictor,
    HeadPredictor,
    LinearHeadConfig,
    SegmentPrototypePredictor,
    train_linear_head,
)
from toc.eval.llp_metrics import LLPScores, ModalityParse, llp_scores
from toc.eval.metrics import clip_accuracy, correctness_parts, segment_count_parts, segment_metrics
from toc.eval.overlap import PretrainingList, apply_pretraining_overlap, overlap_note
from toc.eval.protocols import (
    DirectionPlan,
    Rows,
    default_n_epoch,
    epochs_to_train,
    plan_direction,
    reads_checkpoint_epoch,
)
from toc.eval.records import ResultRecord, parts_metrics, unit_ids_digest
from toc.eval.variants import ChannelView, check_applicable, method_of_checkpoint, resolve_view
from toc.progress import LogFn, no_log
from toc.vocabulary import (
    CODE_HEAD,
    DEFAULT_HEADS,
    DEFAULT_PROTOCOL,
    DEFAULT_SEEDS,
    DIRECTIONS,
    HEAD_BATCH_SIZE,
    HEAD_ENGINES,
    HEADS,
    PROTOCOLS,
)


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate; every combination of directions × variants × heads × seeds is run."""

    variants: Sequence[str]
    directions: Sequence[str] = DIRECTIONS
    heads: Sequence[str] = DEFAULT_HEADS
    protocol: str = DEFAULT_PROTOCOL
    seeds: Sequence[int] = DEFAULT_SEEDS
    epochs: int | None = None  # None: protocols.default_n_epoch
    batch_size: int = HEAD_BATCH_SIZE
    dtype: str = DEFAULT_DTYPE
    selection: SelectionFile | None = None  # for the +toc variants
    split_seed: int = 0
    head_threads: int | None = None  # torch threads for linear-head steps (None: torch default)
    # Several seeds of the strict video-level split (None: `split_seed` alone). Tasks with
    # predefined splits (AVE) and the reference protocol have one split: one is run.
    split_seeds: Sequence[int] | None = None
    pretraining: PretrainingList | None = None  # strict: evaluated ids checked against it
    # How the linear heads train (toc.eval.head_groups): grouped and single give identical records.
    head_engine: str = "grouped"
    head_workers: int | None = None  # grouped: worker processes (None: the usable CPU cores)
    # Selections that differ per run (budgets chosen on validation, `--channels auto`), keyed by
    # (split seed as the records give it, direction, variant, head); `selection` elsewhere.
    selections: Mapping[tuple[int | None, str, str, str], SelectionFile] | None = None

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
        if self.split_seeds is not None and (
            not self.split_seeds or len(set(self.split_seeds)) != len(self.split_seeds)
        ):
            raise SettingsError("{} must be distinct integers, at least one", settings=("split_seeds",))
        if self.head_engine not in HEAD_ENGINES:
            raise SettingsError(
                f"{{}} must be one of {', '.join(HEAD_ENGINES)}, got {self.head_engine!r}", settings=("head_engine",),
            )
        if self.head_workers is not None and self.head_workers < 1:
            raise SettingsError(f"{{}} must be at least 1, got {self.head_workers}", settings=("head_workers",))

    @property
    def all_split_seeds(self) -> tuple[int, ...]:
        return tuple(self.split_seeds) if self.split_seeds is not None else (self.split_seed,)

    def selection_for(self, split_seed: int | None, direction: str, variant: str, head: str) -> SelectionFile | None:
        """The selection a (split seed, direction, variant, head) reads: its own, else `selection`."""
        if self.selections is not None:
            own = self.selections.get((split_seed, direction, variant, head))
            if own is not None:
                return own
        return self.selection


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
        # The channels are part of the key: heads of one variant may read different selections.
        channels = tuple(c.tobytes() for c in view.channels)
        key = (view.variant, channels, id(encoded), rows.set_name, rows.rows.tobytes())
        if key not in self._store:
            self._store[key] = view.features(encoded, rows.rows)
        return self._store[key]


def linear_epochs(data: TaskData, cache: CodeCache, request: EvalRequest, method: str) -> int | None:
    """Epochs each linear head trains (None without a linear head): `request.epochs` or the
    protocol's n_epoch, less the checkpoint's epoch under the reference protocol (Q1)."""
    if "linear" not in request.heads:
        return None
    n_epoch = request.epochs if request.epochs is not None else default_n_epoch(data.task, request.protocol, method)
    checkpoint_epoch = cache.source.epoch if reads_checkpoint_epoch(request.protocol, request.heads) else None
    return epochs_to_train(request.protocol, n_epoch, checkpoint_epoch)


@dataclass(frozen=True)
class DirectionRun:
    """One direction of one split seed, as the loop runs it: the protocol's rows (after the
    pretraining-overlap policy) and the split seed its records carry (None: the split does not
    vary with the seed)."""

    split_seed: int | None
    direction: str
    plan: DirectionPlan
    overlap: dict | None


def direction_runs(data: TaskData, request: EvalRequest, method: str, *, log: LogFn = no_log) -> Iterator[DirectionRun]:
    """The (split seed, direction) runs of a request in the loop's order: a split that does not
    vary with its seed (predefined, reference) is run once."""
    split_seeds = request.all_split_seeds
    for split_seed, direction in itertools.product(split_seeds, request.directions):
        plan = plan_direction(data, direction, request.protocol, split_seed=split_seed, method=method)
        varies = plan.split.startswith("video-level")
        if not varies and split_seed != split_seeds[0]:
            log(f"{data.task} {direction}: {plan.split} split, so split seed {split_seed} is not run again")
            continue
        plan, overlap = apply_pretraining_overlap(data, plan, request.pretraining)
        yield DirectionRun(split_seed if varies else None, direction, plan, overlap)


def run_evaluation(data: TaskData, cache: CodeCache, request: EvalRequest, *, log: LogFn = no_log) -> Iterator[ResultRecord]:
    """Yield one record per (split seed, direction, variant, head, seed), encoding each set at
    most once. For segment tasks with both directions, the records of one split come together
    at its end: each carries the LLP scores that need both directions' heads."""
    say = log
    model_family = getattr(cache.source, "family", None)
    check_applicable(request.variants, cache.source.levels, model_family)
    method = method_of_checkpoint(model_family, cache.source.levels)
    checkpoint_epoch = cache.source.epoch if reads_checkpoint_epoch(request.protocol, request.heads) else None
    epochs = linear_epochs(data, cache, request, method)
    notes = _protocol_notes(request.protocol, method, checkpoint_epoch, epochs)
    selection = request.selection
    if selection is not None and selection.checkpoint_sha256 not in ("", cache.source.sha256):
        notes.append(
            f"the selection file {selection.source} was made from checkpoint sha256 "
            f"{selection.checkpoint_sha256[:16]}..., not from this checkpoint"
        )
        say(f"warning: {notes[-1]}")
    # Segment tasks with both directions: the records wait for the LLP scores of both heads.
    combine = data.kind == "segment" and set(DIRECTIONS) <= set(request.directions)
    pending: list[ResultRecord] = []
    parses: dict[tuple, dict[str, _Parse]] = {}
    for run in direction_runs(data, request, method, log=say):
        direction, overlap = run.direction, run.overlap
        record_notes = list(notes)
        if (note := overlap_note(overlap)) is not None:
            record_notes.append(note)
            say(f"warning: {data.task} {direction}: {note}")
        for record, parse in _direction_records(data, run.plan, request, epochs, cache, log=say, split_seed=run.split_seed):
            record = replace(
                record, notes=[*record_notes, *record.notes], split_seed=run.split_seed, pretrain_overlap=overlap,
            )
            if combine:
                pending.append(record)
                parses.setdefault((record.split_seed, record.variant, record.head, record.seed), {})[direction] = parse
            else:
                yield record
    for record in pending:
        key = (record.split_seed, record.variant, record.head, record.seed)
        yield replace(record, llp_both_directions=_both_directions(data, parses[key]))


def _protocol_notes(protocol: str, method: str | None, checkpoint_epoch: int | None,
                    epochs: int | None) -> list[str]:
    """What every record of a reference-protocol run says about the quirks it reproduces."""
    if protocol != "reference":
        return []
    notes = [
        "reference quirk Q2 approximated: one dropout-on encoding of the training set per seed, "
        "reused by every epoch (the reference draws new dropout masks each epoch)"
    ]
    if checkpoint_epoch is None and epochs is not None:
        notes.append("checkpoint stores no epoch: trained the requested epochs (quirk Q1 not applied)")
    if method == "fcid":
        notes.append(
            "FCID reference: n_epoch and the epoch rule of the published FCID scripts; a segment F1 "
            "with P + R = 0 is reported as 0 (the published AVVP script divides by zero there)"
        )
    return notes


def _direction_records(
    data: TaskData, plan: DirectionPlan, request: EvalRequest, epochs: int | None, cache: CodeCache,
    *, log: LogFn, split_seed: int | None = None,
) -> Iterator[tuple[ResultRecord, _Parse | None]]:
    """One direction's (record, segment parse) per variant × head × seed, each set encoded once
    and each view's features built once for all its heads."""
    train_set, eval_set = data.sets[plan.train.set_name], data.sets[plan.evaluate.set_name]
    log(f"{data.task} {plan.direction}: train {train_set.name} ({len(plan.train)}), evaluate {eval_set.name} ({len(plan.evaluate)})")
    train_codes = cache.get(data.task, train_set, request.dtype)
    eval_codes = cache.get(data.task, eval_set, request.dtype)
    features = _Features()
    views = {
        (name, head): resolve_view(
            name, train_codes.codebooks, request.selection_for(split_seed, plan.direction, name, head),
        )
        for name in request.variants for head in request.heads
    }
    trained: dict[tuple[int, int], _TrainedHead] = {}
    if epochs is not None and request.head_engine != "autograd":
        linear_views = [views[(name, "linear")] for name in request.variants]
        trained = _train_linear_heads(
            data, plan, linear_views, request, epochs, cache, train_codes, _select_codes(plan, train_codes, eval_codes),
        )
    for position, name in enumerate(request.variants):
        for head in request.heads:
            view = views[(name, head)]
            for seed in request.seeds:
                start = time.perf_counter()
                trained_codes = train_codes
                if plan.dropout_during_training:
                    trained_codes = cache.get(data.task, train_set, request.dtype, dropout_seed=seed)
                head_trained = trained.get((position, seed)) if head == "linear" else None
                record, parse = _evaluate_one(
                    data, plan, view, head, seed, request, epochs, features,
                    trained_codes, train_codes, eval_codes, head_trained,
                )
                shared = head_trained.seconds if head_trained is not None else 0.0
                record = replace(
                    record, seconds=round(time.perf_counter() - start + shared, 4),
                    checkpoint_sha256=cache.source.sha256,
                )
                log(f"{data.task} {plan.direction} {view.variant} {head} seed {seed}: {_short(record.metrics)}")
                yield record, parse


@dataclass(frozen=True)
class _Parse:
    """One direction's predictions on its evaluated videos (segment tasks)."""

    ids: tuple[str, ...]
    modality: str  # of the evaluated set: "audio" predicts audio events, "video" visual ones
    predicted: np.ndarray  # bool [N, T, C+1]
    labels: np.ndarray  # [N, T, C+1]


def _both_directions(data: TaskData, parses: dict[str, _Parse]) -> dict:
    """The LLP scores of the audio-visual parse: v2a's audio events and a2v's visual events on
    the videos both directions evaluate (in the audio side's order)."""
    by_modality = {p.modality: p for p in parses.values()}
    audio, video = by_modality.get("audio"), by_modality.get("video")
    if audio is None or video is None:
        return {"n_videos": 0, "undefined": "needs one direction evaluated on audio and one on video"}
    position = {vid: i for i, vid in enumerate(video.ids)}
    shared = [vid for vid in audio.ids if vid in position]
    if not shared:
        return {"n_videos": 0, "undefined": "the two directions evaluate no video in common"}
    audio_rows = np.array([i for i, vid in enumerate(audio.ids) if vid in position], dtype=np.int64)
    video_rows = np.array([position[vid] for vid in shared], dtype=np.int64)
    scores = llp_scores(
        ModalityParse(audio.predicted[audio_rows], audio.labels[audio_rows], shared),
        ModalityParse(video.predicted[video_rows], video.labels[video_rows], shared),
        n_classes=data.n_classes,
    )
    both = {k: v for k, v in scores.metrics.items() if k.endswith(("_av", "_type_at_av", "_event_at_av"))}
    return {"n_videos": len(shared), "metrics": both}


def _short(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())


def _labels(data: TaskData, rows: Rows) -> np.ndarray:
    return np.asarray(data.sets[rows.set_name].labels)[rows.rows]


def _evaluate_one(
    data: TaskData, plan: DirectionPlan, view: ChannelView, head: str, seed: int, request: EvalRequest,
    epochs: int | None, features: _Features, trained_codes: EncodedSet, train_codes: EncodedSet,
    eval_codes: EncodedSet, trained: _TrainedHead | None = None,
) -> tuple[ResultRecord, _Parse | None]:
    if head == CODE_HEAD:
        features = CodeIdInputs()  # the code-id head reads ids, never codeword vectors
    xy = _head_data(data, plan, view, features, trained_codes, train_codes, eval_codes,
                    dense_train=trained is None)
    fitted = _fit_head(data, plan, view, head, seed, request, epochs, xy, trained_codes, trained)
    predictor = fitted.predictor
    eval_predicted = predictor.predict(xy.x_eval)
    metrics = score(data.kind, eval_predicted, xy.y_eval, data.n_classes, request.protocol, request.batch_size)
    same = _measure(data, request, predictor, xy.x_same, xy.y_same) or {}
    if head == "linear" and plan.same_modality_own_best and fitted.own_best:
        same = dict(fitted.own_best)  # the FCID AVE script's independent same-modality maximum
    # The head is at its selected epoch now, so these are the outcomes behind val_metrics.
    val_parts = None if xy.x_select is None else unit_parts(data, predictor.predict(xy.x_select), xy.y_select)
    eval_ids = _ids(data, plan.evaluate)
    parse = None
    llp_per_video = None
    if data.kind == "segment":
        parse, llp = _segment_parse(data, plan, eval_ids, eval_predicted, xy.y_eval)
        metrics.update(llp.metrics)
        llp_per_video = {key: [float(v) for v in values] for key, values in llp.per_video.items()}
    record = ResultRecord(
        task=data.task, direction=plan.direction, variant=view.variant, head=head, protocol=request.protocol,
        seed=seed, metrics=metrics, same_modality=same, val_metrics=fitted.val_metrics,
        n_train=len(plan.train), n_eval=len(plan.evaluate), n_val=len(plan.select),
        n_same_modality=len(plan.same_modality), train_set=plan.train.set_name, eval_set=plan.evaluate.set_name,
        split=plan.split, channels=view.channels_json(), levels=list(view.levels), checkpoint_sha256="",
        dtype=request.dtype, epochs_trained=fitted.epochs_trained, best_epoch=fitted.best_epoch,
        selection_metric=fitted.selection_metric, seconds=0.0,
        unit="clip" if data.kind == "clip" else "video",
        parts_metrics=parts_metrics("clip" if data.kind == "clip" else "video", request.protocol),
        eval_parts=unit_parts(data, eval_predicted, xy.y_eval), eval_units_sha256=unit_ids_digest(eval_ids),
        val_parts=val_parts,
        val_units_sha256=None if xy.x_select is None else unit_ids_digest(_ids(data, plan.select)),
        val_split="evaluation" if plan.select.set_name == plan.evaluate.set_name else "validation",
        llp_per_video=llp_per_video,
    )
    return record, parse


@dataclass(frozen=True)
class _HeadData:
    """One view's inputs and labels for a head, on the rows the plan gives each role: training,
    selection (validation), evaluated and same-modality. An input is None where the role has no
    rows, and the training input where a group trained the head already (the evaluated input
    too when only the validation rows are scored: `validation_fits`)."""

    x_train: np.ndarray | None
    y_train: np.ndarray
    x_select: np.ndarray | None
    y_select: np.ndarray
    x_eval: np.ndarray | None
    y_eval: np.ndarray | None
    x_same: np.ndarray | None
    y_same: np.ndarray


def _select_codes(plan: DirectionPlan, train_codes: EncodedSet, eval_codes: EncodedSet) -> EncodedSet:
    """The codes of the selection rows: the training set's (strict), or the evaluated set's when
    the protocol selects on the evaluated rows (reference)."""
    return eval_codes if plan.select.set_name == plan.evaluate.set_name else train_codes


def _head_data(
    data: TaskData, plan: DirectionPlan, view: ChannelView, features: _Features | CodeIdInputs,
    trained_codes: EncodedSet, train_codes: EncodedSet, eval_codes: EncodedSet, *, dense_train: bool,
) -> _HeadData:
    select_codes = _select_codes(plan, train_codes, eval_codes)
    return _HeadData(
        x_train=features.get(view, trained_codes, plan.train) if dense_train else None,
        y_train=_labels(data, plan.train),
        x_select=features.get(view, select_codes, plan.select) if len(plan.select) else None,
        y_select=_labels(data, plan.select),
        x_eval=features.get(view, eval_codes, plan.evaluate),
        y_eval=_labels(data, plan.evaluate),
        x_same=features.get(view, train_codes, plan.same_modality) if len(plan.same_modality) else None,
        y_same=_labels(data, plan.same_modality),
    )


def _measure(data: TaskData, request: EvalRequest, predictor: HeadPredictor, x, y: np.ndarray) -> dict[str, float] | None:
    """The head's metrics on rows `x` (None where there are no such rows)."""
    if x is None:
        return None
    return score(data.kind, predictor.predict(x), y, data.n_classes, request.protocol, request.batch_size)


@dataclass(frozen=True)
class _FittedHead:
    """A head ready to predict, and what its fitting chose."""

    predictor: HeadPredictor
    val_metrics: dict[str, float] | None  # on the selection rows (at the chosen epoch)
    epochs_trained: int | None = None
    best_epoch: int | None = None
    selection_metric: str | None = None
    own_best: dict = field(default_factory=dict)  # FCID's same-modality maximum (else empty)


def _fit_head(
    data: TaskData, plan: DirectionPlan, view: ChannelView, head: str, seed: int, request: EvalRequest,
    epochs: int | None, xy: _HeadData, trained_codes: EncodedSet, trained: _TrainedHead | None,
) -> _FittedHead:
    n_classes = data.n_classes
    if head == CODE_HEAD:
        predictor: HeadPredictor = fit_code_head(data.kind, xy.x_train, xy.y_train, n_classes, code_counts(view, trained_codes))
        return _FittedHead(predictor, _measure(data, request, predictor, xy.x_select, xy.y_select))
    if head == "prototype":
        predictor = (
            ClipPrototypePredictor(xy.x_train, xy.y_train, n_classes)
            if data.kind == "clip"
            else SegmentPrototypePredictor(xy.x_train, xy.y_train, n_classes)
        )
        return _FittedHead(predictor, _measure(data, request, predictor, xy.x_select, xy.y_select))
    if epochs is None:  # pragma: no cover - set whenever a linear head is requested
        raise ConfigError("no epoch count for the linear head")
    return _fit_linear_head(data, plan, seed, request, epochs, xy, trained)


def _fit_linear_head(
    data: TaskData, plan: DirectionPlan, seed: int, request: EvalRequest, epochs: int, xy: _HeadData,
    trained: _TrainedHead | None,
) -> _FittedHead:
    """Train the linear head (or take the one its group trained), keeping the epoch the plan's
    selection rows score best."""
    selection_metric = plan.selection_metric
    n_outputs = data.n_classes if data.kind == "clip" else data.n_classes + 1
    config = _linear_config(data, request, epochs)
    own_best: dict[str, float] = {}

    def judge(_epoch: int, predictor: HeadPredictor) -> tuple[float, dict]:
        if plan.same_modality_own_best:
            same_now = _measure(data, request, predictor, xy.x_same, xy.y_same) or {}
            _keep_own_best(own_best, same_now, selection_metric)
        metrics = _measure(data, request, predictor, xy.x_select, xy.y_select)
        # Without validation rows there is nothing to select on: scoring by the epoch number
        # keeps the final head.
        if metrics is None:
            return float(_epoch), {}
        return metrics[selection_metric], metrics

    if trained is not None:  # trained with the other heads of this direction, same recipe
        result, own_best = trained.result, trained.own_best
    else:
        result = train_linear_head(data.kind, xy.x_train, xy.y_train, n_outputs, config, seed, judge)
    return _FittedHead(
        result.predictor, result.best.metrics or None, epochs_trained=epochs,
        best_epoch=result.best_epoch, selection_metric=selection_metric, own_best=own_best,
    )


def _segment_parse(data: TaskData, plan: DirectionPlan, eval_ids: list[str], predicted: np.ndarray,
                   labels: np.ndarray) -> tuple[_Parse, LLPScores]:
    """A segment direction's parse (kept for the LLP scores of both directions) and the LLP
    scores of its own modality."""
    modality = data.sets[plan.evaluate.set_name].modality
    parse = _Parse(tuple(eval_ids), modality, np.asarray(predicted, dtype=bool), labels)
    kind = {"audio": "audio", "video": "visual"}[modality]
    llp = llp_scores(**{kind: ModalityParse(predicted, labels, eval_ids)}, n_classes=data.n_classes)
    return parse, llp


def _ids(data: TaskData, rows: Rows) -> list[str]:
    ids = data.sets[rows.set_name].ids
    return [str(ids[i]) for i in rows.rows]


def unit_parts(data: TaskData, predicted: np.ndarray, labels: np.ndarray) -> list:
    """JSON per-unit outcomes: 0/1 per clip, or [tp, n_pred, n_label] per video."""
    if data.kind == "clip":
        return [int(x) for x in correctness_parts(predicted, labels)[:, 0]]
    counts = segment_count_parts(predicted, labels, data.n_classes)
    return [[int(x) for x in row] for row in counts]


def _linear_config(data: TaskData, request: EvalRequest, epochs: int) -> LinearHeadConfig:
    """The published head recipe for this task (AVE→AVVP clips the loss's alphas too)."""
    return LinearHeadConfig(
        epochs=epochs, batch_size=request.batch_size, clip_loss_alphas=data.task == "ave-avvp",
        threads=request.head_threads,
    )


def _keep_own_best(own_best: dict, same_now: dict, metric: str) -> None:
    """The FCID AVE script's same-modality maximum over epochs (the first epoch that reaches it)."""
    if same_now and same_now.get(metric, -np.inf) > own_best.get(metric, -np.inf):
        own_best.clear()
        own_best.update(same_now)


@dataclass(frozen=True)
class _TrainedHead:
    """A linear head trained with the other heads of its direction (toc.eval.head_groups)."""

    result: GroupedHeadResult
    own_best: dict  # the same-modality maximum, under the FCID AVE rule (else empty)
    seconds: float  # its share of the group's training time


def _train_linear_heads(
    data: TaskData, plan: DirectionPlan, views: list[ChannelView], request: EvalRequest, epochs: int,
    cache: CodeCache, train_codes: EncodedSet, select_codes: EncodedSet,
) -> dict[tuple[int, int], _TrainedHead]:
    """Every linear head of one direction (views × seeds), trained by toc.eval.head_groups; keyed
    by (the view's position in `views`, seed).

    The same recipe, seeds, judge and epoch rules as `_fit_linear_head`; the features go in as
    codes (never as dense arrays). The same-modality scores of every epoch (FCID's own-best
    rule) come back through the job's `observe`, since a worker process keeps a judge's side
    effects to itself.
    """
    start = time.perf_counter()
    n_outputs = data.n_classes if data.kind == "clip" else data.n_classes + 1
    config = _linear_config(data, request, epochs)
    metric = plan.selection_metric
    y_train, y_select, y_same = _labels(data, plan.train), _labels(data, plan.select), _labels(data, plan.same_modality)

    jobs = []
    for position, view in enumerate(views):
        x_select = factor_view(view, select_codes, plan.select.rows) if len(plan.select) else None
        x_same = None
        if plan.same_modality_own_best and len(plan.same_modality):
            x_same = factor_view(view, train_codes, plan.same_modality.rows)

        def judge(epoch: int, predictor: HeadPredictor, x_select=x_select) -> tuple[float, dict]:
            metrics = _measure(data, request, predictor, x_select, y_select)
            if metrics is None:  # nothing to select on: the final head is kept
                return float(epoch), {}
            return metrics[metric], metrics

        def observe(_epoch: int, predictor: HeadPredictor, x_same=x_same) -> dict:
            return _measure(data, request, predictor, x_same, y_same) or {}

        factored: dict = {}  # per training encoding (one, or one per dropout seed), by cache key
        for seed in request.seeds:
            trained_codes = train_codes
            if plan.dropout_during_training:
                trained_codes = cache.get(data.task, data.sets[plan.train.set_name], request.dtype, dropout_seed=seed)
            if trained_codes.key not in factored:
                factored[trained_codes.key] = factor_view(view, trained_codes, plan.train.rows)
            jobs.append(LinearHeadJob(
                data.kind, factored[trained_codes.key], y_train, n_outputs, seed, judge, key=(position, seed),
                observe=observe if plan.same_modality_own_best else None,
            ))
    if request.head_engine == "single":
        results = [train_linear_heads([job], config, workers=1)[0] for job in jobs]
    else:
        results = train_linear_heads(jobs, config, workers=request.head_workers)
    # Heads trained together share the group's training time equally.
    share = (time.perf_counter() - start) / max(1, len(jobs))
    trained = {}
    for job, result in zip(jobs, results, strict=True):
        own_best: dict = {}
        for same_now in result.observed:
            _keep_own_best(own_best, same_now, metric)
        trained[job.key] = _TrainedHead(result, own_best, share)
    return trained


# ---------------------------------------------------------------------- validation only


@dataclass(frozen=True)
class ValidationFit:
    """A head fitted on the training rows and scored on validation rows only."""

    predictor: HeadPredictor
    val_metrics: dict[str, float]
    val_parts: list  # per scored validation unit, as `ResultRecord.val_parts`
    seconds: float  # its share of the fitting time


def validation_fits(
    data: TaskData, plan: DirectionPlan, views: Sequence[ChannelView], head: str, request: EvalRequest,
    epochs: int | None, cache: CodeCache, score_rows: Rows | None = None,
) -> list[dict[int, ValidationFit]]:
    """Per view, per seed of `request`: the head fitted exactly as the loop fits it (same recipe,
    seeds, epoch rule on the plan's validation rows; linear heads grouped by
    `request.head_engine`) and scored on `score_rows` (default: the plan's validation rows; the
    budget sweep may pass the evaluated modality's clips of the validation videos). No
    evaluated row is scored and no evaluated label is read here (a set is encoded whole, so the
    evaluated set's codes may be computed), so nothing decided from these fits depends on them."""
    if plan.select.set_name == plan.evaluate.set_name or not len(plan.select):
        raise ConfigError(
            f"task {data.task} {plan.direction}: {plan.split} has no validation rows apart from the evaluated ones"
        )
    score_rows = plan.select if score_rows is None else score_rows
    if np.intersect1d(score_rows.rows, plan.evaluate.rows).size and score_rows.set_name == plan.evaluate.set_name:
        raise ConfigError(f"task {data.task} {plan.direction}: the rows to score on include evaluated rows")
    train_set = data.sets[plan.train.set_name]
    train_codes = cache.get(data.task, train_set, request.dtype)
    select_codes = cache.get(data.task, data.sets[plan.select.set_name], request.dtype)
    score_codes = cache.get(data.task, data.sets[score_rows.set_name], request.dtype)
    trained: dict[tuple[int, int], _TrainedHead] = {}
    if head == "linear" and epochs is not None and request.head_engine != "autograd":
        trained = _train_linear_heads(data, plan, list(views), request, epochs, cache, train_codes, select_codes)
    y_train, y_select, y_score = _labels(data, plan.train), _labels(data, plan.select), _labels(data, score_rows)
    fits: list[dict[int, ValidationFit]] = []
    for position, view in enumerate(views):
        per_seed: dict[int, ValidationFit] = {}
        # A store per view: a sweep has many views, and one store would keep every one's inputs.
        inputs: _Features | CodeIdInputs = CodeIdInputs() if head == CODE_HEAD else _Features()
        for seed in request.seeds:
            start = time.perf_counter()
            head_trained = trained.get((position, seed))
            xy = _HeadData(
                x_train=inputs.get(view, train_codes, plan.train) if head_trained is None else None, y_train=y_train,
                x_select=inputs.get(view, select_codes, plan.select), y_select=y_select,
                x_eval=None, y_eval=None, x_same=None, y_same=_labels(data, plan.same_modality),
            )
            fitted = _fit_head(data, plan, view, head, seed, request, epochs, xy, train_codes, head_trained)
            scored = xy.x_select if score_rows is plan.select else inputs.get(view, score_codes, score_rows)
            predicted = fitted.predictor.predict(scored)
            metrics = score(data.kind, predicted, y_score, data.n_classes, request.protocol, request.batch_size)
            shared = head_trained.seconds if head_trained is not None else 0.0
            per_seed[seed] = ValidationFit(
                fitted.predictor, metrics, unit_parts(data, predicted, y_score),
                round(time.perf_counter() - start + shared, 4),
            )
        fits.append(per_seed)
    return fits


def evaluated_parts(
    data: TaskData, plan: DirectionPlan, view: ChannelView, predictor: HeadPredictor, head: str,
    request: EvalRequest, cache: CodeCache,
) -> list:
    """A fitted head's per-unit outcomes on the plan's evaluated rows (as `eval_parts`)."""
    encoded = cache.get(data.task, data.sets[plan.evaluate.set_name], request.dtype)
    inputs = CodeIdInputs() if head == CODE_HEAD else _Features()
    return unit_parts(data, predictor.predict(inputs.get(view, encoded, plan.evaluate)), _labels(data, plan.evaluate))
