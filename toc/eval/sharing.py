"""Do a checkpoint's audio and video land on the same code ids? The code-sharing measures
(hdcid.diagnostics.pair_measures) on a downstream task's held-out clips, per codebook level.

Which clips: the audio clips the strict protocol evaluates in direction v2a and the video clips
it evaluates in a2v (AVE: the test split; tasks without predefined splits: the held-out videos
of the seeded video-level split), paired by clip id. Which seconds: the event seconds where the
task says which they are (AVE's annotated event seconds; a segment task's seconds where the
audio or the visual label has a foreground event), else every second. Labels (clip tasks) give
the per-class overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdcid.diagnostics import PairMeasures, pair_measures
from hdcid.vocabulary import DEFAULT_DTYPE
from toc.data.base import FeatureSet, TaskData
from toc.errors import ConfigError
from toc.eval.cache import CodeCache
from toc.eval.protocols import plan_direction
from toc.eval.variants import method_of_checkpoint

SHARING_SPLIT = "strict protocol's evaluated clips (v2a audio, a2v video), paired by id"


@dataclass(frozen=True)
class TaskSharing:
    """The audio–video measures of one checkpoint on one task's held-out clips."""

    task: str
    split: str
    clips: int  # paired clips measured
    event_seconds: bool  # True: only the event seconds; False: every second
    positions: int  # (clip, second) positions measured
    levels: list[PairMeasures] = field(default_factory=list)  # one per codebook level

    def as_dict(self) -> dict:
        return {
            "task": self.task, "split": self.split, "clips": self.clips, "event_seconds": self.event_seconds,
            "positions": self.positions,
            "levels": [{"level": level, **m.as_dict()} for level, m in enumerate(self.levels)],
        }


def _event_seconds(data: TaskData, feature_set: FeatureSet, rows: np.ndarray) -> np.ndarray | None:
    if feature_set.event_mask is not None:
        return np.asarray(feature_set.event_mask, dtype=bool)[rows]
    if data.kind == "segment":
        # Segment labels [N, T, C+1]: a foreground column on.
        return (np.asarray(feature_set.labels)[rows][..., : data.n_classes] > 0.5).any(axis=-1)
    return None


def measure_code_sharing(data: TaskData, cache: CodeCache, *, dtype: str = DEFAULT_DTYPE, split_seed: int = 0) -> TaskSharing:
    """The code-sharing measures of the cache's checkpoint on `data`'s held-out paired clips."""
    method = method_of_checkpoint(getattr(cache.source, "family", None), cache.source.levels)
    plans = {d: plan_direction(data, d, "strict", split_seed=split_seed, method=method) for d in ("v2a", "a2v")}
    audio_rows, video_rows = plans["v2a"].evaluate, plans["a2v"].evaluate
    audio_set, video_set = data.sets[audio_rows.set_name], data.sets[video_rows.set_name]
    if (audio_set.modality, video_set.modality) != ("audio", "video"):
        raise ConfigError(
            f"task {data.task}: v2a must evaluate an audio set and a2v a video set, got "
            f"{audio_set.modality} and {video_set.modality}"
        )
    position = {str(video_set.ids[r]): r for r in video_rows.rows}
    pairs = [(int(r), position[str(audio_set.ids[r])]) for r in audio_rows.rows if str(audio_set.ids[r]) in position]
    if not pairs:
        raise ConfigError(
            f"task {data.task}: its held-out audio and video clips share no clip id, so no second is paired "
            "(the code-sharing measures need the same clips in both modalities)"
        )
    a_rows = np.array([a for a, _ in pairs], dtype=np.int64)
    v_rows = np.array([v for _, v in pairs], dtype=np.int64)
    audio_codes, video_codes = cache.get(data.task, audio_set, dtype), cache.get(data.task, video_set, dtype)
    masks = [m for m in (_event_seconds(data, audio_set, a_rows), _event_seconds(data, video_set, v_rows)) if m is not None]
    mask = np.logical_or.reduce(masks) if masks else None
    labels = np.asarray(audio_set.labels)[a_rows] if data.kind == "clip" else None
    levels = [
        pair_measures(audio_codes.codes[level][a_rows], video_codes.codes[level][v_rows], labels=labels, mask=mask)
        for level in range(audio_codes.levels)
    ]
    steps = audio_codes.codes[0].shape[1]
    return TaskSharing(
        task=data.task, split=SHARING_SPLIT, clips=len(pairs), event_seconds=mask is not None,
        positions=int(mask.sum()) if mask is not None else len(pairs) * steps, levels=levels,
    )
