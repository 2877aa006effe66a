"""Progress on stderr, as the library's progress factories (toc.progress)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click
from tqdm import tqdm

from toc.progress import Advance, ProgressFactory


def bars(unit: str = "it", min_total: int = 256) -> ProgressFactory:
    """tqdm bars on stderr, drawn only for long jobs and only when stderr is a terminal."""

    @contextlib.contextmanager
    def factory(description: str, total: int) -> Iterator[Advance]:
        disable = total < min_total or not sys.stderr.isatty()
        with tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=disable, leave=False) as bar:
            yield bar.update

    return factory


def stage_lines(prefix: str) -> ProgressFactory:
    """One line on stderr as each stage finishes: `PREFIX: STAGE N/N`."""

    @contextlib.contextmanager
    def factory(description: str, total: int) -> Iterator[Advance]:
        done = [0]
        yield lambda n: done.__setitem__(0, done[0] + n)
        click.echo(f"{prefix}: {description} {done[0]}/{total}", err=True)

    return factory


def log(message: str) -> None:
    click.echo(message, err=True)
