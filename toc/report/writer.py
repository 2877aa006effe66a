"""Writing a report: report.md, report.html (the same, self-contained), results.csv,
summary.json and PNG charts into one folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cmg_base.files import check_output_directory, resolve_output, staged_directory
from toc.errors import ConfigError
from toc.figures import have_matplotlib
from toc.report.analysis import MadeSelection, build_report
from toc.report.charts import render_budget_chart, render_selection_chart, render_task_chart
from toc.report.html import render_html
from toc.report.markdown import chart_name, render_csv, render_markdown, render_summary
from toc.report.resampling import DEFAULT_RESAMPLES
from toc.report.results import ResultSet, read_results

REPORT_FILES = ("report.md", "results.csv", "summary.json", "report.html")


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
    n_resamples: int = DEFAULT_RESAMPLES,
) -> WrittenReport:
    """`toc report`: read results files, analyse them and write every report file."""
    if not result_files:
        raise ConfigError("no results file given")
    return write_result_set(
        read_results(result_files), out_dir, force=force, metric=metric,
        selection_files=selection_files, charts=charts, n_resamples=n_resamples,
    )


def is_report_output(name: str) -> bool:
    """Whether a folder entry belongs to a report (replaced as a whole by the next one)."""
    return name in REPORT_FILES or (name.endswith(".png") and name.startswith(("chart-", "selection-", "budget-")))


@dataclass(frozen=True)
class RenderedReport:
    files: dict[str, bytes]  # name -> content, in writing order
    notes: tuple[str, ...]


def render_result_set(
    results: ResultSet,
    *,
    metric: str = "auto",
    selection_files: Sequence[str | os.PathLike] = (),
    made_selections: Sequence[MadeSelection] = (),
    charts: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> RenderedReport:
    """Analyse `results` and render every report file in memory."""
    report = build_report(
        results, metric=metric, selection_files=selection_files, made_selections=made_selections,
        n_resamples=n_resamples,
    )
    notes: list[str] = []
    images: dict[str, bytes] = {}
    if charts:
        if not have_matplotlib():
            notes.append("matplotlib is not installed: PNG charts skipped (pip install 'cmg-toc[plot]')")
        else:
            for task in dict.fromkeys(g.task for g in report.groups):
                images[chart_name(task)] = render_task_chart(report, task)
            for plot in report.selections:
                images[plot.name] = render_selection_chart(plot)
            for sweep in report.budget_sweeps:
                images[sweep.name] = render_budget_chart(sweep)
    # report.md links only the charts that are actually written.
    report.charted_tasks = frozenset(g.task for g in report.groups if chart_name(g.task) in images)
    report.charted_budgets = frozenset(v.name for v in report.budget_sweeps if v.name in images)
    texts = {
        "report.md": render_markdown(report),
        "results.csv": render_csv(results.records),
        "summary.json": render_summary(report),
        "report.html": render_html(report, images),
    }
    files = {name: text.encode("utf-8") for name, text in texts.items()}
    files.update(images)
    return RenderedReport(files=files, notes=tuple(notes))


def write_output_set(
    out_dir: str | os.PathLike, files: dict[str, bytes], *, force: bool = False,
    owned: Callable[[str], bool] = is_report_output,
) -> Path:
    """Write a set of files into `out_dir` whole or not at all: staged beside it, then moved in,
    replacing the previous set (every `owned` entry) but no other file of the folder."""
    with staged_directory(out_dir, force=force, owned=owned) as staging:
        for name, data in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(data)
    return resolve_output(out_dir)


def write_result_set(
    results: ResultSet,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    metric: str = "auto",
    selection_files: Sequence[str | os.PathLike] = (),
    made_selections: Sequence[MadeSelection] = (),
    charts: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> WrittenReport:
    """Analyse `results` and write every report file; nothing is written unless everything
    renders, and a failure while writing leaves the folder as it was."""
    check_output_directory(out_dir, force=force, owned=is_report_output)  # before any rendering
    rendered = render_result_set(
        results, metric=metric, selection_files=selection_files, made_selections=made_selections, charts=charts,
        n_resamples=n_resamples,
    )
    out = Path(out_dir)
    write_output_set(out, rendered.files, force=force)
    return WrittenReport(out_dir=out, files=tuple(rendered.files), notes=rendered.notes)
