"""`toc health`: code usage, dead codes and perplexity per level, for codes from any VQ model or
the usage counts a model file stores."""

from __future__ import annotations

import click

from cli.options import (
    codebook_key_option,
    command,
    emit_output,
    flag,
    force_option,
    output_option,
    trust_option,
)
from cli.progress import bars
from cmg_base.files import prepare_output
from toc.codebook.health import codebook_health
from toc.documents import TOOL_NAME, dumps_document, tool_version


class LevelAxis(click.ParamType):
    name = "auto|none|AXIS"

    def convert(self, value, param, ctx):
        if value in ("auto", "none") or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"expected an integer, 'none' or 'auto', got {value!r}", param, ctx)


@command("health")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--codebook-size", type=click.IntRange(min=1), default=None, help="Codes per level K of a codes file; every code must lie in [0, K). A model file knows its own.")
@click.option("--key", default=None, help="Dataset inside an .h5 codes file holding one array of codes (default: level{L}/codes groups, else the only integer dataset).")
@click.option("--level-axis", type=LevelAxis(), default="auto", help="Axis of that array holding the levels (negative counts from the end), or 'none' for one level; 'auto' = the last axis of an array with 2 or more dims.")
@click.option("--counts", "include_counts", is_flag=True, default=False, help="Also list every code's count per level.")
@codebook_key_option
@trust_option
@output_option("Write the JSON report to FILE instead of stdout.")
@force_option
def health_command(input_path, codebook_size, key, level_axis, include_counts, codebook_key, trust_checkpoint, output, force):
    """Codebook health per level: codes used, dead codes (never used), perplexity exp(H) and the
    most used code's share.

    INPUT is a codes file — an .h5 with `level{L}/codes` datasets (as `toc encode` writes), or one
    integer array [N, ..., L] in an .h5 dataset or an .npy file (needs --codebook-size) — or a
    model file (.pt, .safetensors, ...: a CMG checkpoint or another VQ model's), whose stored
    per-code EMA counts are read (a proxy; codes measured on data are exact). The JSON report
    goes to stdout (or -o FILE); notes and progress go to stderr.
    """
    if output is not None:
        prepare_output(output, force=force)
    report = codebook_health(
        input_path, codebook_size=codebook_size, key=key, level_axis=level_axis,
        trust_checkpoint=trust_checkpoint, codebook_key=codebook_key,
        progress=bars(unit="code", min_total=1 << 20),
    )
    for note in report.messages(flag):
        click.echo(f"toc health: {note}", err=True)
    document = {"tool": TOOL_NAME, "version": tool_version(), **report.as_dict(include_counts)}
    emit_output(dumps_document(document), output, force)


COMMANDS = [health_command]
