"""AVVP: class list, combined tab-separated event CSVs, per-video zipped features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toc.data.archives import check_zips_exist, zip_paths, zip_reader
from toc.data.base import AUDIO_SHAPE, T_SEGMENTS, VIDEO_SHAPE, FeatureSet, Modality, TaskData
from toc.data.files import check_unique, read_class_list, read_table
from toc.data.layout import AvvpPaths
from toc.errors import DataError

CSV_COLUMNS = ("filename", "onset", "offset", "event_labels")
YOUTUBE_ID_LENGTH = 11


@dataclass(frozen=True)
class SegmentTable:
    """One combined CSV: a row per video, its id, and its `[N, 10, C+1]` segment labels."""

    filenames: list[str]
    video_ids: list[str]  # filename[:11], the feature-zip key
    labels: np.ndarray  # float64 [N, T, C+1], background last


def _int_list(text: str, *, file: Path, line: int, column: str) -> list[int]:
    # Quirk Q6: the column is handled as text even when no row has a comma.
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(int(part))
        except ValueError:
            raise DataError(
                f"row {line}: not an integer second", file=file, key=column,
                expected="integers 0..10", actual=repr(part),
            ) from None
    return values


def read_segment_table(path: str | Path, class_names: list[str]) -> SegmentTable:
    """Parse and validate a combined event CSV into per-segment labels (the segment rule in docs/data.md)."""
    path = Path(path)
    rows = read_table(path, CSV_COLUMNS, delimiter="\t")
    index = {name: i for i, name in enumerate(class_names)}
    n_classes = len(class_names)
    labels = np.zeros((len(rows), T_SEGMENTS, n_classes + 1), dtype=np.float64)
    labels[:, :, n_classes] = 1.0
    filenames: list[str] = []
    for r, row in enumerate(rows):
        filename = row.values["filename"]
        if len(filename) < YOUTUBE_ID_LENGTH:
            raise DataError(
                f"row {row.line}: filename shorter than a YouTube id", file=path, key="filename",
                expected=f">= {YOUTUBE_ID_LENGTH} characters", actual=repr(filename),
            )
        filenames.append(filename)
        onsets = _int_list(row.values["onset"], file=path, line=row.line, column="onset")
        offsets = _int_list(row.values["offset"], file=path, line=row.line, column="offset")
        events = [e.strip() for e in row.values["event_labels"].split(",")]
        if not (len(onsets) == len(offsets) == len(events)):
            raise DataError(
                f"row {row.line}: onset, offset and event_labels lists differ in length",
                file=path, key="event_labels", expected="equal lengths",
                actual=f"{len(onsets)}, {len(offsets)}, {len(events)}",
            )
        for onset, offset, event in zip(onsets, offsets, events, strict=True):
            if not 0 <= onset <= offset <= T_SEGMENTS:
                raise DataError(
                    f"row {row.line}: bad interval for '{event}'", file=path, key="onset/offset",
                    expected=f"0 <= onset <= offset <= {T_SEGMENTS}", actual=f"{onset}..{offset}",
                )
            if event not in index:
                raise DataError(
                    f"row {row.line}: unknown class name", file=path, key="event_labels",
                    expected=f"one of the {n_classes} listed classes", actual=repr(event),
                )
            # Half-open integer seconds; same-class intervals accumulate by OR.
            labels[r, onset:offset, index[event]] = 1.0
            labels[r, onset:offset, n_classes] = 0.0
    check_unique(filenames, rows, file=path, key="filename")
    video_ids = [name[:YOUTUBE_ID_LENGTH] for name in filenames]
    check_unique(video_ids, rows, file=path, key="filename[:11]")
    return SegmentTable(filenames=filenames, video_ids=video_ids, labels=labels)


def segment_feature_set(
    name: str, modality: Modality, table: SegmentTable, feature_dir: str | Path, *, listed_in: Path
) -> FeatureSet:
    """A set over a CSV's rows with AVVP zipped features: audio pad-last/trunc-10, video exact."""
    check_zips_exist(feature_dir, table.video_ids, listed_in=listed_in)
    frame_shape = AUDIO_SHAPE[1:] if modality == "audio" else VIDEO_SHAPE[1:]
    return FeatureSet(
        name=name,
        modality=modality,
        ids=list(table.video_ids),
        labels=table.labels,
        feature_shape=AUDIO_SHAPE if modality == "audio" else VIDEO_SHAPE,
        read=zip_reader(feature_dir, table.video_ids, frame_shape, pad=modality == "audio"),
        source=str(feature_dir), source_files=zip_paths(feature_dir, table.video_ids),
    )


def load_avvp(paths: AvvpPaths) -> TaskData:
    """AVVP: the audio-CSV clips with audio features, the visual-CSV clips with video features."""
    class_names = read_class_list(paths.categories)
    audio_table = read_segment_table(paths.audio_csv, class_names)
    visual_table = read_segment_table(paths.visual_csv, class_names)
    sets = {
        "avvp/audio": segment_feature_set(
            "avvp/audio", "audio", audio_table, paths.audio_dir, listed_in=paths.audio_csv
        ),
        "avvp/video": segment_feature_set(
            "avvp/video", "video", visual_table, paths.video_dir, listed_in=paths.visual_csv
        ),
    }
    return TaskData(
        task="avvp",
        kind="segment",
        class_names=class_names,
        sets=sets,
        directions={"v2a": ("avvp/video", "avvp/audio"), "a2v": ("avvp/audio", "avvp/video")},
    )
