"""The per-task model-selection report: results JSONL → report.md, results.csv, summary.json, charts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toc.atomic import prepare_output, write_bytes_atomic, write_text_atomic
from toc.errors import ConfigError, DataError, TocError
from toc.stats import CONFIDENCE, PairedDifference, SampleSummary, paired_difference, summarize

REPORT_FORMAT = "toc-report/1"
BASELINE_VARIANT = "dcid"
# Display and sort orders; values not listed sort after these, alphabetically.
TASK_ORDER = ("ave", "avvp", "ave-avvp", "ucf-vggsound")
DIRECTION_ORDER = ("v2a", "a2v")
VARIANT_ORDER = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")
HEAD_ORDER = ("linear", "prototype")
PROTOCOL_ORDER = ("strict", "reference")
PRIMARY_METRIC = {"ave": "accuracy", "ucf-vggsound": "accuracy", "avvp": "f1", "ave-avvp": "f1"}
FALLBACK_METRICS = ("accuracy", "f1", "macro_f1")
DIRECTION_TEXT = {"v2a": "train on video, test on audio", "a2v": "train on audio, test on video"}

VERDICT_CLEAR = "clear"
VERDICT_NONE = "no clear winner"
VERDICT_SINGLE = "single variant"
SPLIT_VALIDATION = "validation"
SPLIT_EVALUATION = "evaluation"

CHART_COLUMNS = 4  # panels per row in a task's bar chart
SUMMARY_DECIMALS = 6  # summary.json floats are rounded so reruns and library versions agree


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ResultRecord:
    """One evaluation result: a (task, direction, variant, head, protocol, seed) line of `toc eval`."""

    task: str
    direction: str
    variant: str
    head: str
    protocol: str
    seed: int
    metrics: dict[str, float]
    source: str  # "file:line", for error messages
    val_metrics: dict[str, float] | None = None
    same_modality: dict[str, float] | None = None
    n_train: int | None = None
    n_eval: int | None = None
    channels: Any = None
    toc: dict[str, Any] | None = None
    checkpoint_sha256: str | None = None
    checkpoint: str | None = None
    chance: float | None = None
    selection: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str, int]:
        return (self.task, self.direction, self.variant, self.head, self.protocol, self.seed)


@dataclass(frozen=True)
class HealthRecord:
    """Codebook health of one trained model (a `"kind": "health"` line); fields kept as given."""

    fields: dict[str, Any]
    source: str

    @property
    def sort_key(self) -> tuple:
        f = self.fields
        return (
            str(f.get("family", "")),
            str(f.get("checkpoint_sha256", "")),
            str(f.get("checkpoint", "")),
            _level_key(f.get("level")),
            _canonical(f),
        )


@dataclass(frozen=True)
class InputFile:
    name: str  # base name only: the report must not depend on where the file lies
    sha256: str
    n_results: int
    n_health: int


@dataclass
class ResultSet:
    records: list[ResultRecord] = field(default_factory=list)
    health: list[HealthRecord] = field(default_factory=list)
    inputs: list[InputFile] = field(default_factory=list)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _level_key(level: Any) -> tuple[int, str]:
    if isinstance(level, int) and not isinstance(level, bool):
        return (level, "")
    return (1 << 30, "" if level is None else str(level))


def _order_key(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), value)


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


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(obj: dict, key: str, where: str) -> str:
    if key not in obj:
        raise DataError("missing key", file=where, key=key, expected="a string")
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise DataError("wrong type", file=where, key=key, expected="a non-empty string", actual=_short(value))
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


def parse_record(obj: Any, where: str) -> ResultRecord | HealthRecord:
    """Validate one decoded JSON line; unknown extra fields are ignored."""
    if not isinstance(obj, dict):
        raise DataError("not a result", file=where, expected="a JSON object", actual=type(obj).__name__)
    kind = obj.get("kind", "result")
    if kind == "health":
        return HealthRecord(fields={k: v for k, v in obj.items() if k != "kind"}, source=where)
    if kind != "result":
        raise DataError("unknown record kind", file=where, key="kind", expected="'result' or 'health'", actual=_short(kind))
    direction = _string(obj, "direction", where)
    if direction not in DIRECTION_ORDER:
        raise DataError("unknown direction", file=where, key="direction", expected="'v2a' or 'a2v'", actual=_short(direction))
    seed = obj.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DataError("missing or non-integer seed" if seed is None else "wrong type", file=where, key="seed", expected="an integer", actual=_short(seed))
    toc = _optional(obj, "toc", dict, where)
    chance = _optional(obj, "chance", (int, float), where)
    if chance is not None and not math.isfinite(chance):
        raise DataError("bad chance level", file=where, key="chance", expected="a finite number", actual=chance)
    channels = obj.get("channels")
    if channels is not None and not isinstance(channels, list):
        raise DataError("wrong type", file=where, key="channels", expected="a list per level or null", actual=type(channels).__name__)
    return ResultRecord(
        task=_string(obj, "task", where),
        direction=direction,
        variant=_string(obj, "variant", where),
        head=_string(obj, "head", where),
        protocol=_string(obj, "protocol", where),
        seed=seed,
        metrics=_metric_dict(obj, "metrics", where, required=True) or {},
        source=where,
        val_metrics=_metric_dict(obj, "val_metrics", where, required=False),
        same_modality=_metric_dict(obj, "same_modality", where, required=False),
        n_train=_optional(obj, "n_train", int, where),
        n_eval=_optional(obj, "n_eval", int, where),
        channels=channels,
        toc=toc,
        checkpoint_sha256=_optional(obj, "checkpoint_sha256", str, where),
        checkpoint=_optional(obj, "checkpoint", str, where),
        chance=None if chance is None else float(chance),
        selection=_optional(obj, "selection", str, where),
    )


def read_results(paths: Iterable[str | os.PathLike]) -> ResultSet:
    """Read results JSONL files (blank lines skipped); a bad line is a one-line DataError file:line."""
    result = ResultSet()
    seen: dict[tuple, str] = {}
    for raw_path in paths:
        path = Path(raw_path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise DataError("results file not found", file=path) from exc
        except OSError as exc:
            raise DataError(f"cannot read results file ({exc.strerror or exc})", file=path) from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text (byte {exc.start})", file=path) from exc
        n_results = n_health = 0
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno})", file=where) from exc
            record = parse_record(obj, where)
            if isinstance(record, HealthRecord):
                result.health.append(record)
                n_health += 1
                continue
            if record.key in seen:
                raise DataError(
                    f"duplicate result for task={record.task} direction={record.direction} "
                    f"variant={record.variant} head={record.head} protocol={record.protocol} "
                    f"seed={record.seed} (first at {seen[record.key]})",
                    file=where,
                )
            seen[record.key] = where
            result.records.append(record)
            n_results += 1
        result.inputs.append(
            InputFile(name=path.name, sha256=hashlib.sha256(data).hexdigest(), n_results=n_results, n_health=n_health)
        )
    if not result.records:
        raise DataError("no result lines in the input", file=", ".join(str(p) for p in paths) or None)
    return result


# ---------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class VariantRow:
    """One variant of one group: its evaluation score over seeds and its difference to DCID."""

    variant: str
    seeds: tuple[int, ...]
    eval: SampleSummary
    val: SampleSummary | None  # over the seeds that have a validation score
    same_modality: SampleSummary | None
    vs_baseline: PairedDifference | None  # eval metric, variant − dcid; None for dcid or no dcid
    checkpoints: tuple[str, ...]  # distinct checkpoint sha256 values seen


@dataclass(frozen=True)
class Recommendation:
    """Which variant to use for a group and how sure we are (see `recommend`)."""

    verdict: str  # VERDICT_CLEAR, VERDICT_NONE or VERDICT_SINGLE
    variant: str | None  # the recommended variant; None when no clear winner
    split: str  # the split the ranking used: SPLIT_VALIDATION or SPLIT_EVALUATION
    best: str
    best_mean: float
    runner_up: str | None
    runner_up_mean: float | None
    vs_runner_up: PairedDifference | None  # selection split, best − runner-up
    contenders: tuple[str, ...]  # best plus every variant not separated from it
    missing_validation: int  # results in the group without a validation score for the metric


@dataclass(frozen=True)
class Group:
    """One task × direction × head × protocol: the table of variants and the recommendation."""

    task: str
    direction: str
    head: str
    protocol: str
    metric: str
    rows: tuple[VariantRow, ...]
    recommendation: Recommendation
    chance: float | None

    @property
    def title(self) -> str:
        return f"{self.task} · {self.direction} · {self.head} · {self.protocol}"


@dataclass(frozen=True)
class TocSettingRow:
    task: str
    direction: str
    variant: str
    checkpoint_sha256: str | None
    channels_per_level: str
    toc: dict[str, Any] | None
    selection: str | None


@dataclass(frozen=True)
class SelectionPlot:
    """A selection file to draw: its name in the report and where it was read from."""

    name: str
    path: Path


@dataclass
class Report:
    inputs: list[InputFile]
    groups: list[Group]
    toc_settings: list[TocSettingRow]
    health: list[HealthRecord]
    selections: list[SelectionPlot]
    metric_option: str
    confidence: float = CONFIDENCE
    charted_tasks: frozenset[str] = frozenset()  # tasks whose bar chart is written beside report.md


def _group_key(r: ResultRecord) -> tuple:
    return (
        _order_key(r.task, TASK_ORDER),
        _order_key(r.direction, DIRECTION_ORDER),
        _order_key(r.head, HEAD_ORDER),
        _order_key(r.protocol, PROTOCOL_ORDER),
    )


def choose_metric(records: Sequence[ResultRecord], requested: str) -> str:
    """The metric a group is compared on: the one requested where the group has it, else the
    task's primary metric (accuracy for clip tasks, f1 for segment tasks)."""
    task = records[0].task
    if requested != "auto" and any(requested in r.metrics for r in records):
        metric = requested
    elif task in PRIMARY_METRIC:
        metric = PRIMARY_METRIC[task]
    else:
        common = set.intersection(*(set(r.metrics) for r in records))
        preferred = [m for m in FALLBACK_METRICS if m in common]
        if not preferred and not common:
            raise DataError(f"results of task {task} share no metric", file=records[0].source)
        metric = preferred[0] if preferred else sorted(common)[0]
    for record in records:
        if metric not in record.metrics:
            raise DataError(
                f"metric '{metric}' missing for task {task}",
                file=record.source,
                key="metrics",
                expected=metric,
                actual=", ".join(sorted(record.metrics)),
            )
    return metric


