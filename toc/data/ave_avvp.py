"""AVE→AVVP: train on AVE h5 features with 12-class labels, test on AVVP zipped features."""

from __future__ import annotations

import numpy as np

from toc.data.ave import FEATURE_KEY, ORDER_KEY, check_ave_features
from toc.data.avvp import read_segment_table, segment_feature_set
from toc.data.base import AUDIO_SHAPE, T_SEGMENTS, VIDEO_SHAPE, FeatureSet, TaskData
from toc.data.files import h5_dataset_shape, h5_rows_reader, read_class_list, read_h5, read_order
from toc.data.layout import AveAvvpPaths
from toc.errors import DataError


def load_ave_avvp(paths: AveAvvpPaths) -> TaskData:
    """Train sets: AVE rows of the order file; test sets: the rows of the 12-class AVVP CSVs."""
    class_names = read_class_list(paths.categories)
    n_columns = len(class_names) + 1
    n_features = check_ave_features(paths.visual_features, paths.audio_features)
    label_shape = h5_dataset_shape(paths.labels, FEATURE_KEY, (None, T_SEGMENTS, n_columns))
    # The labels are indexed by the global AVE row, like the features.
    n_rows = min(n_features, label_shape[0])
    order = read_order(paths.order, n_rows, ORDER_KEY)
    all_labels = read_h5(paths.labels, FEATURE_KEY, (None, T_SEGMENTS, n_columns))
    train_labels = all_labels[order].astype(np.float64)
    if train_labels.min() < 0.0 or train_labels.max() > 1.0:
        raise DataError(
            "segment labels outside 0..1", file=paths.labels, key=FEATURE_KEY,
            expected="values in [0,1]",
            actual=f"{train_labels.min():g}..{train_labels.max():g}",
        )
    ids = [str(int(r)) for r in order]
    train_audio = FeatureSet(
        name="ave-avvp-train/audio", modality="audio", ids=ids, labels=train_labels,
        feature_shape=AUDIO_SHAPE, read=h5_rows_reader(paths.audio_features, FEATURE_KEY, order),
        source=str(paths.audio_features), source_files=(str(paths.audio_features),), id_kind="row",
    )
    train_video = FeatureSet(
        name="ave-avvp-train/video", modality="video", ids=list(ids), labels=train_labels.copy(),
        feature_shape=VIDEO_SHAPE, read=h5_rows_reader(paths.visual_features, FEATURE_KEY, order),
        source=str(paths.visual_features), source_files=(str(paths.visual_features),), id_kind="row",
    )
    audio_table = read_segment_table(paths.audio_csv, class_names)
    visual_table = read_segment_table(paths.visual_csv, class_names)
    test_audio = segment_feature_set(
        "ave-avvp-test/audio", "audio", audio_table, paths.audio_dir, listed_in=paths.audio_csv
    )
    test_video = segment_feature_set(
        "ave-avvp-test/video", "video", visual_table, paths.video_dir, listed_in=paths.visual_csv
    )
    sets = {s.name: s for s in (train_audio, train_video, test_audio, test_video)}
    return TaskData(
        task="ave-avvp",
        kind="segment",
        class_names=class_names,
        sets=sets,
        directions={
            "v2a": ("ave-avvp-train/video", "ave-avvp-test/audio"),
            "a2v": ("ave-avvp-train/audio", "ave-avvp-test/video"),
        },
    )
