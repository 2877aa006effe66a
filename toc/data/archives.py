"""Zip-wrapped pickled feature arrays: read with a restricted unpickler that admits numpy only,
and written (for the built-in corpora) with fixed metadata so files are byte-identical."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import pickletools
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cmg_base.inputs import check_regular_file, open_regular_file
from toc.data.base import T_SEGMENTS, require_float_features
from toc.errors import DataError

# Bounds that stop bombs, not long clips. A real feature zip is a few MB ([10,7,7,512] float64 is
# 2 MB; an hour of 128-d audio features is 3.7 MB): a member may hold up to MAX_MEMBER_BYTES (what
# one clip may take in memory, whatever its length), and once past RATIO_FREE_BYTES it may inflate
# at most MAX_COMPRESSION_RATIO times its compressed size. Float features compress a few times at
# most; a bomb of zeros compresses about a thousand times. A member is inflated in blocks and
# refused as soon as it passes either bound, whatever size the archive declares for it.
MAX_ZIP_BYTES = 256 << 20
MAX_MEMBER_BYTES = 256 << 20
MAX_COMPRESSION_RATIO = 100
RATIO_FREE_BYTES = 8 << 20
MAX_PICKLE_OPCODES = 10_000  # an array pickle has a few dozen; a structure bomb has millions
_INFLATE_BLOCK = 1 << 20


def _numpy_global(modern: str, legacy: str, name: str):
    for module_name in (modern, legacy):
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
    return None


_RECONSTRUCT = _numpy_global("numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct")
_FROMBUFFER = _numpy_global("numpy._core.numeric", "numpy.core.numeric", "_frombuffer")


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something outside the numpy-array allow-list."""


def _encode_latin1(text, encoding="latin1"):
    # Protocol <= 2 pickles of arrays carry their bytes as a str passed through _codecs.encode;
    # this stand-in does only that, with no codec lookup by a name the file chooses.
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("_codecs.encode is admitted only as str -> latin1 bytes")
    return text.encode("latin1")


# Every global a pickled numpy ndarray needs, under numpy 1.x and 2.x module names; nothing else.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _encode_latin1,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the numpy globals an ndarray pickle needs; any other global is refused."""

    def find_class(self, module: str, name: str):
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise _Refused(f"global '{module}.{name}' is not allowed")
        return target

    def persistent_load(self, pid):
        raise _Refused("persistent ids are not allowed")


def _check_opcodes(data: bytes, *, file: str | Path, key: str) -> None:
    """Walk the pickle's opcodes without running any: a numpy array needs a few dozen, so a
    stream of millions (lists, dicts or memo references built to fill memory) is refused."""
    try:
        for count, _ in enumerate(pickletools.genops(data), start=1):
            if count > MAX_PICKLE_OPCODES:
                raise DataError(
                    "pickle is not a plain array (too many opcodes)", file=file, key=key,
                    expected=f"at most {MAX_PICKLE_OPCODES} opcodes",
                )
    except DataError:
        raise
    except Exception as exc:  # a corrupt stream
        raise DataError(f"unreadable pickle ({type(exc).__name__}: {exc})", file=file, key=key) from None


def loads_ndarray(data: bytes, *, file: str | Path, key: str) -> np.ndarray:
    """Un-pickle `data` admitting numpy arrays only; anything else raises DataError, unexecuted."""
    _check_opcodes(data, file=file, key=key)
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as exc:
        raise DataError(f"refused pickle: {exc}", file=file, key=key) from None
    except Exception as exc:  # any failure on a corrupt stream is a data error, not a crash
        raise DataError(
            f"unreadable pickle ({type(exc).__name__}: {exc})", file=file, key=key
        ) from None
    if not isinstance(obj, np.ndarray):
        raise DataError(
            "pickle is not a numpy array", file=file, key=key,
            expected="numpy.ndarray", actual=type(obj).__name__,
        )
    if obj.dtype.kind not in "biuf":
        raise DataError(
            "array has a non-numeric dtype", file=file, key=key,
            expected="a numeric dtype", actual=str(obj.dtype),
        )
    require_float_features(obj.dtype, file=file, key=key)
    return obj


def _check_ratio(size: int, info: zipfile.ZipInfo, path: Path) -> None:
    if size > RATIO_FREE_BYTES and size > MAX_COMPRESSION_RATIO * max(1, info.compress_size):
        raise DataError(
            "zip member inflates far beyond its compressed size (a decompression bomb?)", file=path,
            key=info.filename, expected=f"at most {MAX_COMPRESSION_RATIO}x its {info.compress_size:,} compressed bytes",
            actual=f"{size:,} bytes or more",
        )


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path: Path) -> bytes:
    """A member's bytes, inflated block by block and cut off past `limit` or past the compression
    ratio a real array can have (the CRC is checked)."""
    if info.file_size > limit:
        raise DataError(
            "zip member too large", file=path, key=info.filename,
            expected=f"<= {limit:,} bytes", actual=f"{info.file_size:,} bytes",
        )
    _check_ratio(info.file_size, info, path)
    parts, total = [], 0
    with archive.open(info) as member:
        while True:
            block = member.read(_INFLATE_BLOCK)
            if not block:
                break
            total += len(block)
            if total > limit:
                raise DataError(
                    "zip member inflates beyond its bound", file=path, key=info.filename,
                    expected=f"<= {limit:,} bytes", actual=f"more than {limit:,} bytes",
                )
            _check_ratio(total, info, path)
            parts.append(block)
    return b"".join(parts)


