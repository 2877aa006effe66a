"""A channel budget chosen on validation (`--channels auto`) and its provenance, as one JSON block.

What was chosen, for which task, direction, variant and head, on which split and rows, by which
rule with which bootstrap, and the whole validation curve it was chosen from. The selection file
(toc.codebook.selection, key `choice`) and result lines (toc.eval.records, `budget_choice`)
carry it; both readers validate it here, so a hand-edited file fails in one line naming the key.

The evaluation-split curve that a report may draw beside it is a separate list
(`EvaluationPoint`, result lines' `budget_evaluation`): it is computed after the choice, from the
same heads, and nothing here or in the rule reads it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from toc.errors import DataError

CHOICE_FORMAT = 1
SPLIT_VALIDATION = "validation"
# Names that reach report tables and figure titles: a `|`, a newline or markup cannot get in.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-/:]{0,79}")


def _fail(what: str, where: str, key: str, expected: str, actual: Any) -> DataError:
    return DataError(what, file=where, key=key, expected=expected, actual=repr(actual)[:60])


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, prefix: str, *, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise _fail("wrong type", where, prefix.rstrip(".") or "choice", "an object", type(obj).__name__)
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise DataError("missing key", file=where, key=prefix + key)
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail("wrong type", where, prefix + key, " or ".join(k.__name__ for k in kinds), value)
    if not isinstance(value, kinds):
        raise _fail("wrong type", where, prefix + key, " or ".join(k.__name__ for k in kinds), type(value).__name__)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail("not a finite number", where, prefix + key, "a finite number", value)
    return value


def _name(obj: Any, key: str, where: str, prefix: str) -> str:
    value = _get(obj, key, str, where, prefix)
    if not _NAME.fullmatch(value):
        raise _fail("bad name", where, prefix + key, "letters, digits and . _ + - / : (at most 80)", value)
    return value


def _published(obj: Any, where: str, prefix: str) -> dict[str, Any] | None:
    value = _get(obj, "published", dict, where, prefix, optional=True)
    if value is None:
        return None
    inner = prefix + "published."
    for key, minimum in (("channels", 1), ("max_num", 0), ("min_num", 0)):
        _count(value, key, where, inner, minimum)
    for key in ("script", "note"):
        _get(value, key, str, where, inner, optional=True)
    return value


def _search(obj: Any, where: str, prefix: str) -> dict[str, Any]:
    value = _get(obj, "search", dict, where, prefix)
    grid = value.get("auto_grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise _fail("wrong type", where, prefix + "search.auto_grid", "an object", type(grid).__name__)
        skipped = grid.get("skipped", [])
        if not isinstance(skipped, list) or not all(isinstance(x, str) for x in skipped):
            raise _fail("wrong type", where, prefix + "search.auto_grid.skipped", "a list of strings", skipped)
    return value


def _count(obj: Any, key: str, where: str, prefix: str, minimum: int = 0) -> int:
    value = _get(obj, key, int, where, prefix)
    if value < minimum:
        raise _fail("out of range", where, prefix + key, f"an integer >= {minimum}", value)
    return value


def _interval(obj: Any, key: str, where: str, prefix: str) -> tuple[float, float]:
    value = _get(obj, key, list, where, prefix)
    if len(value) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value) \
            or value[0] > value[1]:
        raise _fail("bad interval", where, prefix + key, "[low, high] finite numbers, low <= high", value)
    return float(value[0]), float(value[1])


def _widths(obj: Any, where: str, prefix: str) -> tuple[int, ...]:
    value = _get(obj, "n_channels", list, where, prefix)
    if not value or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in value):
        raise _fail("bad channel counts", where, prefix + "n_channels", "a non-empty list of integers >= 1 (per level)", value)
    return tuple(value)


@dataclass(frozen=True)
class CurvePoint:
    """One grid point of the validation curve."""

    channels: int  # the budget C asked for
    max_num: int
    min_num: int
    n_channels: tuple[int, ...]  # channels kept per level
    validation: float  # validation score (%), mean over the head seeds
    interval: tuple[float, float]  # bootstrap interval of that score
    gap: float  # best grid point's validation score minus this one's
    se: float  # standard error of that gap (paired bootstrap over validation units)
    within_noise: bool  # gap <= se

    @property
    def label(self) -> str:
        return f"{self.channels} ({self.max_num}/{self.min_num})"

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels, "max_num": self.max_num, "min_num": self.min_num,
            "n_channels": list(self.n_channels), "validation": self.validation,
            "validation_interval": list(self.interval), "gap_to_best": self.gap, "se_of_gap": self.se,
            "within_noise": self.within_noise,
        }

    @staticmethod
    def from_json(obj: Any, where: str, prefix: str) -> CurvePoint:
        within = _get(obj, "within_noise", bool, where, prefix)
        se = float(_get(obj, "se_of_gap", (int, float), where, prefix))
        if se < 0:
            raise _fail("out of range", where, prefix + "se_of_gap", "a number >= 0", se)
        return CurvePoint(
            channels=_count(obj, "channels", where, prefix, 1), max_num=_count(obj, "max_num", where, prefix),
            min_num=_count(obj, "min_num", where, prefix), n_channels=_widths(obj, where, prefix),
            validation=float(_get(obj, "validation", (int, float), where, prefix)),
            interval=_interval(obj, "validation_interval", where, prefix),
            gap=float(_get(obj, "gap_to_best", (int, float), where, prefix)), se=se, within_noise=within,
        )


@dataclass(frozen=True)
class EvaluationPoint:
    """One grid point scored on the evaluation split, after the choice: for reading, never for
    choosing."""

    channels: int
    max_num: int
    min_num: int
    evaluation: float  # % on the evaluated units, mean over the head seeds
    interval: tuple[float, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": self.channels, "max_num": self.max_num, "min_num": self.min_num,
            "evaluation": self.evaluation, "evaluation_interval": list(self.interval),
        }

    @staticmethod
    def from_json(obj: Any, where: str, prefix: str) -> EvaluationPoint:
        return EvaluationPoint(
            channels=_count(obj, "channels", where, prefix, 1), max_num=_count(obj, "max_num", where, prefix),
            min_num=_count(obj, "min_num", where, prefix),
            evaluation=float(_get(obj, "evaluation", (int, float), where, prefix)),
            interval=_interval(obj, "evaluation_interval", where, prefix),
        )


def evaluation_curve_from_json(value: Any, where: str, key: str = "budget_evaluation") -> tuple[EvaluationPoint, ...]:
    if not isinstance(value, list) or not value:
        raise _fail("wrong type", where, key, "a non-empty list of grid points", type(value).__name__)
    return tuple(EvaluationPoint.from_json(item, where, f"{key}[{i}].") for i, item in enumerate(value))


@dataclass(frozen=True)
class BudgetChoice:
    """The budget `--channels auto` chose for one task, direction, variant and head, and how."""

    task: str
    direction: str
    variant: str
    head: str
    split: str  # always SPLIT_VALIDATION: the held-out rows of the training modality
    split_detail: str  # how the rows were chosen (the plan's split: predefined, video-level seed S)
    split_seed: int | None
    seeds: tuple[int, ...]  # head seeds averaged per grid point
    metric: str
    unit: str  # clip or video
    n_units: int  # validation units
    units_sha256: str | None  # digest of the validation unit ids (toc.eval.records.unit_ids_digest)
    rule: str
    rule_text: str
    resamples: int
    bootstrap_seed: int
    confidence: float
    search: dict[str, Any]  # the grid and the settings every point shares (BudgetSearch.as_dict)
    curve: tuple[CurvePoint, ...]  # grid order
    chosen: int  # index into curve
    best: int  # index into curve: the highest validation score
    published: dict[str, Any] | None = None  # the release's budget for this case (presets), to mark
    format: int = CHOICE_FORMAT

    @property
    def point(self) -> CurvePoint:
        return self.curve[self.chosen]

    def settings_text(self) -> str:
        p = self.point
        return f"{p.channels} channels, max/min {p.max_num}/{p.min_num}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "task": self.task, "direction": self.direction, "variant": self.variant,
            "head": self.head, "split": self.split, "split_detail": self.split_detail, "split_seed": self.split_seed,
            "seeds": list(self.seeds), "metric": self.metric, "unit": self.unit, "n_units": self.n_units,
            "units_sha256": self.units_sha256, "rule": self.rule, "rule_text": self.rule_text,
            "bootstrap": {"resamples": self.resamples, "seed": self.bootstrap_seed, "confidence": self.confidence},
            "search": self.search, "curve": [p.to_json() for p in self.curve],
            "chosen": self.chosen, "best": self.best, "published": self.published,
        }

    @staticmethod
    def from_json(obj: Any, where: str, key: str = "choice") -> BudgetChoice:
        """Validate a decoded choice block; a DataError names `where` and the key."""
        prefix = key + "."
        fmt = _get(obj, "format", int, where, prefix)
        if fmt > CHOICE_FORMAT:
            raise _fail("written by a newer cmg-toc; upgrade to read it", where, prefix + "format", f"<= {CHOICE_FORMAT}", fmt)
        split = _get(obj, "split", str, where, prefix)
        if split != SPLIT_VALIDATION:
            # A budget chosen on the evaluated rows would make every later score optimistic.
            raise _fail("a budget must be chosen on the validation split", where, prefix + "split", SPLIT_VALIDATION, split)
        raw_curve = _get(obj, "curve", list, where, prefix)
        if not raw_curve:
            raise _fail("empty curve", where, prefix + "curve", "at least one grid point", "[]")
        curve = tuple(CurvePoint.from_json(p, where, f"{prefix}curve[{i}].") for i, p in enumerate(raw_curve))
        chosen, best = _count(obj, "chosen", where, prefix), _count(obj, "best", where, prefix)
        for name, index in (("chosen", chosen), ("best", best)):
            if index >= len(curve):
                raise _fail("index out of range", where, prefix + name, f"an index into the {len(curve)}-point curve", index)
        seeds = _get(obj, "seeds", list, where, prefix)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise _fail("bad seeds", where, prefix + "seeds", "a non-empty list of integers", seeds)
        bootstrap = _get(obj, "bootstrap", dict, where, prefix)
        confidence = float(_get(bootstrap, "confidence", (int, float), where, prefix + "bootstrap."))
        if not 0 < confidence < 1:
            raise _fail("out of range", where, prefix + "bootstrap.confidence", "a number in (0, 1)", confidence)
        return BudgetChoice(
            task=_name(obj, "task", where, prefix), direction=_name(obj, "direction", where, prefix),
            variant=_name(obj, "variant", where, prefix), head=_name(obj, "head", where, prefix),
            split=split, split_detail=_get(obj, "split_detail", str, where, prefix),
            split_seed=_get(obj, "split_seed", int, where, prefix, optional=True), seeds=tuple(seeds),
            metric=_name(obj, "metric", where, prefix), unit=_name(obj, "unit", where, prefix),
            n_units=_count(obj, "n_units", where, prefix, 1),
            units_sha256=_get(obj, "units_sha256", str, where, prefix, optional=True),
            rule=_name(obj, "rule", where, prefix), rule_text=_get(obj, "rule_text", str, where, prefix),
            resamples=_count(bootstrap, "resamples", where, prefix + "bootstrap.", 1),
            bootstrap_seed=_count(bootstrap, "seed", where, prefix + "bootstrap."), confidence=confidence,
            search=_search(obj, where, prefix), curve=curve, chosen=chosen, best=best,
            published=_published(obj, where, prefix), format=fmt,
        )
