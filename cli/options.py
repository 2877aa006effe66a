"""Reusable Click option bundles, and how library setting names are spelt as flags."""

from __future__ import annotations

import functools

import click

from cmg_base.errors import CmgError, SettingsError, printable
from cmg_base.files import prepare_output, write_text_atomic
from toc.codebook.scoring import (
    DEFAULT_SIM_WEIGHT,
    DEFAULT_VAR_WEIGHT,
    SCORE_VARIANTS,
    score_weights,
)


def flag(setting: str) -> str:
    """The command-line spelling of a library setting: `max_num` → `--max-num`."""
    return "--" + setting.replace("_", "-")


def flag_names(ctx: click.Context):
    """Setting name → this command's flag for it (`csv_path` → `--csv`); others by `flag`."""
    flags = {}
    for param in ctx.command.params:
        if isinstance(param, click.Option):
            long = [opt for opt in param.opts if opt.startswith("--")]
            flags[param.name] = (long or param.opts)[0]
    return lambda name: flags.get(name, flag(name))


class TocCommand(click.Command):
    """A command that says library errors in one line with the settings spelt as its own flags;
    invalid settings (the library's SettingsError) are usage errors: exit code 2 and the usage line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CmgError as exc:
            root = ctx.find_root()
            if root.obj and root.obj.get("debug"):
                raise
            message = printable(exc.render(flag_names(ctx)))
            if isinstance(exc, SettingsError):
                raise click.UsageError(message, ctx) from exc
            raise click.ClickException(message) from exc


# Every `toc` subcommand is declared with this instead of click.command.
command = functools.partial(click.command, cls=TocCommand)


def output_option(help_text: str = "Write to FILE instead of stdout."):
    return click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None, help=help_text)


def emit_output(text: str, output: str | None, force: bool) -> None:
    """A command's document: to stdout, or written atomically to the `output_option` FILE."""
    if output is None:
        click.echo(text, nl=False)
        return
    write_text_atomic(prepare_output(output, force=force), text)


force_option = click.option("--force", is_flag=True, default=False, help="Overwrite existing output files.")

trust_option = click.option(
    "--trust-checkpoint",
    is_flag=True,
    default=False,
    help="Allow full unpickling of the checkpoint (can run arbitrary code: only for files you trust).",
)

device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Where the encoder runs."
)

seed_option = click.option("--seed", type=int, default=0, help="Random seed.")

sim_weight_option = click.option("--sim-weight", type=float, default=DEFAULT_SIM_WEIGHT, help="Weight of the mean pairwise similarity (subtracted).")
var_weight_option = click.option("--var-weight", type=float, default=DEFAULT_VAR_WEIGHT, help="Weight of the channel variance (added).")
score_option = click.option(
    "--score", "score_variant", type=click.Choice(sorted(SCORE_VARIANTS)), default=None,
    help="Named weights instead of --sim-weight/--var-weight: sim_var = -0.7*sim + 0.3*var (TOC; FCID's AVE script), "
    "sim_only = -0.7*sim (FCID's AVVP, AVE->AVVP and UCF<->VGGSound scripts).",
)
reference_topk_option = click.option(
    "--reference-topk", is_flag=True, default=False,
    help="Reference quirk: take the two blocks independently, as the published routine's two top-k calls "
    "(they may repeat channels, and C may exceed D when each block fits).",
)


def score_weights_given(score_variant: str | None, sim_weight: float, var_weight: float) -> tuple[float, float]:
    """The weights to use: --score's pair, or the explicit ones (both at once is a usage error)."""
    if score_variant is None:
        return sim_weight, var_weight
    context = click.get_current_context()
    for name in ("sim_weight", "var_weight"):
        if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            raise click.BadParameter(f"--score {score_variant} sets the weights; drop {flag(name)}", param_hint="--score")
    return score_weights(score_variant)


codebook_key_option = click.option(
    "--codebook-key", "codebook_key", multiple=True, metavar="PATTERN",
    help="Use the tensor(s) whose key matches PATTERN as the codebook(s): a glob (fnmatch), or "
    "'re:REGEX' for a regular expression on the whole key; repeatable. Default: CMG checkpoints, "
    "bare codebooks and the known VQ layouts are found automatically (docs/toc.md).",
)


def toc_selection_options(func):
    """The TOC settings of `toc select` / `toc plot` (every one has a default)."""
    for decorator in reversed(
        [
            click.option("--channels", type=click.IntRange(min=1), required=True, help="Channel budget C per level."),
            click.option("--max-num", type=click.IntRange(min=0), default=1, help="Top-block share a: k*a highest-scoring channels, k = C // (a+b)."),
            click.option("--min-num", type=click.IntRange(min=0), default=1, help="Bottom-block share b: k*b lowest-scoring channels."),
            click.option("--level", default="all", help="Codebook level: 'all', a number, or (another VQ model's file) a level name."),
            click.option("--exact-budget", is_flag=True, default=False, help="Return exactly C channels (the remainder goes to the top block)."),
            sim_weight_option,
            var_weight_option,
            score_option,
            click.option("--allow-nonfinite", is_flag=True, default=False, help="Skip channels holding NaN/Inf instead of failing."),
            codebook_key_option,
            reference_topk_option,
        ]
    ):
        func = decorator(func)
    return func
