"""`toc health`: code usage, dead codes and perplexity per level, for codes from any VQ model or
the usage counts a model file stores; with --task, how far a checkpoint's audio and video share
code ids on that task's held-out clips."""

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
from toc.documents import TOOL_NAME, dumps_document, tool_version
from toc.eval.tasks import TASKS


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
@click.option("--task", type=click.Choice(TASKS), default=None, help="INPUT is a checkpoint: measure how far its audio and video codes agree (Cohen's kappa, NMI, per-class overlap, codes shared) on this task's held-out clips, event seconds only where the task marks them.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="With --task: root of the reference data layout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="With --task: TOML file with data paths.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="With --task: reuse / write `toc eval`'s code cache here.")
@codebook_key_option
@trust_option
@output_option("Write the JSON report to FILE instead of stdout.")
@force_option
def health_command(input_path, codebook_size, key, level_axis, include_counts, task, data_root, config_path,
                   cache_dir, codebook_key, trust_checkpoint, output, force):
    """Codebook health per level: codes used, dead codes (never used), perplexity exp(H) and the
    most used code's share.

    INPUT is a codes file — an .h5 with `level{L}/codes` datasets (as `toc encode` writes), or one
    integer array [N, ..., L] in an .h5 dataset or an .npy file (needs --codebook-size) — or a
    model file (.pt, .safetensors, ...: a CMG checkpoint or another VQ model's), whose stored
    per-code EMA counts are read (a proxy; codes measured on data are exact). The JSON report
    goes to stdout (or -o FILE); notes and progress go to stderr.

    With --task (and --data-root or --config), INPUT is a checkpoint and the report holds, per
    codebook level, the audio–video code-sharing measures on the task's held-out clips
    (docs/toc.md).
    """
    if output is not None:
        prepare_output(output, force=force)
    task_only = {"--data-root": data_root, "--config": config_path, "--cache-dir": cache_dir}
    usage_only = {"--codebook-size": codebook_size, "--key": key, "--counts": include_counts or None,
                  "--codebook-key": codebook_key or None, "--level-axis": None if level_axis == "auto" else level_axis}
    given = [name for name, value in (usage_only if task is not None else task_only).items() if value is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply "
                               f"{'with' if task is not None else 'without'} --task")
    if task is not None:
        from toc.pipeline.sharing import task_code_sharing

        sharing = task_code_sharing(
            input_path, task, data_root=data_root, config=config_path, trust_checkpoint=trust_checkpoint,
            cache_dir=cache_dir, progress=bars(unit="clip"),
        )
        document = {"tool": TOOL_NAME, "version": tool_version(), "checkpoint": input_path, **sharing.as_dict()}
        emit_output(dumps_document(document), output, force)
        return
    from toc.codebook.health import codebook_health

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
