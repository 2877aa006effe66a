"""The contract between on-disk loaders and the evaluation loop: feature sets and task data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from toc.errors import DataError

Modality = Literal["audio", "video"]
LabelKind = Literal["clip", "segment"]
IdKind = Literal["video", "row"]

# The published feature shapes: 10 one-second segments per clip, VGGish audio (128 per second)
# and VGG19 pool5 video (a 7 x 7 grid of 512 channels per second).
T_SEGMENTS = 10
AUDIO_DIM = 128
VIDEO_GRID = 7
VIDEO_CHANNELS = 512
AUDIO_SHAPE = (T_SEGMENTS, AUDIO_DIM)
VIDEO_SHAPE = (T_SEGMENTS, VIDEO_GRID, VIDEO_GRID, VIDEO_CHANNELS)


@dataclass(frozen=True)
class FeatureSet:
    """The clips of one modality from one source, with their labels; features are read lazily.

    Features of a real set do not fit in memory (AVE video is 8 GB in float64), so they are read
    in batches through `read`, which returns float64 arrays `[len(rows), *feature_shape]`.
    """

    name: str  # cache key part, unique within a task, e.g. "ave/audio", "avvp-audio-csv/audio"
    modality: Modality
    ids: Sequence[str]  # one video id per row: the unit of the strict (video-level) split
    labels: np.ndarray  # clip tasks: int64 [N]; segment tasks: float64 [N, T, C+1], background last
    feature_shape: tuple[int, ...]
    read: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    source: str = ""  # the file(s) the features come from, for messages
    # Every file the features are read from: the encode cache fingerprints them, so a rebuilt
    # corpus is re-encoded even when its ids are the same. Empty for in-memory sets.
    source_files: tuple[str, ...] = ()
    # "video": ids are video ids (YouTube ids, UCF clip names) that other lists can name too;
    # "row": ids are row numbers of a file (AVE), meaningless outside it.
    id_kind: IdKind = "video"
    # bool [N, T]: the seconds that hold an event (AVE's annotated event seconds), for the
    # code-sharing measures; None when the set does not say (segment labels say it themselves).
    event_mask: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TaskData:
    """Everything a task needs: its feature sets and which set trains / evaluates each direction.

    `directions["v2a"] == (train_set_name, eval_set_name)`: the head is trained on the first set
    (video) and evaluated on the second (audio). `predefined_splits` maps a set name to named row
    index arrays (AVE: "train", "val", "test"); tasks without one get a seeded video-level split.
    """

    task: str
    kind: LabelKind
    class_names: list[str]  # foreground classes, in label-column / class-index order
    sets: dict[str, FeatureSet]
    directions: dict[str, tuple[str, str]]
    predefined_splits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def require_float_features(dtype: np.dtype, *, file, key: str | None, message: str = "features must be floats") -> None:
    """Features are floats: an integer or boolean array is a label, index or mask stored under the
    wrong key far more often than a feature, and encoding it would look like a result."""
    if np.dtype(dtype).kind != "f":
        raise DataError(message, file=file, key=key, expected="a float dtype", actual=str(dtype))
