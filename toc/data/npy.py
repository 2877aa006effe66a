""".npy arrays: numeric only, no pickles, and a header that agrees with the file before any data
is read (a 100-byte file declaring a 10^12-element array is refused, not allocated)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cmg_base.errors import CmgError
from cmg_base.inputs import open_regular_file


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def load_npy(path: str | Path, *, what: str = ".npy array", error: type[CmgError] = CmgError,
             mmap: bool = False, missing: str | None = None, kinds: str = "biuf") -> np.ndarray:
    """A numeric array from a regular .npy file (memory-mapped with `mmap`), header checked first;
    its dtype kind must be one of `kinds` ("f": floats only, as features must be)."""
    path = Path(path)
    with open_regular_file(path, what=what, error=error, missing=missing) as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
        except Exception as exc:
            raise error(f"not a plain numeric .npy array ({_first_line(exc)})", file=path) from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise error("not a plain numeric .npy array", file=path, expected="a numeric dtype", actual=str(dtype))
    if dtype.kind not in kinds:
        raise error(f"wrong dtype for a {what}", file=path, expected="a float dtype" if kinds == "f" else f"dtype kind in {kinds!r}",
                    actual=str(dtype))
    declared = math.prod(shape) * dtype.itemsize
    if declared != size - offset:
        raise error(
            "truncated or corrupt .npy file: its header does not match its size", file=path,
            expected=f"{declared:,} data bytes for shape {list(shape)} {dtype}", actual=f"{size - offset:,} bytes",
        )
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:
        raise error(f"unreadable .npy file ({_first_line(exc)})", file=path) from None
