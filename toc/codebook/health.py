"""Codebook health: usage, dead codes and perplexity per level, for any VQ model.

The one place that turns per-code counts into usage statistics is `usage_from_counts` (`toc
inspect`'s code usage uses it too). `codebook_health` is `toc health`: its input is either a
codes file — streamed (.h5 as `toc encode` writes it, or any integer array in .h5 / .npy) into
per-level counts with bounded memory — or a model file, whose stored per-code EMA counts are
read (a proxy for usage; codes measured on data are the real thing). Each level of the report
says where its counts came from (`source`), so measurements of other kinds (codes of a task's
feature sets, agreement between modalities) can be added as further sources of the same report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cmg_base.errors import literal
from toc.codebook.checkpoint import USAGE_COUNTS_FIELD, LoadedCodebooks, file_sha256, load_codebooks
from toc.errors import ConfigError, DataError, SettingsError
from toc.progress import Advance, ProgressFactory, no_progress

# A block read from disk holds at most this many codes (8 bytes each once widened to int64).
CHUNK_ELEMENTS = 1 << 20
# Counts take levels x codebook_size x 8 bytes; refuse sizes whose counts alone would exceed 1 GiB.
MAX_COUNT_CELLS = 1 << 27
CODE_FILE_SUFFIXES = (".h5", ".hdf5", ".npy")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".th", ".ckpt", ".bin", ".safetensors")
_LEVEL_GROUP = re.compile(r"level(\d+)")
# A code counts as active when its EMA assignment count exceeds this. The Laplace smoothing in
# the EMA leaves a never-chosen code near 1e-5, and a fresh (never updated) buffer is exactly 0.
ACTIVE_THRESHOLD = 1e-3

# Where a level's counts come from.
SOURCE_CODES = "codes"  # code indices counted in a file
SOURCE_EMA = "ema_count"  # the per-code EMA counts a model file stores



@dataclass(frozen=True)
class CodeUsage:
    """How a codebook of `codebook_size` codes was used by `tokens` assignments.

    A code is used when its count exceeds `active_threshold` (0 for counted codes: used at
    least once). perplexity = exp(H) with H the natural-log entropy of count / total (0 log 0 = 0):
    1 when one code takes everything, codebook_size when every code is used equally often;
    None when nothing was counted.
    """

    codebook_size: int
    tokens: float  # the total count (an integer for counted codes; EMA counts are fractional)
    used_codes: int
    dead_codes: int
    usage_fraction: float
    perplexity: float | None
    normalized_perplexity: float | None  # perplexity / codebook_size, in (0, 1]
    entropy_bits: float | None
    top_code_share: float | None  # the most used code's share of all assignments
    active_threshold: float = 0.0

    def as_dict(self) -> dict:
        return {
            "codebook_size": self.codebook_size,
            "tokens": None if not math.isfinite(self.tokens) else int(self.tokens) if float(self.tokens).is_integer() else self.tokens,
            "used_codes": self.used_codes,
            "dead_codes": self.dead_codes,
            "usage_fraction": self.usage_fraction,
            "perplexity": self.perplexity,
            "normalized_perplexity": self.normalized_perplexity,
            "entropy_bits": self.entropy_bits,
            "top_code_share": self.top_code_share,
            "active_threshold": self.active_threshold,
        }


def usage_from_counts(counts, active_threshold: float = 0.0) -> CodeUsage:
    """Usage, dead codes and perplexity from per-code counts [K] (integer or EMA, any array type).

    Negative counts are treated as 0 for the distribution; non-finite counts give perplexity None.
    """
    values = np.asarray(counts, dtype=np.float64).reshape(-1)
    size = int(values.size)
    used = int((values > active_threshold).sum())
    clipped = np.clip(values, 0.0, None)
    total = float(clipped.sum()) if np.isfinite(values).all() else math.nan
    perplexity = entropy = top = None
    if total > 0 and math.isfinite(total):
        p = clipped[clipped > 0] / total
        nats = float(-(p * np.log(p)).sum())
        perplexity = math.exp(nats)
        entropy = nats / math.log(2)
        top = float(p.max())
    return CodeUsage(
        codebook_size=size,
        tokens=total if math.isfinite(total) else float("nan"),
        used_codes=used,
        dead_codes=size - used,
        usage_fraction=used / size if size else 0.0,
        perplexity=perplexity,
        normalized_perplexity=perplexity / size if perplexity is not None and size else None,
        entropy_bits=entropy,
        top_code_share=top,
        active_threshold=float(active_threshold),
    )


@dataclass
class LevelHealth:
    """One level's usage and where its counts came from."""

    level: int
    name: str  # which part of the input: `level0/codes`, `axis -1 = 1`, a model file's codebook key
    source: str  # SOURCE_CODES or SOURCE_EMA
    usage: CodeUsage
    counts: np.ndarray = field(repr=False)  # [codebook_size]: int64 code counts, or float EMA counts

    def as_dict(self, include_counts: bool = False) -> dict:
        out = {"level": self.level, "name": self.name, "source": self.source, **self.usage.as_dict()}
        if include_counts:
            out["counts"] = [int(c) if self.source == SOURCE_CODES else float(c) for c in self.counts]
        return out


