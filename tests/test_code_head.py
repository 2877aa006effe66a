"""The code-id head sees only code ids: chance on disjoint codes, codeword-head level on shared ones."""

from __future__ import annotations

import numpy as np
import pytest
from evalfixtures import FakeCodeSource, clip_task, codebooks, segment_task, single_thread

from toc.errors import ConfigError
from toc.eval.cache import CodeCache
from toc.eval.code_head import ClipCodePredictor, SegmentCodePredictor, fit_code_head
from toc.eval.heads import ClipPrototypePredictor
from toc.eval.loop import EvalRequest, run_evaluation
from toc.vocabulary import HEADS

N_CODES, N_CLASSES, T = 40, 4, 10


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def _clips(rng: np.random.Generator, n: int, offset: int, purity: float = 0.8):
    """Clips of N_CLASSES classes; class c owns ids [offset + 5c, offset + 5c + 5); a segment takes
    one of its class' ids with probability `purity`, else the background id offset + 39."""
    labels = np.arange(n) % N_CLASSES
    own = offset + 5 * labels[:, None] + rng.integers(0, 5, size=(n, T))
    codes = np.where(rng.random((n, T)) < purity, own, np.full((n, T), offset + 39))
    return codes, labels


def test_disjoint_codes_transfer_at_chance():
    rng = np.random.default_rng(0)
    source, labels = _clips(rng, 80, offset=0)
    target = source + 40  # the other modality uses ids 40..79: none seen in training
    head = ClipCodePredictor(source, labels, N_CLASSES, (80,))
    assert not head.seen[0][40:].any()
    # Unseen ids add no evidence: every clip gets the (balanced) prior's first class.
    predicted = head.predict(target)
    assert (predicted == 0).all()
    assert (predicted == labels).mean() == pytest.approx(1 / N_CLASSES)
    # Within the source modality the same head is nearly perfect.
    assert (head.predict(source) == labels).mean() > 0.95


def test_shared_codes_transfer_near_the_codeword_head():
    rng = np.random.default_rng(1)
    # Mostly background (purity 0.25), so neither head is perfect.
    train_codes, train_labels = _clips(rng, 80, offset=0, purity=0.25)
    test_codes, test_labels = _clips(rng, 400, offset=0, purity=0.25)
    codebook = rng.normal(size=(N_CODES, 16))
    code_id = float((ClipCodePredictor(train_codes, train_labels, N_CLASSES, (N_CODES,)).predict(test_codes) == test_labels).mean())
    prototype = ClipPrototypePredictor(codebook[train_codes], train_labels, N_CLASSES)
    codeword = float((prototype.predict(codebook[test_codes]) == test_labels).mean())
    assert 0.75 < codeword < 1.0
    # No worse than the codeword head by more than 5 points (here it is better: the ids are exact).
    assert code_id >= codeword - 0.05


def test_posterior_is_laplace_smoothed_and_evidence_is_relative_to_the_prior():
    codes = np.array([[0, 0, 1], [1, 1, 1]])
    labels = np.array([0, 1])  # id 0: 2x class 0; id 1: 1x class 0, 3x class 1; id 2 unseen
    head = ClipCodePredictor(codes, labels, 2, (3,), smoothing=1.0)
    prior = np.array([3 / 6, 3 / 6])
    np.testing.assert_allclose(head.evidence[0][0], np.log(np.array([3 / 4, 1 / 4]) / prior))
    np.testing.assert_allclose(head.evidence[0][1], np.log(np.array([2 / 6, 4 / 6]) / prior))
    np.testing.assert_array_equal(head.evidence[0][2], [0.0, 0.0])
    # A clip scores log prior + the sum of its segments' evidence.
    expected = np.log(prior) + head.evidence[0][[0, 1, 2]].sum(axis=0)
    np.testing.assert_allclose(head.scores(np.array([[0, 1, 2]]))[0], expected)


