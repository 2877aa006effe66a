"""Encode-once cache: code indices per level for each (checkpoint, task, set, modality, dtype,
input-file fingerprint)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from cmg_base.files import StagedFiles, atomic_path, check_space
from hdcid.vocabulary import DEFAULT_DEVICE, DTYPES, torch_dtype
from toc.codebook.checkpoint import EPOCH_FIELD, Checkpoint
from toc.codebook.encode import EncodingSession
from toc.data.base import FeatureSet
from toc.data.hdf5 import MAX_WHOLE_READ_BYTES, h5_image, open_h5
from toc.errors import ConfigError, DataError, SettingsError, TocError
from toc.progress import Advance, ProgressFactory, no_progress
from toc.vocabulary import ENCODE_BATCH_SIZE, FINGERPRINTS

CACHE_FORMAT = 2  # 2: the key holds a fingerprint of the input files
_HASH_CHUNK = 1 << 20


class CodeSource(Protocol):
    """Whatever turns features into codes: a frozen checkpoint encoder, or a test double."""

    sha256: str
    levels: int
    epoch: int | None
    family: str | None  # the model family (hdcid.vocabulary), None when not known

    def codebooks(self, dtype: str) -> list[np.ndarray]:
        """Codebook rows per level as the encoder of `dtype` emits them, in float64 [K, D]."""

    def encode(
        self, feature_set: FeatureSet, dtype: str, *, dropout_seed: int | None, batch_size: int,
        progress: Advance | None,
    ) -> list[np.ndarray]:
        """Codes per level, int64 [N, T], for every row of `feature_set`."""


class CheckpointCodeSource:
    """A loaded checkpoint's encoder; one encoder build per (dtype, dropout on/off)."""

    def __init__(self, checkpoint: Checkpoint, *, device: str = DEFAULT_DEVICE):
        self.checkpoint = checkpoint
        self.sha256: str = checkpoint.sha256
        self.levels: int = checkpoint.levels
        self.family: str | None = checkpoint.family
        self.device = device
        self._sessions: dict[tuple[str, bool], EncodingSession] = {}

    @property
    def epoch(self) -> int | None:
        """The epoch the checkpoint stores (None: none); one that is no count refuses the caller
        that reads it (the reference protocol's epoch rule) and nobody else."""
        if EPOCH_FIELD in self.checkpoint.unavailable:
            raise self.checkpoint.unavailable[EPOCH_FIELD]
        return self.checkpoint.epoch

    def _session(self, dtype: str, train_mode: bool) -> EncodingSession:
        key = (dtype, train_mode)
        if key not in self._sessions:
            self._sessions[key] = EncodingSession(
                self.checkpoint, dtype=torch_dtype(dtype), device=self.device, train_mode=train_mode
            )
        return self._sessions[key]

    def codebooks(self, dtype: str) -> list[np.ndarray]:
        return [np.asarray(cb, dtype=np.float64) for cb in self._session(dtype, False).codebooks()]

    def encode(self, feature_set, dtype, *, dropout_seed, batch_size, progress):
        session = self._session(dtype, dropout_seed is not None)
        # The dropout masks come from torch's global generator; fork it so a seeded encoding is
        # reproducible and leaves the caller's random state untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if dropout_seed is None else dropout_seed)
            return session.encode_rows(
                feature_set.modality, feature_set.read, len(feature_set),
                batch_size=batch_size, progress=progress, source=feature_set.source or feature_set.name,
            )


@dataclass(frozen=True)
class CacheKey:
    """What determines a set's codes. `dropout_seed` is set only for the reference quirk Q2."""

    checkpoint_sha256: str
    task: str
    set_name: str
    modality: str
    dtype: str
    dropout_seed: int | None = None
    inputs: str = ""  # fingerprint of the set's input files (`input_fingerprint`)

    def as_dict(self) -> dict:
        return {
            "format": CACHE_FORMAT, "checkpoint_sha256": self.checkpoint_sha256, "task": self.task,
            "set_name": self.set_name, "modality": self.modality, "dtype": self.dtype,
            "dropout_seed": -1 if self.dropout_seed is None else self.dropout_seed,
            "inputs": self.inputs,
        }

    def filename(self) -> str:
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()
        safe_set = "".join(ch if ch.isalnum() else "-" for ch in self.set_name)[:40]
        return f"{self.task}_{safe_set}_{self.dtype}_{digest[:24]}.h5"


