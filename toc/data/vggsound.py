"""VGGSound-AVEL pretraining corpus: CSV, per-video audio/video zips, text-feature h5."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toc.data.archives import check_zips_exist, zip_paths, zip_reader
from toc.data.base import AUDIO_SHAPE, T_SEGMENTS, VIDEO_SHAPE, FeatureSet
from toc.data.files import check_unique, read_table, shape_text
from toc.data.hdf5 import MAX_WHOLE_READ_BYTES, open_h5
from toc.data.layout import PretrainPaths
from toc.errors import DataError

SPLIT_ORDER = ("train", "test", "val")  # the reference concatenates the splits in this order
TEXT_LABELS_KEY = "labels"
TEXT_FEATURES_KEY = "features"


@dataclass(frozen=True)
class TextFeatures:
    """Word-level features per category: names `[K]` and float64 `[K, 10, W]`."""

    names: list[str]
    features: np.ndarray
    source: Path

    @property
    def width(self) -> int:
        return int(self.features.shape[-1])


# Categories and word-feature width of a text-feature file, far above any real one (VGGSound has
# 309 classes, BERT-style word features are 768 wide): refused before anything is read.
MAX_TEXT_CATEGORIES = 100_000
MAX_TEXT_WIDTH = 16_384


def read_text_features(path: str | Path) -> TextFeatures:
    """Read and check a text-feature h5: `labels` K UTF-8 strings, `features` [K,10,W] finite.

    Shapes and sizes are checked before anything is read (toc.data.hdf5)."""
    path = Path(path)
    with open_h5(path, what="text-feature file", missing="missing text-feature file") as h5:
        labels = h5.dataset(TEXT_LABELS_KEY, kinds="OSU", max_bytes=MAX_WHOLE_READ_BYTES, what="label list")
        if labels.ndim != 1 or not 1 <= labels.shape[0] <= MAX_TEXT_CATEGORIES:
            raise DataError(
                "wrong shape", file=path, key=TEXT_LABELS_KEY, expected=f"[K], 1 <= K <= {MAX_TEXT_CATEGORIES}",
                actual=shape_text(labels.shape),
            )
        k = int(labels.shape[0])
        features = h5.dataset(TEXT_FEATURES_KEY, (k, T_SEGMENTS, "W"), kinds="f", max_bytes=MAX_WHOLE_READ_BYTES // 2)
        if not 1 <= features.shape[2] <= MAX_TEXT_WIDTH:
            raise DataError(
                "wrong shape", file=path, key=TEXT_FEATURES_KEY, expected=f"[{k},{T_SEGMENTS},W], 1 <= W <= {MAX_TEXT_WIDTH}",
                actual=shape_text(features.shape),
            )
        raw_names = h5.read(labels, TEXT_LABELS_KEY)
        feature_array = np.asarray(h5.read(features, TEXT_FEATURES_KEY), dtype=np.float64)
    raw_names = np.atleast_1d(np.asarray(raw_names))
    if raw_names.ndim != 1 or raw_names.size == 0:
        raise DataError(
            "wrong shape", file=path, key=TEXT_LABELS_KEY, expected="[K], K >= 1",
            actual=shape_text(raw_names.shape),
        )
    names: list[str] = []
    for item in raw_names.tolist():
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    "label is not UTF-8", file=path, key=TEXT_LABELS_KEY, actual=repr(item)
                ) from None
        if not isinstance(item, str):
            raise DataError(
                "labels must be strings", file=path, key=TEXT_LABELS_KEY,
                expected="UTF-8 strings", actual=type(item).__name__,
            )
        names.append(item)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"duplicate category name '{dup}'", file=path, key=TEXT_LABELS_KEY)
    if feature_array.ndim != 3 or feature_array.shape[:2] != (len(names), T_SEGMENTS) or (
        feature_array.shape[2] == 0
    ):
        raise DataError(
            "wrong shape", file=path, key=TEXT_FEATURES_KEY,
            expected=f"[{len(names)},{T_SEGMENTS},W]", actual=shape_text(feature_array.shape),
        )
    if not np.isfinite(feature_array).all():
        raise DataError("NaN/Inf values", file=path, key=TEXT_FEATURES_KEY)
    return TextFeatures(names=names, features=feature_array, source=path)


@dataclass(frozen=True)
class PretrainCorpus:
    """The pretraining clips in reference order (train, test, val), features read lazily."""

    ids: list[str]  # video ids (zip stems), one per row
    categories: list[str]  # category name per row
    splits: list[str]  # split per row (all are used for pretraining)
    labels: np.ndarray  # int64 [N]: index of the row's category in `text.names`
    text: TextFeatures
    paths: PretrainPaths
    _read_audio: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    _read_video: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def category_names(self) -> list[str]:
        return list(self.text.names)

    @property
    def text_features(self) -> np.ndarray:
        return self.text.features

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """audio float64 [n,10,128] (pad-last/trunc-10) and video float64 [n,10,7,7,512]."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return {"audio": self._read_audio(rows), "video": self._read_video(rows)}

    def text_for(self, rows: np.ndarray) -> np.ndarray:
        """The category text features of each row: float64 [n, 10, W]."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        return self.text.features[self.labels[rows]]

    def feature_set(self, modality: str) -> FeatureSet:
        """One modality as a FeatureSet (clip labels = category index), e.g. for `toc encode`."""
        sides = {
            "audio": (AUDIO_SHAPE, self._read_audio, self.paths.audio_dir),
            "video": (VIDEO_SHAPE, self._read_video, self.paths.video_dir),
        }
        if modality not in sides:
            raise ValueError(f"unknown modality {modality!r}")
        shape, read, directory = sides[modality]
        return FeatureSet(
            name=f"pretrain/{modality}", modality=modality, ids=list(self.ids),
            labels=self.labels.copy(), feature_shape=shape, read=read,
            source=str(directory), source_files=zip_paths(directory, self.ids),
        )


def load_pretrain(paths: PretrainPaths) -> PretrainCorpus:
    """Read the CSV and text features, check every listed zip exists; features stay on disk."""
    text = read_text_features(paths.text_features)
    rows = read_table(paths.csv, ("category", "video_id", "split"), delimiter=",")
    name_index = {name: i for i, name in enumerate(text.names)}
    by_split: dict[str, list] = {split: [] for split in SPLIT_ORDER}
    for row in rows:
        category, video_id, split = (row.values[k] for k in ("category", "video_id", "split"))
        if split not in by_split:
            raise DataError(
                f"row {row.line}: unknown split for video id '{video_id}'", file=paths.csv,
                key="split", expected=list(SPLIT_ORDER), actual=repr(split),
            )
        if category not in name_index:
            raise DataError(
                f"row {row.line}: category of video id '{video_id}' has no text features",
                file=paths.csv, key="category",
                expected=f"a name in {paths.text_features}:{TEXT_LABELS_KEY}", actual=repr(category),
            )
        if not video_id:
            raise DataError(f"row {row.line}: empty video id", file=paths.csv, key="video_id")
        by_split[split].append(row)
    ordered = [row for split in SPLIT_ORDER for row in by_split[split]]
    ids = [row.values["video_id"] for row in ordered]
    check_unique(ids, ordered, file=paths.csv, key="video_id")
    check_zips_exist(paths.audio_dir, ids, listed_in=paths.csv)
    check_zips_exist(paths.video_dir, ids, listed_in=paths.csv)
    categories = [row.values["category"] for row in ordered]
    return PretrainCorpus(
        ids=ids,
        categories=categories,
        splits=[row.values["split"] for row in ordered],
        labels=np.array([name_index[c] for c in categories], dtype=np.int64),
        text=text,
        paths=paths,
        _read_audio=zip_reader(paths.audio_dir, ids, AUDIO_SHAPE[1:], pad=True),
        _read_video=zip_reader(paths.video_dir, ids, VIDEO_SHAPE[1:], pad=False),
    )


def read_pretrain_ids(path: str | Path) -> list[str]:
    """The video ids of a pretraining CSV (`video_id` column), for overlap checks: only the
    ids are read, so the features need not be present."""
    path = Path(path)
    rows = read_table(path, ("video_id",), delimiter=",")
    ids = [row.values["video_id"] for row in rows]
    for row, video_id in zip(rows, ids, strict=True):
        if not video_id:
            raise DataError(f"row {row.line}: empty video id", file=path, key="video_id")
    return ids


class PairedClips:
    """The trainer's data protocol over a `PretrainCorpus`: audio, video and category text per row."""

    def __init__(self, corpus: PretrainCorpus):
        self.corpus = corpus
        self.labels = corpus.labels

    def __len__(self) -> int:
        return len(self.corpus)

    def read(self, rows):
        out = self.corpus.read(rows)
        out["text"] = self.corpus.text_for(rows)
        return out
