"""Heads: the prototype rule checked against an independent computation; linear heads are seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evalfixtures import single_thread

from toc.eval.heads import (
    ClipHead,
    ClipPrototypePredictor,
    ExpLogLoss,
    LinearHeadConfig,
    SegmentHead,
    SegmentPrototypePredictor,
    cosine_matrix,
    train_linear_head,
)


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def independent_prototype_predictions(train_q, train_y, test_q, n_classes):
    """The clip prototype definition written out plainly, one clip at a time."""
    train_f = train_q.mean(axis=1)
    test_f = test_q.mean(axis=1)
    protos = {c: train_f[train_y == c].mean(axis=0) for c in range(n_classes) if np.any(train_y == c)}
    out = []
    for f in test_f:
        best_c, best_s = None, None
        for c in sorted(protos):
            p = protos[c]
            s = float(f @ p) / (np.linalg.norm(f) * np.linalg.norm(p))
            if best_s is None or s > best_s:
                best_c, best_s = c, s
        out.append(best_c)
    return np.array(out)


def test_clip_prototype_matches_independent_computation():
    rng = np.random.default_rng(3)
    codebook = rng.normal(size=(30, 8))
    train_codes, test_codes = rng.integers(0, 30, (40, 10)), rng.integers(0, 30, (25, 10))
    train_y = rng.integers(0, 5, 40)
    train_y[train_y == 4] = 3  # class 4 has no training clip
    predictor = ClipPrototypePredictor(codebook[train_codes], train_y, 5)
    got = predictor.predict(codebook[test_codes])
    expected = independent_prototype_predictions(codebook[train_codes], train_y, codebook[test_codes], 5)
    np.testing.assert_array_equal(got, expected)
    assert 4 not in got


def test_clip_prototype_ties_go_to_lowest_class_and_zero_norm_is_defined():
    # Classes 1 and 2 have identical prototypes: ties → class 1. A zero feature scores 0 everywhere.
    train = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]]])
    predictor = ClipPrototypePredictor(train, np.array([0, 1, 2]), 3)
    assert predictor.predict(np.array([[[0.0, 2.0]]])).tolist() == [1]
    assert predictor.predict(np.array([[[0.0, 0.0]]])).tolist() == [0]
    assert cosine_matrix(np.zeros((1, 2)), np.ones((1, 2))).tolist() == [[0.0]]


def test_segment_prototype_rule():
    # Two classes + background in 3-D: class 0 along x, class 1 along y, background along z.
    feats = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])
    labels = np.zeros((1, 4, 3))
    labels[0, 0, 0] = labels[0, 3, 0] = labels[0, 1, 1] = labels[0, 2, 2] = 1
    predictor = SegmentPrototypePredictor(feats, labels, 2)
    test = np.array([[[2.0, 0.0, 0.5], [0.0, 3.0, 0.5], [0.0, 0.1, 1.0], [1.0, 1.0, 0.1]]])
    out = predictor.predict(test)
    assert out.shape == (1, 4, 3)
    assert out[0].tolist() == [
        [True, False, False],
        [False, True, False],
        [False, False, True],
        [True, True, False],  # closer to both class prototypes than to background: multi-label
    ]


def test_segment_prototype_never_predicts_untrained_class():
    feats = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    labels = np.zeros((1, 2, 3))
    labels[0, 0, 0] = labels[0, 1, 2] = 1  # class 1 never on
    out = SegmentPrototypePredictor(feats, labels, 2).predict(np.random.default_rng(0).normal(size=(5, 2, 2)))
    assert not out[..., 1].any()
    np.testing.assert_array_equal(out[..., 2], ~out[..., 0])


def test_reference_head_shapes_and_explogloss():
    x = torch.randn(3, 10, 6, dtype=torch.float64)
    assert ClipHead(6, 4)(x).shape == (3, 4)
    assert SegmentHead(6, 5)(x).shape == (30, 5)
    loss = ExpLogLoss(5)
    assert [float(a.detach()) for a in loss.alphas] == pytest.approx([0.1] * 5)
    logits, y = torch.randn(30, 5, dtype=torch.float64), torch.zeros(30, 5, dtype=torch.float64)
    y[:, 0] = 1
    expected = -(torch.log_softmax(logits, -1)[:, 0] * np.exp(-0.1)).mean()
    assert float(loss(logits, y)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("kind", ["clip", "segment"])
def test_linear_head_is_deterministic_per_seed(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 10, 6))
    y = rng.integers(0, 3, 50) if kind == "clip" else (rng.random((50, 10, 4)) < 0.3).astype(float)
    n_out = 3 if kind == "clip" else 4
    config = LinearHeadConfig(epochs=3, batch_size=16)

    def judge(epoch, predictor):
        return float(np.mean(predictor.predict(x[:10]))), {}

    runs = [train_linear_head(kind, x, y, n_out, config, seed, judge) for seed in (5, 5, 6)]
    a, b, c = (r.predictor.predict(x) for r in runs)
    np.testing.assert_array_equal(a, b)
    state_a, state_c = runs[0].predictor.module.state_dict(), runs[2].predictor.module.state_dict()
    assert not torch.equal(state_a["linear.weight"], state_c["linear.weight"])
    assert [h.score for h in runs[0].history] == [h.score for h in runs[1].history]
