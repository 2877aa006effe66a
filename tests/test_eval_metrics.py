"""Metrics: clip accuracy, the reference batch-weighted P/R/F1 (hand-checked), micro and macro F1."""

from __future__ import annotations

import numpy as np
import pytest

from toc.eval.metrics import clip_accuracy, reference_segment_prf, segment_metrics, segment_scores


def test_clip_accuracy_percent():
    assert clip_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 75.0
    with pytest.raises(ValueError):
        clip_accuracy(np.array([0, 1]), np.array([0]))


# Three clips, T = 1, one class + background. Batch size 2 → batches {0, 1} and {2}.
PRED = np.array([[[1, 0]], [[1, 1]], [[0, 0]]], dtype=bool)
LABEL = np.array([[[1, 0]], [[0, 1]], [[1, 0]]], dtype=np.float64)


def test_reference_prf_hand_checked():
    # batch 1: TP 2, predicted 3, labelled 2 → P 2/3, R 1, weight 2.
    # batch 2: nothing predicted → P = R = 0 (the reference rule), weight 1.
    # P = (2/3·2)/3 = 4/9, R = 2/3, F1 = 2PR/(P+R) = 8/15.
    out = reference_segment_prf(PRED, LABEL, batch_size=2)
    assert out["precision"] == pytest.approx(100 * 4 / 9, abs=1e-12)
    assert out["recall"] == pytest.approx(100 * 2 / 3, abs=1e-12)
    assert out["f1"] == pytest.approx(100 * 8 / 15, abs=1e-12)


def test_reference_prf_depends_on_batching_and_one_batch_is_global_micro():
    one_batch = reference_segment_prf(PRED, LABEL, batch_size=80)
    # One batch: TP 2 of 3 predicted, 3 labelled (background counted).
    assert one_batch["precision"] == pytest.approx(100 * 2 / 3)
    assert one_batch["recall"] == pytest.approx(100 * 2 / 3)
    assert one_batch != reference_segment_prf(PRED, LABEL, batch_size=2)


def test_strict_scores_leave_background_out():
    out = segment_scores(PRED, LABEL, n_classes=1)
    # Foreground column only: predicted [1,1,0], labelled [1,0,1] → TP 1.
    assert out == {"precision": 50.0, "recall": 50.0, "f1": 50.0, "macro_f1": 50.0}


def test_macro_f1_skips_classes_absent_everywhere():
    pred = np.zeros((2, 1, 4), bool)
    label = np.zeros((2, 1, 4))
    pred[0, 0, 0] = label[0, 0, 0] = True  # class 0 perfect
    label[1, 0, 1] = 1  # class 1 missed → F1 0; class 2 absent from both → skipped
    out = segment_scores(pred, label, n_classes=3)
    assert out["macro_f1"] == pytest.approx(50.0)
    assert out["precision"] == 100.0 and out["recall"] == 50.0


def test_segment_metrics_reference_adds_strict_fields():
    out = segment_metrics(PRED, LABEL, 1, "reference", batch_size=2)
    assert set(out) == {"precision", "recall", "f1", "macro_f1", "micro_precision", "micro_recall", "micro_f1"}
    assert out["micro_f1"] == 50.0
    assert set(segment_metrics(PRED, LABEL, 1, "strict")) == {"precision", "recall", "f1", "macro_f1"}
