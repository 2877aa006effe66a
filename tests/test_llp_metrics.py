"""LLP metrics (toc.eval.llp_metrics) against a loop-by-loop implementation written here, plus
hand-made cases for the event rule and for what is defined with one modality only."""

from __future__ import annotations

import numpy as np
import pytest

from toc.errors import ConfigError, DataError
from toc.eval.llp_metrics import (
    METRIC_KEYS,
    ModalityParse,
    event_counts,
    llp_scores,
    segment_counts,
)
from toc.report.resampling import RATIO, TYPE_AT_AV, UnitParts

# ---------------------------------------------------------------------------- independent version
# Plain Python over lists of 0/1 per segment; shares nothing with the module.


def _intervals(sequence):
    """[(onset, offset)] of the maximal runs of 1s, offset exclusive."""
    found, start = [], None
    for t, value in enumerate(sequence):
        if value and start is None:
            start = t
        if not value and start is not None:
            found.append((start, t))
            start = None
    if start is not None:
        found.append((start, len(sequence)))
    return found


def _iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union


def _class_counts(pred_seq, gold_seq, level):
    if level == "segment":
        tp = sum(1 for p, g in zip(pred_seq, gold_seq, strict=True) if p and g)
        fp = sum(1 for p, g in zip(pred_seq, gold_seq, strict=True) if p and not g)
        fn = sum(1 for p, g in zip(pred_seq, gold_seq, strict=True) if g and not p)
        return tp, fp, fn
    pe, ge = _intervals(pred_seq), _intervals(gold_seq)
    tp = fp = fn = 0
    for p in pe:
        if any(_iou(p, g) >= 0.5 for g in ge):
            tp += 1
        else:
            fp += 1
    for g in ge:
        if not any(_iou(p, g) >= 0.5 for p in pe):
            fn += 1
    return tp, fp, fn


def _video_score(counts_per_class, empty):
    values = []
    for tp, fp, fn in counts_per_class:
        if tp + fp > 0 or tp + fn > 0:
            values.append(2 * tp / (2 * tp + fp + fn))
    if not values:
        return 1.0 if empty == "one" else None
    return sum(values) / len(values)


def _reference_llp(pa, ga, pv, gv, empty="one"):
    """All ten numbers in %, videos × classes × segments as nested loops."""
    n, t, c = len(pa), len(pa[0]), len(pa[0][0])
    scores = {k: [] for k in METRIC_KEYS}
    for i in range(n):
        for level in ("segment", "event"):
            per_kind = {}
            for kind in ("audio", "visual", "av"):
                rows = []
                for k in range(c):
                    if kind == "audio":
                        p = [pa[i][s][k] for s in range(t)]
                        g = [ga[i][s][k] for s in range(t)]
                    elif kind == "visual":
                        p = [pv[i][s][k] for s in range(t)]
                        g = [gv[i][s][k] for s in range(t)]
                    else:
                        p = [pa[i][s][k] and pv[i][s][k] for s in range(t)]
                        g = [ga[i][s][k] and gv[i][s][k] for s in range(t)]
                    rows.append(_class_counts(p, g, level))
                per_kind[kind] = rows
                score = _video_score(rows, empty)
                if score is not None:
                    scores[f"llp_{level}_{kind}"].append(score)
            pooled = [
                tuple(x + y for x, y in zip(a, v, strict=True))
                for a, v in zip(per_kind["audio"], per_kind["visual"], strict=True)
            ]
            score = _video_score(pooled, empty)
            if score is not None:
                scores[f"llp_{level}_event_at_av"].append(score)
    out = {}
    for key, values in scores.items():
        if values:
            out[key] = 100.0 * sum(values) / len(values)
    for level in ("segment", "event"):
        kinds = [out[f"llp_{level}_{k}"] for k in ("audio", "visual", "av")]
        out[f"llp_{level}_type_at_av"] = sum(kinds) / 3.0
    return out


def _random_parse(rng, n, t, c, density):
    # Runs of events, not independent segments: start and length per event, a few per class.
    out = np.zeros((n, t, c), dtype=bool)
    for i in range(n):
        for k in range(c):
            for _ in range(rng.integers(0, 3)):
                if rng.random() < density:
                    start = int(rng.integers(0, t))
                    out[i, start : start + int(rng.integers(1, t + 1)), k] = True
    # Some segment noise so that runs split and merge.
    flip = rng.random((n, t, c)) < 0.05
    return out ^ flip


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("empty", ["one", "exclude"])
def test_equals_independent_implementation_on_random_parses(seed, empty):
    rng = np.random.default_rng(seed)
    n, t, c = 40, 10, 6
    pa, ga = _random_parse(rng, n, t, c, 0.4), _random_parse(rng, n, t, c, 0.4)
    pv, gv = _random_parse(rng, n, t, c, 0.3), _random_parse(rng, n, t, c, 0.3)
    # A few videos with nothing at all in one modality, to exercise the empty-video rule.
    pa[:3], ga[:3] = False, False
    pv[3:5], gv[3:5] = False, False
    got = llp_scores(ModalityParse(pa, ga), ModalityParse(pv, gv), empty_videos=empty)
    want = _reference_llp(pa.tolist(), ga.tolist(), pv.tolist(), gv.tolist(), empty)
    assert set(got.metrics) == set(METRIC_KEYS) == set(want)
    for key in METRIC_KEYS:
        assert got.metrics[key] == pytest.approx(want[key], abs=1e-9), key
    assert got.empty_videos["audio"] >= 3 and got.empty_videos["visual"] >= 2


