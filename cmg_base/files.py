"""Outputs that are whole or absent: a temporary file (or folder) beside the target, fsync, rename.

Readers see either the old output or the complete new one: a crash, a kill or a full disk leaves
the previous output untouched and removes the temporary one. Used by the trainer (checkpoints,
metrics) and by every `toc` command that writes files.

Temporaries are named `.NAME.PID.XXXX.tmp` and recorded while they live: the command line removes
the live ones on SIGTERM / SIGINT (`remove_live_temporaries`), and the next write of NAME removes
those a killed process (SIGKILL, power loss) left behind (`sweep_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cmg_base.errors import OutputError, OutputExistsError

# Temporary files and staging folders of this process that exist right now.
_LIVE: set[Path] = set()
# Renames that put an output in place run as a critical section: a stop signal that arrives
# meanwhile is acted on right after it (see `in_critical_section`).
_CRITICAL = [0]
# The stop a signal handler asked for, kept until the command line has acted on it. It is raised
# at the next safe point: when a critical section ends, and again if the handler's own raise was
# swallowed — Python drops an exception raised by a signal handler that runs inside a weakref
# callback or a __del__ method ("Exception ignored in ..."); without this record such a SIGTERM
# was lost and the command finished, put its output in place and exited 0.
_REQUESTED_STOP: list[Callable[[], None]] = []


def request_stop(stop: Callable[[], None]) -> None:
    """For a signal handler: remember `stop`, so that the next safe point raises it again if the
    exception the handler raised was swallowed (see `raise_requested_stop`)."""
    _REQUESTED_STOP[:] = [stop]


def raise_requested_stop() -> None:
    """A safe point: if a stop signal arrived, stop now (no-op otherwise). Called before every
    output is put in place and by the progress callbacks of long loops."""
    if _REQUESTED_STOP and not _CRITICAL[0]:
        _REQUESTED_STOP[0]()


def clear_requested_stop() -> None:
    """The command line has acted on the stop (in-process callers, e.g. tests, run on)."""
    _REQUESTED_STOP.clear()


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """Run a few renames that must happen all or not at all with respect to stop signals."""
    # A stop that was requested but swallowed is raised here, before any rename.
    raise_requested_stop()
    _CRITICAL[0] += 1
    try:
        yield
    finally:
        _CRITICAL[0] -= 1
        raise_requested_stop()  # a stop that arrived during the renames


def in_critical_section() -> bool:
    """For a signal handler: True while renames run; the stop it requested (`request_stop`) is
    then raised when they end, so the handler must not stop at once."""
    return bool(_CRITICAL[0])


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an impossible number): leave its files alone
    return True


def sweep_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove `.NAME.PID.*.tmp` entries beside `target` whose process no longer runs.

    Only names this module makes are touched, and only when the process that made them is gone,
    so a concurrent writer of the same output keeps its temporary file. Returns what was removed.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _process_alive(int(pid_text)):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        except OSError:
            continue
    return removed


def remove_live_temporaries() -> None:
    """Delete every temporary file and staging folder this process still has (signal handlers)."""
    for path in list(_LIVE):
        _LIVE.discard(path)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            continue


def live_temporaries() -> list[Path]:
    return sorted(_LIVE)


def _forget(path: Path) -> None:
    _LIVE.discard(path)


def resolve_output(path: str | os.PathLike) -> Path:
    """Where an output really goes: through a symbolic link to the file it names, so writing
    `-o link` replaces the linked file and keeps the link (not the link with a plain file)."""
    target = Path(path)
    if target.is_symlink():
        return Path(os.path.realpath(target))
    return target


def temporary_beside(target: Path) -> Path:
    """A new empty temporary file in `target`'s folder, with the mode a plain open() would give."""
    sweep_stale_temporaries(target)
    try:
        fd, name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({_reason(exc, None)})") from exc
    tmp = Path(name)
    _LIVE.add(tmp)
    try:
        # mkstemp creates 0600 files; outputs get 0666 & ~umask like any other written file.
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return tmp