class InputFingerprint:
    """What the cache key knows of a set's input files, so that a rebuilt corpus is re-encoded.

    Ids alone do not tell two corpora apart (AVE's ids are row numbers). "stat" (the default)
    fingerprints every file by resolved path, size and modification time in nanoseconds: a
    rebuilt or edited file gets a new mtime. "sha256" hashes the content too, for files whose
    mtime can be restored (copies with preserved times, some sync tools); it reads every byte
    once per file and process (remembered by path, size and mtime).
    """

    def __init__(self, mode: str = "stat"):
        if mode not in FINGERPRINTS:
            raise SettingsError(
                f"{{}} must be one of {', '.join(FINGERPRINTS)}, not {mode!r}",
                settings=("cache_fingerprint",),
            )
        self.mode = mode
        self._hashes: dict[tuple[str, int, int], str] = {}

    def __call__(self, feature_set: FeatureSet) -> str:
        """Digest of every input file of the set (in order); "" for a set without files."""
        if not feature_set.source_files:
            return ""
        digest = hashlib.sha256(self.mode.encode())
        for name in feature_set.source_files:
            path = Path(name).resolve()
            try:
                info = path.stat()
            except OSError as exc:
                raise DataError(f"cannot read an input file ({exc.strerror})", file=path) from None
            line = f"{path}\t{info.st_size}\t{info.st_mtime_ns}"
            if self.mode == "sha256":
                line += "\t" + self._content(path, info.st_size, info.st_mtime_ns)
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
        return digest.hexdigest()

    def _content(self, path: Path, size: int, mtime_ns: int) -> str:
        key = (str(path), size, mtime_ns)
        if key not in self._hashes:
            content = hashlib.sha256()
            try:
                with path.open("rb") as handle:
                    while chunk := handle.read(_HASH_CHUNK):
                        content.update(chunk)
            except OSError as exc:
                raise DataError(f"cannot read an input file ({exc.strerror})", file=path) from None
            self._hashes[key] = content.hexdigest()
        return self._hashes[key]


