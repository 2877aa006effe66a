"""Retrieval sets: the items of each modality and which items of two modalities belong together.

Six layouts. `paired`, our minimal generic one: one h5 file with `audio` [N, T, A],
`video` [N, T, 7, 7, C] and / or `text` [N, L, W] (any two or three; optional `ids` [N]); row i of
every modality is one pair. And the five retrieval loaders of the FCID release, read from the
files they name (toc.data.layout has the places): Clotho (audio-text, 5 captions per clip),
MSCOCO (image-text), FlickrSoundNet (audio-image), MSVD (video-text) and VALOR-32K
(video-audio-text). Their captions are strings; the word vectors the encoders read come from a
text-feature h5 (`captions` [K] strings, `features` [K, L, W]) that the user makes with any
word-level encoder, as for pretraining (docs/training.md). Images are video features with one
time step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from toc.data.archives import read_zip_array
from toc.data.base import require_float_features
from toc.data.files import read_table
from toc.data.layout import DataConfig, resolve_paths
from toc.errors import ConfigError, DataError
from toc.vocabulary import RETRIEVAL_LAYOUTS, VALOR_SPLITS

RETRIEVAL_MODALITIES = ("audio", "video", "text")
CLOTHO_CAPTIONS = 5
# Feature rank per modality, one item: audio [T, A], video [T, H, W, C], text [L, W].
ITEM_RANKS = {"audio": 2, "video": 4, "text": 2}


@dataclass(frozen=True)
class RetrievalItems:
    """The distinct items of one modality of a retrieval set; features are read one at a time."""

    modality: str
    ids: tuple[str, ...]  # a name per item: a file stem, an image id, a caption
    groups: np.ndarray  # int64 [N]: items of two modalities match when their groups are equal
    read: Callable[[int], np.ndarray] = field(repr=False)  # item -> float64 [T, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class RetrievalSet:
    layout: str
    items: dict[str, RetrievalItems]  # by modality
    notes: tuple[str, ...] = ()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in RETRIEVAL_MODALITIES if m in self.items)


# ---------------------------------------------------------------------- item readers


def _checked(array: np.ndarray, modality: str, *, file: Path | str, key: str | None = None) -> np.ndarray:
    array = np.asarray(array)
    require_float_features(array.dtype, file=file, key=key)
    out = np.asarray(array, dtype=np.float64)
    if modality == "video" and out.ndim == 3:
        out = out[None]  # an image: one time step
    rank = ITEM_RANKS[modality]
    if out.ndim != rank or out.shape[0] == 0:
        expected = {"audio": "[T, A]", "video": "[T, H, W, C] (or an image [H, W, C])", "text": "[L, W]"}[modality]
        raise DataError(f"wrong {modality} feature shape", file=file, key=key, expected=expected, actual=list(out.shape))
    if not np.isfinite(out).all():
        raise DataError("NaN/Inf values in features", file=file, key=key)
    return out


def _zip_items(modality: str, directory: Path, stems: Sequence[str], groups: Sequence[int], listed_in: Path) -> RetrievalItems:
    if not directory.is_dir():
        raise DataError("missing feature directory", file=directory)
    present = {p.name for p in directory.iterdir()}
    for stem in stems:
        if f"{stem}.zip" not in present:
            raise DataError(f"missing feature zip for '{stem}' listed in {listed_in}", file=directory / f"{stem}.zip")
    stems = tuple(stems)

    def read(item: int) -> np.ndarray:
        path = directory / f"{stems[item]}.zip"
        array, member = read_zip_array(path)
        return _checked(array, modality, file=path, key=member)

    return RetrievalItems(modality, stems, np.asarray(groups, dtype=np.int64), read, str(directory))


class TextFeatures:
    """Word vectors per caption from an h5 file: `captions` [K] UTF-8 strings, `features` [K, L, W]."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                "missing text-feature file (captions -> word vectors; see docs/evaluation.md)", file=self.path,
            )
        try:
            with h5py.File(self.path, "r") as handle:
                for key in ("captions", "features"):
                    if key not in handle:
                        raise DataError("missing h5 dataset", file=self.path, key=key, actual=f"keys {sorted(handle)}")
                captions = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in handle["captions"][()]]
                shape = tuple(handle["features"].shape)
        except DataError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise DataError(f"unreadable h5 file ({exc})", file=self.path) from None
        if len(shape) != 3 or shape[0] != len(captions):
            raise DataError("wrong shape", file=self.path, key="features", expected=f"[{len(captions)}, L, W]", actual=list(shape))
        self.row: dict[str, int] = {}
        for i, caption in enumerate(captions):
            if caption in self.row:
                raise DataError(f"duplicate caption {caption!r} (rows {self.row[caption]} and {i})", file=self.path, key="captions")
            self.row[caption] = i

    def items(self, captions: Sequence[str], groups: Sequence[int]) -> RetrievalItems:
        for caption in captions:
            if caption not in self.row:
                raise DataError(f"no word vectors for caption {caption!r}", file=self.path, key="captions")
        rows = [self.row[c] for c in captions]
        path = self.path

        def read(item: int) -> np.ndarray:
            with h5py.File(path, "r") as handle:
                return _checked(handle["features"][rows[item]], "text", file=path, key="features")

        return RetrievalItems("text", tuple(captions), np.asarray(groups, dtype=np.int64), read, str(path))