@dataclass
class HealthReport:
    """`toc health`: per-level usage of one input (a codes file or a model file).

    `input` describes what was read (for codes: layout, datasets, shape, dtype, level axis; for a
    model file: its family); `notes` are what a front end should tell the user (e.g. a guessed
    level axis, EMA counts being a proxy), as (message, settings) pairs: `messages(name_of)`
    spells the settings each message names (one `{}` each) the front end's way.
    """

    path: Path
    sha256: str
    kind: str  # "codes" or "checkpoint"
    input: dict[str, Any]
    codebook_size: int | None  # None when the levels of a model file differ in size
    levels: list[LevelHealth]
    notes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def messages(self, name_of: Callable[[str], str] = str) -> list[str]:
        return [message.format(*(name_of(s) for s in settings)) for message, settings in self.notes]

    def as_dict(self, include_counts: bool = False) -> dict:
        return {
            "input": {"path": str(self.path), "sha256": self.sha256, "kind": self.kind, **self.input},
            "codebook_size": self.codebook_size,
            "levels": [level.as_dict(include_counts) for level in self.levels],
        }


def input_kind(path: str | Path) -> str:
    """'codes' for a code file, 'checkpoint' for a model file (by suffix); else a DataError."""
    suffix = Path(path).suffix.lower()
    if suffix in CODE_FILE_SUFFIXES:
        return "codes"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise DataError(
        "unsupported input file type", file=path,
        expected=f"a codes file ({', '.join(CODE_FILE_SUFFIXES)}) or a model file ({', '.join(CHECKPOINT_SUFFIXES)})",
        actual=suffix or "no suffix",
    )


def _check_codebook_size(codebook_size: int, levels: int) -> None:
    if isinstance(codebook_size, bool) or not isinstance(codebook_size, (int, np.integer)) or codebook_size < 1:
        raise SettingsError(
            f"{{}} must be a positive integer, got {literal(repr(codebook_size))}", settings=("codebook_size",),
        )
    if int(codebook_size) * max(1, levels) > MAX_COUNT_CELLS:
        raise SettingsError(
            f"{{}} {codebook_size} x {levels} level(s) needs more than 1 GiB of counts "
            f"(expected levels x size <= {MAX_COUNT_CELLS})",
            settings=("codebook_size",),
        )


def _check_integer(dtype: np.dtype, path: Path, key: str | None) -> None:
    if np.dtype(dtype).kind not in "iu":
        raise DataError(
            "code indices must be integers", file=path, key=key,
            expected="an integer dtype", actual=np.dtype(dtype).name,
        )


