"""The LLP metrics of the audio-visual video parsing (AVVP) literature, in %.

Tian et al. (ECCV 2020, "Unified Multisensory Perception: Weakly-Supervised Audio-Visual Video
Parsing") score a parse of each test video into audio events, visual events and audio-visual
events (on in both) with F1 values computed PER VIDEO and then averaged over the videos:

* segment level: per class c, over the video's T one-second segments, tp/fp/fn of the
  predictions against the labels; F1_c = 2tp / (2tp + fp + fn).
* event level: an event is a maximal run of consecutive positive segments of one class
  (onset = its first segment, offset = one past its last, so 1-second resolution). A predicted
  event is a true positive when its segment IoU with some labelled event of the same class is
  at least 0.5 (|p ∩ g| >= 0.5 · |p ∪ g|); otherwise a false positive. A labelled event that no
  predicted event overlaps with IoU >= 0.5 is a false negative. (Events of one class are
  separated by at least one negative segment, so a predicted event can match at most one
  labelled event and vice versa.) F1_c = 2tp / (2tp + fp + fn) over these event counts.
* per video: the mean of F1_c over the classes that have anything predicted or labelled in
  that video. A video where NO class has anything predicted or labelled (for that kind:
  audio, visual or audio-visual) scores 1.0 ("all true negatives"), the literature's rule
  (`empty_videos="one"`); `empty_videos="exclude"` leaves such videos out of that kind's mean.
  A video with predictions but no labels of a kind scores 0 for it.
* audio-visual: labels and predictions are the segment-wise AND of the audio and the visual
  ones (an audio-visual event is audible and visible at once).
* Type@AV: the mean of the audio, visual and audio-visual scores.
* Event@AV: per video and class, the audio and visual tp/fp/fn are added before F1_c, then the
  per-video mean and the average over videos as above.

Our cross-modal tasks evaluate one modality per direction: v2a predicts audio events (labels
from the audio annotations) and a2v visual events. With one modality only its own segment and
event F1 are defined; audio-visual, Type@AV and Event@AV need both modalities' predictions on
the same videos and are reported as undefined (with the reason) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from toc.errors import ConfigError, DataError

EMPTY_VIDEO_RULES = ("one", "exclude")
IOU_THRESHOLD = 0.5

# Metric keys (values in %). "segment"/"event" is the level; audio, visual, av = audio-visual.
SEGMENT_AUDIO = "llp_segment_audio"
SEGMENT_VISUAL = "llp_segment_visual"
SEGMENT_AV = "llp_segment_av"
SEGMENT_TYPE = "llp_segment_type_at_av"
SEGMENT_EVENT = "llp_segment_event_at_av"
EVENT_AUDIO = "llp_event_audio"
EVENT_VISUAL = "llp_event_visual"
EVENT_AV = "llp_event_av"
EVENT_TYPE = "llp_event_type_at_av"
EVENT_EVENT = "llp_event_event_at_av"
METRIC_KEYS = (
    SEGMENT_AUDIO,
    SEGMENT_VISUAL,
    SEGMENT_AV,
    SEGMENT_TYPE,
    SEGMENT_EVENT,
    EVENT_AUDIO,
    EVENT_VISUAL,
    EVENT_AV,
    EVENT_TYPE,
    EVENT_EVENT,
)


@dataclass(frozen=True)
class ModalityParse:
    """One modality's per-segment event predictions and labels on the evaluated videos.

    predicted, labels: [N, T, C] 0/1 (bool or numbers), foreground classes only; with
    `n_classes` given to `llp_scores`, a trailing background column ([N, T, C + 1]) is dropped.
    video_ids: optional, to check that two modalities are aligned video by video.
    """

    predicted: np.ndarray
    labels: np.ndarray
    video_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class EventCounts:
    """Per video and class counts `[N, C]` at one level for one kind of event."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class LLPScores:
    """The LLP metrics that are defined for the given modalities, and why the others are not."""

    n_videos: int
    n_classes: int
    empty_videos_rule: str
    metrics: dict[str, float]  # defined keys only, in %
    per_video: dict[str, np.ndarray]  # key -> [N] per-video score in [0, 1]; NaN = excluded video
    undefined: dict[str, str]  # key -> reason
    # "audio" / "visual" / "av" -> number of videos with nothing predicted and nothing labelled
    empty_videos: dict[str, int]
    modalities: tuple[str, ...] = field(default=())

    def parts(self, key: str) -> np.ndarray:
        """Per-video additive parts of `key` for the bootstrap of `toc.report.resampling`.

        (score · counted, counted) per video, for the metric `toc.report.resampling.RATIO`: the mean
        over the counted videos is Σ(score · counted) / Σcounted. The two Type@AV keys give the
        three pairs of audio, visual and audio-visual, for `toc.report.resampling.TYPE_AT_AV`.
        """
        if key not in self.metrics:
            raise ConfigError(
                f"LLP metric {key} is not defined here: {self.undefined.get(key, 'unknown key')}"
            )
        if key in (SEGMENT_TYPE, EVENT_TYPE):
            level = "segment" if key == SEGMENT_TYPE else "event"
            columns = [self.parts(f"llp_{level}_{kind}") for kind in ("audio", "visual", "av")]
            return np.concatenate(columns, axis=1)
        values = self.per_video[key]
        counted = np.isfinite(values).astype(np.float64)
        return np.stack([np.where(counted > 0, values, 0.0), counted], axis=1)