def _read_json(path: Path):
    if not path.is_file():
        raise DataError("missing file", file=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable file ({exc})", file=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (line {exc.lineno}: {exc.msg})", file=path) from None


def _first_seen(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values in first-seen order, and each value's position among them."""
    order: dict[str, int] = {}
    for value in values:
        order.setdefault(value, len(order))
    return list(order), np.asarray([order[v] for v in values], dtype=np.int64)


# ---------------------------------------------------------------------- layouts


def load_paired(path: str | Path) -> RetrievalSet:
    """The generic layout: one h5 file; row i of every modality present is pair i."""
    path = Path(path)
    if not path.is_file():
        raise DataError("missing paired file", file=path)
    try:
        with h5py.File(path, "r") as handle:
            present = [m for m in RETRIEVAL_MODALITIES if m in handle]
            shapes = {m: tuple(handle[m].shape) for m in present}
            ids = [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in handle["ids"][()]] if "ids" in handle else None
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise DataError(f"unreadable h5 file ({exc})", file=path) from None
    if len(present) < 2:
        raise DataError("a paired file needs two modalities", file=path, expected="two or three of audio, video, text", actual=present)
    sizes = {m: s[0] for m, s in shapes.items()}
    n = sizes[present[0]]
    for m in present:
        if len(shapes[m]) != ITEM_RANKS[m] + 1 or sizes[m] != n or n == 0:
            raise DataError(
                f"wrong {m} shape", file=path, key=m,
                expected=f"[{n}, " + {"audio": "T, A]", "video": "T, H, W, C]", "text": "L, W]"}[m],
                actual=list(shapes[m]),
            )
    if ids is not None and len(ids) != n:
        raise DataError("wrong length", file=path, key="ids", expected=n, actual=len(ids))
    names = tuple(ids) if ids is not None else tuple(str(i) for i in range(n))

    def reader(modality: str) -> Callable[[int], np.ndarray]:
        def read(item: int) -> np.ndarray:
            with h5py.File(path, "r") as handle:
                return _checked(handle[modality][item], modality, file=path, key=modality)
        return read

    groups = np.arange(n, dtype=np.int64)
    items = {m: RetrievalItems(m, names, groups, reader(m), str(path)) for m in present}
    return RetrievalSet("paired", items)


def load_clotho(paths, *, protocol: str = "strict") -> RetrievalSet:
    """Clotho: audio `<audio_dir>/<file_name[:-4]>.zip`, five captions per row.

    `reference` reproduces the published dataset length (quirk Q9): it has as many items as
    rows, item i being caption i % 5 of row i // 5, so only the first ceil(N / 5) clips are used.
    """
    columns = ["file_name", *(f"caption_{k}" for k in range(1, CLOTHO_CAPTIONS + 1))]
    rows = read_table(paths.captions_csv, columns, delimiter=",")
    notes: tuple[str, ...] = ()
    if protocol == "reference":
        kept = math.ceil(len(rows) / CLOTHO_CAPTIONS)
        notes = (f"reference quirk Q9: {len(rows)} items, i.e. the first {kept} of {len(rows)} clips with their captions",)
        rows = rows[:kept]
    stems = [r.values["file_name"][:-4] for r in rows]
    audio = _zip_items("audio", paths.audio_dir, stems, range(len(rows)), paths.captions_csv)
    captions = [r.values[f"caption_{k}"] for r in rows for k in range(1, CLOTHO_CAPTIONS + 1)]
    groups = np.repeat(np.arange(len(rows)), CLOTHO_CAPTIONS)
    text = TextFeatures(paths.text_features).items(captions, groups)
    return RetrievalSet("clotho", {"audio": audio, "text": text}, notes)


def load_mscoco(paths) -> RetrievalSet:
    """MSCOCO: one item per caption; images `<image_dir>/<image_id as 12 digits>.zip`."""
    raw = _read_json(paths.annotations)
    annotations = raw.get("annotations") if isinstance(raw, dict) else None
    if not isinstance(annotations, list) or not annotations:
        raise DataError("no annotations", file=paths.annotations, key="annotations", expected="a non-empty list")
    image_ids, captions = [], []
    for position, entry in enumerate(annotations):
        if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), int) or not isinstance(entry.get("caption"), str):
            raise DataError("bad annotation", file=paths.annotations, key=f"annotations[{position}]",
                            expected="{image_id: int, caption: str}", actual=entry)
        image_ids.append(f"{entry['image_id']:012d}")
        captions.append(entry["caption"])
    images, groups = _first_seen(image_ids)
    video = _zip_items("video", paths.image_dir, images, range(len(images)), paths.annotations)
    text = TextFeatures(paths.text_features).items(captions, groups)
    return RetrievalSet("mscoco", {"video": video, "text": text})