def recommend(
    by_variant: Mapping[str, Mapping[int, float]], split: str, missing_validation: int = 0,
    confidence: float = CONFIDENCE,
) -> Recommendation:
    """Pick the variant with the best mean selection score, if the seeds separate it from the rest.

    Rule: rank variants by their mean score on the selection split (ties: VARIANT_ORDER). The best
    is recommended ("clear") only when, for EVERY other variant v, the seed-paired 95% t interval
    of best − v lies strictly above 0; this includes the runner-up, and with fewer than 2 shared
    seeds there is no interval, so no separation. Otherwise the verdict is "no clear winner" and
    the contenders are the best plus every variant it is not separated from.
    """
    if not by_variant:
        raise ValueError("no variants to recommend from")
    means = {v: math.fsum(s.values()) / len(s) for v, s in by_variant.items()}
    ranked = sorted(means, key=lambda v: (-means[v], _order_key(v, VARIANT_ORDER)))
    best = ranked[0]
    if len(ranked) == 1:
        return Recommendation(
            verdict=VERDICT_SINGLE, variant=best, split=split, best=best, best_mean=means[best],
            runner_up=None, runner_up_mean=None, vs_runner_up=None, contenders=(best,),
            missing_validation=missing_validation,
        )
    differences = {v: paired_difference(by_variant[best], by_variant[v], confidence) for v in ranked[1:]}
    contenders = (best,) + tuple(v for v in ranked[1:] if not differences[v].above_zero())
    clear = len(contenders) == 1
    runner_up = ranked[1]
    return Recommendation(
        verdict=VERDICT_CLEAR if clear else VERDICT_NONE,
        variant=best if clear else None,
        split=split,
        best=best,
        best_mean=means[best],
        runner_up=runner_up,
        runner_up_mean=means[runner_up],
        vs_runner_up=differences[runner_up],
        contenders=contenders,
        missing_validation=missing_validation,
    )