def _as_binary(array: np.ndarray, what: str, n_classes: int | None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 3:
        raise DataError(
            f"LLP {what} must be [videos, segments, classes]",
            expected="3 dimensions",
            actual=a.shape,
        )
    if n_classes is not None:
        if a.shape[2] not in (n_classes, n_classes + 1):
            raise DataError(
                f"LLP {what}: wrong class count",
                expected=f"{n_classes} or {n_classes + 1} (with background)",
                actual=a.shape[2],
            )
        a = a[..., :n_classes]
    if a.dtype != bool:
        if not np.isin(a, (0, 1)).all():
            raise DataError(f"LLP {what} must be 0/1 per segment and class")
        a = a.astype(bool)
    return a


def segment_counts(predicted: np.ndarray, labels: np.ndarray) -> EventCounts:
    """tp / fp / fn over the segments of each video and class: [N, T, C] -> [N, C]."""
    return EventCounts(
        tp=np.sum(predicted & labels, axis=1),
        fp=np.sum(predicted & ~labels, axis=1),
        fn=np.sum(~predicted & labels, axis=1),
    )


def _runs(on: np.ndarray):
    """Maximal runs of True along the last axis of [M, T].

    Returns (run id of every segment, meaningful where `on`), the sequence each run belongs
    to, and each run's length.
    """
    before = np.zeros_like(on)
    before[:, 1:] = on[:, :-1]
    starts = on & ~before
    run_id = np.cumsum(starts.ravel()).reshape(on.shape) - 1
    owner = np.flatnonzero(starts.ravel()) // on.shape[1]
    lengths = np.bincount(run_id[on], minlength=owner.size)
    return run_id, owner, lengths


def event_counts(
    predicted: np.ndarray, labels: np.ndarray, iou: float = IOU_THRESHOLD
) -> EventCounts:
    """Event-level tp / fp / fn per video and class, [N, T, C] -> [N, C] (rule: module text)."""
    n, t, c = predicted.shape
    # One row per (video, class) sequence of T segments.
    pred = np.ascontiguousarray(predicted.transpose(0, 2, 1)).reshape(n * c, t)
    gold = np.ascontiguousarray(labels.transpose(0, 2, 1)).reshape(n * c, t)
    pred_id, pred_owner, pred_len = _runs(pred)
    gold_id, gold_owner, gold_len = _runs(gold)
    both = pred & gold
    pred_matched = np.zeros(pred_owner.size, dtype=bool)
    gold_matched = np.zeros(gold_owner.size, dtype=bool)
    if both.any():
        # Overlap of every (predicted run, labelled run) pair that shares a segment.
        pair = pred_id[both].astype(np.int64) * max(gold_owner.size, 1) + gold_id[both]
        keys, overlap = np.unique(pair, return_counts=True)
        p_run, g_run = keys // max(gold_owner.size, 1), keys % max(gold_owner.size, 1)
        union = pred_len[p_run] + gold_len[g_run] - overlap
        hit = overlap >= iou * union
        pred_matched[p_run[hit]] = True
        gold_matched[g_run[hit]] = True
    m = n * c
    tp = np.bincount(pred_owner[pred_matched], minlength=m)
    fp = np.bincount(pred_owner[~pred_matched], minlength=m)
    fn = np.bincount(gold_owner[~gold_matched], minlength=m)
    return EventCounts(tp=tp.reshape(n, c), fp=fp.reshape(n, c), fn=fn.reshape(n, c))


def per_video_f1(counts: EventCounts, empty_videos: str = "one") -> np.ndarray:
    """[N]: mean over the classes with any tp, fp or fn of 2tp / (2tp + fp + fn).

    A video without any (nothing predicted, nothing labelled) is 1.0 under "one" and NaN
    (left out of the mean) under "exclude".
    """
    if empty_videos not in EMPTY_VIDEO_RULES:
        raise ConfigError(
            f"empty_videos must be one of {', '.join(EMPTY_VIDEO_RULES)}, got {empty_videos!r}"
        )
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (counts.tp, counts.fp, counts.fn))
    active = (tp + fp + fn) > 0
    f1 = np.where(active, 2 * tp / np.where(active, 2 * tp + fp + fn, 1.0), 0.0)
    n_active = active.sum(axis=1)
    mean = f1.sum(axis=1) / np.maximum(n_active, 1)
    empty_value = 1.0 if empty_videos == "one" else np.nan
    return np.where(n_active > 0, mean, empty_value)


