"""AVE: h5 features, per-segment labels reduced to a clip class, train/val/test order files."""

from __future__ import annotations

import numpy as np

from toc.data.base import AUDIO_SHAPE, T_SEGMENTS, VIDEO_SHAPE, FeatureSet, TaskData
from toc.data.files import h5_dataset_shape, h5_rows_reader, read_h5, read_order
from toc.data.layout import AvePaths
from toc.errors import DataError

FEATURE_KEY = "avadataset"
ORDER_KEY = "order"

# Label-column order of labels.h5; column 28 is background. Names 21-27 come from the
# original AVE release; the reference code never uses names.
AVE_CLASSES = [
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mouse", "Accordion", "Mandolin",
]
N_CLASSES = len(AVE_CLASSES)


def clip_targets(segment_labels: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """The reference clip class: argmax over the foreground columns per segment, max over time.

    An all-background clip becomes class 0, as in the reference.
    """
    foreground = np.asarray(segment_labels)[..., :n_classes]
    return foreground.argmax(axis=-1).max(axis=-1).astype(np.int64)


def check_ave_features(paths_visual, paths_audio) -> int:
    """Check both AVE feature files and return their common row count."""
    video_shape = h5_dataset_shape(paths_visual, FEATURE_KEY, (None, *VIDEO_SHAPE), numeric="f")
    audio_shape = h5_dataset_shape(paths_audio, FEATURE_KEY, (None, *AUDIO_SHAPE), numeric="f")
    if video_shape[0] != audio_shape[0]:
        raise DataError(
            "visual and audio feature files have different row counts", file=paths_audio,
            key=FEATURE_KEY, expected=f"{video_shape[0]} rows (as {paths_visual})",
            actual=f"{audio_shape[0]} rows",
        )
    return video_shape[0]


def load_ave(paths: AvePaths) -> TaskData:
    """AVE as two clip-labelled sets over every row named in an order file, with its splits."""
    n_rows = check_ave_features(paths.visual_features, paths.audio_features)
    labels = read_h5(paths.labels, FEATURE_KEY, (n_rows, T_SEGMENTS, N_CLASSES + 1))
    orders = {
        "train": read_order(paths.train_order, n_rows, ORDER_KEY),
        "val": read_order(paths.val_order, n_rows, ORDER_KEY),
        "test": read_order(paths.test_order, n_rows, ORDER_KEY),
    }
    names = list(orders)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = np.intersect1d(orders[first], orders[second])
            if len(shared):
                raise DataError(
                    f"row {int(shared[0])} is in both the {first} and the {second} split "
                    f"({len(shared)} shared rows)",
                    file=getattr(paths, f"{second}_order"), key=ORDER_KEY,
                )
    rows = np.unique(np.concatenate(list(orders.values())))  # ascending: sequential h5 reads
    splits = {name: np.searchsorted(rows, order).astype(np.int64) for name, order in orders.items()}
    targets = clip_targets(labels[rows])
    events = (labels[rows][..., :N_CLASSES] > 0.5).any(axis=-1)  # seconds with a foreground event
    ids = [str(int(r)) for r in rows]
    sets = {
        "ave/audio": FeatureSet(
            name="ave/audio", modality="audio", ids=ids, labels=targets,
            feature_shape=AUDIO_SHAPE,
            read=h5_rows_reader(paths.audio_features, FEATURE_KEY, rows),
            source=str(paths.audio_features), source_files=(str(paths.audio_features),),
            id_kind="row", event_mask=events,
        ),
        "ave/video": FeatureSet(
            name="ave/video", modality="video", ids=ids, labels=targets.copy(),
            feature_shape=VIDEO_SHAPE,
            read=h5_rows_reader(paths.visual_features, FEATURE_KEY, rows),
            source=str(paths.visual_features), source_files=(str(paths.visual_features),),
            id_kind="row", event_mask=events.copy(),
        ),
    }
    return TaskData(
        task="ave",
        kind="clip",
        class_names=list(AVE_CLASSES),
        sets=sets,
        directions={"v2a": ("ave/video", "ave/audio"), "a2v": ("ave/audio", "ave/video")},
        predefined_splits={name: {k: v.copy() for k, v in splits.items()} for name in sets},
    )