def commit_temporary(tmp: Path, target: Path) -> None:
    """fsync the finished temporary file and rename it over `target` (readers never see a partial file)."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    with critical_section():
        os.replace(tmp, target)
        _forget(tmp)


# What a failed write's errno means for the user, where the C library's words would mislead.
_ERRNO_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "the file-size limit (ulimit -f) was reached",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a parent of it is not a directory",
    errno.ENOENT: "its folder does not exist",
}


def _reason(exc: BaseException, tmp: Path | None) -> str:
    """Why a write failed, in words: a full disk and the file-size limit are named as such (torch
    and HDF5 report them as 'unexpected pos ...' or several lines of C-library text)."""
    code = getattr(exc, "errno", None)
    if code in _ERRNO_REASONS:
        return _ERRNO_REASONS[code]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else type(exc).__name__
    if tmp is not None:
        # A C library's own words for EFBIG / ENOSPC: say what most likely happened.
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        try:
            size = tmp.stat().st_size
        except OSError:
            size = 0
        if soft != resource.RLIM_INFINITY and size >= soft - (1 << 16):
            return f"the file-size limit (ulimit -f, {soft:,} bytes) was reached: {first}"
        try:
            if shutil.disk_usage(tmp.parent).free < (1 << 20):
                return f"the disk is full: {first}"
        except OSError:
            pass
        if "errno = 28" in str(exc) or "No space left" in str(exc):
            return f"the disk is full: {first}"
        if "errno = 27" in str(exc) or "File too large" in str(exc):
            return f"the file-size limit (ulimit -f) was reached: {first}"
    return first


def _check_writable_folder(target: Path, folder: Path) -> None:
    """Create and remove a probe file in `folder`, so an output that cannot be written is refused
    before any computing, naming the output (never the hidden probe)."""
    try:
        fd, name = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({_reason(exc, None)})") from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def prepare_output(path: str | os.PathLike, *, force: bool = False, make_parents: bool = True) -> Path:
    """Check that `path` may be written, before any work: refuse to clobber without `force`,
    refuse a directory, create the folder, and check that a file can be created there.

    Returns where the output goes (through a symbolic link: the linked file)."""
    target = resolve_output(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory; expected a file name for the output")
    if (target.exists() or target.is_symlink()) and not force:
        raise OutputExistsError(f"{target}: output exists; pass {{}} to overwrite it", settings=("force",))
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{target}: cannot write here ({parent} is not a directory)")
    if not parent.exists():
        if not make_parents:
            raise OutputError(f"{parent}: output directory does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create output directory ({_reason(exc, None)})") from exc
    _check_writable_folder(target, parent)
    return target


@contextlib.contextmanager
def _temporary_for(path: str | os.PathLike) -> Iterator[tuple[Path, Path]]:
    """Yield (target, a new temporary beside it); if the block fails, the temporary is removed
    and a write failure becomes one OutputError naming the target."""
    target = resolve_output(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory; expected a file name for the output")
    tmp = temporary_beside(target)
    try:
        yield target, tmp
    except (OSError, RuntimeError) as exc:
        # h5py and torch report low-level write failures (disk full, file-size limit) as RuntimeError.
        reason = _reason(exc, tmp)
        _remove_temporary(tmp)
        raise OutputError(f"{target}: cannot write ({reason})") from exc
    except BaseException:
        _remove_temporary(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over `path`."""
    with _temporary_for(path) as (target, tmp):
        yield tmp
        commit_temporary(tmp, target)


class StagedFiles:
    """Files written now, each to a hidden temporary beside its target (flushed and fsynced), and
    renamed into place together by `commit()` — or removed by `discard()` (and by the command
    line's cleanup, like every live temporary). A command that fails before its end therefore
    leaves none of them under a final name, where a later run could take them for its own."""

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}  # target -> its temporary

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> None:
        with _temporary_for(path) as (target, tmp):
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if target in self._pending:
            _remove_temporary(self._pending[target])
        self._pending[target] = tmp

    @property
    def targets(self) -> list[Path]:
        return sorted(self._pending)

    def commit(self) -> None:
        """Rename every staged file over its target."""
        with critical_section():
            for target, tmp in list(self._pending.items()):
                try:
                    os.replace(tmp, target)
                except OSError as exc:
                    self.discard()
                    raise OutputError(f"{target}: cannot write ({_reason(exc, None)})") from exc
                _forget(tmp)
                del self._pending[target]

    def discard(self) -> None:
        """Remove every staged file; their targets stay as they were."""
        for tmp in self._pending.values():
            _remove_temporary(tmp)
        self._pending.clear()