def _analyse_group(records: Sequence[ResultRecord], metric_option: str, confidence: float) -> Group:
    metric = choose_metric(records, metric_option)
    variants: dict[str, list[ResultRecord]] = {}
    for record in records:
        variants.setdefault(record.variant, []).append(record)
    order = sorted(variants, key=lambda v: _order_key(v, VARIANT_ORDER))
    eval_scores = {v: {r.seed: r.metrics[metric] for r in variants[v]} for v in order}
    baseline = eval_scores.get(BASELINE_VARIANT)
    rows = []
    for variant in order:
        rs = sorted(variants[variant], key=lambda r: r.seed)
        vals = [r.val_metrics[metric] for r in rs if r.val_metrics and metric in r.val_metrics]
        same = [r.same_modality[metric] for r in rs if r.same_modality and metric in r.same_modality]
        rows.append(
            VariantRow(
                variant=variant,
                seeds=tuple(r.seed for r in rs),
                eval=summarize([r.metrics[metric] for r in rs], confidence),
                val=summarize(vals, confidence) if vals else None,
                same_modality=summarize(same, confidence) if same else None,
                vs_baseline=(
                    paired_difference(eval_scores[variant], baseline, confidence)
                    if baseline is not None and variant != BASELINE_VARIANT
                    else None
                ),
                checkpoints=tuple(sorted({r.checkpoint_sha256 for r in rs if r.checkpoint_sha256})),
            )
        )
    missing = sum(1 for r in records if not (r.val_metrics and metric in r.val_metrics))
    # All or nothing: ranking some variants on validation and others on evaluation would be unfair.
    if missing == 0:
        split = SPLIT_VALIDATION
        selection_scores = {v: {r.seed: r.val_metrics[metric] for r in variants[v]} for v in order}  # type: ignore[index]
    else:
        split = SPLIT_EVALUATION
        selection_scores = eval_scores
    recommendation = recommend(selection_scores, split, missing, confidence)
    chances = sorted({r.chance for r in records if r.chance is not None})
    first = records[0]
    return Group(
        task=first.task, direction=first.direction, head=first.head, protocol=first.protocol,
        metric=metric, rows=tuple(rows), recommendation=recommendation,
        chance=chances[0] if len(chances) == 1 else None,
    )


def _channels_text(channels: Any) -> str:
    if channels is None:
        return "all"
    if channels and all(_is_number(c) for c in channels):
        return str(len(channels))  # one level given as a flat list
    parts = []
    for level in channels:
        parts.append("all" if level is None else str(len(level)) if isinstance(level, list) else "?")
    return " + ".join(parts) if parts else "none"


def _toc_rows(records: Sequence[ResultRecord]) -> list[TocSettingRow]:
    rows: dict[tuple, TocSettingRow] = {}
    for r in records:
        if r.toc is None and r.channels is None:
            continue
        row = TocSettingRow(
            task=r.task, direction=r.direction, variant=r.variant, checkpoint_sha256=r.checkpoint_sha256,
            channels_per_level=_channels_text(r.channels), toc=r.toc,
            selection=Path(r.selection).name if r.selection else None,
        )
        key = (
            _order_key(r.task, TASK_ORDER), _order_key(r.direction, DIRECTION_ORDER),
            _order_key(r.variant, VARIANT_ORDER), r.checkpoint_sha256 or "",
            row.channels_per_level, _canonical(r.toc), row.selection or "",
        )
        rows.setdefault(key, row)
    return [rows[k] for k in sorted(rows)]


def _selection_plots(records: Sequence[ResultRecord], selection_files: Sequence[str | os.PathLike]) -> list[SelectionPlot]:
    paths: list[Path] = [Path(p) for p in selection_files]
    paths += sorted({Path(r.selection) for r in records if r.selection}, key=str)
    plots: list[SelectionPlot] = []
    used: set[str] = set()
    seen: set[Path] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "selection"
        name, k = f"selection-{stem}.png", 2
        while name in used:
            name, k = f"selection-{stem}-{k}.png", k + 1
        used.add(name)
        plots.append(SelectionPlot(name=name, path=path))
    return plots


def build_report(
    results: ResultSet,
    metric: str = "auto",
    selection_files: Sequence[str | os.PathLike] = (),
    confidence: float = CONFIDENCE,
) -> Report:
    """Group the results, summarise every variant, and recommend one per group."""
    if metric != "auto":
        if not any(metric in r.metrics for r in results.records):
            available = sorted({m for r in results.records for m in r.metrics})
            raise ConfigError(f"metric '{metric}' is in no result (available: {', '.join(available)})")
    grouped: dict[tuple, list[ResultRecord]] = {}
    for record in results.records:
        grouped.setdefault(_group_key(record), []).append(record)
    groups = [_analyse_group(grouped[k], metric, confidence) for k in sorted(grouped)]
    # Identical health lines (the same model listed in several result files) are shown once.
    unique_health: dict[str, HealthRecord] = {}
    for h in results.health:
        unique_health.setdefault(_canonical(h.fields), h)
    return Report(
        inputs=list(results.inputs),
        groups=groups,
        toc_settings=_toc_rows(results.records),
        health=sorted(unique_health.values(), key=lambda h: h.sort_key),
        selections=_selection_plots(results.records, selection_files),
        metric_option=metric,
        confidence=confidence,
    )


# ---------------------------------------------------------------------------- rendering


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-0.00", "0.00").replace("+0.00", "0.00") if text.strip("+-") == "0.00" else text


def _ci(summary: SampleSummary | None) -> str:
    if summary is None or summary.ci_low is None:
        return "—"
    return f"[{_f(summary.ci_low)}, {_f(summary.ci_high)}]"


def _mean_std(summary: SampleSummary | None) -> str:
    if summary is None:
        return "—"
    return f"{_f(summary.mean)} ± {_f(summary.std)}" if summary.std is not None else f"{_f(summary.mean)}"


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(value[k])}" for k in sorted(value, key=str))
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return _cell(str(value))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _difference_text(d: PairedDifference | None) -> tuple[str, str]:
    if d is None or d.summary is None:
        return "—", "—"
    s = d.summary
    mean = _f(s.mean, signed=True)
    ci = "—" if s.ci_low is None else f"[{_f(s.ci_low, True)}, {_f(s.ci_high, True)}]"
    if d.only_a or d.only_b:
        mean += f" (n={d.n})"
    return mean, ci


