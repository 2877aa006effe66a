"""Reusable Click option bundles, and how library setting names are spelt as flags.

Imports no torch (nor anything that does): every command module builds its options from here and
from the vocabularies (hdcid.vocabulary, toc.vocabulary, toc.codebook.settings), so `toc --help`
and `toc COMMAND --help` answer at once; a command imports the library when it runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import click

from cmg_base.errors import CmgError, SettingsError, printable
from cmg_base.files import prepare_output, write_text_atomic
from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE, DEVICES, DTYPES
from toc.codebook.settings import (
    AUTO_CHANNELS,
    AUTO_SETTINGS,
    AUTO_SPLITS,
    AUTO_STEP,
    PRESET_NAMES,
    PUBLISHED_PATTERNS,
    SCORE_VARIANTS,
    SETTING_DEFAULTS,
    TOC_SOURCES,
    TocRequest,
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


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """Comma-separated seeds (`--seeds 0,1,2`), in order, without repeats."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None
    if not seeds:
        raise click.BadParameter("give at least one seed", param_hint=option)
    return list(dict.fromkeys(seeds))


force_option = click.option("--force", is_flag=True, default=False, help="Overwrite existing output files.")

trust_option = click.option(
    "--trust-checkpoint",
    is_flag=True,
    default=False,
    help="Allow full unpickling of the checkpoint (can run arbitrary code: only for files you trust).",
)

device_option = click.option("--device", type=click.Choice(DEVICES), default=DEFAULT_DEVICE, help="Where the encoder runs.")
dtype_option = click.option(
    "--dtype", type=click.Choice(DTYPES), default=DEFAULT_DTYPE, help="Encoder compute dtype (float64 is bit-faithful to the reference).",
)



def encoder_options(func):
    """Where and in which dtype the encoder runs: `--dtype`, `--device`."""
    return dtype_option(device_option(func))


level_option = click.option("--level", default="all", help="Codebook level: 'all', a number, or (another VQ model's file) a level name.")

codebook_key_option = click.option(
    "--codebook-key", "codebook_key", multiple=True, metavar="PATTERN",
    help="Use the tensor(s) whose key matches PATTERN as the codebook(s): a glob (fnmatch), or "
    "'re:REGEX' for a regular expression on the whole key; repeatable. Default: CMG checkpoints, "
    "bare codebooks and the known VQ layouts are found automatically (docs/toc.md).",
)


class SettingOption(click.Option):
    """An option that stays None unless given, so the library knows what the user gave; --help
    shows the library's default (`shown_default`) as Click shows its own."""

    def __init__(self, *args, shown_default=None, **kwargs):
        kwargs.setdefault("default", None)
        super().__init__(*args, **kwargs)
        self.shown_default = shown_default

    def get_help_extra(self, ctx: click.Context):
        extra = super().get_help_extra(ctx)
        if self.shown_default is not None:
            extra["default"] = str(self.shown_default)
        return extra


# ---------------------------------------------------------------------- the TOC settings


def _default(name: str) -> dict:
    """Keyword arguments of a TOC flag whose default TocSettings fills in."""
    return {"cls": SettingOption, "shown_default": SETTING_DEFAULTS[name]}


CHANNELS_HELP = "TOC: channel budget C per level."
AUTO_CHANNELS_HELP = (
    f"TOC: channel budget C per level, or '{AUTO_CHANNELS}': chosen per direction on the task's validation split "
    "(the fewest channels within one standard error of the best grid point; docs/toc.md)."
)


class ChannelsType(click.ParamType):
    """`--channels`: an integer >= 1, or "auto" (refused by TocRequest.check where not offered)."""

    name = "C|auto"

    def get_metavar(self, param, ctx=None):
        return "C|auto"

    def convert(self, value, param, ctx):
        if value == AUTO_CHANNELS or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither an integer nor {AUTO_CHANNELS}", param, ctx)
        if number < 1:
            self.fail(f"{number} is smaller than the minimum 1", param, ctx)
        return number
