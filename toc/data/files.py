"""Checked readers for the small files every loader shares: h5 datasets, class lists, CSV tables."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from toc.errors import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    try:
        import tomli as tomllib
    except ImportError:  # config files are optional, so is their parser on 3.10
        tomllib = None

Shape = Sequence[int | None]  # None: any size along that axis


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file (data configs, comparison plans) with one-line errors naming it."""
    path = Path(path)
    if tomllib is None:
        raise ConfigError(f"{path}: reading TOML on Python 3.10 needs the 'tomli' package")
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def shape_text(shape: Sequence[int | str | None]) -> str:
    return "[" + ",".join("N" if s is None else str(s) for s in shape) + "]"


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError("missing file", file=path)
    if path.stat().st_size == 0:
        raise DataError("empty file", file=path)


def h5_dataset_shape(path: str | Path, key: str, expected: Shape, *, numeric: str = "biuf"
                     ) -> tuple[int, ...]:
    """Shape of dataset `key` in `path`, checked against `expected` and a numeric dtype."""
    path = Path(path)
    _require_file(path)
    try:
        with h5py.File(path, "r") as handle:
            if key not in handle:
                raise DataError(
                    "missing h5 dataset", file=path, key=key,
                    expected=f"dataset '{key}'", actual=f"keys {sorted(handle.keys())}",
                )
            dataset = handle[key]
            if not isinstance(dataset, h5py.Dataset):
                raise DataError("h5 entry is not a dataset", file=path, key=key)
            shape, kind = tuple(dataset.shape), dataset.dtype.kind
    except DataError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise DataError(f"unreadable h5 file ({exc})", file=path) from None
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape, strict=True))
    if not ok:
        raise DataError(
            "wrong shape", file=path, key=key, expected=shape_text(expected),
            actual=shape_text(shape),
        )
    if kind not in numeric:
        raise DataError(
            "wrong dtype", file=path, key=key, expected="numeric", actual=str(kind),
        )
    if shape and shape[0] == 0:
        raise DataError("empty dataset", file=path, key=key, expected="N >= 1", actual="N = 0")
    return shape


def read_h5(path: str | Path, key: str, expected: Shape, *, numeric: str = "biuf") -> np.ndarray:
    """The whole dataset `key` (small files: labels, orders), shape-checked; floats must be finite."""
    h5_dataset_shape(path, key, expected, numeric=numeric)
    try:
        with h5py.File(path, "r") as handle:
            data = np.asarray(handle[key][()])
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise DataError(f"unreadable h5 dataset ({exc})", file=path, key=key) from None
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise DataError("NaN/Inf values", file=path, key=key)
    return data


def read_order(path: str | Path, n_rows: int, key: str = "order") -> np.ndarray:
    """A 1-D order file of global row indices: integers, in range, no duplicates."""
    order = read_h5(path, key, (None,), numeric="iu").astype(np.int64)
    if order.min() < 0 or order.max() >= n_rows:
        raise DataError(
            "row index out of range", file=path, key=key,
            expected=f"0..{n_rows - 1}", actual=f"{int(order.min())}..{int(order.max())}",
        )
    values, counts = np.unique(order, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"duplicate row {int(values[counts > 1][0])}", file=path, key=key)
    return order


def h5_rows_reader(
    path: str | Path, key: str, global_rows: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """A `FeatureSet.read`: set positions -> float64 rows of `key`, checked for NaN/Inf.

    h5py fancy indexing needs strictly increasing indices, so the wanted rows are read sorted and
    de-duplicated, then put back in the requested order.
    """
    path = Path(path)
    global_rows = np.asarray(global_rows, dtype=np.int64)

    def read(positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        wanted = global_rows[positions]
        unique, inverse = np.unique(wanted, return_inverse=True)
        # Contiguous runs are read as slices: h5py's point selection is slow for many rows.
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        runs = np.split(unique, breaks) if len(unique) else []
        try:
            with h5py.File(path, "r") as handle:
                dataset = handle[key]
                parts = [dataset[int(run[0]) : int(run[-1]) + 1] for run in runs]
                block = np.concatenate(parts) if parts else np.empty(
                    (0, *dataset.shape[1:]), dtype=dataset.dtype
                )
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise DataError(f"unreadable h5 dataset ({exc})", file=path, key=key) from None
        out = np.asarray(block, dtype=np.float64)[inverse.reshape(-1)]
        finite = np.isfinite(out).reshape(len(out), -1).all(axis=1) if len(out) else np.ones(0, bool)
        if not finite.all():
            row = int(wanted[np.flatnonzero(~finite)[0]])
            raise DataError(f"NaN/Inf values in row {row}", file=path, key=key)
        return out

    return read


def read_class_list(path: str | Path) -> list[str]:
    """One class name per line (blank lines and surrounding spaces dropped); names unique."""
    path = Path(path)
    _require_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable class list ({exc})", file=path) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError("class list has no names", file=path)
    seen: set[str] = set()
    for line_no, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"duplicate class name '{name}' (name {line_no})", file=path)
        seen.add(name)
    return names


@dataclass(frozen=True)
class CsvRow:
    line: int  # 1-based line number in the file, header = line 1
    values: dict[str, str]


def read_table(path: str | Path, columns: Sequence[str], *, delimiter: str) -> list[CsvRow]:
    """Rows of a delimited file with a header; every value is a str (quirk Q6: never parsed)."""
    path = Path(path)
    _require_file(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise DataError("empty file", file=path)
            header = [h.strip() for h in header]
            for column in columns:
                if column not in header:
                    sep = "TAB" if delimiter == "\t" else repr(delimiter)
                    raise DataError(
                        f"missing column (delimiter {sep})", file=path, key=column,
                        expected=f"header with {list(columns)}", actual=header,
                    )
            rows: list[CsvRow] = []
            for record in reader:
                line = reader.line_num
                if not record or all(not v.strip() for v in record):
                    continue
                if len(record) != len(header):
                    raise DataError(
                        f"row {line}: wrong number of fields", file=path,
                        expected=len(header), actual=len(record),
                    )
                rows.append(CsvRow(line, {h: v.strip() for h, v in zip(header, record, strict=True)}))
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"unreadable table ({exc})", file=path) from None
    if not rows:
        raise DataError("table has a header but no rows", file=path)
    return rows


def check_unique(values: Sequence[str], rows: Sequence[CsvRow], *, file: Path, key: str) -> None:
    """Duplicate ids are an error naming both lines."""
    first: dict[str, int] = {}
    for value, row in zip(values, rows, strict=True):
        if value in first:
            raise DataError(
                f"row {row.line}: duplicate id '{value}' (first on row {first[value]})",
                file=file, key=key,
            )
        first[value] = row.line
