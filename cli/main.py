"""The `toc` command: a Click group; every command lives in cli/commands/ and stays thin."""

from __future__ import annotations

import signal
import sys

import click

from cli.commands import COMMANDS
from cli.options import flag
from cmg_base.errors import CmgError


class TocGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1 (tracebacks only with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CmgError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {exc.render(flag)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except MemoryError:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo("Error: out of memory (try a smaller --batch-size)", err=True)
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)


@click.group(cls=TocGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="cmg-toc", prog_name="toc")
@click.option("--debug", is_flag=True, default=False, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """cmg-toc: TOC channel selection, H-DCID training and cross-modal evaluation for CMG codebooks."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit (ulimit -f) the default action kills the process; ignoring the
        # signal turns it into an EFBIG write error that we report in one line.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


for _command in COMMANDS:
    cli.add_command(_command)
