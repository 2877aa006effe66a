"""The analysis behind a report: results grouped per task × direction × head × protocol, every
variant's score with an interval that includes the evaluated sample, its paired difference to
DCID, the spread across training runs, and one recommendation per group.

Where the results carry per-unit outcomes (`eval_parts` / `val_parts`, written by `toc eval`),
intervals and the recommendation come from the paired bootstrap and tests over the evaluated
clips or videos of `toc.report.resampling`. Results without them (older files, other tools) get
seed statistics only, clearly labelled, and never a "clear" verdict: without per-clip outcomes
no test over clips can be made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from toc.codebook.budget import BudgetChoice, EvaluationPoint, evaluation_curve_from_json
from toc.codebook.selection import SelectionFile
from toc.errors import ConfigError, DataError
from toc.eval.records import ResultRecord
from toc.eval.tasks import TASK_REGISTRY, TASKS
from toc.eval.variants import VARIANT_NAMES, VARIANTS
from toc.report.resampling import (
    ACCURACY,
    DEFAULT_RESAMPLES,
    LEVEL,
    MICRO_F1,
    MICRO_PRECISION,
    MICRO_RECALL,
    RATIO,
    SPLIT_EVALUATION,
    SPLIT_VALIDATION,
    VERDICT_NONE,
    VERDICT_SINGLE,
    Comparison,
    PairedEstimate,
    UnitMetric,
    UnitParts,
    VariantEstimate,
    Verdict,
    paired_bootstrap,
    recommend_variant,
)
from toc.report.results import HealthRecord, InputFile, ResultSet, canonical, order_key
from toc.report.stats import (
    CONFIDENCE,
    PairedDifference,
    SampleSummary,
    paired_difference,
    summarize,
)
from toc.vocabulary import DIRECTIONS, HEADS, PROTOCOLS

BASELINE_VARIANT = "dcid"
FALLBACK_METRICS = ("accuracy", "f1", "macro_f1")
BOOTSTRAP_SEED = 0
METHOD_TEST = "paired test over units"
METHOD_NONE = "seed statistics only"
LLP_PREFIX = "llp_"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunSpread:
    """A variant's score per pretraining run (or split seed), averaged over the other runs."""

    what: str  # "pretraining run" or "split seed"
    values: tuple[tuple[int, float], ...]  # (label, score)
    summary: SampleSummary


@dataclass(frozen=True)
class LlpRow:
    """The LLP scores of one variant: per-direction keys with intervals, combined keys as means."""

    estimates: dict[str, VariantEstimate]  # llp key -> bootstrap estimate over videos
    both_directions: dict[str, float]  # llp key -> mean over runs (v2a and a2v heads together)
    n_videos_both: int | None  # videos both directions evaluate (the combined keys' units)


@dataclass(frozen=True)
class VariantRow:
    """One variant of one group: its evaluation score, interval, difference to DCID and spread."""

    variant: str
    seeds: tuple[int, ...]  # head seeds
    runs: tuple[tuple, ...]  # (pretraining run, split seed, head seed) of every result
    eval: SampleSummary  # over the results (runs): mean, std and the seed t interval
    val: SampleSummary | None  # over the results that have a validation score
    same_modality: SampleSummary | None
    vs_baseline: PairedDifference | None  # seed-paired (results without per-unit outcomes)
    checkpoints: tuple[str, ...]  # distinct checkpoint sha256 values seen
    estimate: VariantEstimate | None = None  # bootstrap over units (and runs, splits)
    vs_dcid: PairedEstimate | None = None  # variant − dcid, paired by unit and run
    spread: tuple[RunSpread, ...] = ()
    llp: LlpRow | None = None

    @property
    def score(self) -> float:
        return self.estimate.estimate if self.estimate is not None else self.eval.mean

    @property
    def wilson_shown(self) -> bool:
        """Every clip has the same outcome (a zero-width bootstrap interval): the Wilson interval
        of k correct of n stands in, so no interval reads as certainty."""
        e = self.estimate
        return e is not None and e.zero_width and e.wilson is not None

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.estimate is not None:
            shown = self.estimate.wilson if self.wilson_shown else self.estimate.interval
            return (shown.low, shown.high)  # type: ignore[union-attr]
        if self.eval.ci_low is None or self.eval.ci_high is None:
            return None
        return (self.eval.ci_low, self.eval.ci_high)


