"""`toc compare`: run a comparison plan end to end — every job through an evaluation session,
inline TOC settings selected once (or, with `channels = "auto"`, a budget chosen per direction
and head on validation) and saved beside the results, then the report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cmg_base.files import check_output_directory
from toc.codebook.selection import TocSettings
from toc.codebook.settings import BudgetSearch
from toc.data.base import TaskData
from toc.errors import ConfigError
from toc.eval.loop import EvalRequest
from toc.eval.overlap import find_pretraining_list
from toc.eval.protocols import checkpoint_reads
from toc.eval.records import ResultRecord
from toc.eval.tasks import load_task
from toc.eval.variants import VARIANTS
from toc.pipeline.budget import choose_budgets, with_choices, with_file_choice
from toc.pipeline.plan import ComparisonPlan, load_plan
from toc.pipeline.session import EvalSession
from toc.progress import LogFn, no_log
from toc.report.analysis import MadeSelection
from toc.report.results import HealthRecord, in_memory_results
from toc.report.writer import (
    REPORT_FILES,
    WrittenReport,
    is_report_output,
    render_result_set,
    write_output_set,
)
from toc.vocabulary import CODE_HEAD

RESULTS_FILE = "results.jsonl"


def selection_file_name(
    task: str, method: str, pretrain_run: int | None = None, *, direction: str | None = None,
    head: str | None = None, split_seed: int | None = None,
) -> str:
    """Where `toc compare` writes the selection it computes for inline TOC settings (one per
    checkpoint: with several pretraining runs, one per run); a budget chosen on validation is
    one per direction and head (and split seed) as well."""
    run = "" if pretrain_run is None else f"-p{pretrain_run}"
    chosen = "".join(f"-{part}" for part in (direction, head) if part is not None)
    split = "" if split_seed is None else f"-s{split_seed}"
    return f"toc-{task}-{method}{run}{chosen}{split}.json"


@dataclass
class ComparisonRun:
    """What running a plan produced: the result records and the selections it made."""

    records: list[ResultRecord]
    made_selections: list[MadeSelection]
    tasks: dict[str, TaskData]  # the task data the plan loaded, by task name


def planned_outputs(plan: ComparisonPlan) -> list[str]:
    """The files a run of `plan` writes into its output folder (the report's charts aside)."""
    names = [RESULTS_FILE, *REPORT_FILES]
    names += [
        selection_file_name(j.task, j.method, j.pretrain_run)
        for j in plan.jobs if isinstance(j.selection, TocSettings)
    ]
    # Budgets chosen on validation: one file per direction and head (and split seed, known only
    # once the task is loaded: a predefined split has none).
    names += [
        selection_file_name(j.task, j.method, j.pretrain_run, direction=d, head=h)
        for j in plan.jobs if isinstance(j.selection, BudgetSearch)
        for d in j.directions for h in j.heads if h != CODE_HEAD
    ]
    return names


def is_comparison_output(name: str) -> bool:
    """Whether a folder entry belongs to a comparison's output set (replaced as a whole)."""
    return is_report_output(name) or name == RESULTS_FILE or (name.startswith("toc-") and name.endswith(".json"))


def run_plan(plan: ComparisonPlan, out_dir: str | os.PathLike, *, log: LogFn = no_log) -> ComparisonRun:
    """Run every job of the plan; one record per result. Nothing is written here.

    Each checkpoint is loaded once and each task once; codes are encoded once per checkpoint
    and set, so every variant, head and seed of a job reads the same codes. Inline TOC settings
    are selected once per (task, method); each selection carries the path it will be saved to in
    `out_dir` (toc-TASK-METHOD.json, by `write_comparison`), so the results can name it and the
    run can be repeated from the file. With the plan's cache_dir, cache files are put in place
    when every job has run (a failed run leaves none).
    """
    out = Path(out_dir)
    sessions: dict[tuple[str, int | None], EvalSession] = {}
    tasks: dict[str, TaskData] = {}
    records: list[ResultRecord] = []
    made: list[MadeSelection] = []
    pretraining = None
    if any(job.protocol == "strict" for job in plan.jobs):
        pretraining = find_pretraining_list(
            plan.pretrain_csv, data_root=plan.data_root, config=plan.data_config,
            policy=plan.pretrain_overlap,
        )
    with contextlib.ExitStack() as caches:  # each session's cache files: kept if every job ran
        for job in plan.jobs:
            run_key = (job.method, job.pretrain_run)
            if run_key not in sessions:
                session = EvalSession.open(
                    job.checkpoint, trust_checkpoint=plan.trust_checkpoint, device=plan.device, cache_dir=plan.cache_dir,
                    cache_fingerprint=plan.cache_fingerprint, staged_cache=True,
                    reads=_reads(plan, job.checkpoint),
                )
                caches.enter_context(session.cache.kept_on_success())
                if session.method != job.method:
                    raise ConfigError(
                        f"{job.checkpoint}: checkpoints.{job.method} is a {session.checkpoint.family} checkpoint "
                        f"({session.checkpoint.levels} codebook level(s)); {job.method} variants need a "
                        f"{job.method} checkpoint"
                    )
                sessions[run_key] = session
            session = sessions[run_key]
            if job.task not in tasks:
                tasks[job.task] = load_task(job.task, data_root=plan.data_root, config=plan.data_config)
            search = job.selection if isinstance(job.selection, BudgetSearch) else None
            selection = None if search is not None else session.selection(job.selection, job.task)
            if isinstance(job.selection, TocSettings):
                selection = replace(selection, path=out / selection_file_name(job.task, job.method, job.pretrain_run))
                made.append(MadeSelection(selection, tuple(session.checkpoint.codebooks)))
            request = EvalRequest(
                variants=job.variants, directions=job.directions, heads=job.heads, protocol=job.protocol,
                seeds=job.seeds, epochs=job.epochs, batch_size=job.batch_size, dtype=job.dtype,
                selection=selection, split_seed=job.split_seed, split_seeds=job.split_seeds,
                pretraining=pretraining if job.protocol == "strict" else None,
            )
            run = "" if job.pretrain_run is None else f", pretraining run {job.pretrain_run}"
            log(f"compare: {job.task} with {job.method}{run} ({', '.join(job.variants)})")
            data = tasks[job.task]
            if search is None:
                evaluated = with_file_choice(session.evaluate(data, request, log=log), selection)
            else:
                outcomes = _chosen_budgets(session, data, request, search, job, out, made, log)
                request = replace(request, selections={key: o.selection for key, o in outcomes.items()})
                evaluated = with_choices(session.evaluate(data, request, log=log), outcomes, data, session, request, search)
            for record in evaluated:
                extra = {"checkpoint": str(job.checkpoint), "pretrain_run": job.pretrain_run}
                used = request.selection_for(record.split_seed, record.direction, record.variant, record.head)
                if VARIANTS[record.variant].uses_selection and used is not None:
                    extra.update(toc=record.toc or dict(used.parameters), selection=str(used.path))
                records.append(replace(record, **extra))
    return ComparisonRun(records, made, tasks)


def _chosen_budgets(session, data, request, search, job, out: Path, made: list, log: LogFn) -> dict:
    """The budgets of one job chosen on validation, each with the path it is saved to."""
    outcomes = choose_budgets(session, data, request, search, log=log)
    named: dict = {}
    for key, outcome in outcomes.items():
        split_seed, direction, _variant, head = key
        chooser = outcome.selection.choice.head if outcome.selection.choice is not None else head
        name = selection_file_name(
            job.task, job.method, job.pretrain_run, direction=direction, head=chooser, split_seed=split_seed,
        )
        selection = replace(outcome.selection, path=out / name)
        if chooser == head:  # the code-id head shares another head's file
            made.append(MadeSelection(selection, tuple(session.checkpoint.codebooks)))
        named[key] = replace(outcome, selection=selection)
    return named


def _reads(plan: ComparisonPlan, checkpoint) -> tuple[str, ...]:
    """The checkpoint fields the plan's jobs on `checkpoint` read, all jobs together."""
    return tuple(dict.fromkeys(
        field for job in plan.jobs if job.checkpoint == checkpoint for field in checkpoint_reads(job.protocol, job.heads)
    ))


def write_comparison(
    run: ComparisonRun, out_dir: str | os.PathLike, *, health: Sequence[HealthRecord] = (),
    selection_files: Sequence[str | os.PathLike] = (), charts: bool = True, source: str = "the plan",
    force: bool = False,
) -> WrittenReport:
    """Save OUT/results.jsonl (health lines first), the selections the run made and the report
    from the same records, as one set: staged, then moved into OUT, replacing an earlier
    comparison's files (never other files of OUT); returns the report's files."""
    if not run.records:
        raise ConfigError(f"{source}: the plan produced no result")
    out = Path(out_dir)
    results, text = in_memory_results(RESULTS_FILE, [*health, *run.records])
    rendered = render_result_set(
        results, selection_files=selection_files, made_selections=run.made_selections, charts=charts,
    )
    files = {RESULTS_FILE: text.encode("utf-8")}
    for made in run.made_selections:
        files[Path(str(made.selection.path)).name] = made.selection.dumps().encode("utf-8")
    files.update(rendered.files)
    write_output_set(out, files, force=force, owned=is_comparison_output)
    return WrittenReport(out_dir=out, files=tuple(rendered.files), notes=rendered.notes)


def compare(
    plan_path: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, log: LogFn = no_log,
    charts: bool = True, trust_checkpoint: bool = False,
) -> WrittenReport:
    """Run a whole comparison plan and write OUT/results.jsonl and the report beside it.

    Trust (full unpickling of the checkpoints) comes only from `trust_checkpoint`, the caller's
    own decision; a plan file cannot grant it."""
    plan = replace(load_plan(plan_path), trust_checkpoint=trust_checkpoint)
    out = Path(out_dir)
    # Refuse before hours of evaluation, not after.
    check_output_directory(out, force=force, owned=is_comparison_output)
    written = write_comparison(run_plan(plan, out, log=log), out, charts=charts, source=plan.source, force=force)
    return WrittenReport(out_dir=out, files=(RESULTS_FILE, *written.files), notes=written.notes)