def _recommendation_text(group: Group) -> str:
    rec = group.recommendation
    metric = f"{rec.split} {group.metric}"
    if rec.verdict == VERDICT_SINGLE:
        text = f"**Recommended: {rec.best}** — the only variant evaluated here ({metric} {_f(rec.best_mean)})."
    else:
        d = rec.vs_runner_up
        if d is None or d.summary is None:
            diff = "no seed shared, so no paired difference"
        elif d.summary.ci_low is None:
            diff = f"Δ {_f(d.summary.mean, True)} on {d.n} shared seed, too few for an interval"
        else:
            diff = (
                f"paired Δ {_f(d.summary.mean, True)}, 95% CI [{_f(d.summary.ci_low, True)}, "
                f"{_f(d.summary.ci_high, True)}], n={d.n}"
            )
        if rec.verdict == VERDICT_CLEAR:
            text = (
                f"**Recommended: {rec.best}** — best mean {metric} ({_f(rec.best_mean)}); its paired "
                f"interval lies above 0 against every other variant (runner-up {rec.runner_up}: {diff})."
            )
        else:
            text = (
                f"**No clear winner** — best mean {metric}: {rec.best} ({_f(rec.best_mean)}), runner-up "
                f"{rec.runner_up} ({_f(rec.runner_up_mean)}; {diff}). Not separated from the best: "
                f"{', '.join(rec.contenders)}."
            )
    if rec.missing_validation:
        text += (
            f" Validation scores are missing for {rec.missing_validation} result(s), so the variants "
            "are ranked on the evaluation split, which makes the choice optimistic."
        )
    return text


