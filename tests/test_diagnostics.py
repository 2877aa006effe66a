"""Codebook-health diagnostics on hand-made cases whose answers are known exactly."""

import math

import numpy as np
import pytest
import torch

from hdcid.diagnostics import (
    centroid_gap,
    code_agreement,
    cohen_kappa,
    format_summary,
    level_diagnostics,
    linear_probe,
    pair_measures,
    usage_perplexity,
)
from hdcid.errors import MeasureError


def _semantic(n: int, t: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, t, d, generator=torch.Generator().manual_seed(seed))


def test_collapsed_codebook_is_reported_with_warnings():
    # Every position of both modalities maps to code 3 of 100: one code, 100% exact agreement —
    # but κ is 0 (chance agreement is 1 too), NMI is 0, and the usage warning fires per modality.
    indices = {"audio": torch.full((8, 10), 3), "video": torch.full((8, 10), 3)}
    semantic = {"audio": _semantic(8, 10, 16, 0), "video": _semantic(8, 10, 16, 1)}
    d = level_diagnostics(0, 100, indices, semantic)
    assert d.codes_used == {"audio": 1, "video": 1}
    assert d.codes_used_any == 1 and d.audio_video_codes_shared == 1
    assert d.perplexity == {"audio": pytest.approx(1.0), "video": pytest.approx(1.0)}
    av = d.pairs["audio-video"]
    assert (av.agreement, av.chance_agreement, av.kappa, av.nmi) == (1.0, 1.0, 0.0, 0.0)
    assert d.audio_video_agreement == 1.0  # the audio–video pair's agreement
    assert sum("codebook collapse" in w for w in d.warnings) == 2
    assert sum("do not share codes" in w for w in d.warnings) == 1


def test_disjoint_modalities_warn_about_zero_kappa():
    # Audio uses codes 0..49, video 50..99: healthy usage, nothing shared.
    audio = torch.arange(50).repeat(2).reshape(10, 10)
    video = audio + 50
    d = level_diagnostics(0, 100, {"audio": audio, "video": video}, {})
    assert d.codes_used == {"audio": 50, "video": 50}
    assert d.audio_video_codes_shared == 0 and d.codes_used_any == 100
    assert d.perplexity["audio"] == pytest.approx(50.0)
    assert d.perplexity_all == pytest.approx(100.0)
    av = d.pairs["audio-video"]
    assert (av.agreement, av.chance_agreement, av.kappa, av.codes_shared) == (0.0, 0.0, 0.0, 0)
    assert av.nmi == pytest.approx(1.0)  # a consistent relabelling: each audio id has one video id
    assert d.warnings == [
        "level 1: audio-video Cohen's kappa 0.00 (agreement 0.0%, chance 0.0%; 0 codes shared): "
        "modalities do not share codes"
    ]


def test_perfectly_shared_codebook_has_no_warnings():
    codes = torch.arange(40).reshape(4, 10) % 20  # 20 codes, each used equally often
    indices = {"audio": codes, "video": codes.clone(), "text": codes.clone()}
    semantic = {m: _semantic(4, 10, 8, 5) for m in indices}  # identical features: zero gap
    labels = torch.tensor([0, 1, 0, 1])
    d = level_diagnostics(1, 32, indices, semantic, labels)
    assert d.audio_video_codes_shared == 20 and d.codes_used_any == 20
    assert d.perplexity_all == pytest.approx(20.0)
    av = d.pairs["audio-video"]
    assert av.aligned and av.positions == 40
    assert (av.agreement, av.kappa, av.nmi, av.class_overlap) == (1.0, pytest.approx(1.0), pytest.approx(1.0), 1.0)
    assert av.chance_agreement == pytest.approx(1 / 20)
    # Text positions are prompt tokens, not seconds: pairs with text get no position measures.
    for pair in ("audio-text", "video-text"):
        assert not d.pairs[pair].aligned and d.pairs[pair].kappa is None and d.pairs[pair].agreement is None
        assert d.pairs[pair].codes_shared == 20 and d.pairs[pair].class_overlap == 1.0
    assert d.centroid_gap == {"audio-video": 0.0, "audio-text": 0.0, "video-text": 0.0}
    assert d.warnings == []
    assert format_summary([d]).startswith(
        "L2 codes a20/v20/t20 of 32 ppl 20.0 a-v κ 1.00 agree 100.0% (chance 5.0%) NMI 1.00"
    )


def test_kappa_on_a_hand_computed_case():
    # p_o = 3/4; marginals x (1/2, 1/2), y (1/4, 3/4): p_e = 1/8 + 3/8 = 1/2; κ = (3/4 − 1/2)/(1/2).
    agreement, chance, kappa = cohen_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert (agreement, chance, kappa) == (0.75, 0.5, 0.5)
    # Systematic disagreement scores below 0; one shared single code is 0/0, defined as 0.
    assert cohen_kappa(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]))[2] == -1.0
    assert cohen_kappa(np.array([7, 7, 7]), np.array([7, 7, 7])) == (1.0, 1.0, 0.0)
    # One modality collapsed, the other not: κ 0 whatever the agreement.
    assert cohen_kappa(np.array([7, 7, 7, 7]), np.array([7, 1, 2, 7]))[2] == 0.0


