"""Codebook-health diagnostics on hand-made cases whose answers are known exactly."""

import math

import pytest
import torch

from hdcid.diagnostics import (
    centroid_gap,
    code_agreement,
    format_summary,
    level_diagnostics,
    linear_probe,
    usage_perplexity,
)


def _semantic(n: int, t: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, t, d, generator=torch.Generator().manual_seed(seed))


def test_collapsed_codebook_is_reported_with_warnings():
    # Every position of both modalities maps to code 3 of 100: one code, perplexity 1, no
    # sharing problem (agreement 100%), but the usage warning must fire for each modality.
    indices = {"audio": torch.full((8, 10), 3), "video": torch.full((8, 10), 3)}
    semantic = {"audio": _semantic(8, 10, 16, 0), "video": _semantic(8, 10, 16, 1)}
    d = level_diagnostics(0, 100, indices, semantic)
    assert d.codes_used == {"audio": 1, "video": 1}
    assert d.codes_used_common == 1 and d.codes_used_any == 1
    assert d.perplexity == {"audio": pytest.approx(1.0), "video": pytest.approx(1.0)}
    assert d.agreement == {"audio-video": 1.0}
    assert len(d.warnings) == 2 and all("codebook collapse" in w for w in d.warnings)


def test_disjoint_modalities_warn_about_zero_agreement():
    # Audio uses codes 0..49, video 50..99: healthy usage, nothing shared.
    audio = torch.arange(50).repeat(2).reshape(10, 10)
    video = audio + 50
    d = level_diagnostics(0, 100, {"audio": audio, "video": video}, {})
    assert d.codes_used == {"audio": 50, "video": 50}
    assert d.codes_used_common == 0 and d.codes_used_any == 100
    assert d.perplexity["audio"] == pytest.approx(50.0)
    assert d.perplexity_all == pytest.approx(100.0)
    assert d.agreement_mean == 0.0
    assert d.warnings == ["level 1: cross-modal code agreement 0.0% is near zero: modalities do not share codes"]


def test_perfectly_shared_codebook_has_no_warnings():
    codes = torch.arange(40).reshape(4, 10) % 20  # 20 codes, each used equally often
    indices = {"audio": codes, "video": codes.clone(), "text": codes.clone()}
    semantic = {m: _semantic(4, 10, 8, 5) for m in indices}  # identical features: zero gap
    d = level_diagnostics(1, 32, indices, semantic)
    assert d.codes_used_common == 20 and d.codes_used_any == 20
    assert d.perplexity_all == pytest.approx(20.0)
    assert d.agreement == {"audio-video": 1.0, "audio-text": 1.0, "video-text": 1.0}
    assert d.centroid_gap == {"audio-video": 0.0, "audio-text": 0.0, "video-text": 0.0}
    assert d.warnings == []
    assert format_summary([d]).startswith("L2 codes a20/v20/t20 common 20/32 ppl 20.0 agree 100.0% gap 0.00")


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
