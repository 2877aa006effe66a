"""The one progress convention of the library: a factory the caller passes in.

`progress(description, total)` returns a context manager yielding `advance(n)`, called after
every n units of work. The CLI passes tqdm bars on stderr; the default draws nothing. Messages
meant for a person go through a `log(message)` callable the same way (library code never prints).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Advance]]
LogFn = Callable[[str], None]


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Advance]:
    yield lambda _n: None


def no_log(_message: str) -> None:
    return None