def _mean_percent(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return None if finite.size == 0 else 100.0 * float(finite.mean())


def llp_scores(
    audio: ModalityParse | None = None,
    visual: ModalityParse | None = None,
    *,
    n_classes: int | None = None,
    empty_videos: str = "one",
) -> LLPScores:
    """The LLP metrics for whatever is given: audio only (v2a), visual only (a2v) or both.

    Both modalities must cover the same videos in the same order (checked by shape and, where
    both give them, by video ids).
    """
    if empty_videos not in EMPTY_VIDEO_RULES:
        raise ConfigError(
            f"empty_videos must be one of {', '.join(EMPTY_VIDEO_RULES)}, got {empty_videos!r}"
        )
    given = {name: p for name, p in (("audio", audio), ("visual", visual)) if p is not None}
    if not given:
        raise ConfigError("LLP metrics need audio or visual predictions with their labels")
    arrays = {}
    for name, parse in given.items():
        pred = _as_binary(parse.predicted, f"{name} predictions", n_classes)
        gold = _as_binary(parse.labels, f"{name} labels", n_classes)
        if pred.shape != gold.shape:
            raise DataError(
                f"LLP {name}: predictions and labels differ in shape",
                expected=gold.shape,
                actual=pred.shape,
            )
        if parse.video_ids is not None and len(parse.video_ids) != pred.shape[0]:
            raise DataError(
                f"LLP {name}: one video id per video",
                expected=pred.shape[0],
                actual=len(parse.video_ids),
            )
        arrays[name] = (pred, gold)
    if len(arrays) == 2:
        (pa, _), (pv, _) = arrays["audio"], arrays["visual"]
        if pa.shape != pv.shape:
            raise DataError(
                "LLP: audio and visual parses must cover the same videos, segments and classes",
                expected=pa.shape,
                actual=pv.shape,
            )
        ids_a, ids_v = audio.video_ids, visual.video_ids  # type: ignore[union-attr]
        if (
            ids_a is not None
            and ids_v is not None
            and [str(i) for i in ids_a] != [str(i) for i in ids_v]
        ):
            raise DataError("LLP: audio and visual parses list different videos (or another order)")
    first = next(iter(arrays.values()))[0]
    n_videos, _, classes = first.shape

    per_video: dict[str, np.ndarray] = {}
    undefined: dict[str, str] = {}
    empty: dict[str, int] = {}
    counts: dict[tuple[str, str], EventCounts] = {}
    kinds = dict(arrays)
    if len(arrays) == 2:
        (pa, ga), (pv, gv) = arrays["audio"], arrays["visual"]
        kinds["av"] = (pa & pv, ga & gv)
    for kind, (pred, gold) in kinds.items():
        empty[kind] = int(np.sum(~(pred.any(axis=(1, 2)) | gold.any(axis=(1, 2)))))
        for level, count in (("segment", segment_counts), ("event", event_counts)):
            counts[(level, kind)] = count(pred, gold)
            per_video[f"llp_{level}_{kind}"] = per_video_f1(counts[(level, kind)], empty_videos)

    missing = "visual" if "audio" in arrays else "audio"
    need_both = (
        f"needs audio and visual predictions on the same videos; only {next(iter(arrays))} "
        f"events were predicted here (no {missing} parse)"
    )
    for level in ("segment", "event"):
        if len(arrays) == 2:
            per_video[f"llp_{level}_event_at_av"] = per_video_f1(
                counts[(level, "audio")] + counts[(level, "visual")], empty_videos
            )
        else:
            undefined[f"llp_{level}_{missing}"] = f"no {missing} predictions and labels were given"
            for suffix in ("av", "type_at_av", "event_at_av"):
                undefined[f"llp_{level}_{suffix}"] = need_both

    metrics: dict[str, float] = {}
    for key, values in per_video.items():
        mean = _mean_percent(values)
        if mean is None:
            undefined[key] = "every video was empty for this kind and empty videos are excluded"
        else:
            metrics[key] = mean
    for level in ("segment", "event"):
        parts = [metrics.get(f"llp_{level}_{kind}") for kind in ("audio", "visual", "av")]
        key = f"llp_{level}_type_at_av"
        if key not in undefined:
            if any(p is None for p in parts):
                undefined[key] = "one of the audio, visual or audio-visual scores is undefined"
            else:
                metrics[key] = sum(parts) / 3.0  # type: ignore[arg-type]
    ordered = {k: metrics[k] for k in METRIC_KEYS if k in metrics}
    return LLPScores(
        n_videos=int(n_videos),
        n_classes=int(classes),
        empty_videos_rule=empty_videos,
        metrics=ordered,
        per_video={k: per_video[k] for k in METRIC_KEYS if k in per_video},
        undefined={k: undefined[k] for k in METRIC_KEYS if k in undefined},
        empty_videos=empty,
        modalities=tuple(arrays),
    )
