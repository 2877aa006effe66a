"""`--channels auto` for one checkpoint and task: per split seed, direction, +toc variant and head,
sweep the budget grid on the validation rows (toc.eval.budget), keep the point the rule picks
(toc.report.budget) as a selection carrying its choice (toc.codebook.budget), and evaluate with
it; then give each result line its choice and, labelled, the evaluation-split curve of the same
heads. Also `toc select --channels auto`, which writes the chosen selection for later runs.

The choice is made before any evaluated row is scored or its label read: `choose_budgets`
calls only validation fits, and the evaluation-split curve is computed after the choice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE
from toc.codebook.presets import published_budget
from toc.codebook.selection import SelectionFile
from toc.codebook.settings import BudgetSearch, check_auto
from toc.data.base import TaskData
from toc.errors import SettingsError
from toc.eval.budget import BudgetSweep, GridPoint, evaluated_curve_parts, sweep_budgets
from toc.eval.loop import EvalRequest, direction_runs, linear_epochs
from toc.eval.protocols import checkpoint_reads
from toc.eval.records import ResultRecord
from toc.eval.tasks import load_task
from toc.eval.variants import VARIANTS, check_applicable, default_variants
from toc.progress import LogFn, ProgressFactory, no_log, no_progress
from toc.report.budget import choose_budget, evaluation_curve
from toc.vocabulary import (
    CODE_HEAD,
    DEFAULT_HEAD_ENGINE,
    DEFAULT_SEEDS,
    ENCODE_BATCH_SIZE,
    FINGERPRINTS,
    HEAD_BATCH_SIZE,
)

# (split seed as the records give it, direction, variant, head)
BudgetKey = tuple[int | None, str, str, str]
CODE_HEAD_NOTE = (
    "the code-id head reads code ids, which TOC does not change: its +toc lines use the budget chosen with the {} head"
)


@dataclass(frozen=True)
class BudgetOutcome:
    """One chosen budget: its selection (with `choice` set) and the sweep it was chosen from."""

    selection: SelectionFile
    sweep: BudgetSweep


def budget_width(codebooks: Sequence, variant: str) -> int:
    """The channels a budget of `variant` can keep on every level it reads."""
    return min(int(codebooks[level].shape[1]) for level in VARIANTS[variant].levels)


def grid_points(session, variant: str, search: BudgetSearch) -> list[GridPoint]:
    """The grid's points for `variant` on the session's checkpoint, each selected once."""
    width = budget_width(session.checkpoint.codebooks, variant)
    return [
        GridPoint(c, a, b, session.select(search.settings(c, a, b))) for c, a, b in search.grid.points(width)
    ]


def choose_budgets(
    session, data: TaskData, request: EvalRequest, search: BudgetSearch, *, log: LogFn = no_log,
) -> dict[BudgetKey, BudgetOutcome]:
    """Sweep and choose a budget for every (split seed, direction, +toc variant, head) of `request`
    on the validation rows. The code-id head gets the budget of the first other head."""
    check_auto(request.protocol, request.heads)
    check_applicable(request.variants, session.checkpoint.levels, session.checkpoint.family)
    method = session.method
    epochs = linear_epochs(data, session.cache, request, method)
    variants = [v for v in request.variants if VARIANTS[v].uses_selection]
    heads = [h for h in request.heads if h != CODE_HEAD]
    points = {variant: grid_points(session, variant, search) for variant in variants}
    outcomes: dict[BudgetKey, BudgetOutcome] = {}
    for run in direction_runs(data, request, method):
        for variant in variants:
            published = published_budget(data.task, run.direction, VARIANTS[variant].method)
            for head in heads:
                sweep = sweep_budgets(
                    data, run.plan, session.cache, replace(request, heads=(head,)), epochs, variant=variant,
                    head=head, points=points[variant], split_seed=run.split_seed, split=search.split,
                )
                choice = choose_budget(sweep, search, published=published.as_dict() if published else None)
                chosen = sweep.points[choice.chosen]
                outcomes[(run.split_seed, run.direction, variant, head)] = BudgetOutcome(
                    replace(chosen.selection, choice=choice), sweep,
                )
                split = "" if run.split_seed is None else f" split seed {run.split_seed}"
                log(
                    f"{data.task} {run.direction}{split} {variant} {head}: chose {choice.settings_text()} on "
                    f"validation ({choice.metric} {choice.point.validation:.2f}, best "
                    f"{choice.curve[choice.best].label} {choice.curve[choice.best].validation:.2f}; "
                    f"{len(sweep.points)} grid points, {sweep.seconds:.1f} s)"
                )
            if CODE_HEAD in request.heads and heads:
                outcomes[(run.split_seed, run.direction, variant, CODE_HEAD)] = outcomes[
                    (run.split_seed, run.direction, variant, heads[0])
                ]
    return outcomes


def chosen_parameters(selection: SelectionFile) -> dict:
    """A result line's `toc`: the chosen point's settings, and that they were chosen on validation."""
    return {**selection.parameters, "channels_chosen_on": "validation"}


def with_choices(
    records: Iterator[ResultRecord], outcomes: Mapping[BudgetKey, BudgetOutcome], data: TaskData, session,
    request: EvalRequest, search: BudgetSearch,
) -> Iterator[ResultRecord]:
    """The records, each +toc line with the choice it was evaluated with and, for the head that
    chose it, the same heads' evaluation-split curve (computed once per choice, here: after it)."""
    curves: dict[BudgetKey, list] = {}
    for record in records:
        key = (record.split_seed, record.direction, record.variant, record.head)
        outcome = outcomes.get(key)
        if outcome is None:
            yield record
            continue
        choice = outcome.selection.choice
        assert choice is not None
        extra: dict = {"toc": chosen_parameters(outcome.selection)}
        if choice.head == record.head:
            if key not in curves:
                sweep = outcome.sweep
                evaluated = evaluated_curve_parts(sweep, data, session.cache, replace(request, heads=(sweep.head,)))
                curves[key] = [p.to_json() for p in evaluation_curve(sweep, evaluated, search)]
            extra.update(budget_choice=choice.to_json(), budget_evaluation=curves[key])
        else:
            extra["notes"] = [*record.notes, CODE_HEAD_NOTE.format(choice.head)]
        yield replace(record, **extra)