def read_zip_array(path: str | Path, *, max_member_bytes: int = MAX_MEMBER_BYTES) -> tuple[np.ndarray, str]:
    """The array of `path`: its one member whose name contains '.pkl', un-pickled (numpy only).

    Other members are skipped unread. The published loaders loop over every '.pkl' member and
    keep the last; a zip with several is refused here, since which one was meant is unknown.
    Returns the array and the name of the member it came from (for messages).
    """
    path = Path(path)
    with open_regular_file(path, what="feature zip", error=DataError, max_bytes=MAX_ZIP_BYTES,
                           missing="missing feature file") as handle:
        try:
            with zipfile.ZipFile(handle) as archive:
                infos = archive.infolist()
                members = [info for info in infos if ".pkl" in info.filename]
                if len(members) != 1:
                    names = [i.filename for i in (members or infos)[:8]]
                    raise DataError(
                        "zip holds no pickle member" if not members else "zip holds several pickle members",
                        file=path, key="*.pkl", expected="exactly one member whose name contains '.pkl'",
                        actual=f"{len(members)} ({names}{', ...' if len(members or infos) > 8 else ''})",
                    )
                info = members[0]
                data = _inflate(archive, info, max_member_bytes, path)
        except DataError:
            raise
        except Exception as exc:  # zlib/lzma/CRC/encryption failures of an untrusted archive
            raise DataError(f"unreadable zip ({type(exc).__name__}: {exc})", file=path) from None
    return loads_ndarray(data, file=path, key=info.filename), info.filename


def pad_last_trunc(array: np.ndarray, length: int = T_SEGMENTS) -> np.ndarray:
    """Rule pad-last/trunc-10 on axis 0: repeat the last row up to `length`, or keep the first."""
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError("cannot pad an empty array")
    steps = array.shape[0]
    if steps >= length:
        return array[:length]
    tail = np.repeat(array[-1:], length - steps, axis=0)
    return np.concatenate([array, tail], axis=0)


def _shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ",".join(str(s) for s in shape) + "]"


def load_feature(
    path: str | Path, frame_shape: tuple[int, ...], *, pad: bool, what: str = ""
) -> np.ndarray:
    """One clip's float64 features `[10, *frame_shape]` from a zip, checked for shape and NaN/Inf.

    With `pad`, any length T >= 1 is brought to 10 by pad-last/trunc-10 (a long clip is kept to its
    first 10 steps, as the reference does); without it T must be 10. The member is bounded by the
    archive rules above (read_zip_array), not by its length.
    """
    array, member = read_zip_array(path)
    label = f" ({what})" if what else ""
    if array.ndim != 1 + len(frame_shape) or tuple(array.shape[1:]) != frame_shape or (
        not pad and array.shape[0] != T_SEGMENTS
    ) or array.shape[0] < 1:
        expected = _shape_text(["T>=1" if pad else T_SEGMENTS, *frame_shape])
        raise DataError(
            f"wrong feature shape{label}", file=path, key=member,
            expected=expected, actual=_shape_text(array.shape),
        )
    if pad:
        array = pad_last_trunc(array)  # before the cast: only the kept steps are converted
    out = np.asarray(array, dtype=np.float64)
    if not np.isfinite(out).all():
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise DataError(f"{bad} NaN/Inf values in features{label}", file=path, key=member)
    return out


def zip_paths(directory: str | Path, keys: Sequence[str]) -> tuple[str, ...]:
    """The feature zip of every key, `<dir>/<key>.zip`, in key order (what `zip_reader` reads)."""
    directory = Path(directory)
    return tuple(str(directory / f"{key}.zip") for key in keys)


def zip_reader(
    directory: str | Path, keys: Sequence[str], frame_shape: tuple[int, ...], *, pad: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """A `FeatureSet.read`: rows -> float64 `[len(rows), 10, *frame_shape]` from `<dir>/<key>.zip`."""
    directory = Path(directory)
    keys = list(keys)

    def read(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), T_SEGMENTS, *frame_shape), dtype=np.float64)
        for i, row in enumerate(rows):
            if row < 0 or row >= len(keys):
                raise IndexError(f"row {int(row)} outside 0..{len(keys) - 1}")
            key = keys[int(row)]
            out[i] = load_feature(directory / f"{key}.zip", frame_shape, pad=pad, what=key)
        return out

    return read


def check_zips_exist(directory: str | Path, keys: Sequence[str], *, listed_in: str | Path) -> None:
    """Fail early, naming the first missing `<dir>/<key>.zip` and the file that listed it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("missing feature directory", file=directory)
    present = {entry.name: entry for entry in os.scandir(directory)}
    for key in keys:
        entry = present.get(f"{key}.zip")
        if entry is None:
            raise DataError(
                f"missing feature zip for video id '{key}' listed in {listed_in}",
                file=directory / f"{key}.zip",
            )
        # A FIFO, device or directory in place of a zip is refused now, not when (or if) it is read.
        if not entry.is_file():
            check_regular_file(entry.path, what="feature zip", error=DataError)
        if entry.stat().st_size == 0:
            raise DataError("empty file (0 bytes); expected a feature zip", file=entry.path)


# ---------------------------------------------------------------------- the writer (corpora)

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp: byte-identical archives
ZIP_LEVEL = 1


def pkl_zip_bytes(key: str, array: np.ndarray) -> bytes:
    """A zip holding `<key>.pkl` = a pickled ndarray, with fixed metadata: what the readers above
    read, as the published feature extractors wrote it."""
    buffer = io.BytesIO()
    info = zipfile.ZipInfo(f"{key}.pkl", date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, pickle.dumps(np.ascontiguousarray(array), protocol=4),
                         compress_type=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL)
    return buffer.getvalue()
