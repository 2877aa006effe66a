"""Small retrieval sets in the paired layout and in the five released loaders' layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np

from toc.data.archives import pkl_zip_bytes
from toc.data.layout import relative_path

WORD_DIM = 16


def _zip(directory: Path, stem: str, array: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.zip").write_bytes(pkl_zip_bytes(stem, array))


def write_text_features(path: Path, captions, rng: np.random.Generator, width: int = WORD_DIM) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(captions))
    with h5py.File(path, "w") as handle:
        handle["captions"] = np.array(unique, dtype=h5py.string_dtype("utf-8"))
        handle["features"] = rng.normal(size=(len(unique), 10, width)).astype(np.float32)
    return path


def write_paired(path: Path, n: int = 6, *, seed: int = 0, text_width: int = WORD_DIM, audio_dim: int = 128,
                 video_dim: int = 512, modalities=("audio", "video", "text")) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        if "audio" in modalities:
            handle["audio"] = rng.normal(size=(n, 10, audio_dim))
        if "video" in modalities:
            handle["video"] = np.abs(rng.normal(size=(n, 10, 7, 7, video_dim)))
        if "text" in modalities:
            handle["text"] = rng.normal(size=(n, 10, text_width))
        handle["ids"] = np.array([f"clip{i}" for i in range(n)], dtype=h5py.string_dtype("utf-8"))
    return path


def write_clotho(root: Path, n: int = 10, *, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows = [[f"x{i}.wav", *(f"clip {i} caption {k}" for k in range(1, 6))] for i in range(n)]
    csv_path = root / relative_path("clotho", "captions_csv")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", *(f"caption_{k}" for k in range(1, 6))])
        writer.writerows(rows)
    for i in range(n):  # varying lengths, as Clotho's clips
        _zip(root / relative_path("clotho", "audio_dir"), f"x{i}", rng.normal(size=(8 + i % 3, 128)))
    write_text_features(root / relative_path("clotho", "text_features"), [c for r in rows for c in r[1:]], rng)
    return rows


def write_mscoco(root: Path, *, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    annotations = [{"image_id": 42, "caption": "a cat"}, {"image_id": 7, "caption": "a dog"},
                   {"image_id": 42, "caption": "a cat on a mat"}]
    path = root / relative_path("mscoco", "annotations")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"annotations": annotations}))
    for image_id in (42, 7):
        _zip(root / relative_path("mscoco", "image_dir"), f"{image_id:012d}", np.abs(rng.normal(size=(7, 7, 512))))
    write_text_features(root / relative_path("mscoco", "text_features"), [a["caption"] for a in annotations], rng)
    return annotations


def write_flickrsoundnet(root: Path, n: int = 3, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path = root / relative_path("flickrsoundnet", "csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("filename\n" + "".join(f"s{i}.wav\n" for i in range(n)))
    for i in range(n):
        _zip(root / relative_path("flickrsoundnet", "audio_dir"), f"s{i}", rng.normal(size=(10, 128)))
        _zip(root / relative_path("flickrsoundnet", "image_dir"), f"s{i}", np.abs(rng.normal(size=(7, 7, 512))))


def write_msvd(root: Path, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path = root / relative_path("msvd", "captions_csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [("vidA", "a man sings"), ("vidB", "a woman runs"), ("vidA", "someone is singing")]
    path.write_text("video_name,caption\n" + "".join(f"{v},{c}\n" for v, c in rows))
    for video in ("vidA", "vidB"):
        _zip(root / relative_path("msvd", "video_dir"), video, np.abs(rng.normal(size=(10, 7, 7, 512))))
    write_text_features(root / relative_path("msvd", "text_features"), [c for _, c in rows], rng)


def write_valor32k(root: Path, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / relative_path("valor32k", "annotations_dir")
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"video_id": "v1", "desc": "a bell rings"}, {"video_id": "v2", "desc": "a dog barks"}]
    (folder / "desc_test.json").write_text(json.dumps(entries))
    for entry in entries:
        _zip(root / relative_path("valor32k", "video_dir"), entry["video_id"], np.abs(rng.normal(size=(10, 7, 7, 512))))
        _zip(root / relative_path("valor32k", "audio_dir"), entry["video_id"], rng.normal(size=(11, 128)))
    write_text_features(root / relative_path("valor32k", "text_features"), [e["desc"] for e in entries], rng)
