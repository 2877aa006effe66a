"""Builders of hostile inputs: small files that declare huge data, point outside themselves, or
lie about what they hold. Shared by tests/test_hostile_*.py and benchmarks/fuzz.py."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch


def h5_unwritten(path: Path, key: str, shape: tuple[int, ...], dtype="int64", chunks: tuple[int, ...] | None = None,
                 compression: str | None = None) -> Path:
    """A chunked dataset that declares `shape` but has no chunk written (a few KB on disk)."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, shape=shape, dtype=dtype, chunks=chunks or (min(shape[0], 1024), *shape[1:]),
                              compression=compression)
    return path


def h5_external(path: Path, key: str, shape: tuple[int, ...], target: Path, dtype="float64") -> Path:
    """A dataset whose data lives in `target` (external storage), e.g. a FIFO or /dev/zero."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, shape=shape, dtype=dtype, external=[(str(target), 0, nbytes)])
    return path


def h5_external_link(path: Path, key: str, target: Path, target_key: str = "/d") -> Path:
    with h5py.File(path, "w") as handle:
        handle[key] = h5py.ExternalLink(str(target), target_key)
    return path


def h5_virtual(path: Path, key: str, shape: tuple[int, ...], source: Path, source_key: str = "d") -> Path:
    layout = h5py.VirtualLayout(shape=shape, dtype="float64")
    layout[...] = h5py.VirtualSource(str(source), source_key, shape=shape)
    with h5py.File(path, "w") as handle:
        handle.create_virtual_dataset(key, layout)
    return path


def h5_scalar(path: Path, key: str, value=1.0) -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, data=np.float64(value))
    return path


def zip_bomb(path: Path, member: str, inflated_bytes: int, *, declared_bytes: int | None = None) -> Path:
    """A deflated member of `inflated_bytes` zeros (about 1/1000 of that on disk)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(member, "w", force_zip64=inflated_bytes > 2**31) as handle:
            block = bytes(1 << 20)
            left = inflated_bytes
            while left > 0:
                handle.write(block[: min(left, len(block))])
                left -= len(block)
    return path


def zip_many_pickles(path: Path, arrays: list[np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, array in enumerate(arrays):
            archive.writestr(f"member{i}.pkl", pickle.dumps(array, protocol=4))
    return path


def pickle_list_bomb(path: Path, count: int = 2_000_000) -> Path:
    """A zip whose pickle builds a list of `count` references (memo GETs), then fails the type check."""
    body = bytearray(b"\x80\x04]\x94(K\x01")  # protocol 4, empty list, memoize, mark, int 1
    body += b"h\x00" * count  # BINGET 0 (the list itself)... references
    body += b"e."  # APPENDS, STOP
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clip.pkl", bytes(body))
    return path


def torch_with_deflated_records(path: Path, state: dict) -> Path:
    """torch.save(state), then every record re-written deflated (torch's reader inflates them)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return path


def flip_record_byte(source: Path, target: Path, *, record_contains: str = "/data/", offset: int = 100) -> Path:
    """A copy of a torch checkpoint with one byte flipped inside a tensor record."""
    with zipfile.ZipFile(source) as archive:
        info = next(i for i in archive.infolist() if record_contains in i.filename and i.file_size > offset)
        with open(source, "rb") as handle:
            handle.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    data = bytearray(source.read_bytes())
    data[start + offset] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def npy_lying_header(path: Path, shape: tuple[int, ...], dtype="<f8", payload: bytes = b"\0" * 64) -> Path:
    """An .npy whose header declares `shape` but whose data is `payload`."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    head = b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + text + b" " * pad + b"\n"
    path.write_bytes(head + payload)
    return path


def deep_json(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


def deep_toml(levels: int = 50_000) -> str:
    return "a = " + "[" * levels + "]" * levels + "\n"


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def result_line(**overrides) -> str:
    line = {"task": "ave", "direction": "v2a", "variant": "dcid", "head": "prototype", "protocol": "strict",
            "seed": 0, "metrics": {"accuracy": 50.0}}
    line.update(overrides)
    return json.dumps(line)
