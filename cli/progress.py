"""Progress on stderr, as the library's progress factories (toc.progress)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click
from tqdm import tqdm

from cmg_base.files import raise_requested_stop
from toc.progress import Advance, ProgressFactory


def bars(unit: str = "it", min_total: int = 256) -> ProgressFactory:
    """tqdm bars on stderr, drawn only for long jobs and only when stderr is a terminal."""

    @contextlib.contextmanager
    def factory(description: str, total: int) -> Iterator[Advance]:
        disable = total < min_total or not sys.stderr.isatty()
        with tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=disable, leave=False) as bar:

            def advance(n: int) -> None:
                raise_requested_stop()  # each step is a safe point for a stop whose raise was lost
                bar.update(n)

            yield advance

    return factory


def stage_lines(prefix: str) -> ProgressFactory:
    """One line on stderr as each stage finishes: `PREFIX: STAGE N/N`."""

    @contextlib.contextmanager
    def factory(description: str, total: int) -> Iterator[Advance]:
        done = [0]

        def advance(n: int) -> None:
            raise_requested_stop()
            done[0] += n

        yield advance
        click.echo(f"{prefix}: {description} {done[0]}/{total}", err=True)

    return factory


def log(message: str) -> None:
    click.echo(message, err=True)
