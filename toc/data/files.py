"""Checked readers for the small files every loader shares: h5 datasets, class lists, CSV tables."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmg_base.inputs import expand_path, read_input_text
from toc.data.hdf5 import MAX_WHOLE_READ_BYTES, open_h5
from toc.data.hdf5 import shape_text as shape_text  # loaders import it from here
from toc.errors import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    try:
        import tomli as tomllib
    except ImportError:  # config files are optional, so is their parser on 3.10
        tomllib = None

Shape = Sequence[int | None]  # None: any size along that axis


MAX_CONFIG_BYTES = 4 << 20  # TOML data configs and comparison plans: a few KB in practice
MAX_TABLE_BYTES = 256 << 20  # CSV tables and class lists (the 40k-clip CSV is about 2 MB)


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file (data configs, comparison plans) with one-line errors naming it."""
    path = expand_path(path, what=what, error=ConfigError)
    if tomllib is None:
        raise ConfigError(f"{path}: reading TOML on Python 3.10 needs the 'tomli' package")
    text = read_input_text(path, what=what, error=ConfigError, max_bytes=MAX_CONFIG_BYTES,
                           allow_empty=True, missing=f"{what} not found")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({_first_line(exc)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{path}: invalid TOML ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def h5_dataset_shape(path: str | Path, key: str, expected: Shape, *, numeric: str = "biuf"
                     ) -> tuple[int, ...]:
    """Shape of dataset `key` in `path`, checked against `expected` and a numeric dtype; the
    data is checked to be stored in the file (see toc.data.hdf5) but not read."""
    path = Path(path)
    with open_h5(path, what="HDF5 file", missing="missing file") as h5:
        dataset = h5.dataset(key, expected, kinds=numeric, lazily=True)
        shape = tuple(int(s) for s in dataset.shape)
    if shape and shape[0] == 0:
        raise DataError("empty dataset", file=path, key=key, expected="N >= 1", actual="N = 0")
    return shape


def read_h5(path: str | Path, key: str, expected: Shape, *, numeric: str = "biuf",
            max_bytes: int = MAX_WHOLE_READ_BYTES) -> np.ndarray:
    """The whole dataset `key` (small files: labels, orders), shape- and size-checked before it
    is read; floats must be finite."""
    path = Path(path)
    with open_h5(path, what="HDF5 file", missing="missing file") as h5:
        dataset = h5.dataset(key, expected, kinds=numeric, max_bytes=max_bytes)
        if dataset.shape and dataset.shape[0] == 0:
            raise DataError("empty dataset", file=path, key=key, expected="N >= 1", actual="N = 0")
        data = h5.read(dataset, key)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise DataError("NaN/Inf values", file=path, key=key)
    return data


def read_order(path: str | Path, n_rows: int, key: str = "order") -> np.ndarray:
    """A 1-D order file of global row indices: integers, in range, no duplicates."""
    shape = h5_dataset_shape(path, key, (None,), numeric="iu")
    if shape[0] > n_rows:
        # Distinct indices in 0..n_rows-1 cannot be more than n_rows: refuse before reading.
        raise DataError(
            "order lists more rows than the features have", file=path, key=key,
            expected=f"at most {n_rows} distinct rows", actual=f"{shape[0]} rows",
        )
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
    """A `FeatureSet.read`: set positions -> float64 rows of `key` (a float dataset), checked for NaN/Inf.

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
        with open_h5(path, what="HDF5 file", missing="missing file") as h5:
            dataset = h5.dataset(key, kinds="f", lazily=True)
            parts = [h5.read(dataset, key, np.s_[int(run[0]) : int(run[-1]) + 1]) for run in runs]
            block = np.concatenate(parts) if parts else np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
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
    text = read_input_text(path, what="class list", error=DataError, max_bytes=MAX_TABLE_BYTES,
                           missing="missing file")
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
    text = read_input_text(path, what="table", error=DataError, max_bytes=MAX_TABLE_BYTES, missing="missing file")
    try:
        with io.StringIO(text, newline="") as handle:
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