@dataclass(frozen=True)
class Recommendation:
    """Which variant to use for a group, how that was decided and how sure we are."""

    verdict: str  # VERDICT_CLEAR, VERDICT_NONE or VERDICT_SINGLE
    variant: str | None  # the recommended variant; None when no clear winner
    split: str  # the split the ranking used: SPLIT_VALIDATION or SPLIT_EVALUATION
    ranked_on: str  # the split as the report names it
    best: str
    best_mean: float  # on the ranking split
    ranking: tuple[str, ...]  # best first
    means: dict[str, float]  # ranking-split score per variant
    contenders: tuple[str, ...]  # best plus every variant not separated from it
    comparisons: tuple[Comparison, ...]  # best vs every other (empty without per-unit outcomes)
    missing_validation: int  # results in the group without a validation score for the metric
    method: str  # METHOD_TEST or METHOD_NONE
    facts: tuple[str, ...]  # what was done, in sentences
    warnings: tuple[str, ...]  # what makes the choice weaker than it looks

    @property
    def runner_up(self) -> str | None:
        return self.ranking[1] if len(self.ranking) > 1 else None


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
    unit: str | None = None  # "clip" / "video" when the results carry per-unit outcomes
    n_units: int | None = None  # evaluated units (per split: the smallest)
    notes: tuple[str, ...] = ()  # overlap with pretraining, dropped runs, ...

    @property
    def title(self) -> str:
        return f"{self.task} · {self.direction} · {self.head} · {self.protocol}"

    @property
    def resampled(self) -> bool:
        return self.recommendation.method == METHOD_TEST


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


@dataclass(frozen=True)
class BudgetSweepView:
    """A budget chosen on validation (`--channels auto`), as result lines carry it: the choice
    with its validation curve and, separately, the same heads' evaluation-split curve."""

    name: str  # the figure's file name in the report
    task: str
    direction: str
    variant: str
    head: str
    checkpoint_sha256: str | None
    pretrain_run: int | None
    split_seed: int | None
    choice: BudgetChoice
    evaluation: tuple[EvaluationPoint, ...] | None  # never used to choose

    @property
    def title(self) -> str:
        run = "" if self.pretrain_run is None else f" · pretraining run {self.pretrain_run}"
        split = "" if self.split_seed is None else f" · split seed {self.split_seed}"
        return f"{self.task} · {self.direction} · {self.variant} · {self.head}{run}{split}"


@dataclass
class Report:
    inputs: list[InputFile]
    groups: list[Group]
    toc_settings: list[TocSettingRow]
    health: list[HealthRecord]
    selections: list[SelectionPlot]
    budget_sweeps: list[BudgetSweepView]
    metric_option: str
    confidence: float = CONFIDENCE
    charted_tasks: frozenset[str] = frozenset()  # tasks whose bar chart is written beside report.md
    charted_budgets: frozenset[str] = frozenset()  # budget sweeps whose figure is written beside it
    n_resamples: int = DEFAULT_RESAMPLES
    level: float = LEVEL
    bootstrap_seed: int = BOOTSTRAP_SEED


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


def unit_metric(name: str) -> UnitMetric | None:
    """How metric `name` is recomputed from per-unit parts (None: it is not a sum over units)."""
    if name == "accuracy":
        return ACCURACY
    base = {"f1": MICRO_F1, "precision": MICRO_PRECISION, "recall": MICRO_RECALL}.get(
        name.removeprefix("micro_")
    )
    return None if base is None else UnitMetric(name, base.kind, base.n_parts)


def _run_key(run: tuple) -> tuple:
    return tuple(-1 if x is None else x for x in run)


# ---------------------------------------------------------------------------- per-unit blocks


