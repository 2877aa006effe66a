"""`toc compare`: run a comparison plan end to end — every job through an evaluation session,
inline TOC settings selected once and saved beside the results, then the report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cmg_base.files import check_output_directory
from toc.codebook.selection import TocSettings
from toc.data.base import TaskData
from toc.errors import ConfigError
from toc.eval.loop import EvalRequest
from toc.eval.overlap import find_pretraining_list
from toc.eval.protocols import checkpoint_reads
from toc.eval.records import ResultRecord
from toc.eval.tasks import load_task
from toc.eval.variants import VARIANTS
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

RESULTS_FILE = "results.jsonl"


def selection_file_name(task: str, method: str, pretrain_run: int | None = None) -> str:
    """Where `toc compare` writes the selection it computes for inline TOC settings (one per
    checkpoint: with several pretraining runs, one per run)."""
    run = "" if pretrain_run is None else f"-p{pretrain_run}"
    return f"toc-{task}-{method}{run}.json"


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
            selection = session.selection(job.selection, job.task)
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
            for record in session.evaluate(tasks[job.task], request, log=log):
                extra = {"checkpoint": str(job.checkpoint), "pretrain_run": job.pretrain_run}
                if VARIANTS[record.variant].uses_selection and selection is not None:
                    extra.update(toc=dict(selection.parameters), selection=str(selection.path))
                records.append(replace(record, **extra))
    return ComparisonRun(records, made, tasks)


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
