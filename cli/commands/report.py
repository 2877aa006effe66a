"""`toc report` (results JSONL → model-selection report) and `toc compare` (a TOML plan, end to end)."""

from __future__ import annotations

import json

import click

from cli.options import command, force_option, trust_option
from cli.progress import log
from toc.vocabulary import DEFAULT_RESAMPLES


def _metric_choice(value: str) -> str:
    if not value or not value.replace("_", "").isalnum():
        raise click.BadParameter(f"'{value}' is not a metric name (e.g. auto, accuracy, f1, macro_f1)")
    return value


@command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="report", help="Output directory.")
@click.option(
    "--metric", default="auto",
    callback=lambda _ctx, _param, value: _metric_choice(value),
    help="Metric to compare on: auto = accuracy for clip tasks (AVE, UCF↔VGGSound), f1 for segment tasks (AVVP, AVE→AVVP).",
)
@click.option(
    "--selection", "selections", multiple=True, type=click.Path(dir_okay=False),
    help="A `toc select` JSON file whose channel-score plot to add (repeatable).",
)
@click.option("--no-charts", is_flag=True, default=False, help="Write no PNG files.")
@click.option("--resamples", type=click.IntRange(min=100), default=DEFAULT_RESAMPLES, show_default=True, help="Bootstrap resamples per interval and test.")
@force_option
def report(results, out_dir, metric, selections, no_charts, resamples, force):
    """Per-task model-selection report from `toc eval` results (one or more JSONL files).

    Intervals come from a paired bootstrap over the evaluated clips (videos) and the training
    runs; a variant is recommended only when a paired test separates it from every other one
    (docs/report.md). Writes OUT/report.md, OUT/results.csv, OUT/summary.json and PNG charts;
    prints the list of files as JSON on stdout. Existing files are kept unless --force is given.
    """
    from toc.report import write_report

    written = write_report(
        list(results), out_dir, force=force, metric=metric, selection_files=list(selections),
        charts=not no_charts, n_resamples=resamples,
    )
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(json.dumps({"out_dir": str(written.out_dir), "files": list(written.files)}, sort_keys=True))


@command("compare")
@click.option("--config", "plan", type=click.Path(dir_okay=False), required=True, help="Comparison plan (TOML); see docs/report.md.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="report", help="Output directory.")
@click.option("--no-charts", is_flag=True, default=False, help="Write no PNG files.")
@force_option
@trust_option
def compare(plan, out_dir, no_charts, force, trust_checkpoint):
    """Run a whole comparison from a TOML plan, then write its report.

    Evaluates every task × direction × variant × head × seed of the plan with the evaluation
    library (codes encoded once per checkpoint and set), writes OUT/results.jsonl and the
    `toc report` files beside it. Progress on stderr; the list of files as JSON on stdout.
    Only --trust-checkpoint grants full unpickling; a plan file cannot.
    """
    from toc.pipeline.compare import compare as run_comparison

    written = run_comparison(
        plan, out_dir, force=force, log=log, charts=not no_charts, trust_checkpoint=trust_checkpoint,
    )
    for note in written.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(json.dumps({"out_dir": str(written.out_dir), "files": list(written.files)}, sort_keys=True))


COMMANDS = [report, compare]