def test_single_modality_numbers_equal_the_two_modality_ones():
    rng = np.random.default_rng(5)
    pa, ga = _random_parse(rng, 25, 10, 4, 0.5), _random_parse(rng, 25, 10, 4, 0.5)
    pv, gv = _random_parse(rng, 25, 10, 4, 0.5), _random_parse(rng, 25, 10, 4, 0.5)
    both = llp_scores(ModalityParse(pa, ga), ModalityParse(pv, gv))
    audio_only = llp_scores(audio=ModalityParse(pa, ga))
    visual_only = llp_scores(visual=ModalityParse(pv, gv))
    assert set(audio_only.metrics) == {"llp_segment_audio", "llp_event_audio"}
    assert set(visual_only.metrics) == {"llp_segment_visual", "llp_event_visual"}
    for key, value in {**audio_only.metrics, **visual_only.metrics}.items():
        assert value == both.metrics[key]
    # Everything else is undefined, with a reason that names the missing modality.
    assert set(audio_only.undefined) == set(METRIC_KEYS) - set(audio_only.metrics)
    assert "visual" in audio_only.undefined["llp_segment_type_at_av"]
    assert "audio" in visual_only.undefined["llp_event_event_at_av"]


# ------------------------------------------------------------------------ the event rule by hand


def _one(pred_segments, gold_segments, t=10):
    pred = np.zeros((1, t, 1), dtype=bool)
    gold = np.zeros((1, t, 1), dtype=bool)
    for s in pred_segments:
        pred[0, s, 0] = True
    for s in gold_segments:
        gold[0, s, 0] = True
    c = event_counts(pred, gold)
    return int(c.tp[0, 0]), int(c.fp[0, 0]), int(c.fn[0, 0])


def test_event_rule_iou_at_least_half():
    gold = range(0, 4)  # event [0, 4)
    assert _one(range(0, 2), gold) == (1, 0, 0)  # IoU 2/4 = 0.5: a match (threshold inclusive)
    assert _one(range(0, 1), gold) == (0, 1, 1)  # IoU 1/4
    assert _one(range(1, 5), gold) == (1, 0, 0)  # IoU 3/5
    assert _one(range(2, 6), gold) == (0, 1, 1)  # IoU 2/6
    assert _one(range(0, 7), gold) == (1, 0, 0)  # IoU 4/7: a match although 3 s too long
    assert _one(range(0, 9), gold) == (0, 1, 1)  # IoU 4/9


def test_event_rule_one_long_prediction_over_two_events():
    # gold [0, 2) and [3, 5); prediction [0, 5): IoU 2/5 with each -> one FP, two FN, F1 = 0.
    assert _one(range(0, 5), [0, 1, 3, 4]) == (0, 1, 2)
    # Two predictions each matching one event.
    assert _one([0, 1, 3, 4], [0, 1, 3, 4]) == (2, 0, 0)
    # Onset one second late on a 2-second event: IoU 1/3 -> miss; on a 3-second event: 2/4 -> hit.
    assert _one([1, 2], [0, 1]) == (0, 1, 1)
    assert _one([1, 2, 3], [0, 1, 2]) == (1, 0, 0)
    # Runs that touch the last segment are closed at T.
    assert _one([8, 9], [9]) == (1, 0, 0)


def test_segment_counts_by_hand():
    pred = np.zeros((1, 10, 2), dtype=bool)
    gold = np.zeros((1, 10, 2), dtype=bool)
    pred[0, 0:4, 0] = True
    gold[0, 2:6, 0] = True
    c = segment_counts(pred, gold)
    assert (int(c.tp[0, 0]), int(c.fp[0, 0]), int(c.fn[0, 0])) == (2, 2, 2)
    assert (int(c.tp[0, 1]), int(c.fp[0, 1]), int(c.fn[0, 1])) == (0, 0, 0)


