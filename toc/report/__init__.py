"""Model-selection reports: results → per-task tables, intervals and a recommendation per group.

`results` reads result lines, `analysis` groups and summarises them (with `resampling`: the
paired bootstrap over clips and runs, the tests and the recommendation rule; `stats`: seed
statistics), `markdown` and `charts` render, `writer` writes the files.
"""

from toc.report.analysis import Report, build_report
from toc.report.markdown import render_csv, render_markdown, render_summary
from toc.report.resampling import (
    SPLIT_EVALUATION,
    SPLIT_VALIDATION,
    VERDICT_CLEAR,
    VERDICT_NONE,
    VERDICT_SINGLE,
    recommend_variant,
)
from toc.report.results import ResultSet, dumps_results, read_results
from toc.report.writer import WrittenReport, write_report, write_result_set

__all__ = [
    "SPLIT_EVALUATION", "SPLIT_VALIDATION", "VERDICT_CLEAR", "VERDICT_NONE", "VERDICT_SINGLE",
    "Report", "ResultSet", "WrittenReport", "build_report", "dumps_results", "read_results",
    "recommend_variant", "render_csv", "render_markdown", "render_summary", "write_report", "write_result_set",
]