def _blocks(
    variants: Mapping[str, Sequence[ResultRecord]], order: Sequence[str], runs: Sequence[tuple],
    which: str, metric: UnitMetric,
) -> list[UnitParts]:
    """One UnitParts per split seed over the given runs: `which` = "eval" or "val" parts.

    Every result of one split must be scored on the same units in the same order (the unit-id
    digests are compared); runs pair across variants by (pretraining run, split seed, seed)."""
    unit = variants[order[0]][0].unit or "clip"
    blocks = []
    for split in sorted({run[1] for run in runs}, key=lambda x: -1 if x is None else x):
        block_runs = sorted((run for run in runs if run[1] == split), key=_run_key)
        labels = {run: i for i, run in enumerate(block_runs)}
        digest: tuple[str, str] | None = None
        by_variant: dict[str, dict[int, np.ndarray]] = {}
        for name in order:
            for record in variants[name]:
                if record.run not in labels:
                    continue
                units = getattr(record, f"{which}_units_sha256")
                count = len(getattr(record, f"{which}_parts"))
                if digest is None:
                    digest = (units, record.source, count)
                elif count != digest[2]:
                    raise DataError(
                        f"results of one comparison have different numbers of {unit}s "
                        f"(compare {digest[1]}); they cannot be paired",
                        file=record.source, key=f"{which}_parts", expected=digest[2], actual=count,
                    )
                elif units is not None and digest[0] is not None and units != digest[0]:
                    raise DataError(
                        f"results of one comparison were scored on different {unit}s "
                        f"(compare {digest[1]}); they cannot be paired",
                        file=record.source, key=f"{which}_units_sha256",
                        expected=str(digest[0])[:16], actual=str(units)[:16],
                    )
                by_variant.setdefault(name, {})[labels[record.run]] = np.asarray(
                    getattr(record, f"{which}_parts"), dtype=np.float64
                )
        pretraining = [run[0] for run in block_runs]
        clusters = None
        if any(p is not None for p in pretraining):
            clusters = {labels[run]: -1 if run[0] is None else run[0] for run in block_runs}
        blocks.append(UnitParts.from_runs(by_variant, metric, unit, clusters=clusters))
    return blocks


def _llp_blocks(
    variants: Mapping[str, Sequence[ResultRecord]], order: Sequence[str], runs: Sequence[tuple], key: str,
) -> list[UnitParts]:
    """Per-video LLP scores as ratio parts (score · counted, counted) in the eval blocks' shape."""
    blocks = []
    for split in sorted({run[1] for run in runs}, key=lambda x: -1 if x is None else x):
        block_runs = sorted((run for run in runs if run[1] == split), key=_run_key)
        labels = {run: i for i, run in enumerate(block_runs)}
        by_variant: dict[str, dict[int, np.ndarray]] = {}
        for name in order:
            for record in variants[name]:
                if record.run in labels:
                    scores = np.array(
                        [np.nan if x is None else x for x in record.llp_per_video[key]],  # type: ignore[index]
                        dtype=np.float64,
                    )
                    counted = np.isfinite(scores).astype(np.float64)
                    parts = np.stack([np.where(counted > 0, scores, 0.0), counted], axis=1)
                    by_variant.setdefault(name, {})[labels[record.run]] = parts
        clusters = None
        if any(run[0] is not None for run in block_runs):
            clusters = {labels[run]: -1 if run[0] is None else run[0] for run in block_runs}
        blocks.append(UnitParts.from_runs(by_variant, RATIO, "video", clusters=clusters))
    return blocks


def _has_parts(record: ResultRecord, which: str, metric: str) -> bool:
    return (
        record.unit is not None
        and getattr(record, f"{which}_parts") is not None
        and metric in (record.parts_metrics or ())
    )


# ---------------------------------------------------------------------------- one group


def _ranking_split(records: Sequence[ResultRecord], metric: str, protocol: str) -> tuple[str, str, int]:
    """(split, how the report names it, results without a validation score).

    With per-unit outcomes on the evaluation split, validation needs them too (the test runs
    over its units); without any per-unit outcomes, validation scores suffice (seed statistics)."""
    on_evaluation = protocol == "reference" or any(r.val_split == "evaluation" for r in records)
    if on_evaluation:
        label = "evaluation (published protocol)" if protocol == "reference" else "evaluation"
        return SPLIT_EVALUATION, label, 0
    if all(_has_parts(r, "eval", metric) for r in records):
        missing = sum(1 for r in records if not _has_parts(r, "val", metric))
    else:
        missing = sum(1 for r in records if not (r.val_metrics and metric in r.val_metrics))
    if missing:
        return SPLIT_EVALUATION, "evaluation (validation missing)", missing
    return SPLIT_VALIDATION, "validation (same-modality)", 0


