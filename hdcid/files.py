"""Atomic file replacement: a temporary file beside the target, fsync, rename (trainer and toc)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temporary_beside(target: Path) -> Path:
    """A new empty temporary file in `target`'s folder, with the mode a plain open() would give."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600 files; outputs get 0666 & ~umask like any other written file.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    finally:
        os.close(fd)
    return Path(name)


def commit_temporary(tmp: Path, target: Path) -> None:
    """fsync the finished temporary file and rename it over `target` (readers never see a partial file)."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