def with_file_choice(records: Iterator[ResultRecord], selection: SelectionFile | None) -> Iterator[ResultRecord]:
    """The records of an evaluation that reads a selection file made by `toc select --channels
    auto`: each +toc line of the case it was chosen for carries its choice (no evaluation-split
    curve: that file's heads are not at hand); other +toc lines say where it was chosen."""
    choice = None if selection is None else selection.choice
    for record in records:
        if choice is None or not VARIANTS[record.variant].uses_selection:
            yield record
        elif (record.task, record.direction, record.variant, record.head) == (
            choice.task, choice.direction, choice.variant, choice.head,
        ):
            yield replace(record, budget_choice=choice.to_json())
        else:
            note = (
                f"the selection's budget was chosen for {choice.task} {choice.direction} {choice.variant} "
                f"with the {choice.head} head, on validation"
            )
            yield replace(record, notes=[*record.notes, note])


@dataclass(frozen=True)
class BudgetSelectOptions:
    """`toc select CKPT --channels auto --task T --direction D`: one budget, chosen on validation."""

    checkpoint: str | Path
    task: str
    direction: str
    search: BudgetSearch = field(default_factory=BudgetSearch)
    head: str = "linear"
    variant: str | None = None  # None: the checkpoint's own +toc variant
    data_root: str | Path | None = None
    config: str | Path | None = None
    seeds: Sequence[int] = DEFAULT_SEEDS
    epochs: int | None = None
    batch_size: int = HEAD_BATCH_SIZE
    split_seed: int = 0
    cache_dir: str | Path | None = None
    cache_fingerprint: str = FINGERPRINTS[0]
    dtype: str = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE
    encode_batch_size: int = ENCODE_BATCH_SIZE
    head_engine: str = DEFAULT_HEAD_ENGINE
    head_workers: int | None = None
    trust_checkpoint: bool = False

    def check(self) -> None:
        if self.data_root is None and self.config is None:
            raise SettingsError("{} auto needs the task's data: give {} DIR or {} FILE", settings=("channels", "data_root", "config"))
        check_auto("strict", (self.head,))
        if self.variant is not None and not VARIANTS[self.variant].uses_selection:
            raise SettingsError(f"{{}} {self.variant} reads no selection; give a +toc variant", settings=("variant",))


def select_budget(options: BudgetSelectOptions, *, progress: ProgressFactory = no_progress, log: LogFn = no_log) -> SelectionFile:
    """Choose one budget on the task's validation split and return its selection (with `choice`);
    the evaluated rows are neither encoded nor read."""
    from toc.pipeline.session import EvalSession

    options.check()
    session = EvalSession.open(
        options.checkpoint, trust_checkpoint=options.trust_checkpoint, device=options.device,
        cache_dir=options.cache_dir, encode_batch_size=options.encode_batch_size, progress=progress,
        cache_fingerprint=options.cache_fingerprint, staged_cache=True,
        reads=checkpoint_reads("strict", (options.head,)),
    )
    with session.cache.kept_on_success():
        variant = options.variant or default_variants(session.checkpoint.levels, True, session.checkpoint.family)[0]
        data = load_task(options.task, data_root=options.data_root, config=options.config)
        request = EvalRequest(
            variants=(variant,), directions=(options.direction,), heads=(options.head,), protocol="strict",
            seeds=tuple(options.seeds), epochs=options.epochs, batch_size=options.batch_size, dtype=options.dtype,
            split_seed=options.split_seed, head_engine=options.head_engine, head_workers=options.head_workers,
        )
        outcomes = choose_budgets(session, data, request, options.search, log=log)
    (outcome,) = outcomes.values()
    return outcome.selection
