"""The one way an input file is opened: regular files only, checked before opening, bytes bounded.

Every reader of a file a user names (checkpoints, feature files, CSV tables, TOML plans, selection
JSON, results JSONL) goes through here, so the rules hold everywhere at once:

- a FIFO, device, socket or directory is refused *before* it is opened (opening a FIFO blocks
  until a writer appears; /dev/zero never ends); the file is opened non-blocking and checked
  again on the open descriptor, so swapping the file between check and open does not help;
- a file larger than its reader allows is refused from its size, before a byte is read, and a
  read never returns more than that bound (a file that grows while read is cut, then refused);
- text is strict UTF-8, and an error names the byte where decoding failed;
- `~user` paths are expanded with an error naming the path when the user does not exist.

Errors are `CmgError`s of the type the caller passes (DataError, CheckpointError, ...), with the
file named, so each library keeps its own typed errors.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from cmg_base.errors import CmgError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def expand_path(path: str | os.PathLike, *, what: str = "path", error: type[CmgError] = CmgError) -> Path:
    """`path` with a leading `~` / `~user` expanded; an unknown user is an error naming the path."""
    candidate = Path(path)
    if not str(candidate).startswith("~"):
        return candidate
    try:
        return candidate.expanduser()
    except RuntimeError:
        user = str(candidate).split("/", 1)[0]
        raise error(f"cannot expand {user!r}: no such user's home directory ({what})", file=candidate) from None


def check_regular_file(
    path: str | os.PathLike, *, what: str = "input file", error: type[CmgError] = CmgError,
    max_bytes: int | None = None, allow_empty: bool = False, missing: str | None = None,
) -> os.stat_result:
    """stat() `path` (following links) and refuse anything but a regular file within `max_bytes`.

    `missing` replaces the message for a path that does not exist (default: "WHAT not found").
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(missing or f"{what} not found", file=path) from None
    except NotADirectoryError:
        raise error(f"{what} not found (a parent of it is not a directory)", file=path) from None
    except PermissionError:
        raise error(f"cannot read the {what} (permission denied)", file=path) from None
    except OSError as exc:
        raise error(f"cannot read the {what} ({exc.strerror or exc})", file=path) from None
    except ValueError:  # an embedded NUL byte
        raise error(f"invalid path for a {what} (it holds a NUL byte)", file=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise error(
            f"is {_kind_of(info.st_mode)}, not a regular file; refusing to read it as a {what}",
            file=path,
        )
    if info.st_size == 0 and not allow_empty:
        raise error(f"empty file (0 bytes); expected a {what}", file=path)
    if max_bytes is not None and info.st_size > max_bytes:
        raise error(
            f"too large for a {what}", file=path, expected=f"at most {max_bytes:,} bytes",
            actual=f"{info.st_size:,} bytes",
        )
    return info


def open_regular_file(
    path: str | os.PathLike, *, what: str = "input file", error: type[CmgError] = CmgError,
    max_bytes: int | None = None, allow_empty: bool = False, missing: str | None = None,
) -> BinaryIO:
    """A binary handle on `path`, opened only after the checks of `check_regular_file`.

    O_NONBLOCK makes open() return at once even if the path became a FIFO after the check; the
    open descriptor is then checked again and the flag cleared for ordinary blocking reads.
    """
    check_regular_file(path, what=what, error=error, max_bytes=max_bytes, allow_empty=allow_empty, missing=missing)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"cannot open the {what} ({exc.strerror or exc})", file=path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"is {_kind_of(info.st_mode)}, not a regular file; refusing to read it as a {what}", file=path)
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(
                f"too large for a {what}", file=path, expected=f"at most {max_bytes:,} bytes",
                actual=f"{info.st_size:,} bytes",
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~getattr(os, "O_NONBLOCK", 0))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input_bytes(
    path: str | os.PathLike, *, what: str = "input file", error: type[CmgError] = CmgError,
    max_bytes: int, allow_empty: bool = False, missing: str | None = None,
) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (never reads more than max_bytes + 1)."""
    path = Path(path)
    with open_regular_file(path, what=what, error=error, max_bytes=max_bytes, allow_empty=allow_empty,
                           missing=missing) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"cannot read the {what} ({exc.strerror or exc})", file=path) from None
    if len(data) > max_bytes:
        raise error(f"too large for a {what} (it grew while being read)", file=path, expected=f"at most {max_bytes:,} bytes")
    if not data and not allow_empty:
        raise error(f"empty file (0 bytes); expected a {what}", file=path)
    return data


def decode_utf8(data: bytes, *, path: str | os.PathLike, what: str, error: type[CmgError] = CmgError) -> str:
    """Strict UTF-8 (a leading byte-order mark is dropped); the error names the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start}); expected a {what}", file=path) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_input_text(
    path: str | os.PathLike, *, what: str = "input file", error: type[CmgError] = CmgError,
    max_bytes: int, allow_empty: bool = False, missing: str | None = None,
) -> str:
    """A bounded regular file decoded as strict UTF-8."""
    data = read_input_bytes(path, what=what, error=error, max_bytes=max_bytes, allow_empty=allow_empty,
                            missing=missing)
    return decode_utf8(data, path=path, what=what, error=error)
