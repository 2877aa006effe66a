"""Each code-sharing option of the trainer, switched on, changes what it claims on a tiny corpus."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hdcid.errors import CmgError
from hdcid.losses import identical_rows
from hdcid.models import EncoderOutput
from hdcid.quantizer import (
    NEVER_RESET,
    CrossQuantizer,
    code_log_probs,
    segment_code_matching,
    squared_distances,
)
from hdcid.recipes import RECIPES, parse_reset_patience
from hdcid.training import Remedies, TrainConfig, Trainer
from hdcid.training.initialisation import reset_schedule
from hdcid.training.step import distinct_rows, level_2_reconstruction, usage_floor
from tests.train_corpus import PlantedCorpus

SMALL = dict(
    levels=2, epochs=2, batch_size=4, seed=0, n_embeddings=32, embedding_dim=32, audio_output_dim=16,
    video_output_dim=16, text_output_dim=16, diagnostics_clips=0, level2_start=0,
)


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return PlantedCorpus(n_clips=8, n_classes=2, word_dim=24)


def _trainer(corpus, tmp_path, name: str, **remedies) -> Trainer:
    return Trainer(TrainConfig(**SMALL, remedies=Remedies(**remedies)), corpus, tmp_path / name)


def _semantic(trainer: Trainer, corpus, level: int = 0) -> dict[str, torch.Tensor]:
    inputs = trainer._tensors(corpus.read(range(len(corpus))))
    with torch.no_grad():
        trainer.model.eval()
        out = {m: trainer.model.encoder.semantic_features(m, inputs[m])[level] for m in ("audio", "video")}
        trainer.model.train()
    return out


def test_code_matching_is_zero_for_one_shared_confident_code_and_large_for_disjoint_ones():
    codebook = torch.eye(4, 8)
    same = {"audio": 5 * codebook[1].expand(2, 3, 8), "video": 5 * codebook[1].expand(2, 3, 8)}
    apart = {"audio": 5 * codebook[1].expand(2, 3, 8), "video": 5 * codebook[2].expand(2, 3, 8)}
    low = float(segment_code_matching(same, codebook, 0.05, cosine=True))
    high = float(segment_code_matching(apart, codebook, 0.05, cosine=True))
    assert low < 1e-6 and high > 10.0
    # Euclidean codes: the same ordering.
    assert float(segment_code_matching(same, codebook, 0.1)) < float(segment_code_matching(apart, codebook, 0.1))


def test_code_matching_gradient_pulls_each_modality_towards_the_others_code():
    codebook = torch.eye(3, 4)
    audio = torch.tensor([[[1.0, 0.2, 0.0, 0.0]]], requires_grad=True)  # nearest code 0
    video = torch.tensor([[[0.2, 1.0, 0.0, 0.0]]], requires_grad=True)  # nearest code 1
    segment_code_matching({"audio": audio, "video": video}, codebook, 0.1, cosine=True).backward()
    # A gradient step moves audio towards code 1 and video towards code 0.
    assert audio.grad[0, 0, 1] < 0 < audio.grad[0, 0, 0]
    assert video.grad[0, 0, 0] < 0 < video.grad[0, 0, 1]


def test_code_matching_option_makes_paired_segments_agree_on_the_tiny_corpus(corpus, tmp_path):
    final = {}
    for weight in (0.0, 5.0):
        trainer = _trainer(corpus, tmp_path, f"match-{weight}", code_match_weight=weight, codebook_init="kmeans",
                           ema_consistent=True, standardize_inputs=True)  # fmt: skip
        for step in range(8):
            metrics = trainer.train_step([(4 * step + i) % 8 for i in range(4)])
        # Level 1 only: level 2 holds the modality-specific rest (docs/training.md).
        assert ("code_match" in metrics) == (weight > 0) and "code_match_2" not in metrics
        semantic = _semantic(trainer, corpus)
        final[weight] = float(segment_code_matching(semantic, trainer.model.encoder.codebook(0), 0.1))
    assert final[5.0] < 0.8 * final[0.0]


def test_cosine_codes_keep_every_codebook_row_at_unit_length(corpus, tmp_path):
    for init in ("uniform", "kmeans"):
        trainer = _trainer(corpus, tmp_path, f"cos-{init}", cosine_codes=True, codebook_init=init,
                           ema_consistent=True, reset_patience="2")  # fmt: skip
        quantizer = trainer.model.encoder.Cross_quantizer
        for level in (0, 1):
            assert torch.allclose(quantizer.codebook(level).norm(dim=-1), torch.ones(32), atol=1e-5)
        for step in range(4):  # EMA updates and (patience 2) resets
            trainer.train_step([(4 * step + i) % 8 for i in range(4)])
        for level in (0, 1):
            assert torch.allclose(quantizer.codebook(level).norm(dim=-1), torch.ones(32), atol=1e-5)
    plain = _trainer(corpus, tmp_path, "plain", codebook_init="kmeans")
    assert not torch.allclose(plain.model.encoder.codebook(0).norm(dim=-1), torch.ones(32), atol=1e-2)


def test_cosine_codes_lookup_is_the_most_cosine_similar_row():
    # With unit rows the unchanged Euclidean lookup (and so `toc encode`) picks the largest cosine.
    generator = torch.Generator().manual_seed(0)
    codebook = F.normalize(torch.randn(50, 16, generator=generator, dtype=torch.float64), dim=-1)
    features = 7.0 * torch.randn(200, 16, generator=generator, dtype=torch.float64)
    nearest = squared_distances(features, codebook).argmin(-1)
    assert torch.equal(nearest, (F.normalize(features, dim=-1) @ codebook.t()).argmax(-1))


def _one_dead_code(reset_source: str) -> tuple[CrossQuantizer, torch.Tensor, dict]:
    quantizer = CrossQuantizer(5, 4, ("audio", "video"))
    quantizer.embedding = torch.cat([2 * torch.eye(4), torch.full((1, 4), 50.0)])  # code 4: far from all
    quantizer.ema_weight = quantizer.embedding.clone()
    quantizer.ema_count = torch.ones(5)
    quantizer.set_reset_policy(1, 1, updates_ema=True)
    quantizer.set_sharing_policy(reset_source=reset_source)
    audio = torch.tensor([[[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 9.0, 0]]])
    video = torch.tensor([[[2.1, 0, 0, 0], [0, 1.9, 0, 0], [0, 0, 0, 9.0]]])  # the third pair is served worst
    return quantizer, quantizer.embedding[4].clone(), {"audio": audio, "video": video}


def test_paired_reset_revives_a_dead_code_at_the_worst_served_pair_mean():
    revived = {}
    for source in ("active", "paired"):
        quantizer, parked, features = _one_dead_code(source)
        quantizer.eval()  # no EMA step: only the reset moves codes
        for _ in range(3):
            quantizer.quantize_level(features, 0, cmcm=False)
        revived[source] = quantizer.embedding[4].clone()
        assert not torch.equal(revived[source], parked)
        assert torch.equal(quantizer.ema_weight[4], revived[source] * quantizer.ema_count[4])
    assert torch.equal(revived["paired"], torch.tensor([0.0, 0.0, 4.5, 4.5]))
    # The reference policy copies an active code (plus noise of at most 1/1024).
    rows = 2 * torch.eye(4)
    assert min(float((revived["active"] - row).abs().max()) for row in rows) <= 1 / 1024 + 1e-6


def test_paired_reset_option_reaches_the_quantizer(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path, "paired", reset_source="paired", cosine_codes=True)
    quantizer = trainer.model.encoder.Cross_quantizer
    assert quantizer.reset_source == "paired" and quantizer.cosine
    with pytest.raises(CmgError, match="reset_source must be one of active, paired"):
        TrainConfig(remedies=Remedies(reset_source="random")).validate()


def _quantizer_with_parked_codes(**options) -> CrossQuantizer:
    """Codes 0-1 serve the features below; codes 2-4 are parked far away (dead after patience 1)."""
    quantizer = CrossQuantizer(5, 2, ("audio", "video"))
    quantizer.embedding = torch.tensor([[1.0, 0], [0, 1.0], [40.0, 40], [50.0, 50], [60.0, 60]])
    quantizer.ema_weight, quantizer.ema_count = quantizer.embedding.clone(), torch.ones(5)
    quantizer.set_reset_policy(1, 1)
    quantizer.set_sharing_policy(**options)
    return quantizer.eval()  # no EMA step: only resets move codes


def test_reset_limit_revives_one_code_per_call_longest_unused_first():
    parked = torch.tensor([[40.0, 40], [50.0, 50], [60.0, 60]])
    features = {"audio": torch.tensor([[[1.0, 0], [0, 1.0]]]), "video": torch.tensor([[[1.0, 0], [0, 1.0]]])}
    for limit, expected in ((0, [3, 3, 3]), (1, [1, 2, 3])):
        quantizer = _quantizer_with_parked_codes(reset_limit=limit)
        moved = []
        for _ in range(5):  # codes 2-4 turn dead on the 3rd call
            quantizer.quantize_level(features, 0, cmcm=False)
            moved.append(int((quantizer.embedding[2:] != parked).any(dim=1).sum()))
        # limit 0 (reference): all three at once; limit 1: one more per call, lowest index first.
        assert moved[:2] == [0, 0] and moved[2:] == expected


def test_reset_shared_only_recycles_a_code_only_one_modality_uses():
    # Audio uses codes 0 and 1; video uses only code 0: code 1 serves audio alone.
    features = {"audio": torch.tensor([[[1.0, 0], [0, 1.0]]]), "video": torch.tensor([[[1.0, 0], [1.0, 0.1]]])}
    for shared_only in (False, True):
        quantizer = _quantizer_with_parked_codes(reset_shared_only=shared_only, reset_source="paired")
        for _ in range(3):
            quantizer.quantize_level(features, 0, cmcm=False)
        code_1_moved = not torch.equal(quantizer.embedding[1], torch.tensor([0.0, 1.0]))
        assert code_1_moved == shared_only
        assert torch.equal(quantizer.embedding[0], torch.tensor([1.0, 0.0]))  # shared: kept


def test_code_usage_term_is_minus_the_entropy_of_the_mean_assignment():
    codebook = torch.eye(4, 8)
    # Every position on one code: matching is satisfied, the mean assignment has entropy ~0.
    one = {"audio": 5 * codebook[1].expand(2, 3, 8), "video": 5 * codebook[1].expand(2, 3, 8)}
    # Positions spread over all four codes, audio and video still matched.
    rows = 5 * codebook[torch.arange(8) % 4].reshape(2, 4, 8)
    spread = {"audio": rows, "video": rows.clone()}
    for features, entropy in ((one, 0.0), (spread, torch.log(torch.tensor(4.0)).item())):
        plain = float(segment_code_matching(features, codebook, 0.05, cosine=True))
        with_usage = float(segment_code_matching(features, codebook, 0.05, cosine=True, usage_weight=1.0))
        assert with_usage - plain == pytest.approx(-entropy, abs=1e-3)


def test_usage_floor_is_zero_above_the_floor_and_the_missing_code_information_below_it():
    codebook = torch.eye(4, 8)
    # Confident assignments: the information is log(number of codes the positions use).
    one = {"audio": 5 * codebook[1].expand(2, 3, 8), "video": 5 * codebook[1].expand(2, 3, 8)}
    rows = 5 * codebook[torch.arange(8) % 4].reshape(2, 4, 8)
    spread = {"audio": rows, "video": rows.clone()}
    for features, codes in ((one, 1.0), (spread, 4.0)):
        plain = float(segment_code_matching(features, codebook, 0.05, cosine=True))
        for floor in (2.0, 4.0):
            floored = float(segment_code_matching(features, codebook, 0.05, cosine=True, usage_weight=2.0, usage_floor=floor))
            expected = 2.0 * max(0.0, math.log(floor) - math.log(codes))
            assert floored - plain == pytest.approx(expected, abs=1e-3)
    # Every position spread evenly over all four codes: the mean assignment's entropy is at its
    # maximum, yet the codes tell no position apart, so the whole floor is missing.
    centre = codebook.mean(0).expand(2, 3, 8)
    uniform = {"audio": centre.clone(), "video": centre.clone()}
    plain = float(segment_code_matching(uniform, codebook, 0.1))
    floored = float(segment_code_matching(uniform, codebook, 0.1, usage_weight=2.0, usage_floor=4.0))
    assert floored - plain == pytest.approx(2.0 * math.log(4.0), abs=1e-4)


def test_usage_floor_counts_the_distinct_prompts_of_the_batch_and_stays_within_the_codebook():
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    same = identical_rows(text)
    assert distinct_rows(same) == 3
    batch = {"audio": torch.zeros(4, 5, 8), "video": torch.zeros(4, 5, 8)}
    remedies = Remedies(code_match_weight=1.0, code_usage_weight=1.0, code_usage_per_prompt=2.0)
    assert usage_floor(remedies, same, 400, batch) == 6.0
    assert usage_floor(remedies, same, 5, batch) == 5.0  # never more codes than the codebook has
    assert usage_floor(remedies, None, 400, batch) is None  # no text: the plain usage term
    assert usage_floor(Remedies(code_match_weight=1.0, code_usage_weight=1.0), same, 400, batch) is None


def test_usage_floor_option_keeps_more_codes_per_prompt_than_a_lower_floor(corpus, tmp_path):
    perplexity = {
        per_prompt: _perplexity_after_8_steps(corpus, tmp_path, f"floor-{per_prompt}", code_match_weight=5.0,
                                              code_usage_weight=5.0, code_usage_per_prompt=per_prompt)
        for per_prompt in (0.5, 4.0)
    }  # fmt: skip
    assert perplexity[4.0] > 1.1 * perplexity[0.5]


def test_usage_floor_without_a_usage_weight_is_refused():
    with pytest.raises(CmgError, match="code_usage_per_prompt sets the floor"):
        TrainConfig(remedies=Remedies(code_match_weight=1.0, code_usage_per_prompt=2.0)).validate()


def _mean_assignment_perplexity(trainer: Trainer, corpus) -> float:
    semantic = _semantic(trainer, corpus)
    codebook = trainer.model.encoder.codebook(0)
    probs = torch.cat([code_log_probs(x.reshape(-1, x.shape[-1]), codebook, 0.1, False).exp() for x in semantic.values()])
    mean = probs.mean(0)
    return float(torch.exp(-(mean * torch.log(mean.clamp_min(1e-12))).sum()))


def _perplexity_after_8_steps(corpus, tmp_path, name: str, **remedies) -> float:
    """Mean-assignment perplexity after 8 steps with the small-corpus initialisation remedies."""
    trainer = _trainer(corpus, tmp_path, name, codebook_init="kmeans", ema_consistent=True, standardize_inputs=True,
                       **remedies)  # fmt: skip
    for step in range(8):
        trainer.train_step([(4 * step + i) % 8 for i in range(4)])
    return _mean_assignment_perplexity(trainer, corpus)


def test_code_usage_option_spreads_the_codes_that_matching_alone_concentrates(corpus, tmp_path):
    perplexity = {
        usage: _perplexity_after_8_steps(corpus, tmp_path, f"usage-{usage}", code_match_weight=5.0, code_usage_weight=usage)
        for usage in (0.0, 1.0)
    }
    assert perplexity[1.0] > 1.1 * perplexity[0.0]


def test_code_usage_without_matching_is_refused():
    with pytest.raises(CmgError, match="code_usage_weight is part of the code-matching term"):
        TrainConfig(remedies=Remedies(code_usage_weight=1.0)).validate()


def test_detached_level2_targets_take_no_gradient_from_the_level2_reconstruction(corpus, tmp_path):
    for detach in (False, True):
        trainer = _trainer(corpus, tmp_path, f"detach-{detach}", detach_level2_targets=detach)
        inputs = trainer._tensors(corpus.read(range(4)))
        with torch.no_grad():
            out = trainer.model.encoder(inputs["audio"], inputs["video"], trainer.model.prepare_text(inputs["text"]))
        # Leaves: the level-1 specific features (the targets) apart from level 2's own inputs.
        targets = {m: x.clone().requires_grad_() for m, x in out.specific.items()}
        level_2 = {m: x.clone().requires_grad_() for m, x in out.specific_2.items()}
        fake = EncoderOutput(out.semantic, out.quantized, targets, level_2)
        recon = level_2_reconstruction(trainer.model, fake, trainer.config.remedies)
        sum(recon.values()).backward()
        assert all(float(x.grad.abs().sum()) > 0 for x in level_2.values())
        reached = [m for m in ("audio", "video_club", "text") if targets[m].grad is not None and targets[m].grad.abs().sum() > 0]
        assert reached == ([] if detach else ["audio", "video_club", "text"])


def test_reset_patience_off_never_revives_a_code():
    assert parse_reset_patience("off") == "off" and reset_schedule("off", 32, 1)[0] == NEVER_RESET
    quantizer = CrossQuantizer(8, 4, modalities=("audio", "video"))
    quantizer.set_reset_policy(*reset_schedule("off", 2, 1))
    before = quantizer.codebook().clone()
    used = torch.tensor([0])
    for _ in range(50):
        assert quantizer._reset_dead_codes(0, used) == 0
    assert torch.equal(quantizer.codebook()[1:], before[1:])
    # The same unused codes under a 2-batch patience are revived.
    quantizer.set_reset_policy(*reset_schedule(2, 2, 1))
    assert sum(quantizer._reset_dead_codes(0, used) for _ in range(5)) > 0


def test_level_2_usage_term_is_per_modality_so_one_collapsed_modality_is_not_hidden():
    codebook = torch.eye(4, 8)
    rows = 5 * codebook[torch.arange(8) % 4].reshape(2, 4, 8)  # spread over all four codes
    one = 5 * codebook[1].expand(2, 4, 8)  # every position on code 1
    log4 = torch.log(torch.tensor(4.0)).item()
    usage = {
        name: float(segment_code_matching(features, codebook, 0.05, cosine=True, usage_weight=1.0, match=False))
        for name, features in {"both spread": {"audio": rows, "video": rows.clone()},
                               "video collapsed": {"audio": rows, "video": one}}.items()
    }  # fmt: skip
    # −½·[H(mean p_a) + H(mean p_v)]: the collapsed video adds nothing, audio's spread only half.
    assert usage["both spread"] == pytest.approx(-log4, abs=1e-3)
    assert usage["video collapsed"] == pytest.approx(-0.5 * log4, abs=1e-3)
    # A pooled entropy (the matching level's) cannot tell these apart as well: the pooled mean of a
    # spread audio and a one-code video still has entropy > ½·log 4.
    pooled = float(segment_code_matching({"audio": rows, "video": one}, codebook, 0.05, cosine=True, usage_weight=1.0))
    plain = float(segment_code_matching({"audio": rows, "video": one}, codebook, 0.05, cosine=True))
    assert -(pooled - plain) > 0.5 * log4 + 0.1


def test_code_matching_reaches_level_1_only_and_level_2_gets_the_usage_term(corpus, tmp_path):
    trainer = _trainer(corpus, tmp_path, "levels", code_match_weight=1.0, code_usage_weight=1.0)
    metrics = trainer.train_step(list(range(4)))
    assert "code_match" in metrics and "code_usage_2" in metrics and "code_match_2" not in metrics
    # Level 2's term is the per-modality usage alone: no higher than 0 (an entropy is >= 0).
    assert metrics["code_usage_2"] <= 0.0


def test_shared_codes_recipe_shares_codes_and_fcid_drops_its_per_second_matching():
    config = TrainConfig.from_recipe("shared-codes", n_clips=500)
    r = config.remedies
    assert (r.code_match_weight, r.code_usage_weight, r.code_usage_per_prompt) == (1.0, 3.0, 2.0)
    assert (r.reset_patience, r.detach_level2_targets) == ("off", True)
    assert config.level2_start == 0 and config.epochs == 13
    assert TrainConfig.from_settings({}, n_clips=500) == config  # the default
    # small-corpus (the previous default) and the published recipe keep code sharing off and
    # level 2 from epoch 3.
    for name in ("small-corpus", "reference"):
        other = TrainConfig.from_recipe(name, n_clips=500)
        assert other.remedies.code_match_weight == 0.0 and other.remedies.reset_patience != "off"
        assert other.level2_start == 3
    assert TrainConfig.from_recipe("reference", n_clips=500).remedies == Remedies()
    fcid = TrainConfig.from_settings({"method": "fcid", "recipe": "shared-codes"}, n_clips=500)
    fcid.validate()
    # FCID (one vector per clip) gets the small-corpus remedies from it.
    assert fcid.remedies == RECIPES["small-corpus"].remedies
    with pytest.raises(CmgError, match="FCID quantizes one vector per clip"):
        TrainConfig.from_settings({"method": "fcid", "code_match_weight": 1.0}, n_clips=500).validate()
