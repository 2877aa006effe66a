"""UCF101↔VGGSound: aligned 16-class lists, two CSVs, UCF video and VGGSound audio zips."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toc.data.archives import check_zips_exist, zip_paths, zip_reader
from toc.data.base import AUDIO_SHAPE, VIDEO_SHAPE, FeatureSet, TaskData
from toc.data.files import check_unique, read_class_list, read_table
from toc.data.layout import UcfVggsoundPaths
from toc.errors import DataError


def read_clip_table(
    path: str | Path, class_names: list[str], *, list_file: Path
) -> tuple[list[str], np.ndarray]:
    """`category,video_id[,...]` rows -> video ids and int64 class indices into `class_names`.

    Other columns (the `split` of vggsound2ucf.csv, quirk Q13) are ignored.
    """
    path = Path(path)
    rows = read_table(path, ("category", "video_id"), delimiter=",")
    index = {name: i for i, name in enumerate(class_names)}
    video_ids: list[str] = []
    labels = np.empty(len(rows), dtype=np.int64)
    for r, row in enumerate(rows):
        category, video_id = row.values["category"], row.values["video_id"]
        if category not in index:
            raise DataError(
                f"row {row.line}: unknown category", file=path, key="category",
                expected=f"a name from {list_file}", actual=repr(category),
            )
        if not video_id:
            raise DataError(f"row {row.line}: empty video id", file=path, key="video_id")
        video_ids.append(video_id)
        labels[r] = index[category]
    check_unique(video_ids, rows, file=path, key="video_id")
    return video_ids, labels


def load_ucf_vggsound(paths: UcfVggsoundPaths) -> TaskData:
    """UCF101 video clips and VGGSound audio clips over 16 shared classes (line i ≙ line i)."""
    ucf_classes = read_class_list(paths.ucf_classes)
    vgg_classes = read_class_list(paths.vggsound_classes)
    if len(ucf_classes) != len(vgg_classes):
        raise DataError(
            "class lists must be aligned line by line", file=paths.vggsound_classes,
            expected=f"{len(ucf_classes)} names (as {paths.ucf_classes})",
            actual=f"{len(vgg_classes)} names",
        )
    ucf_ids, ucf_labels = read_clip_table(paths.ucf_csv, ucf_classes, list_file=paths.ucf_classes)
    vgg_ids, vgg_labels = read_clip_table(
        paths.vggsound_csv, vgg_classes, list_file=paths.vggsound_classes
    )
    check_zips_exist(paths.ucf_video_dir, ucf_ids, listed_in=paths.ucf_csv)
    check_zips_exist(paths.vggsound_audio_dir, vgg_ids, listed_in=paths.vggsound_csv)
    sets = {
        "ucf/video": FeatureSet(
            name="ucf/video", modality="video", ids=ucf_ids, labels=ucf_labels,
            feature_shape=VIDEO_SHAPE,
            # The UCF loader alone pads/truncates video, repeating whole frames.
            read=zip_reader(paths.ucf_video_dir, ucf_ids, VIDEO_SHAPE[1:], pad=True),
            source=str(paths.ucf_video_dir), source_files=zip_paths(paths.ucf_video_dir, ucf_ids),
        ),
        "vggsound/audio": FeatureSet(
            name="vggsound/audio", modality="audio", ids=vgg_ids, labels=vgg_labels,
            feature_shape=AUDIO_SHAPE,
            read=zip_reader(paths.vggsound_audio_dir, vgg_ids, AUDIO_SHAPE[1:], pad=True),
            source=str(paths.vggsound_audio_dir),
            source_files=zip_paths(paths.vggsound_audio_dir, vgg_ids),
        ),
    }
    # Class names: "<UCF name> / <VGGSound name>" so reports show both spellings.
    class_names = [f"{u} / {v}" for u, v in zip(ucf_classes, vgg_classes, strict=True)]
    return TaskData(
        task="ucf-vggsound",
        kind="clip",
        class_names=class_names,
        sets=sets,
        directions={"v2a": ("ucf/video", "vggsound/audio"), "a2v": ("vggsound/audio", "ucf/video")},
    )