def _blocks(shape: tuple[int, ...], chunk_elements: int):
    """Index tuples covering an array in C order, each block at most `chunk_elements` codes
    (or one row of the innermost axes when a single row is larger). Yields (index, split, start):
    the axes before `split` are fixed integers, axis `split` is the slice starting at `start`."""
    if not shape:
        yield (), None, 0
        return
    split, inner = 0, 1  # inner = the number of codes in one index of axis `split`
    for axis in range(len(shape) - 1, -1, -1):
        split = axis
        if axis == 0 or inner * shape[axis] > chunk_elements:
            break
        inner *= shape[axis]
    rows = max(1, chunk_elements // inner)
    for outer in np.ndindex(*shape[:split]):
        for start in range(0, shape[split], rows):
            stop = min(start + rows, shape[split])
            yield tuple(int(i) for i in outer) + (slice(start, stop),), split, start


def _out_of_range(block: np.ndarray, index: tuple, codebook_size: int, path: Path, key: str | None) -> None:
    bad = (block < 0) | (block >= codebook_size)
    position = np.unravel_index(int(np.argmax(bad)), block.shape)
    # Back to array coordinates: the fixed axes come first, then the block's own axes.
    where = [item for item in index if not isinstance(item, slice)]
    offsets = [item.start for item in index if isinstance(item, slice)]
    where += [int(p) + (offsets[0] if axis == 0 and offsets else 0) for axis, p in enumerate(position)]
    raise DataError(
        f"code out of range at index {tuple(where)}", file=path, key=key,
        expected=f"0 <= code < {codebook_size}", actual=int(block[position]),
    )


def count_codes(
    array, codebook_size: int, *, level_axis: int | None, path: Path, key: str | None,
    chunk_elements: int = CHUNK_ELEMENTS, progress: Advance | None = None,
) -> np.ndarray:
    """Per-level counts int64 [L, codebook_size] of an integer array (numpy, memmap or h5py
    dataset), read block by block; L = 1 when level_axis is None."""
    shape = tuple(int(s) for s in array.shape)
    n_levels = shape[level_axis] if level_axis is not None else 1
    counts = np.zeros((n_levels, codebook_size), dtype=np.int64)
    if 0 in shape:
        return counts
    for index, split, start in _blocks(shape, max(1, int(chunk_elements))):
        block = np.asarray(array[index])
        block = block.astype(np.int64, copy=False) if block.dtype != np.int64 else block
        if block.size and (int(block.min()) < 0 or int(block.max()) >= codebook_size):
            _out_of_range(block, index, codebook_size, path, key)
        if level_axis is None:
            counts[0] += np.bincount(block.reshape(-1), minlength=codebook_size)
        elif level_axis < split:
            counts[index[level_axis]] += np.bincount(block.reshape(-1), minlength=codebook_size)
        else:
            # The block's axes are (split, split+1, ...); its level axis holds levels `first..`.
            block_axis = level_axis - split
            first = start if level_axis == split else 0
            moved = np.moveaxis(block, block_axis, -1)
            width = moved.shape[-1]
            offsets = (np.arange(width, dtype=np.int64) + first) * codebook_size
            flat = (moved.reshape(-1, width) + offsets).reshape(-1)
            counts[first : first + width] += np.bincount(flat, minlength=(first + width) * codebook_size)[
                first * codebook_size :
            ].reshape(width, codebook_size)
        if progress is not None:
            progress(int(block.size))
    return counts


class NpyBlocks:
    """An .npy array read block by block with plain file reads (no pickles, no memory map).

    A memory map would leave every page it touched resident (RSS grows to the file size); the
    blocks `count_codes` asks for (fixed leading indices, then one slice) are contiguous in C
    order, so each is one seek and one read, and memory stays one block. Fortran-order files
    fall back to a read-only memory map.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self._handle = open(path, "rb")
        except OSError as exc:
            raise DataError(f"cannot open ({exc.strerror})", file=path) from exc
        try:
            version = np.lib.format.read_magic(self._handle)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version in reader:
                shape, fortran, dtype = reader[version](self._handle)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(self._handle, version)  # 3.0
        except Exception as exc:
            self._handle.close()
            raise DataError(f"not a plain numeric .npy array ({_first_line(exc)})", file=path) from exc
        if dtype.hasobject:
            self._handle.close()
            raise DataError("not a plain numeric .npy array (it holds Python objects)", file=path)
        self.shape, self.dtype, self._offset = tuple(int(n) for n in shape), dtype, self._handle.tell()
        needed = self._offset + int(np.prod(self.shape, dtype=np.int64)) * dtype.itemsize
        if path.stat().st_size < needed:
            self._handle.close()
            raise DataError("truncated .npy file", file=path, expected=f"{needed} bytes", actual=path.stat().st_size)
        self._fallback = np.load(path, mmap_mode="r", allow_pickle=False) if fortran else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __getitem__(self, index):
        if self._fallback is not None:
            return np.array(self._fallback[index])
        index = index if isinstance(index, tuple) else (index,)
        fixed = [i for i in index if not isinstance(i, slice)]
        cut = index[len(fixed)] if len(fixed) < len(index) else None
        if len(fixed) + (cut is not None) != len(index) or (cut is not None and cut.step not in (None, 1)):
            raise ValueError("NpyBlocks reads leading integers followed by at most one slice")
        depth = len(fixed)
        inner_shape = self.shape[depth + 1 :] if cut is not None else self.shape[depth:]
        start, stop = (cut.indices(self.shape[depth])[:2] if cut is not None else (0, 1))
        rows = max(0, stop - start)
        first = list(fixed) + ([start] if cut is not None else []) + [0] * (len(self.shape) - depth - (cut is not None))
        flat = int(np.ravel_multi_index(first, self.shape)) if self.shape and rows else 0
        count = rows * int(np.prod(inner_shape, dtype=np.int64))
        self._handle.seek(self._offset + flat * self.dtype.itemsize)
        block = np.fromfile(self._handle, dtype=self.dtype, count=count)
        return block.reshape(((rows,) if cut is not None else ()) + tuple(inner_shape))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _resolve_axis(level_axis, shape: tuple[int, ...], path: Path) -> tuple[int | None, bool]:
    """'auto' → the last axis for arrays of rank >= 2 ([N, ..., L]), None for 1-D arrays."""
    if level_axis == "auto":
        return (len(shape) - 1, True) if len(shape) >= 2 else (None, True)
    if level_axis is None or level_axis == "none":
        return None, False
    try:
        axis = int(level_axis)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"{{}} must be an integer, 'none' or 'auto', got {literal(repr(level_axis))}", settings=("level_axis",),
        ) from exc
    if not -len(shape) <= axis < len(shape):
        raise SettingsError(
            f"{literal(path)}: {{}} {axis} does not exist in an array of shape {list(shape)}"
            f" (expected -{len(shape)} <= axis < {len(shape)})",
            settings=("level_axis",),
        )
    return axis % len(shape), False


def _level_groups(handle: h5py.File) -> list[tuple[int, str]]:
    found = []
    for name, item in handle.items():
        match = _LEVEL_GROUP.fullmatch(name)
        if match and isinstance(item, h5py.Group) and isinstance(item.get("codes"), h5py.Dataset):
            found.append((int(match.group(1)), f"{name}/codes"))
    return sorted(found)


def _integer_datasets(handle: h5py.File) -> list[str]:
    names: list[str] = []
    handle.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iu" else None
    )
    return names


def codebook_health(
    path: str | Path,
    *,
    codebook_size: int | None = None,
    key: str | None = None,
    level_axis: int | str | None = "auto",
    trust_checkpoint: bool = False,
    codebook_key: Sequence[str] = (),
    chunk_elements: int = CHUNK_ELEMENTS,
    progress: ProgressFactory = no_progress,
) -> HealthReport:
    """`toc health`: usage per level of a codes file (`code_health`) or of a model file
    (`checkpoint_health`), told apart by the file's suffix (`input_kind`)."""
    if input_kind(path) == "checkpoint":
        for name, value in (("key", key), ("level_axis", None if level_axis == "auto" else level_axis)):
            if value is not None:
                raise SettingsError("{} applies to codes files (.h5 / .npy), not to a model file", settings=(name,))
        return checkpoint_health(
            path, codebook_size=codebook_size, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key,
        )
    if codebook_key:
        raise SettingsError("{} applies to model files, not to a codes file", settings=("codebook_key",))
    if codebook_size is None:
        raise SettingsError(
            "a codes file needs {} K (the codes per level; every code must lie in [0, K))",
            settings=("codebook_size",),
        )
    return code_health(
        path, codebook_size, key=key, level_axis=level_axis, chunk_elements=chunk_elements, progress=progress,
    )


def checkpoint_health(
    path: str | Path,
    *,
    codebook_size: int | None = None,
    trust_checkpoint: bool = False,
    codebook_key: Sequence[str] = (),
) -> HealthReport:
    """Usage per level from the per-code EMA counts a model file stores (a CMG checkpoint, or
    another VQ model's whose layout keeps counts): the counts decay and are smoothed, so they are
    a proxy for how codes are used; the same statistics as for codes, active above
    ACTIVE_THRESHOLD. The report is the counts: unusable ones (NaN, negative) refuse it."""
    loaded = load_codebooks(
        path, trust_checkpoint=trust_checkpoint, codebook_key=tuple(codebook_key), reads=(USAGE_COUNTS_FIELD,),
    )
    if loaded.ema_counts is None:
        raise DataError(
            "this model file stores no per-code usage counts; measure the codes it produces instead "
            "(a codes file with {} K)",
            file=loaded.path, settings=("codebook_size",),
        )
    sizes = {int(codebook.shape[0]) for codebook in loaded.codebooks}
    if codebook_size is not None and sizes != {codebook_size}:
        raise SettingsError(
            f"{{}} {codebook_size} disagrees with the codebook(s) of {literal(loaded.path)} "
            f"({', '.join(str(n) for n in sorted(sizes))} codes)",
            settings=("codebook_size",),
        )
    levels = []
    for level, counts in enumerate(loaded.ema_counts):
        values = counts.detach().double().flatten().numpy()
        levels.append(LevelHealth(
            level, _level_name(loaded, level), SOURCE_EMA,
            usage_from_counts(values, active_threshold=ACTIVE_THRESHOLD), values,
        ))
    return HealthReport(
        path=loaded.path, sha256=loaded.sha256, kind="checkpoint", input={"family": loaded.family},
        codebook_size=next(iter(sizes)) if len(sizes) == 1 else None, levels=levels,
        notes=[(
            "usage from the stored EMA counts (a proxy: they decay and are smoothed; a code is "
            f"used when its count exceeds {ACTIVE_THRESHOLD:g}); codes measured on data are exact", (),
        )],
    )


def _level_name(loaded: LoadedCodebooks, level: int) -> str:
    if loaded.foreign:
        return loaded.foreign[level].name
    return f"level {level}"


def code_health(
    path: str | Path,
    codebook_size: int,
    *,
    key: str | None = None,
    level_axis: int | str | None = "auto",
    chunk_elements: int = CHUNK_ELEMENTS,
    progress: ProgressFactory = no_progress,
) -> HealthReport:
    """Usage, dead codes and perplexity per level of the codes in an .h5 or .npy file.

    Layouts: an .h5 with `level{L}/codes` datasets (what `toc encode` writes; each dataset is one
    level, any shape); or one integer array — an .npy, an .h5's only integer dataset, or the
    dataset `key` — with levels on `level_axis` (default: the last axis, i.e. [N, ..., L];
    None / 'none': the whole array is one level). Every code must lie in [0, codebook_size).
    """
    path = Path(path)
    if input_kind(path) != "codes":
        raise ConfigError(
            f"{path}: a model file, not a codes file: code_health reads code indices (.h5 / .npy); "
            "checkpoint_health reads the usage counts a model file stores"
        )
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", file=path)
    job = _Job(codebook_size, level_axis, chunk_elements, progress)
    if path.suffix.lower() == ".npy":
        if key is not None:
            raise SettingsError("{} applies to .h5 inputs only", settings=("key",))
        with NpyBlocks(path) as array:
            return _array_health(path, array, "", job)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"not a readable HDF5 file ({str(exc).splitlines()[0][:200]})", file=path) from exc
    with handle:
        if key is not None:
            item = handle.get(key)
            if not isinstance(item, h5py.Dataset):
                raise DataError(
                    "no such dataset", file=path, key=key,
                    expected=f"one of {_integer_datasets(handle)[:8]}", actual="missing" if item is None else "a group",
                )
            return _array_health(path, item, key, job)
        groups = _level_groups(handle)
        if groups:
            if level_axis not in ("auto", None, "none"):
                raise SettingsError(
                    f"{literal(path)}: {{}} applies to one array; this file has one dataset per level "
                    f"({literal(groups[0][1])}, ...)",
                    settings=("level_axis",),
                )
            return _level_groups_health(path, handle, groups, job)
        datasets = _integer_datasets(handle)
        if len(datasets) != 1:
            raise DataError(
                "cannot tell which dataset holds the codes; name it with {}" if datasets
                else "no integer dataset (codes) found",
                file=path, expected="level{L}/codes datasets or one integer dataset",
                actual=f"{len(datasets)} integer datasets {datasets[:8]}",
                settings=("key",) if datasets else (),
            )
        return _array_health(path, handle[datasets[0]], datasets[0], job)