def render_markdown(report: Report) -> str:
    """report.md: summary table, one section per task, TOC settings, codebook health, plots."""
    pct = int(round(report.confidence * 100))
    out: list[str] = ["# Model-selection report", ""]
    out.append("Inputs:")
    for item in report.inputs:
        out.append(f"- `{item.name}` (sha256 `{item.sha256[:16]}`): {item.n_results} results, {item.n_health} health records")
    out += [
        "",
        "How to read this report. Scores are in %. *mean ± std* is over seeds (sample standard deviation, "
        f"n − 1); the {pct}% CI is mean ± t(0.975, n − 1)·std/√n. *Δ vs dcid* is the difference to the "
        "DCID baseline paired by seed (only seeds both variants have; n is shown when some are "
        f"missing), with its {pct}% t interval. The recommendation ranks variants by their mean on the "
        "validation split (never the evaluation split, unless validation scores are missing, which "
        "is then said). The best is recommended only when its seed-paired interval against every "
        "other variant lies strictly above 0; otherwise the verdict is *no clear winner* and the "
        "variants not separated from the best are listed.",
        "",
        "## Summary",
        "",
        "| task | direction | head | protocol | metric | recommendation | ranked on | eval mean of best | chance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in report.groups:
        rec = g.recommendation
        choice = rec.variant if rec.variant else f"no clear winner ({', '.join(rec.contenders)})"
        best_row = next(r for r in g.rows if r.variant == rec.best)
        out.append(
            f"| {g.task} | {g.direction} | {g.head} | {g.protocol} | {g.metric} | {_cell(choice)} | "
            f"{rec.split} | {_f(best_row.eval.mean)} | {_pct(g.chance)} |"
        )
    out.append("")
    current_task = None
    for g in report.groups:
        if g.task != current_task:
            current_task = g.task
            out += [f"## {g.task}", ""]
            chances = {x.chance for x in report.groups if x.task == g.task}
            if len(chances) == 1 and None not in chances:
                out += [f"Chance level: {_pct(next(iter(chances)))} %.", ""]
            if g.task in report.charted_tasks:
                out += [f"![{g.task}: mean with {pct}% CI per variant]({chart_name(g.task)})", ""]
        direction = DIRECTION_TEXT.get(g.direction, g.direction)
        out += [f"### {g.title} — {g.metric} ({direction})", ""]
        if g.chance is not None and len({x.chance for x in report.groups if x.task == g.task}) > 1:
            out += [f"Chance level: {_pct(g.chance)} %.", ""]
        out += [
            f"| variant | n | mean ± std | {pct}% CI | Δ vs dcid | {pct}% CI of Δ | validation mean | same-modality |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in g.rows:
            diff, diff_ci = _difference_text(row.vs_baseline)
            name = f"**{row.variant}**" if row.variant == g.recommendation.variant else row.variant
            out.append(
                f"| {_cell(name)} | {row.eval.n} | {_mean_std(row.eval)} | {_ci(row.eval)} | {diff} | "
                f"{diff_ci} | {_mean_std(row.val)} | {_mean_std(row.same_modality)} |"
            )
        notes = []
        for row in g.rows:
            d = row.vs_baseline
            if d is not None and (d.only_a or d.only_b):
                parts = []
                if d.only_a:
                    parts.append(f"seeds {list(d.only_a)} have no dcid result")
                if d.only_b:
                    parts.append(f"dcid seeds {list(d.only_b)} have no {row.variant} result")
                notes.append(f"{row.variant}: " + "; ".join(parts) + " (left out of Δ).")
        constant = [r.variant for r in g.rows if r.eval.n >= 2 and r.eval.std == 0.0]
        if constant:
            notes.append(
                f"{', '.join(constant)}: every seed gave the same score, so the interval has zero width "
                "(intervals measure seed-to-seed variation only, e.g. none for a training-free head on a fixed split)."
            )
        out.append("")
        for note in notes:
            out += [f"- {note}"]
        if notes:
            out.append("")
        out += [_recommendation_text(g), ""]
    out += ["## TOC settings", ""]
    if report.toc_settings:
        out += [
            "| task | direction | variant | checkpoint | channels per level | C | max_num | min_num | sim_weight | var_weight | other | selection |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        known = ("channels", "max_num", "min_num", "sim_weight", "var_weight")
        for t in report.toc_settings:
            toc = t.toc or {}
            other = {k: v for k, v in toc.items() if k not in known}
            out.append(
                f"| {t.task} | {t.direction} | {t.variant} | {_sha(t.checkpoint_sha256)} | {t.channels_per_level} | "
                + " | ".join(_value(toc.get(k)) for k in known)
                + f" | {_value(other) if other else '—'} | {_cell(t.selection) if t.selection else '—'} |"
            )
    else:
        out.append("No result carries TOC settings or a channel selection.")
    out += ["", "## Codebook health", ""]
    if report.health:
        out += [
            "| family | checkpoint | sha256 | level | codes used | codes | perplexity | cross-modal agreement (%) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for h in report.health:
            f = h.fields
            checkpoint = Path(str(f["checkpoint"])).name if f.get("checkpoint") else "—"
            out.append(
                f"| {_value(f.get('family'))} | {_cell(checkpoint)} | {_sha(f.get('checkpoint_sha256'))} | "
                f"{_value(f.get('level'))} | {_value(f.get('codes_used'))} | {_value(f.get('n_codes'))} | "
                f"{_value(f.get('perplexity'))} | {_value(f.get('agreement'))} |"
            )
    else:
        out.append("No codebook-health records in the input.")
    if report.selections:
        out += ["", "## Channel selections", ""]
        for s in report.selections:
            out += [f"![{_cell(s.path.name)}]({s.name})", ""]
        out.pop()
    return "\n".join(out) + "\n"


def _sha(value: Any) -> str:
    return f"`{str(value)[:12]}`" if value else "—"


def chart_name(task: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in task)
    return f"chart-{safe}.png"


def results_rows(records: Sequence[ResultRecord]) -> list[tuple[str, str, str, str, str, int, str, float]]:
    """Tidy rows: one per (result, metric); validation and same-modality scores prefixed."""
    rows = []
    for r in records:
        for prefix, metrics in (("", r.metrics), ("val_", r.val_metrics), ("same_modality_", r.same_modality)):
            for name, value in (metrics or {}).items():
                rows.append((r.task, r.direction, r.variant, r.head, r.protocol, r.seed, prefix + name, value))
    rows.sort(
        key=lambda x: (
            _order_key(x[0], TASK_ORDER), _order_key(x[1], DIRECTION_ORDER), _order_key(x[2], VARIANT_ORDER),
            _order_key(x[3], HEAD_ORDER), _order_key(x[4], PROTOCOL_ORDER), x[5], x[6],
        )
    )
    return rows


def render_csv(records: Sequence[ResultRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", "direction", "variant", "head", "protocol", "seed", "metric", "value"])
    for row in results_rows(records):
        writer.writerow([*row[:7], repr(float(row[7]))])
    return buffer.getvalue()


def _r(value: float | None) -> float | None:
    if value is None:
        return None
    rounded = round(value, SUMMARY_DECIMALS)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def _summary_json(s: SampleSummary | None) -> dict | None:
    if s is None:
        return None
    ci = None if s.ci_low is None else [_r(s.ci_low), _r(s.ci_high)]
    return {"n": s.n, "mean": _r(s.mean), "std": _r(s.std), "ci": ci}


def _difference_json(d: PairedDifference | None) -> dict | None:
    if d is None:
        return None
    out = _summary_json(d.summary) or {"n": 0, "mean": None, "std": None, "ci": None}
    out.update({"seeds": list(d.seeds), "only_variant": list(d.only_a), "only_other": list(d.only_b)})
    return out


def summary_document(report: Report) -> dict[str, Any]:
    groups = []
    for g in report.groups:
        rec = g.recommendation
        groups.append(
            {
                "task": g.task, "direction": g.direction, "head": g.head, "protocol": g.protocol,
                "metric": g.metric, "chance": _r(g.chance),
                "variants": [
                    {
                        "variant": row.variant, "seeds": list(row.seeds), "eval": _summary_json(row.eval),
                        "validation": _summary_json(row.val), "same_modality": _summary_json(row.same_modality),
                        "vs_dcid": _difference_json(row.vs_baseline), "checkpoints": list(row.checkpoints),
                    }
                    for row in g.rows
                ],
                "recommendation": {
                    "verdict": rec.verdict, "variant": rec.variant, "ranked_on": rec.split,
                    "best": rec.best, "best_mean": _r(rec.best_mean), "runner_up": rec.runner_up,
                    "runner_up_mean": _r(rec.runner_up_mean), "best_vs_runner_up": _difference_json(rec.vs_runner_up),
                    "contenders": list(rec.contenders), "missing_validation": rec.missing_validation,
                },
            }
        )
    return {
        "format": REPORT_FORMAT,
        "confidence": report.confidence,
        "metric_option": report.metric_option,
        "inputs": [
            {"name": i.name, "sha256": i.sha256, "results": i.n_results, "health": i.n_health} for i in report.inputs
        ],
        "groups": groups,
        "toc_settings": [
            {
                "task": t.task, "direction": t.direction, "variant": t.variant,
                "checkpoint_sha256": t.checkpoint_sha256, "channels_per_level": t.channels_per_level,
                "toc": t.toc, "selection": t.selection,
            }
            for t in report.toc_settings
        ],
        "health": [h.fields for h in report.health],
    }


def render_summary(report: Report) -> str:
    return json.dumps(summary_document(report), sort_keys=True, indent=2, allow_nan=False, default=str) + "\n"


# ---------------------------------------------------------------------------- charts


def _new_figure(width: float, height: float):
    # The object-oriented API with an explicit Agg canvas: no pyplot global state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_task_chart(report: Report, task: str) -> bytes:
    """Bar chart of one task: one panel per direction × head × protocol, error bars = the CI."""
    groups = [g for g in report.groups if g.task == task]
    columns = min(len(groups), CHART_COLUMNS)
    rows = -(-len(groups) // columns)
    figure = _new_figure(4.0 * columns + 1.0, 3.4 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    for ax, g in zip(axes, groups, strict=False):
        names = [r.variant for r in g.rows]
        means = [r.eval.mean for r in g.rows]
        errors = [r.eval.half_width or 0.0 for r in g.rows]
        colors = ["#4C72B0" if r.variant == g.recommendation.variant else "#9AA5B1" for r in g.rows]
        ax.bar(range(len(names)), means, yerr=errors, capsize=4, color=colors)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{g.direction} · {g.head} · {g.protocol}", fontsize=9)
        ax.set_ylabel(f"{g.metric} (%)", fontsize=8)
        if g.chance is not None:
            ax.axhline(g.chance, color="#C44E52", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"{task}: mean over seeds, error bars = {int(round(report.confidence * 100))}% CI", fontsize=10)
    figure.tight_layout()
    return _png_bytes(figure)


def render_selection_chart(path: Path) -> bytes:
    """The channel-score plot of one selection file: each selected channel's score, per level."""
    from toc.selection import read_selection

    document = read_selection(path)
    full = _full_toc_figure(document)
    if full is not None:
        return full
    levels = document.levels
    figure = _new_figure(7.0, 2.6 * len(levels) + 0.6)
    axes = figure.subplots(len(levels), 1, squeeze=False)[:, 0]
    for ax, level in zip(axes, levels, strict=True):
        scores = level.scores
        ax.bar(range(len(scores)), scores, width=1.0, color="#4C72B0")
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_xlim(-0.5, len(scores) - 0.5)
        ax.set_title(
            f"level {level.level}: {len(level.indices)} of {level.codebook_shape[1]} channels, head order",
            fontsize=9,
        )
        ax.set_ylabel("TOC score", fontsize=8)
        ax.set_xlabel("position in the selection (top block, then bottom block)", fontsize=8)
    figure.suptitle(f"{path.name} ({document.family}, {document.checkpoint_sha256[:12]})", fontsize=10)
    figure.tight_layout()
    return _png_bytes(figure)


def _full_toc_figure(document: Any) -> bytes | None:
    """toc.plot's TOC figure (every channel's score, cosine heat-maps), when the checkpoint the
    selection was made from is still where the file says and has the same sha256; else None."""
    import tempfile

    import torch

    from toc.checkpoint import load_codebooks
    from toc.plot import plot_selection
    from toc.scoring import score_channels
    from toc.selection import Selection, TocSettings

    checkpoint = Path(document.checkpoint_path)
    if not checkpoint.is_file():
        return None
    try:
        loaded = load_codebooks(checkpoint)  # weights-only: an untrusted file is never unpickled
    except TocError:
        return None
    if loaded.sha256 != document.checkpoint_sha256:
        return None
    params = document.parameters
    weights = {k: float(params[k]) for k in ("sim_weight", "var_weight") if _is_number(params.get(k))}
    codebooks = [cb.detach().to("cpu", torch.float64) for cb in loaded.codebooks]
    scores, selections = [], []
    for level in document.levels:
        if level.level >= len(codebooks) or tuple(codebooks[level.level].shape) != level.codebook_shape:
            return None
        channel_scores = score_channels(codebooks[level.level], **weights)
        indices = torch.tensor(level.indices, dtype=torch.long)
        scores.append(channel_scores)
        selections.append(
            Selection(
                level=level.level, codebook_shape=level.codebook_shape, indices=indices,
                scores=channel_scores.score[indices], settings=TocSettings(channels=len(level.indices)),
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "figure.png"
        plot_selection(codebooks, scores, selections, target, title=f"{Path(document.path).name} ({document.family})")
        return target.read_bytes()


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class WrittenReport:
    out_dir: Path
    files: tuple[str, ...]  # names written, in writing order
    notes: tuple[str, ...]  # things the caller should tell the user (e.g. charts skipped)


def write_report(
    result_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike = "report",
    *,
    force: bool = False,
    metric: str = "auto",
    selection_files: Sequence[str | os.PathLike] = (),
    charts: bool = True,
) -> WrittenReport:
    """Read, analyse and write every report file; nothing is written unless everything renders."""
    if not result_files:
        raise ConfigError("no results file given")
    results = read_results(result_files)
    report = build_report(results, metric=metric, selection_files=selection_files)
    notes: list[str] = []
    images: dict[str, bytes] = {}
    if charts:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            notes.append("matplotlib is not installed: PNG charts skipped (pip install 'cmg-toc[plot]')")
        else:
            for task in dict.fromkeys(g.task for g in report.groups):
                images[chart_name(task)] = render_task_chart(report, task)
            for plot in report.selections:
                images[plot.name] = render_selection_chart(plot.path)
    # report.md links only the charts that are actually written.
    report.charted_tasks = frozenset(g.task for g in report.groups if chart_name(g.task) in images)
    texts = {
        "report.md": render_markdown(report),
        "results.csv": render_csv(results.records),
        "summary.json": render_summary(report),
    }
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TocError(f"{out}: output path exists and is not a directory")
    names = list(texts) + list(images)
    for name in names:  # refuse before writing anything
        prepare_output(out / name, force=force)
    for name, text in texts.items():
        write_text_atomic(out / name, text)
    for name, data in images.items():
        write_bytes_atomic(out / name, data)
    return WrittenReport(out_dir=out, files=tuple(names), notes=tuple(notes))


# ---------------------------------------------------------------------------- comparison plans

VARIANT_FAMILY = {"dcid": "dcid", "dcid+toc": "dcid", "hdcid": "hdcid", "hdcid+toc": "hdcid"}
DTYPE_NAMES = ("float32", "float64")
_PLAN_KEYS = {
    "data_root", "data_config", "cache_dir", "checkpoints", "tasks", "directions", "variants", "heads",
    "seeds", "protocol", "epochs", "batch_size", "dtype", "split_seed", "device", "trust_checkpoint",
    "selection",
}
_INLINE_KEYS = ("channels", "max_num", "min_num")


@dataclass(frozen=True)
class InlineToc:
    """TOC settings computed from the checkpoint's codebook at evaluation time."""

    channels: int
    max_num: int
    min_num: int

    def as_dict(self) -> dict[str, int]:
        return {"channels": self.channels, "max_num": self.max_num, "min_num": self.min_num}


@dataclass(frozen=True)
class EvalJob:
    """One call of the evaluation library: one task, one checkpoint, its variants × the rest."""

    task: str
    family: str  # "dcid" or "hdcid": which checkpoint
    checkpoint: Path
    variants: tuple[str, ...]
    directions: tuple[str, ...]
    heads: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: str
    epochs: int | None
    batch_size: int
    dtype: str
    split_seed: int
    selection: InlineToc | Path | None  # None when no variant of the job applies TOC


@dataclass(frozen=True)
class ComparisonPlan:
    """A parsed `toc compare` plan; paths are absolute (relative ones are taken from the plan's folder)."""

    source: Path
    data_root: Path | None
    data_config: Path | None
    cache_dir: Path | None
    device: str
    trust_checkpoint: bool
    jobs: tuple[EvalJob, ...]


def _plan_error(path: Path, key: str, expected: str, actual: Any) -> ConfigError:
    return ConfigError(f"{path}: key '{key}' (expected {expected}, got {_short(actual)})")


def _plan_list(raw: dict, key: str, allowed: Sequence[str], default: Sequence[str] | None, path: Path) -> tuple[str, ...]:
    if key not in raw:
        if default is None:
            raise ConfigError(f"{path}: missing key '{key}' (expected a list of {', '.join(allowed)})")
        return tuple(default)
    value = raw[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _plan_error(path, key, f"a non-empty list of {', '.join(allowed)}", value)
    for item in value:
        if item not in allowed:
            raise _plan_error(path, key, f"values among {', '.join(allowed)}", item)
    return tuple(dict.fromkeys(value))  # first-seen order, no repeats


def _plan_int(raw: dict, key: str, default: int | None, path: Path, minimum: int = 0) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _plan_error(path, key, f"an integer >= {minimum}", value)
    return value


def _plan_path(value: Any, key: str, base: Path, path: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _plan_error(path, key, "a non-empty path string", value)
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


def _inline_toc(table: dict, key: str, path: Path) -> InlineToc:
    unknown = sorted(set(table) - set(_INLINE_KEYS))
    if unknown:
        raise _plan_error(path, f"{key}.{unknown[0]}", f"one of {', '.join(_INLINE_KEYS)}", unknown[0])
    missing = [k for k in _INLINE_KEYS if k not in table]
    if missing:
        raise ConfigError(f"{path}: missing key '{key}.{missing[0]}' (TOC settings need {', '.join(_INLINE_KEYS)})")
    values = {}
    for name in _INLINE_KEYS:
        v = table[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _plan_error(path, f"{key}.{name}", "an integer >= 0", v)
        values[name] = v
    if values["channels"] < 1 or values["max_num"] + values["min_num"] < 1:
        raise _plan_error(path, key, "channels >= 1 and max_num + min_num >= 1", table)
    return InlineToc(**values)


def _selection_for(
    section: Any, task: str, family: str, base: Path, path: Path
) -> InlineToc | Path | None:
    """TOC settings of one (task, family): [selection] < [selection.TASK] < [selection.TASK.FAMILY].

    Inline keys (channels, max_num, min_num) are merged from the outer to the inner table; a
    string at [selection.TASK] FAMILY = "file.json" names a `toc select` file instead.
    """
    if section is None:
        return None
    if not isinstance(section, dict):
        raise _plan_error(path, "selection", "a table", section)
    merged: dict[str, Any] = {}
    table, where = section, "selection"
    steps: tuple[tuple[str | None, Sequence[str]], ...] = ((task, TASK_ORDER), (family, ("dcid", "hdcid")), (None, ()))
    for depth, (nested, allowed) in enumerate(steps):
        for name in table:
            if name not in _INLINE_KEYS and name not in allowed:
                expected = ", ".join([*_INLINE_KEYS, *allowed])
                raise _plan_error(path, f"{where}.{name}", f"one of {expected}", name)
        merged.update({k: table[k] for k in _INLINE_KEYS if k in table})
        if nested is None or nested not in table:
            break
        inner = table[nested]
        if isinstance(inner, str) and depth == 1:
            return _plan_path(inner, f"{where}.{nested}", base, path)
        if not isinstance(inner, dict):
            kind = "a table of TOC settings or a selection file path" if depth == 1 else "a table"
            raise _plan_error(path, f"{where}.{nested}", kind, inner)
        table, where = inner, f"{where}.{nested}"
    return _inline_toc(merged, where, path) if merged else None


def load_plan(path: str | os.PathLike) -> ComparisonPlan:
    """Parse and validate a comparison plan (TOML) and expand it into evaluation jobs."""
    plan_path = Path(path)
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(f"{plan_path}: reading TOML on Python 3.10 needs the 'tomli' package") from None
    if not plan_path.is_file():
        raise ConfigError(f"{plan_path}: plan file not found")
    try:
        with plan_path.open("rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{plan_path}: invalid TOML ({exc})") from None
    unknown = sorted(set(raw) - _PLAN_KEYS)
    if unknown:
        raise ConfigError(f"{plan_path}: unknown key '{unknown[0]}' (expected one of {sorted(_PLAN_KEYS)})")
    base = plan_path.resolve().parent
    data_root = _plan_path(raw["data_root"], "data_root", base, plan_path) if "data_root" in raw else None
    data_config = _plan_path(raw["data_config"], "data_config", base, plan_path) if "data_config" in raw else None
    if data_root is None and data_config is None:
        raise ConfigError(f"{plan_path}: give 'data_root' or 'data_config' (where the task files are)")
    cache_dir = _plan_path(raw["cache_dir"], "cache_dir", base, plan_path) if "cache_dir" in raw else None
    tasks = _plan_list(raw, "tasks", TASK_ORDER, None, plan_path)
    directions = _plan_list(raw, "directions", DIRECTION_ORDER, DIRECTION_ORDER, plan_path)
    variants = _plan_list(raw, "variants", VARIANT_ORDER, VARIANT_ORDER, plan_path)
    heads = _plan_list(raw, "heads", HEAD_ORDER, ("linear",), plan_path)
    protocol = raw.get("protocol", "strict")
    if protocol not in PROTOCOL_ORDER:
        raise _plan_error(plan_path, "protocol", " or ".join(PROTOCOL_ORDER), protocol)
    seeds_raw = raw.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds_raw, list) or not seeds_raw
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds_raw)
        or len(set(seeds_raw)) != len(seeds_raw)
    ):
        raise _plan_error(plan_path, "seeds", "a non-empty list of distinct integers >= 0", seeds_raw)
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPE_NAMES:
        raise _plan_error(plan_path, "dtype", " or ".join(DTYPE_NAMES), dtype)
    device = raw.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise _plan_error(plan_path, "device", "cpu or cuda", device)
    trust = raw.get("trust_checkpoint", False)
    if not isinstance(trust, bool):
        raise _plan_error(plan_path, "trust_checkpoint", "true or false", trust)
    epochs = _plan_int(raw, "epochs", None, plan_path, minimum=1)
    batch_size = _plan_int(raw, "batch_size", 80, plan_path, minimum=1)
    split_seed = _plan_int(raw, "split_seed", 0, plan_path)
    checkpoints_raw = raw.get("checkpoints")
    if not isinstance(checkpoints_raw, dict):
        raise _plan_error(plan_path, "checkpoints", "a table: dcid = PATH, hdcid = PATH", checkpoints_raw)
    for name in checkpoints_raw:
        if name not in ("dcid", "hdcid"):
            raise _plan_error(plan_path, f"checkpoints.{name}", "dcid or hdcid", name)
    checkpoints = {
        family: _plan_path(value, f"checkpoints.{family}", base, plan_path) for family, value in checkpoints_raw.items()
    }
    jobs: list[EvalJob] = []
    for task in tasks:
        for family in ("dcid", "hdcid"):
            family_variants = tuple(v for v in variants if VARIANT_FAMILY[v] == family)
            if not family_variants:
                continue
            if family not in checkpoints:
                raise ConfigError(
                    f"{plan_path}: variants {', '.join(family_variants)} need 'checkpoints.{family}'"
                )
            needs_toc = any(v.endswith("+toc") for v in family_variants)
            selection = _selection_for(raw.get("selection"), task, family, base, plan_path)
            if needs_toc and selection is None:
                raise ConfigError(
                    f"{plan_path}: variant {family}+toc on task {task} needs TOC settings "
                    f"([selection], [selection.{task}] or [selection.{task}.{family}])"
                )
            jobs.append(
                EvalJob(
                    task=task, family=family, checkpoint=checkpoints[family], variants=family_variants,
                    directions=directions, heads=heads, seeds=tuple(seeds_raw), protocol=protocol,
                    epochs=epochs, batch_size=batch_size or 80, dtype=dtype, split_seed=split_seed or 0,
                    selection=selection if needs_toc else None,
                )
            )
    return ComparisonPlan(
        source=plan_path, data_root=data_root, data_config=data_config, cache_dir=cache_dir,
        device=device, trust_checkpoint=trust, jobs=tuple(jobs),
    )


def selection_file_name(task: str, family: str) -> str:
    """Where `toc compare` writes the selection it computes for inline TOC settings."""
    return f"toc-{task}-{family}.json"


def _inline_selection_document(checkpoint: Any, settings: InlineToc) -> dict[str, Any]:
    """The `toc select` document for inline settings, computed from the checkpoint's codebooks."""
    from toc.selection import TocSettings, select_levels, selection_document

    toc_settings = TocSettings(channels=settings.channels, max_num=settings.max_num, min_num=settings.min_num)
    selections = select_levels([cb.double() for cb in checkpoint.codebooks], toc_settings)
    return selection_document(
        selections, checkpoint_path=checkpoint.path, checkpoint_sha256=checkpoint.sha256,
        family=checkpoint.family, parameters=toc_settings.as_dict(),
    )


def run_plan(plan: ComparisonPlan, out_dir: str | os.PathLike, *, log: Any = None) -> list[dict[str, Any]]:
    """Run every job of the plan with the evaluation library; one JSON-ready dict per result.

    Each checkpoint is loaded once and each task once; codes are encoded once per checkpoint
    and set (toc.cache), so every variant, head and seed of a job reads the same codes. Inline
    TOC settings are turned into a selection file in `out_dir` (toc-TASK-FAMILY.json), so the
    report can draw its channel scores and the run can be repeated from the file.
    """
    from toc.cache import CheckpointCodeSource, CodeCache
    from toc.checkpoint import load_checkpoint
    from toc.data.registry import load_task
    from toc.evaluate import EvalRequest, run_evaluation
    from toc.selection import dumps_document, read_selection
    from toc.variants import load_selection_file

    say = log or (lambda _message: None)
    out = Path(out_dir)
    checkpoints: dict[str, Any] = {}
    caches: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for job in plan.jobs:
        if job.family not in caches:
            checkpoint = load_checkpoint(job.checkpoint, trust_checkpoint=plan.trust_checkpoint)
            wanted_levels = 2 if job.family == "hdcid" else 1
            if checkpoint.levels != wanted_levels:
                raise ConfigError(
                    f"{job.checkpoint}: checkpoints.{job.family} has {checkpoint.levels} codebook level(s); "
                    f"{job.family} variants need {wanted_levels}"
                )
            checkpoints[job.family] = checkpoint
            caches[job.family] = CodeCache(CheckpointCodeSource(checkpoint, device=plan.device), plan.cache_dir)
        if job.task not in tasks:
            tasks[job.task] = load_task(job.task, data_root=plan.data_root, config=plan.data_config)
        selection_path: Path | None = None
        if isinstance(job.selection, InlineToc):
            selection_path = out / selection_file_name(job.task, job.family)
            document = _inline_selection_document(checkpoints[job.family], job.selection)
            write_text_atomic(selection_path, dumps_document(document))
        elif isinstance(job.selection, Path):
            selection_path = job.selection
        selection = load_selection_file(selection_path) if selection_path is not None else None
        if selection is not None and selection.checkpoint_sha256 not in ("", checkpoints[job.family].sha256):
            raise ConfigError(
                f"{selection_path}: selection was made for checkpoint {selection.checkpoint_sha256[:12]}, "
                f"not {job.checkpoint} ({checkpoints[job.family].sha256[:12]})"
            )
        toc_settings = dict(read_selection(selection_path).parameters) if selection_path is not None else None
        request = EvalRequest(
            variants=job.variants, directions=job.directions, heads=job.heads, protocol=job.protocol,
            seeds=job.seeds, epochs=job.epochs, batch_size=job.batch_size, dtype=job.dtype,
            selection=selection, split_seed=job.split_seed,
        )
        say(f"compare: {job.task} with {job.family} ({', '.join(job.variants)})")
        for record in run_evaluation(tasks[job.task], caches[job.family], request, log=say):
            line = record.to_json()
            line["checkpoint"] = str(job.checkpoint)
            if record.variant.endswith("+toc") and selection_path is not None:
                line["toc"] = toc_settings
                line["selection"] = str(selection_path)
            records.append(line)
    return records


def dumps_results(records: Iterable[Mapping[str, Any]]) -> str:
    """Results JSONL: one object per line, sorted keys, so reruns give identical bytes."""
    return "".join(json.dumps(dict(r), sort_keys=True, allow_nan=False) + "\n" for r in records)


def compare(
    plan_path: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, log: Any = None,
    charts: bool = True,
) -> WrittenReport:
    """Run a whole comparison plan and write OUT/results.jsonl and the report beside it."""
    plan = load_plan(plan_path)
    out = Path(out_dir)
    # Refuse before hours of evaluation, not after.
    names = ["results.jsonl", "report.md", "results.csv", "summary.json"]
    names += [selection_file_name(j.task, j.family) for j in plan.jobs if isinstance(j.selection, InlineToc)]
    for name in names:
        prepare_output(out / name, force=force)
    records = run_plan(plan, out, log=log)
    if not records:
        raise ConfigError(f"{plan.source}: the plan produced no result")
    write_text_atomic(out / "results.jsonl", dumps_results(records))
    written = write_report([out / "results.jsonl"], out, force=True, charts=charts)
    return WrittenReport(out_dir=out, files=("results.jsonl", *written.files), notes=written.notes)
