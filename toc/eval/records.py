"""One result line: a (task, direction, variant, head, protocol, seed) evaluation, written by
`toc eval` / `toc compare` as JSON lines and read back by `toc report` through `from_json`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from toc.errors import DataError
from toc.eval.protocols import DIRECTIONS

# Written only when set: what `toc compare` and `toc demo` add to a line of the evaluation loop.
OPTIONAL_FIELDS = ("checkpoint", "toc", "selection", "chance")
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
    source: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, str, int]:
        return (self.task, self.direction, self.variant, self.head, self.protocol, self.seed)

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
        return ResultRecord(
            task=_string(obj, "task", where),
            direction=direction,
            variant=_string(obj, "variant", where),
            head=_string(obj, "head", where),
            protocol=_string(obj, "protocol", where),
            seed=seed,
            metrics=_metric_dict(obj, "metrics", where, required=True) or {},
            val_metrics=_metric_dict(obj, "val_metrics", where, required=False),
            same_modality=_metric_dict(obj, "same_modality", where, required=False),
            n_train=_optional(obj, "n_train", int, where),
            n_eval=_optional(obj, "n_eval", int, where),
            n_val=_optional(obj, "n_val", int, where),
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
            source=where,
        )


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