@dataclass(frozen=True)
class _Job:
    """What every code-counting pass is asked for."""

    codebook_size: int
    level_axis: int | str | None
    chunk_elements: int
    progress: ProgressFactory

    def count(self, array, total: int, **options) -> np.ndarray:
        with self.progress("health", total) as advance:
            return count_codes(
                array, int(self.codebook_size), chunk_elements=self.chunk_elements, progress=advance, **options,
            )


def _array_health(path: Path, array, key: str, job: _Job) -> HealthReport:
    _check_integer(array.dtype, path, key or None)
    shape = tuple(int(s) for s in array.shape)
    axis, guessed = _resolve_axis(job.level_axis, shape, path)
    n_levels = shape[axis] if axis is not None else 1
    _check_codebook_size(job.codebook_size, n_levels)
    counts = job.count(array, int(np.prod(shape, dtype=np.int64)), level_axis=axis, path=path, key=key or None)
    names = [f"axis {axis - len(shape)} = {i}" for i in range(n_levels)] if axis is not None else [key or "codes"]
    levels = [LevelHealth(i, names[i], SOURCE_CODES, usage_from_counts(counts[i]), counts[i]) for i in range(n_levels)]
    notes = []
    if guessed and axis is not None:
        notes.append((
            f"levels read from the last axis of {list(shape)} ({shape[-1]} levels); "
            "pass {} none if the array is one level", ("level_axis",),
        ))
    return HealthReport(
        path=path, sha256=file_sha256(path), kind="codes",
        input={
            "layout": "array", "datasets": [key] if key else [], "shape": list(shape),
            "dtype": np.dtype(array.dtype).name, "level_axis": axis - len(shape) if axis is not None else None,
        },
        codebook_size=int(job.codebook_size), levels=levels, notes=notes,
    )


