"""Paired bootstrap, McNemar, Wilson and the recommendation rule (toc.report.resampling).

Coverage is checked by simulation against values computed independently (closed forms or a
large Monte Carlo of the generating model), never against the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import toc.report.resampling as resampling
from toc.errors import ConfigError, DataError
from toc.eval.metrics import correctness_parts, segment_count_parts, segment_scores
from toc.report.resampling import (
    ACCURACY,
    MEAN,
    MICRO_F1,
    MICRO_PRECISION,
    MICRO_RECALL,
    SPLIT_EVALUATION,
    SPLIT_VALIDATION,
    TEST_BOOTSTRAP,
    TEST_MCNEMAR,
    VERDICT_CLEAR,
    VERDICT_NONE,
    VERDICT_SINGLE,
    UnitParts,
    bootstrap_p_value,
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap,
    recommend_variant,
    wilson_interval,
)

ORDER = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")


def _deterministic(correct: dict[str, np.ndarray], runs=(0, 1, 2)) -> UnitParts:
    """Every seed gives the same per-clip outcome: a training-free head on one split."""
    return UnitParts.from_runs({v: {r: c for r in runs} for v, c in correct.items()}, ACCURACY)


# ---------------------------------------------------------------------------- exact tests by hand


def test_mcnemar_exact_by_hand():
    a = np.array([1] * 5 + [0] * 1 + [1] * 10 + [0] * 4)
    b = np.array([0] * 5 + [1] * 1 + [1] * 10 + [0] * 4)
    result = mcnemar_exact(a, b)
    assert (result.a_only, result.b_only, result.n_units) == (5, 1, 20)
    # n = 6 discordant, k = 1: P[X <= 1] = (1 + 6) / 64; two-sided 2 · 7/64.
    assert result.p_value == 2 * 7 / 64
    assert mcnemar_exact(np.ones(8), np.zeros(8)).p_value == 2 / 256
    assert mcnemar_exact(a, a).p_value == 1.0  # no discordant unit
    assert mcnemar_exact(np.array([1, 0, 1]), np.array([0, 0, 1])).p_value == 1.0  # one apart
    with pytest.raises(DataError):
        mcnemar_exact(np.array([1, 2]), np.array([0, 1]))


def test_wilson_interval_closed_forms():
    z = 1.959963984540054
    # k = n: the lower bound is n / (n + z²), the upper bound 100 %.
    full = wilson_interval(45, 45)
    assert full.low == pytest.approx(100 * 45 / (45 + z * z), abs=1e-9)
    assert full.high == 100.0 and full.width > 0
    empty = wilson_interval(0, 45)
    assert empty.low == 0.0 and empty.high == pytest.approx(100 * z * z / (45 + z * z), abs=1e-9)
    # The example: 93.3 % of 60 clips is about [84, 97].
    mid = wilson_interval(56, 60)
    assert round(mid.low) == 84 and round(mid.high) == 97
    with pytest.raises(ConfigError):
        wilson_interval(3, 0)


def test_holm_by_hand():
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5]) == [0.5]


def test_bootstrap_p_value_counts_ties_on_both_sides():
    assert bootstrap_p_value(np.zeros(99)) == 1.0
    assert bootstrap_p_value(np.ones(99)) == pytest.approx(2 / 100)
    # 5 of 99 resamples at or below 0: the smallest tail whose rounded-out end excludes 0 is 5/98.
    assert bootstrap_p_value(np.r_[np.ones(94), -np.ones(5)]) == pytest.approx(2 * 5 / 98)


# ---------------------------------------------------------------------- metrics as sums of parts


def test_micro_f1_parts_equal_the_evaluation_metric():
    rng = np.random.default_rng(0)
    pred = rng.random((30, 10, 6)) < 0.3
    labels = (rng.random((30, 10, 6)) < 0.3).astype(float)
    parts = segment_count_parts(pred, labels, n_classes=5)  # last column = background, left out
    want = segment_scores(pred, labels, 5)
    for metric, key in ((MICRO_F1, "f1"), (MICRO_PRECISION, "precision"), (MICRO_RECALL, "recall")):
        got = UnitParts.from_runs({"x": {0: parts}}, metric, unit="video").observed()[0]
        assert got == pytest.approx(want[key], abs=1e-12)
    assert correctness_parts(np.array([1, 2, 3]), np.array([1, 0, 3]))[:, 0].tolist() == [1, 0, 1]


def test_nothing_predicted_gives_zero_f1_not_nan():
    sums = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    assert MICRO_F1.from_sums(sums, 2).tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------ coverage by simulation


def _coverage(draw, target, n_sims=200, n_resamples=999, **kwargs):
    hits, widths = 0, []
    for sim in range(n_sims):
        parts = draw(np.random.default_rng(1000 + sim))
        boot = paired_bootstrap(parts, n_resamples=n_resamples, seed=sim, **kwargs)
        interval = boot.variant(parts.variants[0]).interval
        hits += interval.low <= target <= interval.high
        widths.append(interval.width)
    return hits / n_sims, min(widths)


def test_accuracy_interval_covers_the_true_rate():
    p, units = 0.7, 120

    def draw(rng):
        return UnitParts.from_runs({"a": {0: (rng.random(units) < p).astype(float)}}, ACCURACY)

    coverage, narrowest = _coverage(draw, 100 * p)
    # 200 simulated test sets: the binomial spread of the hit rate at 95 % is about ±3 points.
    assert 0.90 <= coverage <= 0.99
    assert narrowest > 0


def test_micro_f1_interval_covers_the_population_value():
    # Per video 20 (segment, class) cells; a cell is labelled w.p. 0.3; predicted w.p. 0.8 when
    # labelled and 0.1 otherwise. Population micro-F1 = 2E[tp] / (E[n_pred] + E[n_label]).
    e_tp, e_label, e_pred = 0.3 * 0.8, 0.3, 0.3 * 0.8 + 0.7 * 0.1
    target = 100 * 2 * e_tp / (e_pred + e_label)

    def draw(rng):
        labels = rng.random((80, 4, 5)) < 0.3
        pred = np.where(labels, rng.random(labels.shape) < 0.8, rng.random(labels.shape) < 0.1)
        return UnitParts.from_runs(
            {"a": {0: segment_count_parts(pred, labels, 5)}}, MICRO_F1, unit="video"
        )

    coverage, narrowest = _coverage(draw, target)
    assert 0.90 <= coverage <= 0.99
    assert narrowest > 0


def test_paired_difference_covers_the_true_difference_and_beats_unpaired():
    # Per clip: both right 0.6, only a 0.12, only b 0.06, both wrong 0.22 -> Δ = 6 points.
    probabilities = [0.6, 0.12, 0.06, 0.22]
    hits, paired_widths, unpaired_widths = 0, [], []
    for sim in range(200):
        rng = np.random.default_rng(sim)
        kind = rng.choice(4, size=150, p=probabilities)
        a = np.isin(kind, (0, 1)).astype(float)
        b = np.isin(kind, (0, 2)).astype(float)
        boot = paired_bootstrap(
            UnitParts.from_runs({"a": {0: a}, "b": {0: b}}, ACCURACY), n_resamples=999, seed=sim
        )
        d = boot.difference("a", "b")
        hits += d.interval.low <= 6.0 <= d.interval.high
        paired_widths.append(d.interval.width)
        if sim >= 40:
            continue
        # Unpaired (40 data sets suffice): the variants resampled independently (other seeds).
        ia = paired_bootstrap(
            UnitParts.from_runs({"a": {0: a}}, ACCURACY), n_resamples=999, seed=2 * sim
        )
        ib = paired_bootstrap(
            UnitParts.from_runs({"b": {0: b}}, ACCURACY), n_resamples=999, seed=2 * sim + 1
        )
        spread = ia.replicates[:, 0] - ib.replicates[:, 0]
        unpaired_widths.append(np.quantile(spread, 0.975) - np.quantile(spread, 0.025))
    assert 0.90 <= hits / 200 <= 0.99
    assert np.mean(paired_widths) < 0.8 * np.mean(unpaired_widths)


def test_random_heads_need_the_runs_resampled():
    # Clip difficulty q ~ Beta(3, 1.5) and a run shift s ~ U(−0.15, 0.15) shared by all clips of a
    # run: P(correct) = clip(q + s). The target is E over clips and runs, by a large Monte Carlo.
    big = np.random.default_rng(99)
    target = (
        100
        * np.clip(big.beta(3, 1.5, 1_000_000) + big.uniform(-0.15, 0.15, 1_000_000), 0, 1).mean()
    )
    runs = 5

    def draw(rng):
        q = rng.beta(3, 1.5, size=100)
        s = rng.uniform(-0.15, 0.15, size=runs)
        x = (rng.random((runs, 100)) < np.clip(q[None] + s[:, None], 0, 1)).astype(float)
        return UnitParts.from_runs({"a": {r: x[r] for r in range(runs)}}, ACCURACY)

    with_runs, _ = _coverage(draw, target, n_sims=150)
    units_only, _ = _coverage(draw, target, n_sims=150, resample_runs=False)
    assert with_runs >= 0.88
    # Clips alone miss the run-to-run spread: the interval is too narrow.
    assert units_only < with_runs - 0.08


# ---------------------------------------------------------------------------- n_eff and zero widths


def test_deterministic_head_is_one_run_and_the_interval_is_not_zero():
    rng = np.random.default_rng(0)
    correct = (rng.random(45) < 5 / 45 + 0.3).astype(float)
    parts = _deterministic({"dcid": correct})
    estimate = paired_bootstrap(parts, n_resamples=500).variant("dcid")
    assert estimate.n_runs == 3 and estimate.n_eff_runs == 1
    assert estimate.interval.width > 0 and not estimate.zero_width
    assert any("n_eff = 1" in note for note in estimate.notes)
    assert estimate.wilson is not None and estimate.wilson.width > 0


def test_identical_runs_are_detected_exactly_not_by_a_rounded_std():
    # 100 · 5/45 three times has a float std of about 2e-15 in some summation orders.
    x = np.zeros(45)
    x[:5] = 1.0
    parts = _deterministic({"dcid": x})
    assert parts.distinct_runs("dcid") == 1
    assert paired_bootstrap(parts, n_resamples=200).resample_runs is False


def test_a_zero_width_interval_is_flagged_not_certain():
    parts = _deterministic({"dcid": np.ones(30), "hdcid": np.ones(30)})
    boot = paired_bootstrap(parts, n_resamples=200)
    estimate = boot.variant("dcid")
    assert estimate.zero_width
    assert any("not certainty" in note for note in estimate.notes)
    assert estimate.wilson.low < 100.0 - 5  # 30/30 still leaves ~11 points of doubt
    d = boot.difference("dcid", "hdcid")
    assert d.identical and d.p_value == 1.0 and d.notes


# ----------------------------------------------------------------------- the recommendation rule


def test_variants_one_clip_apart_have_no_clear_winner():
    rng = np.random.default_rng(1)
    base = (rng.random(45) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[0]] = 1.0  # one more clip right: Δ = +2.22
    for test in ("auto", TEST_BOOTSTRAP):
        verdict = recommend_variant(
            _deterministic({"dcid": better, "hdcid": base}),
            split=SPLIT_VALIDATION,
            test=test,
            n_resamples=1000,
            tie_order=ORDER,
        )
        assert verdict.verdict == VERDICT_NONE and verdict.winner is None
        assert verdict.tied == ("dcid", "hdcid")
        assert verdict.comparisons[0].difference == pytest.approx(100 / 45)
        assert verdict.comparisons[0].interval.width > 0
    assert verdict.comparisons[0].test == TEST_BOOTSTRAP
    auto = recommend_variant(
        _deterministic({"dcid": better, "hdcid": base}), split=SPLIT_VALIDATION
    )
    assert auto.comparisons[0].test == TEST_MCNEMAR and auto.comparisons[0].p_value == 1.0
    assert any("n_eff = 1" in fact for fact in auto.facts)


def _separated_set(rng, n=60):
    """best right on 90 % of clips; three others well below, disagreeing on many clips."""
    best = (rng.random(n) < 0.9).astype(float)
    others = {v: (rng.random(n) < 0.45).astype(float) for v in ("dcid", "dcid+toc", "hdcid")}
    return {"hdcid+toc": best, **others}


def test_a_clear_separation_is_called():
    verdict = recommend_variant(
        _deterministic(_separated_set(np.random.default_rng(2))),
        split=SPLIT_VALIDATION,
        tie_order=ORDER,
        n_resamples=1000,
    )
    assert verdict.verdict == VERDICT_CLEAR and verdict.winner == "hdcid+toc"
    assert all(c.separated and c.adjusted_p <= 0.05 for c in verdict.comparisons)
    assert len(verdict.comparisons) == 3
    assert verdict.facts[0].startswith("Ranked on the validation split (60 clips)")
    assert "Clear winner" in verdict.facts[-1]


def test_separated_from_some_but_not_the_runner_up_is_no_clear_winner():
    rng = np.random.default_rng(3)
    correct = _separated_set(rng)
    runner_up = correct["hdcid+toc"].copy()
    runner_up[np.flatnonzero(runner_up == 1)[:2]] = 0.0  # two clips behind the best
    correct["dcid+toc"] = runner_up
    verdict = recommend_variant(_deterministic(correct), split=SPLIT_VALIDATION, tie_order=ORDER)
    assert verdict.verdict == VERDICT_NONE
    assert verdict.tied == ("hdcid+toc", "dcid+toc")
    assert sum(c.separated for c in verdict.comparisons) == 2


def test_no_false_winners_when_all_variants_are_equal():
    # Three deterministic variants with the same true accuracy, 200 simulated validation sets:
    # a "clear" verdict is a false positive; the rule must keep them at or below its level.
    false_clear = 0
    for sim in range(200):
        rng = np.random.default_rng(sim)
        correct = {v: (rng.random(60) < 0.6).astype(float) for v in ORDER[:3]}
        verdict = recommend_variant(
            _deterministic(correct, runs=(0,)), split=SPLIT_VALIDATION, n_resamples=200
        )
        false_clear += verdict.verdict == VERDICT_CLEAR
    assert false_clear / 200 <= 0.05


def test_ties_follow_the_given_order_and_a_single_variant_is_said_so():
    same = np.r_[np.ones(10), np.zeros(10)]
    verdict = recommend_variant(
        _deterministic({"hdcid": same, "dcid": same}), split=SPLIT_VALIDATION, tie_order=ORDER
    )
    assert verdict.best == "dcid" and verdict.verdict == VERDICT_NONE
    single = recommend_variant(_deterministic({"hdcid": same}), split=SPLIT_VALIDATION)
    assert single.verdict == VERDICT_SINGLE and single.winner == "hdcid"


def test_reference_protocol_is_never_called_validation():
    correct = _separated_set(np.random.default_rng(4))
    with pytest.raises(ConfigError, match="evaluation split"):
        recommend_variant(_deterministic(correct), split=SPLIT_VALIDATION, protocol="reference")
    verdict = recommend_variant(
        _deterministic(correct), split=SPLIT_EVALUATION, protocol="reference", n_resamples=500
    )
    text = " ".join(verdict.facts + verdict.warnings)
    assert "validation" not in text
    assert "evaluation split (published protocol)" in verdict.facts[0]
    assert verdict.warnings and "optimistic" in verdict.warnings[0]


def test_same_modality_and_epoch_selection_are_stated():
    correct = _separated_set(np.random.default_rng(5))
    verdict = recommend_variant(
        _deterministic(correct),
        split=SPLIT_VALIDATION,
        same_modality_validation=True,
        epoch_selected=True,
        n_resamples=500,
    )
    assert any("same-modality" in fact for fact in verdict.facts)
    assert any("best over epochs" in w for w in verdict.warnings)


# ---------------------------------------------------------------------------- determinism and input


def test_same_seed_same_result_and_block_size_does_not_matter(monkeypatch):
    rng = np.random.default_rng(7)
    parts = UnitParts.from_runs(
        {v: {r: (rng.random(300) < 0.6).astype(float) for r in range(3)} for v in ORDER}, ACCURACY
    )
    first = paired_bootstrap(parts, n_resamples=700, seed=11)
    again = paired_bootstrap(parts, n_resamples=700, seed=11)
    assert np.array_equal(first.replicates, again.replicates) and first.resample_runs
    assert not np.array_equal(
        first.replicates, paired_bootstrap(parts, n_resamples=700, seed=12).replicates
    )
    monkeypatch.setattr(resampling, "_BLOCK_CELLS", 300 * 7)  # 7 resamples per block
    assert np.array_equal(
        first.replicates, paired_bootstrap(parts, n_resamples=700, seed=11).replicates
    )


def test_parts_are_copied_and_checked():
    x = np.ones(5)
    parts = UnitParts.from_runs({"a": {0: x}}, ACCURACY)
    x[:] = 0
    assert parts.observed()[0] == 100.0
    with pytest.raises(DataError, match="0/1"):
        UnitParts.from_runs({"a": {0: np.full(5, 0.5)}}, ACCURACY)
    with pytest.raises(DataError, match="other runs"):
        UnitParts.from_runs({"a": {0: x, 1: x}, "b": {0: x}}, ACCURACY)
    with pytest.raises(DataError, match="same units"):
        UnitParts.from_runs({"a": {0: x}, "b": {0: np.ones(4)}}, ACCURACY)
    with pytest.raises(DataError, match="NaN"):
        UnitParts.from_runs({"a": {0: np.array([1.0, math.nan])}}, MEAN)
    with pytest.raises(ConfigError):
        paired_bootstrap(parts, n_resamples=0)


# ------------------------------------------------------- expanded intervals, clusters and splits


def test_expanded_tail_and_p_value_agree_with_the_interval():
    from scipy import stats

    # The expansion maps the t quantile onto the normal scale: Φ(−√(n/(n−1))·t_{n−1}).
    n = 45
    t = stats.t.ppf(0.975, n - 1)
    assert resampling.expanded_tail(0.95, n) == pytest.approx(
        stats.norm.cdf(-math.sqrt(n / (n - 1)) * t), rel=1e-12
    )
    assert resampling.expanded_tail(0.95, 1) == pytest.approx(0.025)
    assert resampling.expanded_tail(0.95, 10_000) == pytest.approx(0.025, abs=2e-5)
    # The expanded p-value is at most 0.05 exactly when the printed expanded 95 % interval (ends
    # rounded outwards to replicate values) excludes 0 — at the boundary too, where a p-value
    # with the usual +1 counts disagreed with the interval by one resample. Continuous and
    # discrete (tied) differences, shifts that put the count right at the tail.
    rng = np.random.default_rng(3)
    checked = 0
    for size in (999, 1999, 5000):
        tail = resampling.expanded_tail(0.95, n)
        for shift in np.linspace(0.0, 0.6, 61):
            for deltas in (rng.normal(shift, 0.2, size=size), np.round(rng.normal(shift, 0.2, size=size) * 10) / 10):
                low = np.quantile(deltas, tail, method="lower")
                high = np.quantile(deltas, 1 - tail, method="higher")
                p = bootstrap_p_value(deltas, n_units=n)
                assert p >= bootstrap_p_value(deltas)  # never less conservative than the plain rule
                assert (p <= 0.05) == (low > 0 or high < 0), (size, shift)
                checked += 1
    assert checked == 366


def test_pretraining_clusters_are_resampled_first():
    # Two pretraining runs × three head seeds. The pretraining effect (±10 points on every
    # clip) dominates; the head seeds barely matter. Treating the six runs as independent
    # would give an interval about √3 times too narrow on the training side.
    rng = np.random.default_rng(0)
    clip = rng.random(400)
    runs, clusters = {}, {}
    for p, shift in enumerate((-0.1, 0.1)):
        for s in range(3):
            run = 10 * p + s
            runs[run] = (clip < 0.6 + shift + 0.005 * s).astype(float)
            clusters[run] = p
    flat = UnitParts.from_runs({"a": runs}, ACCURACY)
    nested = UnitParts.from_runs({"a": runs}, ACCURACY, clusters=clusters)
    assert nested.n_clusters == 2 and flat.n_clusters == 6
    assert nested.observed()[0] == pytest.approx(flat.observed()[0])  # balanced: same estimate
    wide = paired_bootstrap(nested, n_resamples=2000, seed=1).variant("a").interval.width
    narrow = paired_bootstrap(flat, n_resamples=2000, seed=1).variant("a").interval.width
    assert wide > 1.3 * narrow
    # Unbalanced clusters weigh every pretraining run alike.
    uneven = UnitParts.from_runs(
        {"a": {0: np.ones(4), 1: np.zeros(4), 2: np.zeros(4)}}, ACCURACY, clusters={0: 0, 1: 1, 2: 1}
    )
    assert uneven.observed()[0] == pytest.approx(50.0)


def test_split_blocks_have_their_own_units_and_are_resampled():
    # Three evaluation splits with different clips and a split effect; a variant pair is paired
    # within each split.
    rng = np.random.default_rng(5)
    blocks = []
    for s, (n, level) in enumerate(((40, 0.5), (55, 0.7), (47, 0.6))):
        a = (rng.random(n) < level).astype(float)
        b = np.where(rng.random(n) < 0.9, a, 1 - a)
        blocks.append(UnitParts.from_runs({"a": {s: a}, "b": {s: b}}, ACCURACY))
    boot = paired_bootstrap(blocks, n_resamples=1500, seed=2)
    want = np.mean([100 * blk.parts[0, 0, :, 0].mean() for blk in blocks])
    estimate = boot.variant("a")
    assert estimate.estimate == pytest.approx(want) and estimate.n_splits == 3
    assert estimate.n_units == 40 and "3 evaluation splits" in boot.scheme
    assert estimate.interval.width > 0
    d = boot.difference("a", "b")
    assert d.interval.low <= d.difference <= d.interval.high
    verdict = recommend_variant(blocks, split=SPLIT_VALIDATION, n_resamples=500)
    assert all(c.test == TEST_BOOTSTRAP for c in verdict.comparisons)  # no McNemar across splits
    assert "3 splits of 40-55 clips" in verdict.facts[0]
    with pytest.raises(DataError, match="different variants"):
        paired_bootstrap([blocks[0], UnitParts.from_runs({"a": {0: np.ones(3)}}, ACCURACY)])