def test_two_levels_pool_evidence_and_an_uninformative_level_changes_nothing():
    rng = np.random.default_rng(2)
    codes, labels = _clips(rng, 60, offset=0, purity=0.5)
    constant = np.zeros_like(codes)  # level 2: one id for every segment, no information
    one = ClipCodePredictor(codes, labels, N_CLASSES, (N_CODES,))
    two = ClipCodePredictor(np.stack([codes, constant], axis=-1), labels, N_CLASSES, (N_CODES, 3))
    test, _ = _clips(rng, 100, offset=0, purity=0.5)
    np.testing.assert_array_equal(one.predict(test), two.predict(np.stack([test, np.zeros_like(test)], axis=-1)))


def test_a_class_without_training_clips_is_never_predicted():
    codes = np.array([[0, 0], [1, 1]])
    head = ClipCodePredictor(codes, np.array([0, 2]), 3, (4,))
    assert set(head.predict(np.array([[3, 3], [0, 1], [1, 1]])).tolist()) <= {0, 2}


def test_segment_head_marks_classes_whose_ids_say_so_and_background_otherwise():
    # 2 classes; id 0 → class 0 on, id 1 → class 1 on, id 2 → background.
    seg_class = np.array([[0, 0, 1, 1, 2, 2]] * 4)
    labels = np.zeros((4, 6, 3))
    np.put_along_axis(labels, seg_class[..., None], 1.0, axis=-1)
    head = SegmentCodePredictor(seg_class, labels, 2, (4,))
    predicted = head.predict(np.array([[0, 1, 2, 3]]))
    np.testing.assert_array_equal(predicted[0], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])  # id 3 unseen: prior
    assert predicted.dtype == bool


def test_bad_input_is_one_typed_error():
    codes = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ConfigError, match="integer code ids"):
        ClipCodePredictor(codes.astype(float), [0, 1], 2, (4,))
    with pytest.raises(ConfigError, match=r"ids must lie in \[0, 4\)"):
        ClipCodePredictor(codes + 7, [0, 1], 2, (4,))
    with pytest.raises(ConfigError, match="training labels"):
        ClipCodePredictor(codes, [0, 1, 1], 2, (4,))
    with pytest.raises(ConfigError, match=r"ids \[N, T, 2\]"):
        ClipCodePredictor(codes, [0, 1], 2, (4, 4))
    with pytest.raises(ConfigError, match="unknown task kind"):
        fit_code_head("frames", codes, [0, 1], 2, (4,))


def _run(data, **kwargs):
    cache = CodeCache(FakeCodeSource(codebooks()))
    request = EvalRequest(**{"variants": ["hdcid"], "heads": ("codes", "prototype"), "epochs": 2, "batch_size": 16, **kwargs})
    return list(run_evaluation(data, cache, request))


def test_codes_is_a_head_of_toc_eval_and_transfers_through_shared_ids():
    assert "codes" in HEADS
    records = _run(clip_task(n_per_class=15, n_classes=4, signal=0.7))
    by_head = {}
    for r in records:
        by_head.setdefault(r.head, []).append(r)
        assert r.epochs_trained is None and r.best_epoch is None
    assert len(by_head["codes"]) == 2  # both directions
    for r in by_head["codes"]:
        assert r.metrics["accuracy"] >= 80.0, r  # chance 25%: audio and video share the planted ids
        assert r.same_modality["accuracy"] >= 80.0


def test_codes_head_is_at_chance_when_the_modalities_use_disjoint_ids():
    data = clip_task(n_per_class=15, n_classes=4, signal=1.0, k=24)
    # Video keeps ids 0..7 (the class blocks); audio's ids move to 12..19: none shared.
    audio = data.sets["mem/audio"]
    shifted = audio.read(np.arange(len(audio))) + 12
    data.sets["mem/audio"] = type(audio)(
        name=audio.name, modality=audio.modality, ids=audio.ids, labels=audio.labels,
        feature_shape=audio.feature_shape, read=lambda rows: shifted[np.asarray(rows)], source=audio.source,
    )
    for r in _run(data, heads=("codes",)):
        assert r.same_modality["accuracy"] == 100.0
        # Every target id is unseen: one class for every clip, the accuracy of that class' share.
        assert r.metrics["accuracy"] <= 40.0, r


def test_codes_head_runs_on_segment_tasks():
    records = _run(segment_task(n_videos=30, n_classes=3, signal=0.9), heads=("codes",))
    assert {r.direction for r in records} == {"v2a", "a2v"}
    for r in records:
        assert r.metrics["f1"] > 50.0, r