# Every TOC flag, declared once. Each stays None (or off) unless given, so a command knows what
# the user gave; --help shows TocSettings' default, which toc.codebook.settings fills in.
_TOC_FLAGS: dict[str, Callable] = {
    "selection": click.option(
        "--selection", "selection", type=click.Path(dir_okay=False), default=None,
        help="`toc select` JSON: the channels kept per level (made for this checkpoint).",
    ),
    "channels": click.option("--channels", type=ChannelsType(), default=None, help=CHANNELS_HELP),
    "max_num": click.option(
        "--max-num", type=click.IntRange(min=0), **_default("max_num"),
        help="TOC: top-block share a: the k*a highest-scoring channels, k = C // (a+b).",
    ),
    "min_num": click.option(
        "--min-num", type=click.IntRange(min=0), **_default("min_num"),
        help="TOC: bottom-block share b: the k*b lowest-scoring channels.",
    ),
    "exact_budget": click.option("--exact-budget", is_flag=True, default=False, help="TOC: return exactly C channels (the remainder goes to the top block)."),
    "sim_weight": click.option(
        "--sim-weight", type=float, **_default("sim_weight"),
        help="Weight of the mean pairwise similarity (subtracted).",
    ),
    "var_weight": click.option(
        "--var-weight", type=float, **_default("var_weight"),
        help="Weight of the channel variance (added).",
    ),
    "score": click.option(
        "--score", "score", type=click.Choice(sorted(SCORE_VARIANTS)), default=None,
        help="Named weights instead of --sim-weight/--var-weight: "
        + ", ".join(f"{name} = -{w[0]}*sim + {w[1]}*var" for name, w in SCORE_VARIANTS.items())
        + " (sim_var: TOC and FCID's AVE script; sim_only: FCID's AVVP, AVE->AVVP and UCF<->VGGSound scripts).",
    ),
    "allow_nonfinite": click.option(
        "--allow-nonfinite", is_flag=True, default=False,
        help="Channels holding NaN/Inf are scored NaN and never selected, instead of failing.",
    ),
    "reference_topk": click.option(
        "--reference-topk", is_flag=True, default=False,
        help="Reference quirk: take the two blocks independently, as the published routine's two top-k calls "
        "(they may repeat channels, and C may exceed D when each block fits).",
    ),
    "toc_preset": click.option(
        "--toc-preset", "toc_preset", type=click.Choice(PRESET_NAMES), default=None,
        help="TOC settings as published for this task: FCID checkpoints only (AVE 256/1/0 sim_var, AVVP 196/1/0, "
        "AVE-AVVP 128/1/0, UCF-VGGSound 168/1/0 sim_only).",
    ),
    "auto_grid": click.option(
        "--auto-grid", "auto_grid", default=None, metavar="C1,C2,...|step:N",
        help=f"With --channels {AUTO_CHANNELS}: the budgets compared (each <= the codebook width) "
        f"[default: step:{AUTO_STEP}, every {AUTO_STEP} channels up to the width, and the width].",
    ),
    "auto_patterns": click.option(
        "--auto-patterns", "auto_patterns", default=None, metavar="A/B,...",
        help=f"With --channels {AUTO_CHANNELS}: the max_num/min_num block patterns compared at every budget "
        f"[default: {','.join(f'{a}/{b}' for a, b in PUBLISHED_PATTERNS)}, the published scripts'].",
    ),
    "auto_split": click.option(
        "--auto-split", "auto_split", type=click.Choice(AUTO_SPLITS), default=None,
        help=f"With --channels {AUTO_CHANNELS}: which validation clips score a budget: cross-modal = the evaluated "
        "modality's clips of the validation videos (same-modality where the sets share no video), same-modality = "
        f"the training modality's held-out clips [default: {AUTO_SPLITS[0]}].",
    ),
}
_INLINE = ("channels", "max_num", "min_num", "exact_budget", "sim_weight", "var_weight", "score", "allow_nonfinite", "reference_topk")
_AUTO = AUTO_SETTINGS
WEIGHTS = ("sim_weight", "var_weight", "score", "allow_nonfinite")


def toc_options(
    sources: Sequence[str] = TOC_SOURCES, *, channels_required: bool = False, names: Sequence[str] | None = None,
    auto: bool = False,
):
    """The TOC flags as one bundle: the command receives one `toc` argument, a TocRequest, in
    place of the flags, checked by TocRequest.check (the rules between settings live there).

    `sources`: how TOC may be asked for (selection, channels, toc_preset); `channels_required`:
    --channels must be given (toc select / plot); `names`: only these flags and no check (toc
    score's weights); `auto`: the command can choose the budget on a validation split
    (`--channels auto`, with --auto-grid / --auto-patterns)."""
    if names is not None:
        offered = tuple(names)
    else:
        offered = (*[s for s in TOC_SOURCES if s in sources and s != "channels"], *_INLINE, *(_AUTO if auto else ()))

    def bundle(func):
        @functools.wraps(func)
        def command(*args, **kwargs):
            given = {name: kwargs.pop(name) for name in offered}
            preset = given.pop("toc_preset", None)
            request = TocRequest(preset=preset, **{k: (None if v is False else v) for k, v in given.items()})
            if names is None:
                request.check(sources, auto=auto)
            return func(*args, toc=request, **kwargs)

        # Click reads the wrapped function's parameters from the options, not the signature.
        command.__signature__ = inspect.signature(func)
        for name in reversed(offered):
            option = _TOC_FLAGS[name]
            if name == "channels":
                option = click.option(
                    "--channels", type=ChannelsType(), required=channels_required, default=None,
                    help=AUTO_CHANNELS_HELP if auto else CHANNELS_HELP,
                )
            command = option(command)
        return command

    return bundle