def _spreads(records: Sequence[ResultRecord], metric: str) -> tuple[RunSpread, ...]:
    out = []
    for what, index in (("pretraining run", 0), ("split seed", 1)):
        by_label: dict[int, list[float]] = {}
        for r in records:
            label = r.run[index]
            if label is not None:
                by_label.setdefault(label, []).append(r.metrics[metric])
        if len(by_label) >= 2:
            values = tuple((label, math.fsum(v) / len(v)) for label, v in sorted(by_label.items()))
            out.append(RunSpread(what, values, summarize([v for _, v in values])))
    return tuple(out)


def _overlap_notes(records: Sequence[ResultRecord]) -> tuple[list[str], list[str]]:
    """(notes, warnings) about evaluated clips found in the pretraining list."""
    notes, warnings = [], []
    seen: set[str] = set()
    for r in records:
        o = r.pretrain_overlap
        if not o or canonical(o) in seen:
            continue
        seen.add(canonical(o))
        if not o.get("checked"):
            notes.append(f"Evaluated ids not checked against a pretraining list: {o.get('reason', 'unknown')}.")
        elif o.get("excluded"):
            notes.append(
                f"{o['excluded']} evaluated clips that are in the pretraining list "
                f"{o.get('pretraining_list')} were excluded."
            )
        elif o.get("in_pretraining"):
            warnings.append(
                f"{o['in_pretraining']} of {o.get('evaluated')} evaluated clips are in the pretraining "
                f"list {o.get('pretraining_list')}: the encoder saw them in pretraining (not excluded)."
            )
        else:
            notes.append(
                f"No evaluated clip is in the pretraining list {o.get('pretraining_list')}."
            )
    return notes, warnings


def _analyse_group(
    records: Sequence[ResultRecord], metric_option: str, confidence: float, n_resamples: int,
    level: float,
) -> Group:
    metric = choose_metric(records, metric_option)
    first = records[0]
    variants: dict[str, list[ResultRecord]] = {}
    for record in records:
        variants.setdefault(record.variant, []).append(record)
    order = sorted(variants, key=lambda v: order_key(v, VARIANT_NAMES))
    split, ranked_on, missing = _ranking_split(records, metric, first.protocol)
    notes, warnings = _overlap_notes(records)

    shared = set.intersection(*({r.run for r in variants[v]} for v in order))
    unit = unit_metric(metric)
    which = "val" if split == SPLIT_VALIDATION else "eval"
    why = _why_not_resampled(records, metric, which, shared)
    resample = not why
    runs = sorted(shared, key=_run_key)
    boot = eval_blocks = None
    if resample:
        notes += _pairing_notes(records, shared, which)
        eval_blocks = _blocks(variants, order, runs, "eval", unit)  # type: ignore[arg-type]
        boot = paired_bootstrap(
            eval_blocks, n_resamples=n_resamples, seed=BOOTSTRAP_SEED, confidence=confidence
        )
    rows = _rows(variants, order, metric, boot, eval_blocks, runs, confidence, n_resamples)
    if resample:
        rank_blocks = eval_blocks if which == "eval" else _blocks(variants, order, runs, "val", unit)  # type: ignore[arg-type]
        verdict = recommend_variant(
            rank_blocks, split=split, protocol=first.protocol, level=level, n_resamples=n_resamples,
            seed=BOOTSTRAP_SEED, tie_order=VARIANT_NAMES,
            same_modality_validation=split == SPLIT_VALIDATION, epoch_selected=first.head == "linear",
        )
        recommendation = _tested_recommendation(verdict, split, ranked_on, missing, warnings)
    else:
        recommendation = _seed_recommendation(
            variants, order, metric, split, ranked_on, missing, first, why, warnings
        )
    chances = sorted({r.chance for r in records if r.chance is not None})
    return Group(
        task=first.task, direction=first.direction, head=first.head, protocol=first.protocol,
        metric=metric, rows=tuple(rows), recommendation=recommendation,
        chance=chances[0] if len(chances) == 1 else None,
        unit=first.unit if resample else None, n_units=boot.n_units if boot is not None else None,
        notes=tuple(notes),
    )


