"""One result line: a (task, direction, variant, head, protocol, pretraining run, split seed,
seed) evaluation, written by `toc eval` / `toc compare` as JSON lines and read back by
`toc report` through `from_json`.

Besides the metrics, a line carries the per-unit outcomes a bootstrap over the evaluated clips
or videos needs (`eval_parts`, `val_parts`) and a digest of which units they are, so that
variants can be paired unit by unit. Lines of older versions, without them, still load."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from toc.codebook.budget import BudgetChoice, evaluation_curve_from_json
from toc.errors import DataError
from toc.vocabulary import DIRECTIONS

# Written only when set: what `toc compare` and `toc demo` add to a line of the evaluation loop,
# and what only some tasks or protocols have.
OPTIONAL_FIELDS = (
    "checkpoint", "toc", "selection", "chance", "pretrain_run", "split_seed", "llp_per_video",
    "llp_both_directions", "pretrain_overlap", "budget_choice", "budget_evaluation",
)
UNITS = ("clip", "video")  # what one entry of eval_parts / val_parts is about
VAL_SPLITS = ("validation", "evaluation")  # which rows `val_metrics` / `val_parts` come from


def parts_metrics(unit: str, protocol: str) -> list[str]:
    """The metric names per-unit parts add up to: accuracy from per-clip correctness; the
    global micro P/R/F1 from per-video counts (named `micro_*` under the reference protocol,
    whose `precision` / `recall` / `f1` are the batch-weighted ones)."""
    if unit == "clip":
        return ["accuracy"]
    prefix = "" if protocol == "strict" else "micro_"
    return [f"{prefix}f1", f"{prefix}precision", f"{prefix}recall"]


def unit_ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the ordered unit ids (one per line): equal digests = the same units in order."""
    return hashlib.sha256("".join(f"{i}\n" for i in ids).encode("utf-8")).hexdigest()
# Not part of the line at all: where a record was read from, for messages.
READER_FIELDS = ("source",)


