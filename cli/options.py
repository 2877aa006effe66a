"""Reusable Click option bundles, and how library setting names are spelt as flags."""

from __future__ import annotations

import functools

import click

from cmg_base.errors import CmgError, SettingsError, printable
from toc.codebook.scoring import DEFAULT_SIM_WEIGHT, DEFAULT_VAR_WEIGHT


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


def toc_selection_options(func):
    """The TOC settings of `toc select` / `toc plot` (every one has a default)."""
    for decorator in reversed(
        [
            click.option("--channels", type=click.IntRange(min=1), required=True, help="Channel budget C per level."),
            click.option("--max-num", type=click.IntRange(min=0), default=1, help="Top-block share a: k*a highest-scoring channels, k = C // (a+b)."),
            click.option("--min-num", type=click.IntRange(min=0), default=1, help="Bottom-block share b: k*b lowest-scoring channels."),
            click.option("--level", default="all", help="Codebook level: 'all' or a number."),
            click.option("--exact-budget", is_flag=True, default=False, help="Return exactly C channels (the remainder goes to the top block)."),
            sim_weight_option,
            var_weight_option,
            click.option("--allow-nonfinite", is_flag=True, default=False, help="Skip channels holding NaN/Inf instead of failing."),
        ]
    ):
        func = decorator(func)
    return func