def _why_not_resampled(records: Sequence[ResultRecord], metric: str, which: str,
                       shared: set[tuple]) -> str:
    """Why the group's results cannot be resampled per unit and tested ("" when they can)."""
    if unit_metric(metric) is None:
        return (
            f"{metric} is not a sum over clips or videos (as the reference protocol's "
            "batch-weighted P/R/F1 and the macro-F1 are), so it cannot be resampled or tested per "
            "unit; accuracy and the micro P/R/F1 can"
        )
    if not all(_has_parts(r, "eval", metric) and _has_parts(r, which, metric) for r in records):
        return (
            "these results carry no per-clip (per-video) outcomes (an older toc eval or another "
            "tool wrote them)"
        )
    if len({r.unit for r in records}) != 1:
        return "the results disagree on what a unit is (clip or video)"
    if not shared:
        return (
            "no training run (pretraining run, split seed, seed) is shared by every variant, so "
            "they cannot be paired"
        )
    return ""


def _pairing_notes(records: Sequence[ResultRecord], shared: set[tuple], which: str) -> list[str]:
    """What the resampled comparison leaves out or pairs by position only."""
    notes = []
    dropped = sorted({r.run for r in records} - shared, key=_run_key)
    if dropped:
        notes.append(
            f"{len(dropped)} training run(s) not shared by every variant are left out of the "
            f"intervals and the test: {', '.join(_run_text(x) for x in dropped)}."
        )
    for which_side in {"eval", which}:
        if any(getattr(r, f"{which_side}_units_sha256") is None for r in records):
            notes.append(
                f"Some results do not name their {'evaluated' if which_side == 'eval' else 'validation'} "
                f"{records[0].unit}s (no {which_side}_units_sha256): they are paired by position."
            )
    return notes


def _tested_recommendation(verdict: Verdict, split: str, ranked_on: str,
                           missing: int, warnings: Sequence[str]) -> Recommendation:
    """The group's recommendation from the paired tests' verdict."""
    group_warnings = list(verdict.warnings)
    if missing:
        group_warnings.insert(0, _missing_text(missing))
    return Recommendation(
        verdict=verdict.verdict, variant=verdict.winner, split=split, ranked_on=ranked_on,
        best=verdict.best, best_mean=verdict.means[verdict.best], ranking=verdict.ranking,
        means=verdict.means, contenders=verdict.tied, comparisons=verdict.comparisons,
        missing_validation=missing, method=METHOD_TEST, facts=tuple(verdict.facts),
        warnings=tuple(group_warnings + list(warnings)),
    )


def _run_text(run: tuple) -> str:
    parts = [f"{name} {value}" for name, value in zip(("pretraining run", "split seed", "seed"), run, strict=True) if value is not None]
    return " / ".join(parts)


def _missing_text(missing: int) -> str:
    return (
        f"Validation scores are missing for {missing} result(s), so the variants are ranked on the "
        "evaluation split, which makes the choice optimistic."
    )


def _rows(
    variants: Mapping[str, Sequence[ResultRecord]], order: Sequence[str], metric: str, boot,
    eval_blocks, runs: Sequence[tuple], confidence: float, n_resamples: int,
) -> list[VariantRow]:
    eval_scores = {v: {r.seed: r.metrics[metric] for r in variants[v]} for v in order}
    baseline = eval_scores.get(BASELINE_VARIANT)
    # Seed pairing is only meaningful when every result of a variant has its own seed.
    seed_pairing = all(len(eval_scores[v]) == len(variants[v]) for v in order)
    llp = _llp_rows(variants, order, runs, confidence, n_resamples) if boot is not None else {}
    rows = []
    for variant in order:
        rs = sorted(variants[variant], key=lambda r: _run_key(r.run))
        vals = [r.val_metrics[metric] for r in rs if r.val_metrics and metric in r.val_metrics]
        same = [r.same_modality[metric] for r in rs if r.same_modality and metric in r.same_modality]
        estimate = vs_dcid = None
        if boot is not None:
            estimate = boot.variant(variant)
            if variant != BASELINE_VARIANT and BASELINE_VARIANT in variants:
                vs_dcid = boot.difference(variant, BASELINE_VARIANT)
        rows.append(
            VariantRow(
                variant=variant,
                seeds=tuple(r.seed for r in rs),
                runs=tuple(r.run for r in rs),
                eval=summarize([r.metrics[metric] for r in rs], confidence),
                val=summarize(vals, confidence) if vals else None,
                same_modality=summarize(same, confidence) if same else None,
                vs_baseline=(
                    paired_difference(eval_scores[variant], baseline, confidence)
                    if baseline is not None and variant != BASELINE_VARIANT and boot is None and seed_pairing
                    else None
                ),
                checkpoints=tuple(sorted({r.checkpoint_sha256 for r in rs if r.checkpoint_sha256})),
                estimate=estimate,
                vs_dcid=vs_dcid,
                spread=_spreads(rs, metric),
                llp=llp.get(variant),
            )
        )
    return rows