def _remove_temporary(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
    _forget(tmp)


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


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append `text` to `path` (created if absent) whole or not at all: a write that fails part
    way (full disk, file-size limit) is cut back to the file's previous length, so the file never
    ends in a partial line; the failure is one OutputError naming the file."""
    target = Path(path)
    data = text.encode("utf-8")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc, None)})") from exc
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc, None)})") from exc
    finally:
        os.close(fd)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_directory(
    target: str | os.PathLike, *, force: bool = False, marker: str | None = None,
    owned: Callable[[str], bool] | None = None,
) -> Path:
    """Check, before any work, that a multi-file output may be written into folder `target`.

    Without `owned`, `target` must be absent or empty, or `force` given (and with `marker`, a
    non-empty `target` must hold that file, so `force` never clobbers a folder this code did not
    write). With `owned` (which entry names belong to this kind of output), other entries do not
    matter and `force` is needed only when an owned entry exists. Returns the folder (through a
    symbolic link: the linked folder).
    """
    target = resolve_output(target)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target}: exists and is not a directory")
    if target.exists():
        names = sorted(os.listdir(target))
        if owned is not None:
            taken = [name for name in names if owned(name)]
            if taken and not force:
                raise OutputExistsError(
                    f"{target / taken[0]}: output exists ({len(taken)} output file(s) in {target}); "
                    "pass {} to replace them", settings=("force",),
                )
        elif names:
            if not force:
                raise OutputExistsError(f"{target}: directory is not empty; pass {{}} to replace its contents", settings=("force",))
            if marker is not None and not (target / marker).is_file():
                raise OutputExistsError(
                    f"{target}: not empty and has no {marker}, so it was not written by this command; "
                    "refusing to overwrite it even with {}",
                    settings=("force",),
                )
        _check_writable_folder(target, target)
    else:
        existing = _nearest_existing(target.parent)
        if not existing.is_dir():
            raise OutputError(f"{target}: cannot create the output directory ({existing} is not a directory)")
        _check_writable_folder(target, existing)
    return target


@contextlib.contextmanager
def staged_directory(
    target: str | os.PathLike, *, force: bool = False, marker: str | None = None,
    owned: Callable[[str], bool] | None = None,
) -> Iterator[Path]:
    """Write a folder's contents whole or not at all.

    The rules for an existing `target` are those of `check_output_directory`. Yields an empty
    staging folder (inside `target` when it exists, so the moves stay on one file system; beside
    it otherwise). When the block succeeds, the staged entries are moved into `target`: each
    replaces the same-named entry, and with `owned`, every other owned entry (a chart of a task
    the new output no longer has) is removed, so the folder never holds a mix of two output sets.
    Entries that are not owned are kept. When the block fails, `target` is left as it was.
    """
    target = check_output_directory(target, force=force, marker=marker, owned=owned)
    try:
        home = target if target.exists() else target.parent
        home.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(target)
        staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=home))
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the output directory ({_reason(exc, None)})") from exc
    _LIVE.add(staging)
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; it may become `target` itself
        yield staging
        with critical_section():
            _install(staging, target, owned)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({_reason(exc, None)})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _forget(staging)


def _install(staging: Path, target: Path, owned: Callable[[str], bool] | None = None) -> None:
    """Move the staged entries into place: same-named entries of `target` and, with `owned`, the
    owned entries the new set does not have are moved to a trash folder that is then removed."""
    if not target.exists():
        os.replace(staging, target)
        staging.mkdir()  # the caller removes the (now empty) staging folder
        return
    trash = Path(tempfile.mkdtemp(prefix=".replaced.", dir=staging))
    new = sorted(entry for entry in staging.iterdir() if entry != trash)
    new_names = {entry.name for entry in new}
    if owned is not None:
        for name in sorted(os.listdir(target)):
            if name not in new_names and owned(name) and not (target / name) == staging:
                os.replace(target / name, trash / name)
    for entry in new:
        old = target / entry.name
        if old.exists() or old.is_symlink():
            os.replace(old, trash / entry.name)
        os.replace(entry, old)
