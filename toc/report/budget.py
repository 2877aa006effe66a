"""The rule of `--channels auto`: which grid point of a validation sweep to keep.

Every grid point's validation score is its metric on the validation units (accuracy per clip,
micro-F1 from per-video counts), averaged over the head seeds. A paired bootstrap over those
units (the same resampled units for every point; the head seeds resampled too where they
differ, toc.report.resampling) gives each score an interval and each difference to the best
point a standard error. The rule (settings.AUTO_RULES): keep the **fewest channels whose
validation score is within one standard error of the best point's** — the one-standard-error
rule of model selection. By default ("one-se") the standard error is that of the *paired*
difference, because every point is scored on the same units; "one-se-marginal" uses the best
point's own standard error, the textbook form. Ties go to the higher validation score, then to
grid order. Seeded and deterministic: the same sweep and seed give the same choice.

Only validation outcomes enter; `evaluation_curve` scores the swept heads on the evaluated units
for reading, with its own bootstrap, after the choice is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from toc.codebook.budget import SPLIT_VALIDATION, BudgetChoice, CurvePoint, EvaluationPoint
from toc.codebook.settings import AUTO_RULES, BudgetSearch
from toc.errors import ConfigError
from toc.eval.budget import BudgetSweep
from toc.report.analysis import unit_metric
from toc.report.resampling import CONFIDENCE, UnitParts, paired_bootstrap

# A gap within this of its standard error counts as within (float noise of the replicates).
_TOLERANCE = 1e-9


def _parts(per_point: Sequence[Mapping[int, list]], metric: str, unit: str) -> UnitParts:
    measure = unit_metric(metric)
    if measure is None:
        raise ConfigError(f"the budget rule needs a metric that adds up over units, got {metric!r}")
    return UnitParts.from_runs(
        {f"p{i}": {seed: np.asarray(parts, dtype=np.float64) for seed, parts in runs.items()}
         for i, runs in enumerate(per_point)},
        measure, unit,
    )


def choose_budget(
    sweep: BudgetSweep, search: BudgetSearch, *, published: dict | None = None, confidence: float = CONFIDENCE,
) -> BudgetChoice:
    """The grid point the rule keeps, with the whole validation curve and how it was decided."""
    parts = _parts([{s: f.val_parts for s, f in runs.items()} for runs in sweep.fits], sweep.metric, sweep.unit)
    boot = paired_bootstrap(parts, n_resamples=search.resamples, seed=search.seed, confidence=confidence)
    scores = boot.observed
    sizes = [sum(sweep.n_channels(i)) for i in range(len(sweep.points))]
    order = range(len(sweep.points))
    top = float(np.max(scores))
    best = min((i for i in order if scores[i] == top), key=lambda i: (sizes[i], i))
    curve = []
    for i, point in enumerate(sweep.points):
        # one-se: the spread of the paired difference; one-se-marginal: of the best score itself.
        spread = boot.replicates[:, best] - boot.replicates[:, i] if search.rule == "one-se" else boot.replicates[:, best]
        finite = spread[np.isfinite(spread)]
        se = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
        gap = float(scores[best] - scores[i])
        interval = boot.variant(f"p{i}").interval
        curve.append(CurvePoint(
            channels=point.channels, max_num=point.max_num, min_num=point.min_num,
            n_channels=sweep.n_channels(i), validation=float(scores[i]),
            interval=(float(interval.low), float(interval.high)), gap=gap, se=se,
            within_noise=gap <= se + _TOLERANCE,
        ))
    chosen = min((i for i in order if curve[i].within_noise), key=lambda i: (sizes[i], -scores[i], i))
    search_json = search.as_dict()
    search_json["auto_grid"] = dict(search_json["auto_grid"], skipped=list(sweep.skipped))
    return BudgetChoice(
        task=sweep.task, direction=sweep.direction, variant=sweep.variant, head=sweep.head,
        split=SPLIT_VALIDATION, split_detail=sweep.validation_text, split_seed=sweep.split_seed, seeds=sweep.seeds,
        metric=sweep.metric, unit=sweep.unit, n_units=sweep.n_units, units_sha256=sweep.units_sha256,
        rule=search.rule, rule_text=AUTO_RULES[search.rule], resamples=search.resamples, bootstrap_seed=search.seed,
        confidence=confidence, search=search_json, curve=tuple(curve), chosen=chosen, best=best,
        published=published,
    )


def evaluation_curve(
    sweep: BudgetSweep, evaluated: Sequence[Mapping[int, list]], search: BudgetSearch, *, confidence: float = CONFIDENCE,
) -> tuple[EvaluationPoint, ...]:
    """Every swept point's score on the evaluated units, with a bootstrap interval over them:
    what the report draws beside the validation curve, labelled, after the choice."""
    metric = sweep.metric
    parts = _parts(evaluated, metric, sweep.unit)
    boot = paired_bootstrap(parts, n_resamples=search.resamples, seed=search.seed, confidence=confidence)
    out = []
    for i, point in enumerate(sweep.points):
        interval = boot.variant(f"p{i}").interval
        out.append(EvaluationPoint(
            channels=point.channels, max_num=point.max_num, min_num=point.min_num,
            evaluation=float(boot.observed[i]), interval=(float(interval.low), float(interval.high)),
        ))
    return tuple(out)