def load_flickrsoundnet(paths) -> RetrievalSet:
    """FlickrSoundNet: row i's audio and image zips (stem `filename[:-4]`) are pair i."""
    rows = read_table(paths.csv, ["filename"], delimiter=",")
    stems = [r.values["filename"][:-4] for r in rows]
    groups = range(len(stems))
    audio = _zip_items("audio", paths.audio_dir, stems, groups, paths.csv)
    image = _zip_items("video", paths.image_dir, stems, groups, paths.csv)
    return RetrievalSet("flickrsoundnet", {"audio": audio, "video": image})


def load_msvd(paths) -> RetrievalSet:
    """MSVD: one row per caption; videos `<video_dir>/<video_name>.zip`."""
    rows = read_table(paths.captions_csv, ["video_name", "caption"], delimiter=",")
    videos, groups = _first_seen([r.values["video_name"] for r in rows])
    video = _zip_items("video", paths.video_dir, videos, range(len(videos)), paths.captions_csv)
    text = TextFeatures(paths.text_features).items([r.values["caption"] for r in rows], groups)
    return RetrievalSet("msvd", {"video": video, "text": text})


def load_valor32k(paths, *, split: str = "test") -> RetrievalSet:
    """VALOR-32K: `<annotations_dir>/<split file>` lists {video_id, desc}; video and audio zips.

    Audio is read as stored (the published VA / VAT loaders also pad or cut it to 10 rows)."""
    if split not in VALOR_SPLITS:
        raise ConfigError(f"{{}}: VALOR-32K has no split {split!r} (expected one of {', '.join(VALOR_SPLITS)})", settings=("split",))
    path = paths.annotations_dir / VALOR_SPLITS[split]
    entries = _read_json(path)
    if not isinstance(entries, list) or not entries:
        raise DataError("no entries", file=path, expected="a non-empty JSON list of {video_id, desc}")
    ids, descriptions = [], []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("video_id"), str) or not isinstance(entry.get("desc"), str):
            raise DataError("bad entry", file=path, key=f"[{position}]", expected="{video_id: str, desc: str}", actual=entry)
        ids.append(entry["video_id"])
        descriptions.append(entry["desc"])
    clips, groups = _first_seen(ids)
    video = _zip_items("video", paths.video_dir, clips, range(len(clips)), path)
    audio = _zip_items("audio", paths.audio_dir, clips, range(len(clips)), path)
    text = TextFeatures(paths.text_features).items(descriptions, groups)
    return RetrievalSet("valor32k", {"audio": audio, "video": video, "text": text})


def load_retrieval_set(
    layout: str, *, pairs: str | Path | None = None, data_root: str | Path | None = None,
    config: str | Path | DataConfig | None = None, overrides: Mapping[str, str | Path | None] | None = None,
    split: str = "test", protocol: str = "strict",
) -> RetrievalSet:
    """A retrieval set in one of RETRIEVAL_LAYOUTS (`pairs`: the paired layout's file)."""
    if layout not in RETRIEVAL_LAYOUTS:
        raise ConfigError(f"unknown retrieval layout {layout!r}; expected one of {', '.join(RETRIEVAL_LAYOUTS)}")
    if layout == "paired":
        if pairs is None:
            raise ConfigError("the paired layout needs {} FILE.h5", settings=("pairs",))
        return load_paired(pairs)
    if pairs is not None:
        raise ConfigError(f"{{}} is the paired layout's file; the {layout} layout reads {{}} / {{}}",
                          settings=("pairs", "data_root", "config"))
    paths = resolve_paths(layout, data_root=data_root, config=config, overrides=overrides)
    if layout == "clotho":
        return load_clotho(paths, protocol=protocol)
    if layout == "mscoco":
        return load_mscoco(paths)
    if layout == "flickrsoundnet":
        return load_flickrsoundnet(paths)
    if layout == "msvd":
        return load_msvd(paths)
    return load_valor32k(paths, split=split)