@dataclass(frozen=True)
class ResultRecord:
    """One evaluation result (metrics in %); every field but the identity and `metrics` is
    optional when reading, so result files of older versions and other tools still load."""

    task: str
    direction: str
    variant: str
    head: str
    protocol: str
    seed: int
    metrics: dict[str, float]
    same_modality: dict[str, float] | None = None
    val_metrics: dict[str, float] | None = None
    n_train: int | None = None
    n_eval: int | None = None
    n_val: int | None = None
    n_same_modality: int | None = None
    train_set: str | None = None
    eval_set: str | None = None
    split: str | None = None
    channels: Any = None  # per level: the channel indices the head saw
    levels: list[int] | None = None
    checkpoint_sha256: str | None = None
    dtype: str | None = None
    epochs_trained: int | None = None
    best_epoch: int | None = None
    selection_metric: str | None = None
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    checkpoint: str | None = None  # the checkpoint's path (toc compare)
    toc: dict[str, Any] | None = None  # the TOC settings of a +toc variant (toc compare)
    selection: str | None = None  # the selection file a +toc variant used (toc compare)
    chance: float | None = None  # chance level of a uniform guess, in % (clip tasks, toc demo)
    # Per-unit outcomes for the bootstrap: "clip" (one 0/1 correctness per evaluated clip) or
    # "video" ([tp, n_pred, n_label] per evaluated video over the foreground classes).
    unit: str | None = None
    parts_metrics: list[str] | None = None  # the metrics the parts add up to (e.g. ["accuracy"])
    eval_parts: list | None = None  # one entry per evaluated unit, in row order
    eval_units_sha256: str | None = None  # unit_ids_digest of the evaluated units
    val_parts: list | None = None  # the same for the rows behind val_metrics, at the chosen epoch
    val_units_sha256: str | None = None
    # "validation": val_metrics are on held-out rows of the training modality (strict);
    # "evaluation": on the evaluated rows themselves (the reference protocol picks there).
    val_split: str | None = None
    llp_per_video: dict[str, list] | None = None  # LLP key -> score per evaluated video (0..1)
    # LLP scores that need both directions' heads on the videos both evaluate (AVVP tasks):
    # {"n_videos": N, "metrics": {...}} or {"n_videos": 0, "undefined": reason}.
    llp_both_directions: dict[str, Any] | None = None
    pretrain_run: int | None = None  # which pretraining run (checkpoint) of the family
    split_seed: int | None = None  # seed of the video-level split (None: predefined / reference)
    pretrain_overlap: dict[str, Any] | None = None  # evaluated ids found in the pretraining list
    # `--channels auto`: the budget chosen on validation and its whole validation curve
    # (toc.codebook.budget.BudgetChoice as JSON) ...
    budget_choice: dict[str, Any] | None = None
    # ... and, computed after the choice from the same heads, every grid point's score on the
    # evaluated units: for reading only, never used to choose (EvaluationPoint as JSON).
    budget_evaluation: list[dict[str, Any]] | None = None
    source: str = field(default="", compare=False)

    @property
    def key(self) -> tuple:
        """What identifies a result: two lines with one key are a duplicate."""
        return (
            self.task, self.direction, self.variant, self.head, self.protocol,
            self.pretrain_run, self.split_seed, self.seed,
        )

    @property
    def run(self) -> tuple:
        """The training run, shared by every variant of a comparison: pretraining run, split
        seed and head seed (None where a record does not say)."""
        return (self.pretrain_run, self.split_seed, self.seed)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in READER_FIELDS:
                continue
            value = getattr(self, f.name)
            if f.name in OPTIONAL_FIELDS and value is None:
                continue
            out[f.name] = value
        return out

    @staticmethod
    def from_json(obj: Any, where: str) -> ResultRecord:
        """Validate one decoded result line; unknown extra fields are ignored."""
        if not isinstance(obj, dict):
            raise DataError("not a result", file=where, expected="a JSON object", actual=type(obj).__name__)
        direction = _string(obj, "direction", where)
        if direction not in DIRECTIONS:
            raise DataError("unknown direction", file=where, key="direction", expected="'v2a' or 'a2v'", actual=_short(direction))
        seed = obj.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise DataError("missing or non-integer seed" if seed is None else "wrong type", file=where, key="seed", expected="an integer", actual=_short(seed))
        chance = _optional(obj, "chance", (int, float), where)
        if chance is not None and not math.isfinite(chance):
            raise DataError("bad chance level", file=where, key="chance", expected="a finite number", actual=chance)
        channels = obj.get("channels")
        if channels is not None and not isinstance(channels, list):
            raise DataError("wrong type", file=where, key="channels", expected="a list per level or null", actual=type(channels).__name__)
        notes = obj.get("notes") or []
        unit = _optional(obj, "unit", str, where)
        if unit is not None and unit not in UNITS:
            raise DataError("unknown unit", file=where, key="unit", expected="'clip' or 'video'", actual=_short(unit))
        if unit is None and isinstance(obj.get("eval_parts"), list) and obj["eval_parts"]:
            # Lines built by hand may leave the unit out: the parts say what they are.
            unit = "video" if isinstance(obj["eval_parts"][0], list) else "clip"
        val_split = _optional(obj, "val_split", str, where)
        if val_split is not None and val_split not in VAL_SPLITS:
            raise DataError("unknown split", file=where, key="val_split", expected="'validation' or 'evaluation'", actual=_short(val_split))
        n_eval = _optional(obj, "n_eval", int, where)
        n_val = _optional(obj, "n_val", int, where)
        eval_parts = _parts(obj, "eval_parts", unit, n_eval, where)
        val_parts = _parts(obj, "val_parts", unit, n_val, where)
        given_metrics = _optional(obj, "parts_metrics", list, where)
        if given_metrics is not None and not all(isinstance(m, str) for m in given_metrics):
            raise DataError("wrong type", file=where, key="parts_metrics", expected="a list of metric names", actual=_short(given_metrics))
        protocol = _string(obj, "protocol", where)
        if given_metrics is None and eval_parts is not None and unit is not None:
            given_metrics = parts_metrics(unit, protocol)
        return ResultRecord(
            task=_string(obj, "task", where),
            direction=direction,
            variant=_string(obj, "variant", where),
            head=_string(obj, "head", where),
            protocol=protocol,
            seed=seed,
            metrics=_metric_dict(obj, "metrics", where, required=True) or {},
            val_metrics=_metric_dict(obj, "val_metrics", where, required=False),
            same_modality=_metric_dict(obj, "same_modality", where, required=False),
            n_train=_optional(obj, "n_train", int, where),
            n_eval=n_eval,
            n_val=n_val,
            n_same_modality=_optional(obj, "n_same_modality", int, where),
            train_set=_optional(obj, "train_set", str, where),
            eval_set=_optional(obj, "eval_set", str, where),
            split=_optional(obj, "split", str, where),
            channels=channels,
            levels=_optional(obj, "levels", list, where),
            checkpoint_sha256=_optional(obj, "checkpoint_sha256", str, where),
            dtype=_optional(obj, "dtype", str, where),
            epochs_trained=_optional(obj, "epochs_trained", int, where),
            best_epoch=_optional(obj, "best_epoch", int, where),
            selection_metric=_optional(obj, "selection_metric", str, where),
            seconds=_optional(obj, "seconds", (int, float), where),
            notes=[str(n) for n in notes] if isinstance(notes, list) else [],
            checkpoint=_optional(obj, "checkpoint", str, where),
            toc=_optional(obj, "toc", dict, where),
            selection=_optional(obj, "selection", str, where),
            chance=None if chance is None else float(chance),
            unit=unit,
            parts_metrics=given_metrics,
            eval_parts=eval_parts,
            eval_units_sha256=_digest(obj, "eval_units_sha256", where),
            val_parts=val_parts,
            val_units_sha256=_digest(obj, "val_units_sha256", where),
            val_split=val_split,
            llp_per_video=_per_video(obj, "llp_per_video", n_eval, where),
            llp_both_directions=_optional(obj, "llp_both_directions", dict, where),
            pretrain_run=_optional(obj, "pretrain_run", int, where),
            split_seed=_optional(obj, "split_seed", int, where),
            pretrain_overlap=_optional(obj, "pretrain_overlap", dict, where),
            budget_choice=_budget_choice(obj, where),
            budget_evaluation=_budget_evaluation(obj, where),
            source=where,
        )