@dataclass(frozen=True)
class EncodedSet:
    """A set's codes per level and the codebooks that give their quantized vectors."""

    key: CacheKey
    ids: tuple[str, ...]
    codes: list[np.ndarray] = field(repr=False)  # int64 [N, T] per level
    codebooks: list[np.ndarray] = field(repr=False)  # float64 [K, D] per level

    @property
    def levels(self) -> int:
        return len(self.codes)

    def __len__(self) -> int:
        return len(self.ids)

    def quantized(self, level: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Quantized vectors float64 [N, T, D]: exactly the codebook rows the encoder chose."""
        codes = self.codes[level] if rows is None else self.codes[level][rows]
        return self.codebooks[level][codes]


class CodeCache:
    """Codes for feature sets, computed once per key, kept in memory and (optionally) on disk.

    On disk each key is one h5 file holding `level{L}/codes` and `level{L}/codebook`, the key as
    attributes and a `complete` attribute written last; the file is written to a temporary name
    and renamed, so a file that is missing the attribute, holds another key or is unreadable is
    an interrupted or foreign write and is rebuilt. The key includes a fingerprint of the set's
    input files (`InputFingerprint`, `fingerprint` = "stat" or "sha256"), so a changed corpus
    gets a new key and is encoded again.

    With `staged`, the files are written to their temporaries as sets are encoded but renamed into
    place only by `commit()` (a command's successful end); `discard()` (or a failure of the
    command) removes them, so a failed command leaves no cache file.
    """

    def __init__(
        self, source: CodeSource, cache_dir: str | Path | None = None, *, batch_size: int = ENCODE_BATCH_SIZE,
        progress: ProgressFactory | None = None, fingerprint: str = "stat", staged: bool = False,
    ):
        if batch_size < 1:
            raise SettingsError("{} must be at least 1", settings=("encode_batch_size",))
        self.fingerprint = InputFingerprint(fingerprint)
        self.source = source
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.progress = progress or no_progress
        self.encoder_runs = 0  # how many times the encoder went over a whole set
        self._staged = StagedFiles() if staged else None
        self.disk_hits = 0
        self._memory: dict[CacheKey, EncodedSet] = {}
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TocError(f"{self.cache_dir}: cannot create the cache directory ({exc.strerror})") from exc

    def get(
        self, task: str, feature_set: FeatureSet, dtype: str, *, dropout_seed: int | None = None,
    ) -> EncodedSet:
        """The set's codes: from memory, else from a valid cache file, else from the encoder."""
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        key = CacheKey(
            self.source.sha256, task, feature_set.name, feature_set.modality, dtype, dropout_seed,
            self.fingerprint(feature_set),
        )
        if key in self._memory:
            return self._memory[key]
        encoded = self._read_disk(key, feature_set)
        if encoded is None:
            mode = "" if dropout_seed is None else f", dropout seed {dropout_seed}"
            with self.progress(f"encode {feature_set.name} ({dtype}{mode})", len(feature_set)) as advance:
                codes = self.source.encode(
                    feature_set, dtype, dropout_seed=dropout_seed, batch_size=self.batch_size, progress=advance
                )
            self.encoder_runs += 1
            codes = [np.ascontiguousarray(c, dtype=np.int64) for c in codes]
            encoded = EncodedSet(key, tuple(feature_set.ids), codes, self.source.codebooks(dtype))
            _check_encoded(encoded, feature_set)
            self._write_disk(encoded)
        else:
            self.disk_hits += 1
        self._memory[key] = encoded
        return encoded

    def path_for(self, key: CacheKey) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key.filename()

    def _read_disk(self, key: CacheKey, feature_set: FeatureSet) -> EncodedSet | None:
        path = self.path_for(key)
        if path is None or not path.exists():
            return None
        try:
            with open_h5(path, what="cache file") as h5:
                attrs = h5.handle.attrs
                if not attrs.get("complete", False):
                    return None
                stored = json.loads(str(attrs["key"]))
                if stored != key.as_dict():
                    return None
                ids = tuple(json.loads(str(attrs["ids"])))
                if ids != tuple(feature_set.ids):
                    return None
                levels = int(attrs["levels"])
                if not 1 <= levels <= 8:
                    return None
                codes, codebooks = [], []
                for i in range(levels):
                    # The shapes are checked before reading: a cache file is as untrusted as any input.
                    codes_ds = h5.dataset(f"level{i}/codes", (len(ids), None), kinds="iu", max_bytes=MAX_WHOLE_READ_BYTES)
                    codebook_ds = h5.dataset(f"level{i}/codebook", (None, None), kinds="f", max_bytes=MAX_WHOLE_READ_BYTES)
                    codes.append(np.asarray(h5.read(codes_ds, f"level{i}/codes"), dtype=np.int64))
                    codebooks.append(np.asarray(h5.read(codebook_ds, f"level{i}/codebook"), dtype=np.float64))
            encoded = EncodedSet(key, ids, codes, codebooks)
            _check_encoded(encoded, feature_set)
            return encoded
        except (OSError, KeyError, ValueError, TypeError, RecursionError, TocError):
            return None  # partial, corrupt or foreign: rebuilt by the caller

    def _write_disk(self, encoded: EncodedSet) -> None:
        path = self.path_for(encoded.key)
        if path is None:
            return

        def fill(handle) -> None:
            handle.attrs["key"] = json.dumps(encoded.key.as_dict(), sort_keys=True)
            handle.attrs["ids"] = json.dumps(list(encoded.ids))
            handle.attrs["levels"] = encoded.levels
            for level, (codes, codebook) in enumerate(zip(encoded.codes, encoded.codebooks, strict=True)):
                group = handle.create_group(f"level{level}")
                group.create_dataset("codes", data=codes)
                group.create_dataset("codebook", data=codebook)
            handle.attrs["complete"] = True

        # Built in memory, then written as bytes: a full disk or a file-size limit is a plain
        # OSError (one line), never a failing write inside HDF5 (which can crash the process).
        image = h5_image(fill)
        check_space(path, len(image))
        if self._staged is not None:
            self._staged.write_bytes(path, bytes(image))
            return
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(image)

    def commit(self) -> None:
        """Put the staged cache files in place (a no-op without `staged`)."""
        if self._staged is not None:
            self._staged.commit()

    def discard(self) -> None:
        """Remove the staged cache files: the cache folder stays as it was."""
        if self._staged is not None:
            self._staged.discard()

    @contextlib.contextmanager
    def kept_on_success(self) -> Iterator[None]:
        """Commit the staged cache files when the block ends normally, discard them when it fails:
        a failed command leaves no cache file."""
        try:
            yield
        except BaseException:
            self.discard()
            raise
        self.commit()


def _check_encoded(encoded: EncodedSet, feature_set: FeatureSet) -> None:
    n = len(feature_set)
    for level, (codes, codebook) in enumerate(zip(encoded.codes, encoded.codebooks, strict=True)):
        if codes.ndim != 2 or codes.shape[0] != n:
            raise TocError(f"{feature_set.name}: level {level} codes have shape {list(codes.shape)}, expected [{n}, T]")
        if codes.size and (codes.min() < 0 or codes.max() >= codebook.shape[0]):
            raise TocError(f"{feature_set.name}: level {level} codes fall outside the codebook of {codebook.shape[0]} rows")