def _llp_rows(
    variants: Mapping[str, Sequence[ResultRecord]], order: Sequence[str], runs: Sequence[tuple],
    confidence: float, n_resamples: int,
) -> dict[str, LlpRow]:
    records = [r for v in order for r in variants[v] if r.run in set(runs)]
    if not records or any(r.llp_per_video is None for r in records):
        return {}
    keys = sorted(set.intersection(*(set(r.llp_per_video or {}) for r in records)))
    estimates: dict[str, dict[str, VariantEstimate]] = {v: {} for v in order}
    for key in keys:
        boot = paired_bootstrap(
            _llp_blocks(variants, order, runs, key), n_resamples=n_resamples, seed=BOOTSTRAP_SEED,
            confidence=confidence,
        )
        for v in order:
            estimates[v][key] = boot.variant(v)
    out = {}
    for v in order:
        both: dict[str, list[float]] = {}
        counts = []
        for r in variants[v]:
            combined = r.llp_both_directions or {}
            if combined.get("n_videos"):
                counts.append(int(combined["n_videos"]))
                for key, value in (combined.get("metrics") or {}).items():
                    if _is_number(value):
                        both.setdefault(key, []).append(float(value))
        out[v] = LlpRow(
            estimates=estimates[v],
            both_directions={k: math.fsum(x) / len(x) for k, x in sorted(both.items())},
            n_videos_both=min(counts) if counts else None,
        )
    return out


def _seed_recommendation(
    variants: Mapping[str, Sequence[ResultRecord]], order: Sequence[str], metric: str, split: str,
    ranked_on: str, missing: int, first: ResultRecord, why: str, warnings: list[str],
) -> Recommendation:
    """Without per-unit outcomes: the ranking only, never a winner (no test over clips)."""
    if split == SPLIT_VALIDATION:
        scores = {v: [r.val_metrics[metric] for r in variants[v]] for v in order}  # type: ignore[index]
    else:
        scores = {v: [r.metrics[metric] for r in variants[v]] for v in order}
    means = {v: math.fsum(s) / len(s) for v, s in scores.items()}
    ranking = tuple(sorted(means, key=lambda v: (-means[v], order_key(v, VARIANT_NAMES))))
    best = ranking[0]
    n_seeds = max(len(variants[v]) for v in order)
    where = {
        SPLIT_VALIDATION: "the validation split",
        SPLIT_EVALUATION: "the evaluation split" + (" (published protocol)" if first.protocol == "reference" else ""),
    }[split]
    facts = [f"Ranked on {where} by {metric} (mean over {n_seeds} result(s) per variant)."]
    if split == SPLIT_VALIDATION:
        facts.append(
            "The validation rows are of the training modality (same-modality), not cross-modal: "
            "the ranking says which variant fits the training modality best."
        )
    group_warnings = [_missing_text(missing)] if missing else []
    if first.head == "linear":
        group_warnings.append(
            "For the linear head the ranking score is the best over epochs on the rows that chose "
            "the epoch, so it is optimistic."
        )
    if first.protocol == "reference" or (split == SPLIT_EVALUATION and not missing):
        group_warnings.append(
            "The same clips choose the variant and score it, so the winner's score is optimistic"
            + (" (the published protocol does this)." if first.protocol == "reference" else ".")
        )
    if len(ranking) == 1:
        facts.append(f"{best} is the only variant evaluated here.")
        verdict, winner, contenders = VERDICT_SINGLE, best, (best,)
    else:
        facts.append(
            f"No paired test over units could be made, because {why}. Intervals are Student-t intervals "
            "over the results' seeds and describe seed-to-seed spread only; no variant is called "
            "a winner."
        )
        verdict, winner, contenders = VERDICT_NONE, None, ranking
    return Recommendation(
        verdict=verdict, variant=winner, split=split, ranked_on=ranked_on, best=best,
        best_mean=means[best], ranking=ranking, means=means, contenders=contenders, comparisons=(),
        missing_validation=missing, method=METHOD_NONE, facts=tuple(facts),
        warnings=tuple(group_warnings + warnings),
    )