def _budget_choice(obj: dict, where: str) -> dict[str, Any] | None:
    value = obj.get("budget_choice")
    if value is None:
        return None
    BudgetChoice.from_json(value, where, "budget_choice")  # validated; kept as written
    return value


def _budget_evaluation(obj: dict, where: str) -> list[dict[str, Any]] | None:
    value = obj.get("budget_evaluation")
    if value is None:
        return None
    evaluation_curve_from_json(value, where)
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_dict(obj: dict, key: str, where: str, *, required: bool) -> dict[str, float] | None:
    if key not in obj or obj[key] is None:
        if required:
            raise DataError("missing key", file=where, key=key, expected="an object of metric values")
        return None
    raw = obj[key]
    if not isinstance(raw, dict) or (required and not raw):
        raise DataError("bad metrics", file=where, key=key, expected="a non-empty object of numbers", actual=_short(raw))
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        if value is None:
            continue  # a metric the evaluation could not compute (e.g. no positive segment)
        if not _is_number(value) or not math.isfinite(value):
            raise DataError("bad metric value", file=where, key=f"{key}.{name}", expected="a finite number", actual=_short(value))
        metrics[str(name)] = float(value)
    if required and not metrics:
        raise DataError("bad metrics", file=where, key=key, expected="at least one numeric metric", actual=_short(raw))
    return metrics


# Names that go into report tables and file names: letters, digits and . _ + - / : only, so
# a `|`, a newline or markup in a results file cannot break (or inject into) a report.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-/:]{0,79}")


def _string(obj: dict, key: str, where: str) -> str:
    if key not in obj:
        raise DataError("missing key", file=where, key=key, expected="a string")
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise DataError("wrong type", file=where, key=key, expected="a non-empty string", actual=_short(value))
    if not _NAME.fullmatch(value):
        raise DataError("bad name", file=where, key=key, expected="letters, digits and . _ + - / : (at most 80)", actual=_short(value))
    return value


def _optional(obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise DataError("wrong type", file=where, key=key, expected=" or ".join(k.__name__ for k in kinds), actual="bool")
    if not isinstance(value, kinds):
        raise DataError("wrong type", file=where, key=key, expected=" or ".join(k.__name__ for k in kinds), actual=type(value).__name__)
    return value


def _parts(obj: dict, key: str, unit: str | None, count: int | None, where: str) -> list | None:
    """Per-unit outcomes: 0/1 per clip, or [tp, n_pred, n_label] (0 <= tp <= both) per video."""
    value = obj.get(key)
    if value is None:
        return None
    if unit is None:
        raise DataError("per-unit outcomes without a unit", file=where, key="unit", expected="'clip' or 'video'", actual="missing")
    if not isinstance(value, list):
        raise DataError("wrong type", file=where, key=key, expected="a list, one entry per unit", actual=type(value).__name__)
    if count is not None and len(value) != count:
        size = "n_eval" if key == "eval_parts" else "n_val"
        raise DataError(f"one entry per unit ({size})", file=where, key=key, expected=count, actual=len(value))
    for i, item in enumerate(value):
        if unit == "clip":
            ok = _is_number(item) and item in (0, 1)
            expected = "0 or 1 (clip correct)"
        else:
            ok = (
                isinstance(item, list) and len(item) == 3
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in item)
                and item[0] <= min(item[1], item[2])
            )
            expected = "[tp, n_pred, n_label] with 0 <= tp <= n_pred, n_label"
        if not ok:
            raise DataError("bad per-unit outcome", file=where, key=f"{key}[{i}]", expected=expected, actual=_short(item))
    return [int(x) for x in value] if unit == "clip" else [[int(x) for x in item] for item in value]


def _digest(obj: dict, key: str, where: str) -> str | None:
    value = _optional(obj, key, str, where)
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
        raise DataError("not a sha256 digest", file=where, key=key, expected="64 lowercase hex digits", actual=_short(value))
    return value


def _per_video(obj: dict, key: str, count: int | None, where: str) -> dict[str, list] | None:
    value = _optional(obj, key, dict, where)
    if value is None:
        return None
    out: dict[str, list] = {}
    for name, scores in value.items():
        if not isinstance(scores, list) or (count is not None and len(scores) != count):
            raise DataError("one score per evaluated video", file=where, key=f"{key}.{name}", expected=f"a list of {count} numbers or nulls", actual=_short(scores))
        for i, score in enumerate(scores):
            if score is not None and (not _is_number(score) or not 0.0 <= score <= 1.0):
                raise DataError("bad per-video score", file=where, key=f"{key}.{name}[{i}]", expected="a number in [0, 1] or null", actual=_short(score))
        out[str(name)] = [None if x is None else float(x) for x in scores]
    return out
