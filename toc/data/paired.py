"""Own data: paired audio and video features (text optional) from any feature extractor, in one
h5 file or a folder of .npy files; any widths, any number of time steps T (also none: one vector
per clip), optional clip labels, class names, splits and ids.

Datasets (h5 keys, or `KEY.npy` files in a folder), N clips:

* `audio` [N, T, Da] or [N, Da] (no time axis: T = 1);
* `video` [N, T, Dv] or [N, Dv] (vectors, no spatial grid) or [N, T, H, W, C] (maps, H, W >= 5);
* `text` (optional) per clip: [N, L, W] word / token features or [N, W] one vector per clip;
  or `prompts` (optional, instead of `text`) per class: [K, L, W] or [K, W], each clip taking
  its label's prompt;
* `labels` (optional; `toc eval paired` needs them) [N]: integers in [0, K) or strings;
* `class_names` (optional) [K] strings, in label order;
* `split` (optional) [N] strings `train` / `val` / `test` (all three present);
* `ids` (optional) [N] strings: clips with the same id are one video for the strict split.

Audio, video and text must have the same T. Text of another length L (e.g. words of a caption)
is averaged over its non-zero rows into one vector per clip and repeated over the T steps, as is
a per-clip text vector. Features are read lazily, a batch of rows at a time, as float64 (they
must be stored as floats); NaN / Inf is refused when a row is read. Unknown keys are refused (a typo is not silently ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from hdcid.modules import MIN_VIDEO_GRID
from toc.data.base import FeatureSet, TaskData, require_float_features
from toc.data.files import shape_text
from toc.errors import DataError

FILE_NAME = "paired.h5"  # the own-data file under a data root ...
FOLDER_NAME = "paired"  # ... or a folder of KEY.npy files

FEATURE_KEYS = ("audio", "video", "text", "prompts")
TABLE_KEYS = ("labels", "class_names", "split", "ids")
KEYS = FEATURE_KEYS + TABLE_KEYS
SPLITS = ("train", "val", "test")
# Pretraining sees every clip outside this split (test clips stay unseen until evaluation).
HELD_OUT_SPLIT = "test"
AUDIO_RANKS = {2: "[N, Da]", 3: "[N, T, Da]"}
VIDEO_RANKS = {2: "[N, Dv]", 3: "[N, T, Dv]", 5: "[N, T, H, W, C]"}
TEXT_RANKS = {2: "[N, W]", 3: "[N, L, W]"}


# ---------------------------------------------------------------------- stores


class _Store:
    """Named arrays of one source: their shapes and dtypes without reading them; rows on request."""

    path: Path

    def keys(self) -> list[str]:
        raise NotImplementedError

    def shape(self, key: str) -> tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, key: str) -> np.dtype:
        raise NotImplementedError

    def rows(self, key: str, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def whole(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def where(self, key: str) -> tuple[Path, str | None]:
        """(file, key) for messages."""
        raise NotImplementedError


class _H5Store(_Store):
    """One h5 file; opened for each read, so a corpus object holds no open handle."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with h5py.File(path, "r") as handle:
                self._meta = {}
                for key, item in handle.items():
                    if not isinstance(item, h5py.Dataset):
                        raise DataError("h5 entry is not a dataset", file=path, key=key)
                    self._meta[key] = (tuple(int(s) for s in item.shape), item.dtype)
        except DataError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise DataError(f"unreadable h5 file ({_first_line(exc)})", file=path) from None

    def keys(self) -> list[str]:
        return list(self._meta)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._meta[key][0]

    def dtype(self, key: str) -> np.dtype:
        return self._meta[key][1]

    def rows(self, key: str, rows: np.ndarray) -> np.ndarray:
        # h5py needs increasing indices: read sorted runs as slices, then restore the order.
        unique, inverse = np.unique(rows, return_inverse=True)
        runs = np.split(unique, np.flatnonzero(np.diff(unique) != 1) + 1) if len(unique) else []
        try:
            with h5py.File(self.path, "r") as handle:
                dataset = handle[key]
                parts = [dataset[int(run[0]) : int(run[-1]) + 1] for run in runs]
                block = np.concatenate(parts) if parts else np.empty((0, *dataset.shape[1:]), dataset.dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise DataError(f"unreadable h5 dataset ({_first_line(exc)})", file=self.path, key=key) from None
        return block[inverse.reshape(-1)]

    def whole(self, key: str) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as handle:
                return np.asarray(handle[key][()])
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise DataError(f"unreadable h5 dataset ({_first_line(exc)})", file=self.path, key=key) from None

    def where(self, key: str) -> tuple[Path, str | None]:
        return self.path, key


class _NpyFolder(_Store):
    """A folder of KEY.npy files, memory-mapped (never unpickled)."""

    def __init__(self, path: Path):
        self.path = path
        self._arrays: dict[str, np.ndarray] = {}
        for file in sorted(path.glob("*.npy")):
            try:
                self._arrays[file.stem] = np.load(file, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise DataError(
                    f"not a plain .npy array ({_first_line(exc)}); store strings as a fixed-width "
                    "unicode array (numpy dtype 'U'), not as Python objects", file=file,
                ) from None
            except OSError as exc:
                raise DataError(f"unreadable .npy file ({_first_line(exc)})", file=file) from None
        if not self._arrays:
            raise DataError("no .npy files in the own-data folder", file=path, expected="audio.npy, video.npy, ...", actual="none")

    def keys(self) -> list[str]:
        return list(self._arrays)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(int(s) for s in self._arrays[key].shape)

    def dtype(self, key: str) -> np.dtype:
        return self._arrays[key].dtype

    def rows(self, key: str, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._arrays[key][rows])

    def whole(self, key: str) -> np.ndarray:
        return np.asarray(self._arrays[key])

    def where(self, key: str) -> tuple[Path, str | None]:
        return self.path / f"{key}.npy", None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def open_store(path: str | Path) -> _Store:
    path = Path(path)
    if path.is_dir():
        return _NpyFolder(path)
    if not path.is_file():
        raise DataError("own-data file not found", file=path, expected=f"a {FILE_NAME} file or a folder of .npy files", actual="nothing there")
    if path.stat().st_size == 0:
        raise DataError("empty file", file=path)
    return _H5Store(path)


# ---------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class PairedCorpus:
    """Own paired features, checked when opened; features are read on request.

    `audio_shape` / `video_shape` / `text_shape` are per clip with the time axis: (T, Da),
    (T, Dv) or (T, H, W, C), (T, W). `text_source` says where text comes from: "text" (per clip),
    "prompts" (per class, by label) or None (no text).
    """

    source: Path
    n: int
    steps: int  # T, 1 for features without a time axis
    audio_shape: tuple[int, ...]
    video_shape: tuple[int, ...]
    text_shape: tuple[int, ...] | None
    text_source: str | None
    labels: np.ndarray | None  # int64 [N], or None
    class_names: list[str]
    splits: np.ndarray | None  # [N] str in SPLITS, or None
    ids: list[str]
    _store: _Store = field(repr=False)
    _raw_ranks: dict[str, int] = field(repr=False)

    def __len__(self) -> int:
        return self.n

    @property
    def has_text(self) -> bool:
        return self.text_shape is not None

    @property
    def video_has_grid(self) -> bool:
        return len(self.video_shape) == 4

    def read_modality(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """float64 [len(rows), *shape] of one modality (audio, video or text), checked finite."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if modality == "text":
            return self._read_text(rows)
        key = modality
        block = np.asarray(self._store.rows(key, rows), dtype=np.float64)
        if self._raw_ranks[key] == 2:
            block = block[:, None]  # no time axis: one step
        self._check_finite(block, key, rows)
        return block

    def _read_text(self, rows: np.ndarray) -> np.ndarray:
        if self.text_source is None:
            raise DataError("this corpus has no text (no 'text' or 'prompts' dataset)", file=self.source)
        key = self.text_source
        if key == "prompts":
            assert self.labels is not None  # checked when opened
            prompt_rows = self.labels[rows]
            block = np.asarray(self._store.rows(key, prompt_rows), dtype=np.float64)
            self._check_finite(block, key, prompt_rows)
        else:
            block = np.asarray(self._store.rows(key, rows), dtype=np.float64)
            self._check_finite(block, key, rows)
        return _text_per_step(block, self.steps)

    def _check_finite(self, block: np.ndarray, key: str, rows: np.ndarray) -> None:
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1) if len(block) else np.ones(0, bool)
        if not finite.all():
            file, h5_key = self._store.where(key)
            raise DataError(f"NaN/Inf values in row {int(rows[np.flatnonzero(~finite)[0]])}", file=file, key=h5_key)

    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]:
        """The trainer's protocol: audio, video and (when the corpus has it) text for these rows."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = {"audio": self.read_modality("audio", rows), "video": self.read_modality("video", rows)}
        if self.has_text:
            out["text"] = self._read_text(rows)
        return out

    def feature_set(self, modality: str) -> FeatureSet:
        """One modality as a FeatureSet for evaluation (needs labels)."""
        if modality not in ("audio", "video"):
            raise ValueError(f"unknown modality {modality!r}")
        labels = self.require_labels()
        return FeatureSet(
            name=f"paired/{modality}", modality=modality, ids=list(self.ids), labels=labels.copy(),
            feature_shape=self.audio_shape if modality == "audio" else self.video_shape,
            read=lambda rows, m=modality: self.read_modality(m, rows), source=str(self.source),
        )

    def require_labels(self) -> np.ndarray:
        if self.labels is None:
            raise DataError(
                "no clip labels: cross-modal evaluation needs a 'labels' dataset [N] (integers in [0, K) or strings)",
                file=self.source,
            )
        return self.labels

    def split_rows(self) -> dict[str, np.ndarray]:
        """Row indices per split name (empty when the corpus has no `split`)."""
        if self.splits is None:
            return {}
        return {name: np.flatnonzero(self.splits == name).astype(np.int64) for name in SPLITS}

    def pretraining_rows(self) -> np.ndarray:
        """The clips pretraining may see: every clip outside the test split (all without splits)."""
        if self.splits is None:
            return np.arange(self.n, dtype=np.int64)
        return np.flatnonzero(self.splits != HELD_OUT_SPLIT).astype(np.int64)


def _text_per_step(block: np.ndarray, steps: int) -> np.ndarray:
    """Text rows [n, W] or [n, L, W] as [n, T, W]: as is when L == T, else one vector per clip
    (the mean over the non-zero rows, i.e. without zero padding) repeated over the T steps."""
    if block.ndim == 3 and block.shape[1] == steps:
        return block
    if block.ndim == 3:
        used = np.abs(block).sum(axis=-1) > 0  # [n, L]: zero rows are padding
        counts = np.maximum(used.sum(axis=1, keepdims=True), 1)
        block = (block * used[..., None]).sum(axis=1) / counts
    return np.repeat(block[:, None, :], steps, axis=1)


class PairedPretraining:
    """The trainer's data protocol over the clips of a PairedCorpus that pretraining may see."""

    def __init__(self, corpus: PairedCorpus, rows: np.ndarray | None = None):
        self.corpus = corpus
        self.rows = corpus.pretraining_rows() if rows is None else np.asarray(rows, dtype=np.int64)
        if len(self.rows) == 0:
            raise DataError("no clips to pretrain on (every clip is in the test split)", file=corpus.source)
        # The probe diagnostic reads labels when there are any (they never enter training).
        self.labels = corpus.labels[self.rows] if corpus.labels is not None else None

    def __len__(self) -> int:
        return int(len(self.rows))

    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]:
        return self.corpus.read(self.rows[np.asarray(rows, dtype=np.int64)])


def paired_task(corpus: PairedCorpus, task: str = "paired") -> TaskData:
    """Cross-modal clip classification on own data: heads learn on one modality's codes and are
    tested on the other's (v2a, a2v); the file's splits are the predefined ones, if it has them."""
    audio, video = corpus.feature_set("audio"), corpus.feature_set("video")
    sets = {audio.name: audio, video.name: video}
    splits = corpus.split_rows()
    return TaskData(
        task=task, kind="clip", class_names=list(corpus.class_names), sets=sets,
        directions={"v2a": (video.name, audio.name), "a2v": (audio.name, video.name)},
        predefined_splits={name: dict(splits) for name in sets} if splits else {},
    )


def load_paired_task(paths) -> TaskData:
    """The `paired` task from its resolved paths (toc.data.layout.PairedPaths)."""
    return paired_task(load_paired(paths.features))


# ---------------------------------------------------------------------- opening and checks


def load_paired(path: str | Path) -> PairedCorpus:
    """Open own paired features (an h5 file or a folder of .npy files) and check every shape,
    dtype and table; features stay on disk."""
    store = open_store(path)
    source = Path(path)
    keys = store.keys()
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        file, _ = store.where(unknown[0])
        raise DataError(
            f"unknown dataset '{unknown[0]}'", file=file,
            expected=f"datasets among {', '.join(KEYS)}", actual=f"keys {sorted(keys)}",
        )
    for required in ("audio", "video"):
        if required not in keys:
            raise DataError(
                f"missing '{required}' features", file=source, key=required,
                expected="audio [N, T, Da] and video [N, T, Dv] or [N, T, H, W, C]", actual=f"keys {sorted(keys)}",
            )
    if "text" in keys and "prompts" in keys:
        raise DataError("both 'text' (per clip) and 'prompts' (per class) given; keep one", file=source)
    ranks = {
        "audio": _check_features(store, "audio", AUDIO_RANKS),
        "video": _check_features(store, "video", VIDEO_RANKS),
    }
    n = store.shape("audio")[0]
    audio_shape = _per_clip(store.shape("audio"), ranks["audio"])
    video_shape = _per_clip(store.shape("video"), ranks["video"])
    steps = audio_shape[0]
    _check_rows(store, "video", n)
    if video_shape[0] != steps:
        raise DataError(
            "audio and video have different numbers of time steps", file=source, key="video",
            expected=f"T = {steps} (as audio)", actual=f"T = {video_shape[0]}",
        )
    if len(video_shape) == 4 and min(video_shape[1:3]) < MIN_VIDEO_GRID:
        file, key = store.where("video")
        raise DataError(
            "video grid too small for the convolutional video branch", file=file, key=key,
            expected=f"H, W >= {MIN_VIDEO_GRID}, or [N, T, Dv] vectors (e.g. the mean over the grid)",
            actual=shape_text(store.shape("video")),
        )
    labels, class_names = _labels(store, n)
    splits = _splits(store, n)
    ids = _strings(store, "ids", n) if "ids" in keys else [str(i) for i in range(n)]
    text_source, text_shape = None, None
    if "text" in keys:
        _check_features(store, "text", TEXT_RANKS)
        _check_rows(store, "text", n)
        text_source, text_shape = "text", (steps, store.shape("text")[-1])
    elif "prompts" in keys:
        _check_features(store, "prompts", TEXT_RANKS, rows_name="K")
        if labels is None:
            raise DataError("'prompts' are per class and need 'labels' to pick each clip's prompt", file=source)
        if store.shape("prompts")[0] != len(class_names):
            file, key = store.where("prompts")
            raise DataError(
                "one prompt per class is needed", file=file, key=key,
                expected=f"K = {len(class_names)} rows", actual=shape_text(store.shape("prompts")),
            )
        text_source, text_shape = "prompts", (steps, store.shape("prompts")[-1])
    return PairedCorpus(
        source=source, n=n, steps=steps, audio_shape=audio_shape, video_shape=video_shape,
        text_shape=text_shape, text_source=text_source, labels=labels, class_names=class_names,
        splits=splits, ids=ids, _store=store, _raw_ranks=ranks,
    )


def _per_clip(shape: tuple[int, ...], rank: int) -> tuple[int, ...]:
    return (1, *shape[1:]) if rank == 2 else tuple(shape[1:])


def _check_features(store: _Store, key: str, ranks: dict[int, str], rows_name: str = "N") -> int:
    file, h5_key = store.where(key)
    shape, dtype = store.shape(key), np.dtype(store.dtype(key))
    if len(shape) not in ranks:
        hint = " (a grid needs a time axis: [N, T, H, W, C]; use T = 1)" if key == "video" and len(shape) == 4 else ""
        raise DataError(
            f"wrong shape{hint}", file=file, key=h5_key,
            expected=" or ".join(v.replace("N", rows_name, 1) for v in ranks.values()), actual=shape_text(shape),
        )
    require_float_features(dtype, file=file, key=h5_key, message="wrong dtype")
    if shape[0] == 0 or min(shape[1:]) == 0:
        raise DataError("empty features", file=file, key=h5_key, expected="every axis >= 1", actual=shape_text(shape))
    return len(shape)


def _check_rows(store: _Store, key: str, n: int) -> None:
    rows = store.shape(key)[0]
    if rows != n:
        file, h5_key = store.where(key)
        raise DataError("a different number of clips than audio", file=file, key=h5_key, expected=f"N = {n}", actual=f"N = {rows}")


def _strings(store: _Store, key: str, n: int | None) -> list[str]:
    file, h5_key = store.where(key)
    shape = store.shape(key)
    if len(shape) != 1 or (n is not None and shape[0] != n):
        raise DataError("wrong shape", file=file, key=h5_key, expected=f"[{'N' if n is None else n}] strings", actual=shape_text(shape))
    values = store.whole(key)
    out = []
    for item in values.tolist():
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError("not UTF-8 text", file=file, key=h5_key, actual=repr(item)[:60]) from None
        if not isinstance(item, str):
            raise DataError("expected strings", file=file, key=h5_key, actual=type(item).__name__)
        out.append(item)
    return out


def _labels(store: _Store, n: int) -> tuple[np.ndarray | None, list[str]]:
    keys = store.keys()
    names = _strings(store, "class_names", None) if "class_names" in keys else None
    if names is not None:
        if not names:
            raise DataError("no class names", file=store.where("class_names")[0], key=store.where("class_names")[1])
        duplicate = next((x for x in names if names.count(x) > 1), None)
        if duplicate is not None:
            raise DataError(f"duplicate class name '{duplicate}'", file=store.where("class_names")[0], key=store.where("class_names")[1])
    if "labels" not in keys:
        return None, names or []
    file, h5_key = store.where("labels")
    shape, dtype = store.shape("labels"), np.dtype(store.dtype("labels"))
    if len(shape) != 1 or shape[0] != n:
        raise DataError("wrong shape", file=file, key=h5_key, expected=f"[{n}] (one label per clip)", actual=shape_text(shape))
    if dtype.kind in "iu":
        labels = np.asarray(store.whole("labels"), dtype=np.int64)
        k = len(names) if names is not None else int(labels.max()) + 1
        bad = np.flatnonzero((labels < 0) | (labels >= k))
        if bad.size:
            raise DataError(
                f"label out of range in row {int(bad[0])}", file=file, key=h5_key,
                expected=f"0 <= label < {k}" + (" (the class names)" if names is not None else ""),
                actual=int(labels[bad[0]]),
            )
        return labels, names if names is not None else [str(i) for i in range(k)]
    if dtype.kind in "SUO":
        text = _strings(store, "labels", n)
        names = names if names is not None else sorted(set(text))
        index = {name: i for i, name in enumerate(names)}
        missing = next((t for t in text if t not in index), None)
        if missing is not None:
            raise DataError(f"label '{missing}' is not a class name", file=file, key=h5_key, expected=f"one of {names[:8]}", actual=repr(missing))
        return np.asarray([index[t] for t in text], dtype=np.int64), names
    raise DataError("wrong dtype", file=file, key=h5_key, expected="integers or strings", actual=dtype.name)


def _splits(store: _Store, n: int) -> np.ndarray | None:
    if "split" not in store.keys():
        return None
    file, h5_key = store.where("split")
    values = np.asarray(_strings(store, "split", n))
    unknown = sorted(set(values.tolist()) - set(SPLITS))
    if unknown:
        raise DataError("unknown split name", file=file, key=h5_key, expected=f"one of {list(SPLITS)}", actual=repr(unknown[0]))
    absent = [name for name in SPLITS if not (values == name).any()]
    if absent:
        raise DataError(
            f"no clip in the {absent[0]!r} split (drop 'split' for a seeded split)", file=file, key=h5_key,
            expected=f"clips in each of {list(SPLITS)}", actual=f"none in {absent}",
        )
    return values
