"""Atomic file output: write to a temporary file beside the target, fsync, then rename."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
from collections.abc import Iterator
from pathlib import Path

from hdcid.files import commit_temporary, temporary_beside
from toc.errors import OutputExistsError, TocError


def prepare_output(path: str | os.PathLike, *, force: bool = False, make_parents: bool = True) -> Path:
    """Check that `path` may be written: refuse to clobber without `force`, create its folder."""
    target = Path(path)
    if target.exists() and not force:
        raise OutputExistsError(f"{target}: output exists; pass --force to overwrite it")
    parent = target.parent
    if not parent.exists():
        if not make_parents:
            raise TocError(f"{parent}: output directory does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TocError(f"{parent}: cannot create output directory ({exc.strerror})") from exc
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over `path`.

    Readers see either the old file or the complete new one, never a partial file: a crash,
    a kill or a full disk leaves the previous file untouched and removes the temporary one.
    """
    target = Path(path)
    tmp = temporary_beside(target)
    try:
        yield tmp
        commit_temporary(tmp, target)
    except (OSError, RuntimeError) as exc:
        # h5py reports low-level write failures (disk full, file-size limit) as RuntimeError.
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
        raise TocError(f"{target}: cannot write ({reason})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_space(path: str | os.PathLike, needed_bytes: int) -> None:
    """Refuse early when `needed_bytes` cannot fit: free disk space or the file-size limit (ulimit -f)."""
    target = Path(path)
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        free = None
    if free is not None and needed_bytes > free:
        raise TocError(f"{target}: not enough disk space (needs about {needed_bytes:,} bytes, {free:,} free)")
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and needed_bytes > soft:
        raise TocError(f"{target}: output would exceed the file-size limit (about {needed_bytes:,} bytes, limit {soft:,})")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
