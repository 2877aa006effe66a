"""Evaluation protocols: which rows train, select the epoch and get evaluated, per direction; and
what each family's published downstream script does (the `reference` protocol reproduces it)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from toc.codebook.checkpoint import ENCODING_READS, EPOCH_FIELD
from toc.codebook.presets import FCID_TOC_PRESETS
from toc.data.base import TaskData
from toc.errors import ConfigError, DataError, SettingsError
from toc.eval.tasks import get_task
from toc.vocabulary import PROTOCOLS

STRICT_TEST_FRACTION = 0.2
STRICT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class PublishedScript:
    """What the published downstream script of one task does, for one variant family."""

    n_epoch: int  # its n_epoch (it trains n_epoch - checkpoint epoch - 1 epochs, Q1)
    selection_metric: str  # what it keeps the best epoch by, on the evaluation set (Q7/Q8)
    # The FCID AVE script keeps the best same-modality epoch and the best cross-modal epoch
    # independently (two maxima over epochs, F1).
    same_modality_own_best: bool = False


# The FCID scripts keep AVVP's best epoch by F1 (the TOC scripts: by precision).
_FCID_SELECTION = {"ave": "accuracy", "avvp": "f1", "ave-avvp": "f1", "ucf-vggsound": "accuracy"}


def published_script(task: str, method: str = "dcid") -> PublishedScript:
    """The published script's n_epoch and epoch rule for `task` (TOC scripts for dcid / hdcid,
    the ACL 2025 FCID scripts for fcid)."""
    entry = get_task(task)
    if method == "fcid" and task in FCID_TOC_PRESETS:
        return PublishedScript(FCID_TOC_PRESETS[task].n_epoch, _FCID_SELECTION[task], same_modality_own_best=task == "ave")
    return PublishedScript(entry.default_epochs, entry.reference_selection_metric)


@dataclass(frozen=True)
class Rows:
    """Row indices into one feature set of the task."""

    set_name: str
    rows: np.ndarray  # int64, ascending

    def __len__(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class DirectionPlan:
    """Everything a protocol decides for one direction of one task."""

    task: str
    direction: str
    protocol: str
    train: Rows  # rows the head learns from (training modality)
    select: Rows  # rows the epoch selection (and `val_metrics`) sees
    evaluate: Rows  # rows evaluated cross-modally (the other modality)
    same_modality: Rows  # held-out rows of the training modality for the same-modality score
    dropout_during_training: bool  # reference quirk Q2
    selection_metric: str
    split: str  # how the rows were chosen, for the output
    same_modality_own_best: bool = False  # FCID AVE (reference): the same-modality score's own best epoch


def plan_direction(
    data: TaskData, direction: str, protocol: str, *, split_seed: int = 0,
    test_fraction: float = STRICT_TEST_FRACTION, val_fraction: float = STRICT_VAL_FRACTION,
    method: str = "dcid",
) -> DirectionPlan:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if direction not in data.directions:
        raise ConfigError(f"task {data.task} has no direction {direction!r} (it has {', '.join(data.directions)})")
    train_name, eval_name = data.directions[direction]
    for name in (train_name, eval_name):
        if name not in data.sets:
            raise ConfigError(f"task {data.task}: direction {direction} names an unknown feature set {name!r}")
    metric = "accuracy" if data.kind == "clip" else "f1"
    if protocol == "reference":
        return _reference_plan(data, direction, train_name, eval_name, published_script(data.task, method))
    train_splits = data.predefined_splits.get(train_name)
    eval_splits = data.predefined_splits.get(eval_name)
    if train_splits and eval_splits:
        for name, splits, needed in ((train_name, train_splits, ("train", "val", "test")), (eval_name, eval_splits, ("test",))):
            for split in needed:
                if split not in splits:
                    raise DataError(f"no predefined {split!r} split for set {name}", key=split)
        train = Rows(train_name, _rows(train_splits["train"]))
        val = Rows(train_name, _rows(train_splits["val"]))
        held_out = Rows(train_name, _rows(train_splits["test"]))
        evaluate = Rows(eval_name, _rows(eval_splits["test"]))
        _check_disjoint(data, train, val, evaluate, held_out)
        return DirectionPlan(data.task, direction, "strict", train, val, evaluate, held_out, False, metric, "predefined")
    train, val, evaluate, held_out = _video_level_split(data, train_name, eval_name, split_seed, test_fraction, val_fraction)
    _check_disjoint(data, train, val, evaluate, held_out)
    return DirectionPlan(
        data.task, direction, "strict", train, val, evaluate, held_out, False, metric, f"video-level seed {split_seed}"
    )


def _reference_plan(data: TaskData, direction: str, train_name: str, eval_name: str, script: PublishedScript) -> DirectionPlan:
    n_train, n_eval = len(data.sets[train_name]), len(data.sets[eval_name])
    train_splits = data.predefined_splits.get(train_name) or {}
    eval_splits = data.predefined_splits.get(eval_name) or {}
    if "train" in train_splits:
        # Quirk Q5 (AVE): the "evaluation" is the training split seen through the other modality.
        train = Rows(train_name, _rows(train_splits["train"]))
        evaluate = Rows(eval_name, _rows(eval_splits.get("train", train_splits["train"])))
        split = "reference: train split, evaluated on the train split (Q5)"
    else:
        # Quirk Q7: all rows train, all rows of the other set are evaluated.
        train = Rows(train_name, np.arange(n_train, dtype=np.int64))
        evaluate = Rows(eval_name, np.arange(n_eval, dtype=np.int64))
        split = "reference: all rows (Q7)"
    # The epoch is picked on the evaluated rows themselves (Q7/Q8); the same-modality row is the
    # training rows scored with the head, as the reference logs it.
    return DirectionPlan(
        data.task, direction, "reference", train, evaluate, evaluate, train, True, script.selection_metric, split,
        same_modality_own_best=script.same_modality_own_best,
    )


def cross_modal_validation(data: TaskData, plan: DirectionPlan) -> Rows:
    """The evaluated modality's clips of the validation videos: rows of the evaluated set whose
    ids are among the validation rows' ids (empty when the two sets share none). They are never
    evaluated rows: the split keeps validation and evaluated videos apart (checked here too)."""
    if plan.select.set_name == plan.evaluate.set_name:
        return Rows(plan.evaluate.set_name, np.zeros(0, dtype=np.int64))
    select_ids = data.sets[plan.select.set_name].ids
    wanted = {str(select_ids[i]) for i in plan.select.rows}
    eval_ids = data.sets[plan.evaluate.set_name].ids
    rows = np.asarray([row for row, vid in enumerate(eval_ids) if str(vid) in wanted], dtype=np.int64)
    if np.intersect1d(rows, plan.evaluate.rows).size:
        raise DataError(f"task {data.task}: validation videos are among the evaluated rows; the splits overlap")
    return Rows(plan.evaluate.set_name, rows)


def _rows(values) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.int64).reshape(-1))


def _split_ids(ids: list[str], rng: np.random.Generator, test_fraction: float, val_fraction: float):
    """Shuffle `ids` and cut test / val / train parts (each non-empty when there are ≥ 3 ids)."""
    order = [ids[i] for i in rng.permutation(len(ids))]
    n = len(order)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    n_test = min(n_test, n)
    n_val = min(n_val, n - n_test)
    return set(order[n_test + n_val :]), set(order[n_test : n_test + n_val]), set(order[:n_test])


def _video_level_split(data: TaskData, train_name: str, eval_name: str, seed: int, test_fraction: float, val_fraction: float):
    """A seeded split of video ids such that no evaluated video is seen in training.

    Videos present in both sets are split test / val / train. Videos only in the evaluated set
    are all evaluated (training never sees them). Videos only in the training set are split
    the same way; their test part is the held-out set of the same-modality score.
    """
    train_set, eval_set = data.sets[train_name], data.sets[eval_name]
    train_ids, eval_ids = [str(i) for i in train_set.ids], [str(i) for i in eval_set.ids]
    in_train, in_eval = set(train_ids), set(eval_ids)
    shared = sorted(in_train & in_eval)
    train_only = sorted(in_train - in_eval)
    rng = np.random.default_rng(seed)
    train_a, val_a, test_a = _split_ids(shared, rng, test_fraction, val_fraction)
    train_b, val_b, test_b = _split_ids(train_only, rng, test_fraction, val_fraction)
    train_ids_set, val_ids_set = train_a | train_b, val_a | val_b
    test_ids_set = test_a | test_b | (in_eval - in_train)

    def pick(ids: list[str], wanted: set[str]) -> np.ndarray:
        return np.asarray([row for row, vid in enumerate(ids) if vid in wanted], dtype=np.int64)

    train = Rows(train_name, pick(train_ids, train_ids_set))
    val = Rows(train_name, pick(train_ids, val_ids_set))
    evaluate = Rows(eval_name, pick(eval_ids, test_ids_set))
    held_out = Rows(train_name, pick(train_ids, test_ids_set))
    for rows, what in ((train, "training"), (evaluate, "evaluation")):
        if len(rows) == 0:
            raise ConfigError(
                f"task {data.task}: the strict video-level split leaves no {what} clips "
                f"({len(in_train | in_eval)} videos in all); use more data or {{}} reference",
                settings=("protocol",),
            )
    return train, val, evaluate, held_out


def _check_disjoint(data: TaskData, train: Rows, val: Rows, evaluate: Rows, held_out: Rows) -> None:
    """Guard the strict promise: no evaluated video reaches training or epoch selection."""
    def ids(rows: Rows) -> set[str]:
        set_ids = data.sets[rows.set_name].ids
        return {str(set_ids[i]) for i in rows.rows}

    seen = ids(train) | ids(val)
    leaked = seen & (ids(evaluate) | ids(held_out))
    if leaked:
        example = sorted(leaked)[:3]
        raise DataError(
            f"task {data.task}: {len(leaked)} evaluated video(s) also appear in training or validation "
            f"(e.g. {example}); the predefined splits overlap"
        )


def default_n_epoch(task: str, protocol: str, method: str) -> int:
    """n_epoch when none is given: the task's TOC-script count (strict, every family alike, so
    families compare on one budget); under `reference` the family's published script's."""
    if protocol == "reference":
        return published_script(task, method).n_epoch
    return get_task(task).default_epochs


def reads_checkpoint_epoch(protocol: str, heads: Collection[str]) -> bool:
    """Whether an evaluation reads the checkpoint's stored epoch: only the reference protocol's
    epoch rule (quirk Q1, `epochs_to_train`) does, and only for linear heads."""
    return protocol == "reference" and "linear" in heads


def checkpoint_reads(protocol: str, heads: Collection[str]) -> tuple[str, ...]:
    """The checkpoint fields an evaluation's results depend on (`load_checkpoint`'s `reads`)."""
    return (*ENCODING_READS, EPOCH_FIELD) if reads_checkpoint_epoch(protocol, heads) else ENCODING_READS


def epochs_to_train(protocol: str, n_epoch: int, checkpoint_epoch: int | None) -> int:
    """strict: n_epoch. reference (quirk Q1): n_epoch − checkpoint_epoch − 1."""
    if n_epoch < 1:
        raise SettingsError(f"{{}} must be at least 1, got {n_epoch}", settings=("epochs",))
    if protocol == "strict" or checkpoint_epoch is None:
        return n_epoch
    trained = n_epoch - checkpoint_epoch - 1
    if trained < 1:
        raise ConfigError(
            f"{{}} reference trains n_epoch - checkpoint_epoch - 1 = {n_epoch} - {checkpoint_epoch} - 1 "
            f"= {trained} epochs; raise {{}}",
            settings=("protocol", "epochs"),
        )
    return trained
