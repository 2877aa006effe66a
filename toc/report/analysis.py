"""The analysis behind a report: results grouped per task × direction × head × protocol, every
variant summarised over seeds, its difference to DCID, and one recommendation per group."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toc.codebook.selection import SelectionFile
from toc.errors import ConfigError, DataError
from toc.eval.heads import HEADS
from toc.eval.protocols import DIRECTIONS, PROTOCOLS
from toc.eval.records import ResultRecord
from toc.eval.tasks import TASK_REGISTRY, TASKS
from toc.eval.variants import VARIANT_NAMES
from toc.report.results import HealthRecord, InputFile, ResultSet, canonical, order_key
from toc.report.stats import (
    CONFIDENCE,
    PairedDifference,
    SampleSummary,
    paired_difference,
    summarize,
)

BASELINE_VARIANT = "dcid"
FALLBACK_METRICS = ("accuracy", "f1", "macro_f1")
VERDICT_CLEAR = "clear"
VERDICT_NONE = "no clear winner"
VERDICT_SINGLE = "single variant"
SPLIT_VALIDATION = "validation"
SPLIT_EVALUATION = "evaluation"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    """A selection to draw: its file name in the report, the selection file, and — when the
    selection was made in this run — the selection itself and the codebooks it was made from,
    so the figure needs no checkpoint to be read again."""

    name: str
    path: Path
    selection: SelectionFile | None = None
    codebooks: tuple[Any, ...] | None = None


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
        order_key(r.task, TASKS),
        order_key(r.direction, DIRECTIONS),
        order_key(r.head, HEADS),
        order_key(r.protocol, PROTOCOLS),
    )


def choose_metric(records: Sequence[ResultRecord], requested: str) -> str:
    """The metric a group is compared on: the one requested where the group has it, else the
    task's primary metric (accuracy for clip tasks, f1 for segment tasks)."""
    task = records[0].task
    if requested != "auto" and any(requested in r.metrics for r in records):
        metric = requested
    elif task in TASK_REGISTRY:
        metric = TASK_REGISTRY[task].primary_metric
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

    Rule: rank variants by their mean score on the selection split (ties: VARIANT_NAMES). The best
    is recommended ("clear") only when, for EVERY other variant v, the seed-paired 95% t interval
    of best − v lies strictly above 0; this includes the runner-up, and with fewer than 2 shared
    seeds there is no interval, so no separation. Otherwise the verdict is "no clear winner" and
    the contenders are the best plus every variant it is not separated from.
    """
    if not by_variant:
        raise ValueError("no variants to recommend from")
    means = {v: math.fsum(s.values()) / len(s) for v, s in by_variant.items()}
    ranked = sorted(means, key=lambda v: (-means[v], order_key(v, VARIANT_NAMES)))
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
    order = sorted(variants, key=lambda v: order_key(v, VARIANT_NAMES))
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
            order_key(r.task, TASKS), order_key(r.direction, DIRECTIONS),
            order_key(r.variant, VARIANT_NAMES), r.checkpoint_sha256 or "",
            row.channels_per_level, canonical(r.toc), row.selection or "",
        )
        rows.setdefault(key, row)
    return [rows[k] for k in sorted(rows)]


@dataclass(frozen=True)
class MadeSelection:
    """A selection made in this run (toc compare / toc demo), with the codebooks it was made from."""

    selection: SelectionFile  # saved: its `path` is where the results say it is
    codebooks: tuple[Any, ...]


def _selection_plots(
    records: Sequence[ResultRecord], selection_files: Sequence[str | os.PathLike], made: Sequence[MadeSelection],
) -> list[SelectionPlot]:
    in_memory = {Path(m.selection.path): m for m in made if m.selection.path is not None}
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
        known = in_memory.get(path)
        plots.append(SelectionPlot(
            name=name, path=path, selection=known.selection if known else None,
            codebooks=known.codebooks if known else None,
        ))
    return plots


def build_report(
    results: ResultSet,
    metric: str = "auto",
    selection_files: Sequence[str | os.PathLike] = (),
    confidence: float = CONFIDENCE,
    made_selections: Sequence[MadeSelection] = (),
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
        unique_health.setdefault(canonical(h.fields), h)
    return Report(
        inputs=list(results.inputs),
        groups=groups,
        toc_settings=_toc_rows(results.records),
        health=sorted(unique_health.values(), key=lambda h: h.sort_key),
        selections=_selection_plots(results.records, selection_files, made_selections),
        metric_option=metric,
        confidence=confidence,
    )
