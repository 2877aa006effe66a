"""The one way an HDF5 file is read, and the one way one is written.

Reading: `open_h5` opens only regular files (never a FIFO or a device), and `H5Input.dataset`
hands out a dataset only after checking what it *declares* against what the caller allows, before
a byte of data is read:

- the path inside the file uses hard (or in-file soft) links only: an external link would read
  another file, so it is refused;
- no virtual dataset and no external storage (data kept in other files, which could be a FIFO or
  a device), and only the standard filters (deflate, shuffle, fletcher32, szip, nbit,
  scale-offset, lzf): a file cannot make HDF5 look for a filter plug-in;
- numeric dtype, the expected rank and sizes, and at most `max_bytes` when read whole;
- the data is really stored: every chunk of a chunked dataset is written, a contiguous one holds
  all its declared bytes, and a compressed one read lazily (feature files, which may be large)
  expands at most MAX_COMPRESSION_RATIO times (deflate cannot exceed about 1032). A few-KB file
  declaring 3e8 rows of unwritten chunks is refused instead of being read as gigabytes of fill
  values.

Writing: `h5_image` builds a file in memory and returns its bytes, which the caller writes with
`cmg_base.files` (temporary file, fsync, rename). HDF5 then never writes to disk itself, so a
full disk or a file-size limit is an ordinary Python OSError, not a crash inside the C library.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from cmg_base.inputs import check_regular_file
from toc.errors import DataError

Shape = Sequence[int | str | None]  # None or a name ("W"): any size along that axis

# Deflate cannot expand data more than about 1032 times; only other filters on constant data
# (scale-offset, n-bit) could, and no real feature file is constant.
MAX_COMPRESSION_RATIO = 1100
# A dataset read whole (labels, orders, text features, class names) is at most this large.
MAX_WHOLE_READ_BYTES = 128 << 20
# HDF5's own filters; anything else would make the library search for a plug-in.
KNOWN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
_CHECKSUM_ONLY = {3}
_H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def shape_text(shape: Sequence[int | str | None]) -> str:
    return "[" + ",".join("N" if s is None else str(s) for s in shape) + "]"


class H5Input:
    """An open HDF5 input file; every dataset is checked by `dataset` before it is used."""

    def __init__(self, path: Path, handle: h5py.File):
        self.path = path
        self.handle = handle

    def keys(self) -> list[str]:
        return sorted(self.handle.keys())

    def dataset_names(self, limit: int = 10_000) -> list[str]:
        """Paths of the datasets reachable through hard links (at most `limit`)."""
        names: list[str] = []

        def visit(name: str, obj) -> int | None:
            if isinstance(obj, h5py.Dataset):
                names.append(name)
            return 1 if len(names) >= limit else None

        try:
            # visititems follows hard links only: external links are never opened here.
            self.handle.visititems(visit)
        except _H5_ERRORS as exc:
            raise DataError(f"unreadable HDF5 file ({_first_line(exc)})", file=self.path) from None
        return names

    def has(self, key: str) -> bool:
        try:
            return self._link(key) is not None
        except DataError:
            return True  # it exists, as something we refuse: `dataset` says what

    def _link(self, key: str):
        """Walk `key` link by link; refuse external links; None when a part is missing."""
        node = self.handle
        parts = [p for p in key.split("/") if p]
        for depth, part in enumerate(parts):
            where = "/".join(parts[: depth + 1])
            try:
                if not isinstance(node, h5py.Group) or part not in node:
                    return None
                link = node.get(part, getlink=True)
            except _H5_ERRORS as exc:
                raise DataError(f"unreadable h5 entry ({_first_line(exc)})", file=self.path, key=where) from None
            if isinstance(link, h5py.ExternalLink):
                raise DataError(
                    "h5 entry is an external link to another file; refusing to follow it",
                    file=self.path, key=where, expected="data stored in this file",
                    actual=f"a link to {link.filename}:{link.path}",
                )
            try:
                node = node[part]
            except _H5_ERRORS as exc:
                raise DataError(f"unreadable h5 entry ({_first_line(exc)})", file=self.path, key=where) from None
        return node

    def dataset(
        self, key: str, shape: Shape | None = None, *, kinds: str = "biuf", max_bytes: int | None = None,
        lazily: bool = False, what: str = "dataset",
    ) -> h5py.Dataset:
        """Dataset `key`, checked (see the module docstring) before any data is read.

        `shape`: the expected shape (None entries: any size; None: any shape). `max_bytes`: the
        most a whole read may hold. `lazily`: read in parts later, so the compression-ratio
        rule applies instead of a byte limit.
        """
        obj = self._link(key)
        if obj is None:
            raise DataError(
                "missing h5 dataset", file=self.path, key=key, expected=f"dataset '{key}'",
                actual=f"keys {self.keys()[:12]}",
            )
        if not isinstance(obj, h5py.Dataset):
            raise DataError(f"h5 entry is not a {what}", file=self.path, key=key, expected="a dataset", actual="a group")
        try:
            declared_shape = tuple(int(s) for s in obj.shape) if obj.shape is not None else None
            dtype = obj.dtype
            plist = obj.id.get_create_plist()
            virtual = obj.is_virtual
            externals = plist.get_external_count()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            stored = int(obj.id.get_storage_size())
            chunks = tuple(int(c) for c in obj.chunks) if obj.chunks else None
            written_chunks = int(obj.id.get_num_chunks()) if chunks and not virtual else None
        except _H5_ERRORS as exc:
            raise DataError(f"unreadable h5 dataset ({_first_line(exc)})", file=self.path, key=key) from None
        if virtual:
            raise DataError("virtual dataset (its data lies in other files); refusing to read it", file=self.path, key=key,
                            expected="data stored in this file")
        if externals:
            raise DataError("dataset with external storage (its data lies in other files); refusing to read it",
                            file=self.path, key=key, expected="data stored in this file")
        unknown = [f for f in filters if f not in KNOWN_FILTERS]
        if unknown:
            raise DataError(f"dataset uses HDF5 filter {unknown[0]}, which cmg-toc does not read", file=self.path, key=key,
                            expected=f"filters among {sorted(KNOWN_FILTERS.values())}")
        if declared_shape is None:
            raise DataError(f"empty h5 {what} (no dataspace)", file=self.path, key=key)
        if dtype.kind not in kinds:
            expected = {"f": "a float dtype", "iu": "an integer dtype"}.get(kinds) or (
                "numeric" if set(kinds) <= set("biuf") else "text"
            )
            raise DataError("wrong dtype", file=self.path, key=key, expected=expected, actual=str(dtype))
        if shape is not None:
            ok = len(declared_shape) == len(shape) and all(e is None or isinstance(e, str) or e == s for e, s in zip(shape, declared_shape, strict=True))
            if not ok:
                raise DataError("wrong shape", file=self.path, key=key, expected=shape_text(shape), actual=shape_text(declared_shape))
        declared = math.prod(declared_shape) * max(1, dtype.itemsize)
        if max_bytes is not None and declared > max_bytes:
            raise DataError(
                f"h5 {what} too large to read whole", file=self.path, key=key,
                expected=f"at most {max_bytes:,} bytes", actual=f"{shape_text(declared_shape)} {dtype} = {declared:,} bytes",
            )
        compressed = any(f not in _CHECKSUM_ONLY for f in filters)
        if declared and chunks and written_chunks is not None:
            expected_chunks = math.prod(-(-size // chunk) for size, chunk in zip(declared_shape, chunks, strict=True))
            if written_chunks < expected_chunks:
                raise DataError(
                    "h5 dataset is not (fully) written: some of its chunks hold no data",
                    file=self.path, key=key, expected=f"{expected_chunks:,} written chunks for {shape_text(declared_shape)}",
                    actual=f"{written_chunks:,} chunks",
                )
        if declared and dtype.kind in "biuf":
            if not compressed and not chunks and stored < declared:
                raise DataError(
                    "h5 dataset is not (fully) written: it declares more data than the file stores",
                    file=self.path, key=key, expected=f"{declared:,} stored bytes for {shape_text(declared_shape)} {dtype}",
                    actual=f"{stored:,} bytes",
                )
            if compressed and lazily and declared > stored * MAX_COMPRESSION_RATIO:
                raise DataError(
                    "h5 dataset declares far more data than the file stores (unwritten chunks or a decompression bomb)",
                    file=self.path, key=key,
                    expected=f"at most {MAX_COMPRESSION_RATIO}x its {stored:,} stored bytes",
                    actual=f"{shape_text(declared_shape)} {dtype} = {declared:,} bytes",
                )
        return obj

    def read(self, dataset: h5py.Dataset, key: str, selection=()) -> np.ndarray:
        """`dataset[selection]` as an array, read errors named."""
        try:
            return np.asarray(dataset[selection])
        except _H5_ERRORS as exc:
            raise DataError(f"unreadable h5 dataset ({_first_line(exc)})", file=self.path, key=key) from None


@contextlib.contextmanager
def open_h5(path: str | Path, *, what: str = "HDF5 file", missing: str | None = None) -> Iterator[H5Input]:
    """Open a regular file as HDF5 for reading (one-line DataError otherwise)."""
    path = Path(path)
    check_regular_file(path, what=what, error=DataError, missing=missing)
    try:
        handle = h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise DataError(f"unreadable h5 file ({_first_line(exc)})", file=path, expected="an HDF5 file") from None
    try:
        yield H5Input(path, handle)
    finally:
        with contextlib.suppress(*_H5_ERRORS):
            handle.close()


def h5_image(fill: Callable[[h5py.File], None], **options) -> memoryview:
    """The bytes of a new HDF5 file that `fill(handle)` writes, built in memory."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", **options) as handle:
        fill(handle)
    return buffer.getbuffer()