def test_per_video_averaging_and_empty_videos_by_hand():
    t, c = 10, 2
    pa = np.zeros((3, t, c), dtype=bool)
    ga = np.zeros((3, t, c), dtype=bool)
    # Video 0: class 0 perfect (F1 1), class 1 predicted but absent (F1 0) -> 0.5.
    pa[0, 0:3, 0] = ga[0, 0:3, 0] = True
    pa[0, 5:7, 1] = True
    # Video 1: nothing predicted, nothing labelled -> 1.0 under the literature's rule.
    # Video 2: labelled but nothing predicted -> 0.
    ga[2, 4:8, 0] = True
    s = llp_scores(audio=ModalityParse(pa, ga))
    assert s.per_video["llp_segment_audio"].tolist() == [0.5, 1.0, 0.0]
    assert s.metrics["llp_segment_audio"] == pytest.approx(100 * 1.5 / 3)
    assert s.empty_videos == {"audio": 1}
    excluded = llp_scores(audio=ModalityParse(pa, ga), empty_videos="exclude")
    assert excluded.metrics["llp_segment_audio"] == pytest.approx(100 * 0.5 / 2)
    assert np.isnan(excluded.per_video["llp_segment_audio"][1])


def test_audio_visual_is_the_and_of_both_and_event_at_av_pools_counts():
    t, c = 10, 1
    pa, ga, pv, gv = (np.zeros((1, t, c), dtype=bool) for _ in range(4))
    ga[0, 0:6, 0] = True  # heard 0-6
    gv[0, 3:10, 0] = True  # seen 3-10 -> audio-visual 3-6
    pa[0, 0:6, 0] = True  # audio right
    pv[0, 5:10, 0] = True  # visual 5-10 -> audio-visual prediction 5-6
    s = llp_scores(ModalityParse(pa, ga), ModalityParse(pv, gv))
    assert s.metrics["llp_segment_audio"] == 100.0
    assert s.metrics["llp_segment_visual"] == pytest.approx(100 * 2 * 5 / (2 * 5 + 0 + 2))
    assert s.metrics["llp_segment_av"] == pytest.approx(100 * 2 * 1 / (2 * 1 + 0 + 2))
    # Event@AV adds audio and visual counts: tp 6 + 5, fp 0, fn 0 + 2.
    assert s.metrics["llp_segment_event_at_av"] == pytest.approx(100 * 22 / (22 + 2))
    # Event level: audio 1 TP; visual [5,10) vs [3,10) IoU 5/7 -> TP; av [5,6) vs [3,6) 1/3 -> miss.
    assert s.metrics["llp_event_av"] == 0.0
    assert s.metrics["llp_event_type_at_av"] == pytest.approx((100 + 100 + 0) / 3)


# -------------------------------------------------------------------- inputs and bootstrap parts


def test_background_column_dropped_and_bad_input_named():
    rng = np.random.default_rng(0)
    pred = rng.random((4, 10, 4)) < 0.3
    gold = rng.random((4, 10, 4)) < 0.3
    with_bg = np.concatenate([gold, ~gold.any(axis=2, keepdims=True)], axis=2).astype(float)
    pred_bg = np.concatenate([pred, ~pred.any(axis=2, keepdims=True)], axis=2)
    a = llp_scores(audio=ModalityParse(pred, gold))
    b = llp_scores(audio=ModalityParse(pred_bg, with_bg), n_classes=4)
    assert a.metrics == b.metrics
    with pytest.raises(DataError, match="0/1"):
        llp_scores(audio=ModalityParse(pred * 0.7, gold))
    with pytest.raises(DataError, match="shape"):
        llp_scores(audio=ModalityParse(pred[:3], gold))
    with pytest.raises(DataError, match="different videos"):
        llp_scores(
            ModalityParse(pred, gold, ["a", "b", "c", "d"]),
            ModalityParse(pred, gold, ["a", "b", "d", "c"]),
        )
    with pytest.raises(ConfigError):
        llp_scores()
    with pytest.raises(ConfigError):
        llp_scores(audio=ModalityParse(pred, gold), empty_videos="skip")


def test_bootstrap_parts_reproduce_the_metric():
    rng = np.random.default_rng(3)
    pa, ga = _random_parse(rng, 30, 10, 3, 0.4), _random_parse(rng, 30, 10, 3, 0.4)
    pv, gv = _random_parse(rng, 30, 10, 3, 0.4), _random_parse(rng, 30, 10, 3, 0.4)
    pa[:4], ga[:4] = False, False
    for empty in ("one", "exclude"):
        s = llp_scores(ModalityParse(pa, ga), ModalityParse(pv, gv), empty_videos=empty)
        for key, value in s.metrics.items():
            metric = TYPE_AT_AV if key.endswith("type_at_av") else RATIO
            parts = UnitParts.from_runs({"x": {0: s.parts(key)}}, metric, unit="video")
            assert parts.observed()[0] == pytest.approx(value, abs=1e-9), (empty, key)
    with pytest.raises(ConfigError):
        llp_scores(audio=ModalityParse(pa, ga)).parts("llp_segment_av")
