"""The budget sweep of `--channels auto`: one head per grid point (channels, max_num, min_num) and
seed, fitted on the training rows (its epoch kept by the protocol's validation rows) and scored
on validation clips: by default the evaluated modality's clips of the validation videos, which
measure what the evaluation measures on videos it never evaluates.

The codes are encoded once (the evaluation's cache); a grid point only changes which codebook
columns a head reads, so the sweep costs heads, never encoding. Linear heads of every point and
seed train together (toc.eval.head_groups, via `toc.eval.loop.validation_fits`); prototype
heads are training-free. Points that keep the same channels as an earlier point (as sets, per
level: at the full width every pattern keeps every channel) are swept once.

Nothing here scores an evaluated row or reads its label: the rule that picks a point
(toc.report.budget) sees only a `BudgetSweep`. `evaluated_curve_parts` scores the same heads on the evaluated rows
afterwards, for a report's evaluation-split curve, which is labelled and never chosen from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from toc.codebook.selection import SelectionFile
from toc.data.base import TaskData
from toc.errors import ConfigError
from toc.eval.cache import CodeCache
from toc.eval.loop import EvalRequest, ValidationFit, evaluated_parts, validation_fits
from toc.eval.protocols import DirectionPlan, Rows, cross_modal_validation
from toc.eval.records import unit_ids_digest
from toc.eval.variants import ChannelView, resolve_view
from toc.vocabulary import CODE_HEAD


@dataclass(frozen=True)
class GridPoint:
    """One budget of the grid and its selection on the checkpoint's codebooks."""

    channels: int
    max_num: int
    min_num: int
    selection: SelectionFile


@dataclass
class BudgetSweep:
    """Every kept grid point's view and its heads' validation outcomes, per seed."""

    task: str
    direction: str
    variant: str
    head: str
    split_seed: int | None
    plan: DirectionPlan
    scored: Rows  # the validation rows every point is scored on
    validation: str  # which: "cross-modal" (the evaluated modality's clips) or "same-modality"
    requested: str  # which was asked for (cross-modal falls back where the sets share no video)
    points: tuple[GridPoint, ...]  # the points swept (duplicates of earlier points left out)
    views: tuple[ChannelView, ...]  # one per point
    fits: list[dict[int, ValidationFit]]  # per point: per seed
    seeds: tuple[int, ...]
    unit: str  # clip or video
    units_sha256: str  # digest of the validation unit ids
    skipped: tuple[str, ...] = ()  # grid points not swept, and why
    seconds: float = 0.0
    duplicates: dict[int, int] = field(default_factory=dict)  # dropped grid index -> the kept point's index

    @property
    def metric(self) -> str:
        """The metric the epoch rule (and so the budget rule) compares: accuracy or micro-F1."""
        return self.plan.selection_metric

    @property
    def n_units(self) -> int:
        return len(self.scored)

    @property
    def validation_text(self) -> str:
        modality = self.plan.evaluate.set_name if self.validation == "cross-modal" else self.plan.select.set_name
        text = f"{self.validation}: {modality} clips of the validation videos ({self.plan.split})"
        if self.validation != self.requested:
            text += f"; {self.requested} was asked for, but {self.plan.evaluate.set_name} has no clip of a validation video"
        return text

    def n_channels(self, index: int) -> tuple[int, ...]:
        return tuple(len(c) for c in self.views[index].channels)


def _ids(data: TaskData, rows: Rows) -> list[str]:
    ids = data.sets[rows.set_name].ids
    return [str(ids[i]) for i in rows.rows]


def scored_rows(data: TaskData, plan: DirectionPlan, split: str) -> tuple[Rows, str]:
    """The validation rows a sweep scores on, and which they are: the evaluated modality's clips
    of the validation videos ("cross-modal"; the training modality's where the sets share no
    video), or the training modality's ("same-modality")."""
    if split == "cross-modal":
        rows = cross_modal_validation(data, plan)
        if len(rows):
            return rows, "cross-modal"
    return plan.select, "same-modality"


def sweep_budgets(
    data: TaskData, plan: DirectionPlan, cache: CodeCache, request: EvalRequest, epochs: int | None, *,
    variant: str, head: str, points: list[GridPoint], split_seed: int | None = None, split: str = "cross-modal",
) -> BudgetSweep:
    """Fit `head` for every grid point and seed of `request` on the plan's training rows and
    score it on validation rows (`split`: `scored_rows`); no evaluated row is scored and no
    evaluated label is read (a set is encoded whole, so the evaluated set's codes may be computed)."""
    if head == CODE_HEAD:
        raise ConfigError("the code-id head reads code ids, which TOC does not change: there is no budget to sweep")
    if not points:
        raise ConfigError(f"task {data.task} {plan.direction}: the budget grid has no point that keeps a channel")
    start = time.perf_counter()
    codebooks = cache.get(data.task, data.sets[plan.train.set_name], request.dtype).codebooks
    kept: list[GridPoint] = []
    views: list[ChannelView] = []
    seen: dict[tuple, int] = {}
    duplicates: dict[int, int] = {}
    skipped: list[str] = []
    for index, point in enumerate(points):
        view = resolve_view(variant, codebooks, point.selection)
        as_sets = tuple(frozenset(int(i) for i in c) for c in view.channels)
        if as_sets in seen:
            earlier = kept[seen[as_sets]]
            duplicates[index] = seen[as_sets]
            skipped.append(
                f"{point.channels} ({point.max_num}/{point.min_num}) keeps the channels of "
                f"{earlier.channels} ({earlier.max_num}/{earlier.min_num})"
            )
            continue
        seen[as_sets] = len(kept)
        kept.append(point)
        views.append(view)
    scored, which = scored_rows(data, plan, split)
    fits = validation_fits(data, plan, views, head, request, epochs, cache, scored)
    return BudgetSweep(
        task=data.task, direction=plan.direction, variant=variant, head=head, split_seed=split_seed, plan=plan,
        scored=scored, validation=which, requested=split, points=tuple(kept), views=tuple(views), fits=fits,
        seeds=tuple(request.seeds), unit="clip" if data.kind == "clip" else "video",
        units_sha256=unit_ids_digest(_ids(data, scored)), skipped=tuple(skipped),
        seconds=round(time.perf_counter() - start, 4), duplicates=duplicates,
    )


def evaluated_curve_parts(
    sweep: BudgetSweep, data: TaskData, cache: CodeCache, request: EvalRequest,
) -> list[dict[int, list]]:
    """Per swept point and seed: its head's per-unit outcomes on the evaluated rows. Only for a
    labelled evaluation-split curve, computed after the choice."""
    return [
        {
            seed: evaluated_parts(data, sweep.plan, view, fit.predictor, sweep.head, request, cache)
            for seed, fit in per_seed.items()
        }
        for view, per_seed in zip(sweep.views, sweep.fits, strict=True)
    ]
