"""Progress bars on stderr (quiet when stderr is not a terminal or the job is short)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "it", min_total: int = 256) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callback drawing a tqdm bar on stderr for long jobs only."""
    disable = total < min_total or not sys.stderr.isatty()
    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, leave=False) as bar:
        yield bar.update