# ---------------------------------------------------------------------------- TOC settings, plots


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


def _budget_sweeps(records: Sequence[ResultRecord]) -> list[BudgetSweepView]:
    """One view per chosen budget (the head seeds' lines of one choice carry the same block)."""
    found: dict[tuple, BudgetSweepView] = {}
    for r in records:
        if r.budget_choice is None:
            continue
        key = (
            order_key(r.task, TASKS), order_key(r.direction, DIRECTIONS), order_key(r.variant, VARIANT_NAMES),
            order_key(r.head, HEADS), r.checkpoint_sha256 or "", -1 if r.pretrain_run is None else r.pretrain_run,
            -1 if r.split_seed is None else r.split_seed,
        )
        if key in found:
            continue
        where = r.source or "results"
        parts = [r.task, r.direction, r.variant.replace("+", "-"), r.head]
        parts += [f"p{r.pretrain_run}"] if r.pretrain_run is not None else []
        parts += [f"s{r.split_seed}"] if r.split_seed is not None else []
        found[key] = BudgetSweepView(
            name="budget-" + "-".join("".join(c if c.isalnum() or c in "-_" else "_" for c in p) for p in parts) + ".png",
            task=r.task, direction=r.direction, variant=r.variant, head=r.head, checkpoint_sha256=r.checkpoint_sha256,
            pretrain_run=r.pretrain_run, split_seed=r.split_seed,
            choice=BudgetChoice.from_json(r.budget_choice, where, "budget_choice"),
            evaluation=None if r.budget_evaluation is None else evaluation_curve_from_json(r.budget_evaluation, where),
        )
    # Several checkpoints of one case: their figures need distinct names.
    views, used = [], set()
    for key in sorted(found):
        view = found[key]
        name, k = view.name, 2
        while name in used:
            name, k = view.name.replace(".png", f"-{k}.png"), k + 1
        used.add(name)
        views.append(replace(view, name=name))
    return views


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
    # Of the selections the results name, one figure per task and family: that of the first
    # pretraining run (with several runs each checkpoint has its own selection; drawing every
    # one would multiply the figures without changing what they show).
    first: dict[tuple[str, str], tuple[tuple, Path]] = {}
    for r in records:
        if r.selection:
            key = (r.task, VARIANTS[r.variant].method if r.variant in VARIANTS else r.variant)
            candidate = (_run_key(r.run), Path(r.selection))
            if key not in first or candidate < first[key]:
                first[key] = candidate
    paths += sorted({path for _, path in first.values()}, key=str)
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
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = LEVEL,
) -> Report:
    """Group the results, estimate every variant with its interval, and recommend one per group."""
    if metric != "auto":
        if not any(metric in r.metrics for r in results.records):
            available = sorted({m for r in results.records for m in r.metrics})
            raise ConfigError(f"metric '{metric}' is in no result (available: {', '.join(available)})")
    if n_resamples < 100:
        raise ConfigError(f"the report's bootstrap needs at least 100 resamples, got {n_resamples}")
    grouped: dict[tuple, list[ResultRecord]] = {}
    for record in results.records:
        grouped.setdefault(_group_key(record), []).append(record)
    groups = [_analyse_group(grouped[k], metric, confidence, n_resamples, level) for k in sorted(grouped)]
    # Identical health lines (the same model listed in several result files) are shown once.
    unique_health: dict[str, HealthRecord] = {}
    for h in results.health:
        unique_health.setdefault(canonical(h.fields), h)
    return Report(
        inputs=list(results.inputs),
        groups=groups,
        toc_settings=_toc_rows(results.records),
        budget_sweeps=_budget_sweeps(results.records),
        health=sorted(unique_health.values(), key=lambda h: h.sort_key),
        selections=_selection_plots(results.records, selection_files, made_selections),
        metric_option=metric,
        confidence=confidence,
        n_resamples=n_resamples,
        level=level,
    )
