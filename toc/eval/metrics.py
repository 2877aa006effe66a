"""Metrics in %: clip accuracy, the reference batch-weighted segment P/R/F1, micro and macro F1."""

from __future__ import annotations

import numpy as np

from toc.vocabulary import HEAD_BATCH_SIZE


def clip_accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    """100 * (#clips predicted right) / #clips."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"predictions {predicted.shape} and targets {target.shape} must be equal 1-D shapes")
    if target.size == 0:
        return 0.0
    return 100.0 * int(np.sum(predicted == target)) / int(target.size)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def reference_segment_prf(predicted: np.ndarray, labels: np.ndarray, batch_size: int = HEAD_BATCH_SIZE) -> dict[str, float]:
    """The published P/R/F1 (quirks Q11/Q12 in docs/evaluation.md), in %.

    `predicted` and `labels` are [N, T, C+1] booleans / 0-1, background column included. Clips are
    cut into evaluation batches of `batch_size` in order; per batch P = TP/#predicted and
    R = TP/#labelled over the whole [B*T, C+1] matrix, both 0 when the batch predicts nothing;
    P and R are the means of the batch values weighted by B*T; F1 = 2PR/(P+R), 0 when P+R = 0
    (the TOC scripts would raise there; ACL25 returns 0).
    """
    predicted = np.asarray(predicted, dtype=bool)
    labels = np.asarray(labels) > 0.5
    if predicted.shape != labels.shape or predicted.ndim != 3:
        raise ValueError(f"predictions {predicted.shape} and labels {labels.shape} must be equal [N, T, C] shapes")
    n, steps = predicted.shape[:2]
    weighted_p = weighted_r = total = 0.0
    for start in range(0, n, batch_size):
        pred_b, lab_b = predicted[start : start + batch_size], labels[start : start + batch_size]
        weight = pred_b.shape[0] * steps
        n_pred, n_label = int(pred_b.sum()), int(lab_b.sum())
        tp = int(np.logical_and(pred_b, lab_b).sum())
        if n_pred == 0:
            p_b = r_b = 0.0
        else:
            p_b = tp / n_pred
            r_b = tp / n_label if n_label else 0.0
        weighted_p += p_b * weight
        weighted_r += r_b * weight
        total += weight
    precision = weighted_p / total if total else 0.0
    recall = weighted_r / total if total else 0.0
    return {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * _f1(precision, recall)}


def segment_scores(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """Global micro P/R/F1 and per-class macro-F1 over the foreground classes, in %.

    The background column (index `n_classes`, if present) is left out: it is the absence of an
    event, and counting it rewards predicting nothing. Micro P (R) is 0 when nothing is
    predicted (labelled). Macro-F1 averages F1 over the classes that occur in the labels or the
    predictions; a class absent from both is undefined and skipped (0 when every class is).
    """
    predicted = np.asarray(predicted, dtype=bool)[..., :n_classes].reshape(-1, n_classes)
    labels = (np.asarray(labels) > 0.5)[..., :n_classes].reshape(-1, n_classes)
    tp_c = np.logical_and(predicted, labels).sum(axis=0)
    pred_c = predicted.sum(axis=0)
    label_c = labels.sum(axis=0)
    tp, n_pred, n_label = int(tp_c.sum()), int(pred_c.sum()), int(label_c.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_label if n_label else 0.0
    per_class = []
    for c in range(n_classes):
        if pred_c[c] == 0 and label_c[c] == 0:
            continue
        per_class.append(2.0 * tp_c[c] / (pred_c[c] + label_c[c]))
    macro = float(np.mean(per_class)) if per_class else 0.0
    return {
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * _f1(precision, recall),
        "macro_f1": 100.0 * macro,
    }


def segment_metrics(predicted: np.ndarray, labels: np.ndarray, n_classes: int, protocol: str, batch_size: int = HEAD_BATCH_SIZE) -> dict[str, float]:
    """The `metrics` dict of a segment task under `protocol`.

    strict: global micro P/R/F1 and macro-F1 on the foreground classes.
    reference: the batch-weighted P/R/F1 with background (what the papers report), plus the
    strict numbers as micro_precision / micro_recall / micro_f1 / macro_f1 for comparison.
    """
    strict = segment_scores(predicted, labels, n_classes)
    if protocol == "strict":
        return strict
    reference = reference_segment_prf(predicted, labels, batch_size)
    return {
        **reference,
        "macro_f1": strict["macro_f1"],
        "micro_precision": strict["precision"],
        "micro_recall": strict["recall"],
        "micro_f1": strict["f1"],
    }


# Per-unit parts: additive pieces whose sums give a metric, so a bootstrap over clips or videos
# (toc.report.resampling) can recompute it from resampled sums.


def correctness_parts(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-clip 0/1 correctness `[N, 1]`: the parts of ACCURACY (`clip_accuracy`)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"predictions {predicted.shape} and targets {target.shape} must be equal 1-D shapes")
    return (predicted == target).astype(np.float64)[:, None]


def segment_count_parts(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-video foreground counts `[N, 3]` = (tp, n_pred, n_label) over [T, n_classes].

    Their sums give exactly the global micro P/R/F1 of `segment_scores` (background,
    column `n_classes` if present, left out), so MICRO_F1 on these parts is that number.
    """
    predicted = np.asarray(predicted, dtype=bool)
    labels = np.asarray(labels) > 0.5
    if predicted.shape != labels.shape or predicted.ndim != 3:
        raise ValueError(f"predictions {predicted.shape} and labels {labels.shape} must be equal [N, T, C] shapes")
    p, y = predicted[..., :n_classes], labels[..., :n_classes]
    return np.stack(
        [(p & y).sum(axis=(1, 2)), p.sum(axis=(1, 2)), y.sum(axis=(1, 2))], axis=1
    ).astype(np.float64)
