"""Outputs that are whole or absent: a temporary file (or folder) beside the target, fsync, rename.

Readers see either the old output or the complete new one: a crash, a kill or a full disk leaves
the previous output untouched and removes the temporary one. Used by the trainer (checkpoints,
metrics) and by every `toc` command that writes files.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cmg_base.errors import OutputError, OutputExistsError


def temporary_beside(target: Path) -> Path:
    """A new empty temporary file in `target`'s folder, with the mode a plain open() would give."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600 files; outputs get 0666 & ~umask like any other written file.
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def commit_temporary(tmp: Path, target: Path) -> None:
    """fsync the finished temporary file and rename it over `target` (readers never see a partial file)."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def prepare_output(path: str | os.PathLike, *, force: bool = False, make_parents: bool = True) -> Path:
    """Check that `path` may be written: refuse to clobber without `force`, create its folder."""
    target = Path(path)
    if target.exists() and not force:
        raise OutputExistsError(f"{target}: output exists; pass {{}} to overwrite it", settings=("force",))
    parent = target.parent
    if not parent.exists():
        if not make_parents:
            raise OutputError(f"{parent}: output directory does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create output directory ({exc.strerror})") from exc
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over `path`."""
    target = Path(path)
    tmp = temporary_beside(target)
    try:
        yield tmp
        commit_temporary(tmp, target)
    except (OSError, RuntimeError) as exc:
        # h5py reports low-level write failures (disk full, file-size limit) as RuntimeError.
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
        raise OutputError(f"{target}: cannot write ({reason})") from exc
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
        raise OutputError(f"{target}: not enough disk space (needs about {needed_bytes:,} bytes, {free:,} free)")
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and needed_bytes > soft:
        raise OutputError(f"{target}: output would exceed the file-size limit (about {needed_bytes:,} bytes, limit {soft:,})")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, *, force: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Write a folder's contents whole or not at all.

    `target` must be absent or empty, or `force` must be given; with `marker`, a non-empty
    `target` is replaced only when it holds that file, so `force` never clobbers a folder this
    code did not write. Yields an empty staging folder beside `target`. When the block succeeds,
    each top-level entry of the staging folder replaces the same-named entry of `target` (other
    entries of `target` are kept); when it fails, `target` is left as it was.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target}: exists and is not a directory")
    if target.exists() and any(target.iterdir()):
        if not force:
            raise OutputExistsError(f"{target}: directory is not empty; pass {{}} to replace its contents", settings=("force",))
        if marker is not None and not (target / marker).is_file():
            raise OutputExistsError(
                f"{target}: not empty and has no {marker}, so it was not written by this command; "
                "refusing to overwrite it even with {}",
                settings=("force",),
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the output directory ({exc.strerror or exc})") from exc
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; it may become `target` itself
        yield staging
        _install(staging, target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staging: Path, target: Path) -> None:
    """Move the staged entries into place, replacing only same-named entries of `target`."""
    if not target.exists():
        os.replace(staging, target)
        staging.mkdir()  # the caller removes the (now empty) staging folder
        return
    trash = Path(tempfile.mkdtemp(prefix=".replaced.", dir=staging))
    for entry in sorted(staging.iterdir()):
        if entry == trash:
            continue
        old = target / entry.name
        if old.exists() or old.is_symlink():
            os.replace(old, trash / entry.name)
        os.replace(entry, old)
