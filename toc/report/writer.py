"""Writing a report: report.md, report.html (the same, self-contained), results.csv,
summary.json and PNG charts into one folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cmg_base.files import prepare_output, write_bytes_atomic, write_text_atomic
from toc.errors import ConfigError, TocError
from toc.figures import have_matplotlib
from toc.report.analysis import MadeSelection, build_report
from toc.report.charts import render_selection_chart, render_task_chart
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
    """Analyse `results` and write every report file; nothing is written unless everything renders."""
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
    # report.md links only the charts that are actually written.
    report.charted_tasks = frozenset(g.task for g in report.groups if chart_name(g.task) in images)
    texts = {
        "report.md": render_markdown(report),
        "results.csv": render_csv(results.records),
        "summary.json": render_summary(report),
        "report.html": render_html(report, images),
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