def _level_groups_health(path: Path, handle: h5py.File, groups: list[tuple[int, str]], job: _Job) -> HealthReport:
    numbers = [number for number, _ in groups]
    if numbers != list(range(len(numbers))):
        raise DataError("level groups are not numbered 0, 1, ...", file=path, expected=list(range(len(numbers))), actual=numbers)
    declared = handle.attrs.get("levels")
    if declared is not None and int(declared) != len(groups):
        raise DataError("the file's 'levels' attribute disagrees with its level groups", file=path, key="levels", expected=len(groups), actual=int(declared))
    for _, name in groups:
        _check_integer(handle[name].dtype, path, name)
    _check_codebook_size(job.codebook_size, len(groups))
    total = sum(int(np.prod(handle[name].shape, dtype=np.int64)) for _, name in groups)
    levels = []
    with job.progress("health", total) as advance:
        for number, name in groups:
            counts = count_codes(
                handle[name], int(job.codebook_size), level_axis=None, path=path, key=name,
                chunk_elements=job.chunk_elements, progress=advance,
            )[0]
            levels.append(LevelHealth(number, name, SOURCE_CODES, usage_from_counts(counts), counts))
    first = handle[groups[0][1]]
    return HealthReport(
        path=path, sha256=file_sha256(path), kind="codes",
        input={
            "layout": "toc-encode", "datasets": [name for _, name in groups],
            "shape": [int(s) for s in first.shape], "dtype": np.dtype(first.dtype).name, "level_axis": None,
        },
        codebook_size=int(job.codebook_size), levels=levels,
    )