def test_consistent_permutation_scores_zero_agreement_but_nmi_one():
    generator = np.random.default_rng(0)
    x = generator.integers(0, 30, size=(50, 10))
    permutation = np.roll(np.arange(30), 1)  # no fixed point
    y = permutation[x]
    labels = np.arange(50) % 5
    m = pair_measures(x, y, labels=labels)
    assert m.agreement == 0.0 and m.kappa < 0.0
    assert m.nmi == pytest.approx(1.0)
    assert m.nmi_shuffled < 0.5 * m.nmi  # random re-pairing: far below
    assert m.codes_shared == 30  # the same ids are used, just not for the same positions


def test_independent_codes_score_kappa_near_zero_and_nmi_near_its_shuffled_floor():
    generator = np.random.default_rng(1)
    x, y = generator.integers(0, 20, size=(400, 10)), generator.integers(0, 20, size=(400, 10))
    m = pair_measures(x, y)
    assert abs(m.kappa) < 0.02 and m.nmi < 0.02
    assert m.nmi == pytest.approx(m.nmi_shuffled, abs=0.01)


def test_class_overlap_sees_per_class_usage_and_the_mask_selects_positions():
    # Class 0: both use code 1. Class 1: audio uses code 2, video code 3 → overlap 1 and 0.
    audio = np.array([[1, 1, 9], [2, 2, 9]])
    video = np.array([[1, 1, 8], [3, 3, 8]])
    events = np.array([[True, True, False], [True, True, False]])  # column 2: background
    m = pair_measures(audio, video, labels=np.array([0, 1]), mask=events)
    assert m.positions == 4 and m.agreement == 0.5
    assert m.class_overlap_by_class == {"0": 1.0, "1": 0.0} and m.class_overlap == 0.5
    assert m.codes_used == {"audio": 2, "video": 2} and m.codes_shared == 1
    # Without the mask the background codes 9 / 8 count as well.
    assert pair_measures(audio, video).codes_used == {"audio": 3, "video": 3}
    # Per-position labels are accepted; a mask that keeps nothing gives "no measure", not 0.
    assert pair_measures(audio, video, labels=np.array([[0, 0, 0], [1, 1, 1]]), mask=events).class_overlap == 0.5
    empty = pair_measures(audio, video, mask=np.zeros((2, 3), dtype=bool))
    assert empty.positions == 0 and empty.kappa is None and empty.nmi is None and empty.codes_shared == 0


def test_pair_measures_refuse_misaligned_input():
    with pytest.raises(MeasureError, match="equal shapes"):
        pair_measures(np.zeros((2, 3), dtype=int), np.zeros((2, 4), dtype=int))
    with pytest.raises(MeasureError, match="integers"):
        pair_measures(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(MeasureError, match="labels has shape"):
        pair_measures(np.zeros((2, 3), dtype=int), np.zeros((2, 3), dtype=int), labels=np.zeros(3, dtype=int))


def test_agreement_counts_matching_positions():
    x = torch.tensor([[1, 2, 3, 4]])
    y = torch.tensor([[1, 0, 3, 0]])
    assert code_agreement(x, y) == 0.5


def test_usage_perplexity_of_a_known_distribution():
    # p = (1/2, 1/4, 1/4): entropy 1.5 ln 2, perplexity 2^1.5.
    assert usage_perplexity(torch.tensor([0, 0, 1, 2]), 8) == pytest.approx(2 ** 1.5)


def test_centroid_gap_is_zero_for_one_region_and_large_for_disjoint_ones():
    x = _semantic(20, 10, 16, 2)
    assert centroid_gap(x, x + 0.0) == 0.0
    shifted = x + 10.0  # centroids 10·√16 = 40 apart, features ~√(16+1600) long on average
    gap = centroid_gap(x, shifted)
    assert gap > 1.0
    # Scale-free: multiplying both modalities by a constant does not change the gap.
    assert centroid_gap(3 * x, 3 * shifted) == pytest.approx(gap)


def test_linear_probe_separates_separable_classes_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    separable = torch.nn.functional.one_hot(labels, 4).double() * 5 + 0.1 * torch.randn(200, 4, generator=generator, dtype=torch.float64)
    assert linear_probe(separable, labels) == 1.0
    noise = torch.randn(200, 4, generator=generator)
    assert linear_probe(noise, labels) < 0.5
    assert linear_probe(noise[:3], labels[:3]) is None  # too few clips to hold any out


def test_probe_is_reported_per_modality_with_its_chance_level():
    labels = torch.tensor([0, 1] * 20)
    informative = labels.double().reshape(-1, 1, 1).expand(40, 10, 4) + 0.01 * _semantic(40, 10, 4, 3).double()
    indices = {"audio": torch.zeros(40, 10, dtype=torch.long), "video": torch.ones(40, 10, dtype=torch.long)}
    semantic = {"audio": informative, "video": _semantic(40, 10, 4, 4)}
    d = level_diagnostics(0, 2, indices, semantic, labels)
    assert d.probe_accuracy["audio"] == 1.0
    assert d.probe_chance == 0.5
    assert not math.isnan(d.probe_accuracy["video"])
