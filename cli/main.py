"""The `toc` command: a Click group; every command lives in cli/commands/ and stays thin.

Commands load lazily (Click's documented LazyGroup pattern): `toc inspect` imports the codebook
commands' module only, and that module imports the library when the command runs, so `--help`
and the usage errors answer without torch.
"""

from __future__ import annotations

import importlib
import signal
import sys
import warnings

import click

from cli.commands import COMMAND_MODULES
from cli.options import flag
from cmg_base.errors import CmgError, printable
from cmg_base.files import (
    clear_requested_stop,
    in_critical_section,
    raise_requested_stop,
    remove_live_temporaries,
    request_stop,
)

# Signals that end a run early: the temporaries of the outputs being written are removed first
# (the `finally` blocks run as the exception unwinds), then the exit code is 128 + the signal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """Raised by the signal handler: unwinds like Ctrl-C, so every cleanup block runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, _frame) -> None:
    # Later signals while cleaning up are ignored: the cleanup is short and must not be cut.
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)

    def stop() -> None:
        raise Stopped(signum)

    # Remembered as well as raised: the raise is lost when the signal lands in a weakref callback
    # or __del__, and then the next safe point (a progress step, an output about to be put in
    # place, the end of the command) raises it again.
    request_stop(stop)
    # An output being renamed into place finishes first (the critical section's end raises the
    # requested stop): never half of a multi-file output.
    if not in_critical_section():
        stop()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings as one `warning: ...` line on stderr, never with a source line."""
    click.echo(f"warning: {printable(str(message).strip().splitlines()[0] if str(message).strip() else category.__name__)}", err=True)


def _unraisable(unraisable) -> None:
    # A stop raised inside a weakref callback or __del__ cannot propagate; it is raised again at
    # the next safe point (request_stop), so Python's "Exception ignored" traceback is noise.
    if isinstance(unraisable.exc_value, Stopped):
        return
    sys.__unraisablehook__(unraisable)


def install_process_handlers() -> None:
    """Signals, the file-size limit and warnings, as the command line wants them."""
    sys.unraisablehook = _unraisable
    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit (ulimit -f) the default action kills the process; ignoring the
        # signal turns it into an EFBIG write error that we report in one line.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:  # e.g. nohup: stay ignored
            signal.signal(number, _stop)
    warnings.showwarning = _one_line_warning
    # Torch's notes to its own developers (nested tensors, TypedStorage, ...) mean nothing to a
    # user of `toc`; the library's own warnings still come through, one line each.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch(\.|$)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch(\.|$)")


def _fail(message: str, code: int = 1):
    click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(code)


class TocGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1 (tracebacks only with --debug);
    finds each command in its cli/commands/ module when it is first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None and name in COMMAND_MODULES:
            module = importlib.import_module(f"cli.commands.{COMMAND_MODULES[name]}")
            command = next(c for c in module.COMMANDS if c.name == name)
            self.add_command(command)
        return command

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.obj and ctx.obj.get("debug"))
        try:
            result = super().invoke(ctx)
            raise_requested_stop()  # a stop whose exception was swallowed after the last safe point
            return result
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Stopped as exc:
            clear_requested_stop()
            name = signal.Signals(exc.signum).name
            _fail(f"stopped by {name}; the outputs being written were not changed", 128 + exc.signum)
        except KeyboardInterrupt:
            _fail("interrupted; the outputs being written were not changed", 130)
        except CmgError as exc:
            if debug:
                raise
            _fail(exc.render(flag))
        except MemoryError:
            if debug:
                raise
            _fail("out of memory: the inputs or settings need more memory than this machine has")
        except RecursionError:
            if debug:
                raise
            _fail("an input is nested too deeply to read (run with --debug for the traceback)")
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
            if debug:
                raise
            text = str(exc).strip().splitlines()
            _fail(f"unexpected {type(exc).__name__}: {text[0][:300] if text else ''} (run with --debug for the traceback)")
        finally:
            remove_live_temporaries()


@click.group(cls=TocGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="cmg-toc", prog_name="toc")
@click.option("--debug", is_flag=True, default=False, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cmg-toc: TOC channel selection, H-DCID training and cross-modal evaluation for CMG codebooks."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    install_process_handlers()
