"""Each small-corpus remedy, switched on alone, changes what it claims to change (issue 6)."""

from __future__ import annotations

import pytest
import torch

from hdcid.quantizer import CrossQuantizer, squared_distances
from hdcid.training import DEFAULT_RECIPE, RECIPES, Remedies, TrainConfig, Trainer
from tests.train_corpus import PlantedCorpus

SMALL = dict(
    levels=2, epochs=2, batch_size=4, seed=0, n_embeddings=32, embedding_dim=32, audio_output_dim=16,
    video_output_dim=16, text_output_dim=16, diagnostics_clips=0,
)


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return PlantedCorpus(n_clips=8, n_classes=2, word_dim=24)


def _trainer(corpus, tmp_path, name: str, **remedies) -> Trainer:
    return Trainer(TrainConfig(**SMALL, remedies=Remedies(**remedies)), corpus, tmp_path / name)


def _quantization_error(trainer: Trainer) -> tuple[float, int]:
    """Mean squared distance of the initial semantic features to their nearest code; codes hit."""
    points = trainer._semantic_sample()[0]
    codebook = trainer.model.encoder.codebook(0).double()
    distances = squared_distances(points, codebook)
    return float(distances.min(-1).values.mean()), len(torch.unique(distances.argmin(-1)))


def _train_and_embed(trainer: Trainer, corpus, steps: int = 6):
    """Run `steps` train steps; return the last step's metrics and the level-1 semantic features
    of every clip for audio and video (eval mode)."""
    for step in range(steps):
        metrics = trainer.train_step([(4 * step + i) % 8 for i in range(4)])
    inputs = trainer._tensors(corpus.read(range(8)))
    with torch.no_grad():
        trainer.model.eval()
        audio = trainer.model.encoder.semantic_features("audio", inputs["audio"])[0]
        video = trainer.model.encoder.semantic_features("video", inputs["video"])[0]
    return metrics, audio, video


def test_published_recipe_is_every_remedy_off_and_the_default_turns_them_all_on():
    assert RECIPES["reference"].remedies == Remedies()
    for name in (DEFAULT_RECIPE, "shared-codes"):
        on = RECIPES[name].remedies
        assert on.standardize_inputs and on.codebook_init == "kmeans" and on.ema_consistent
        assert on.align_weight > 0 and on.warmup_steps > 0
    # small-corpus (the previous default) resets after one unused epoch; the default,
    # shared-codes, never resets.
    assert DEFAULT_RECIPE == "shared-codes"
    assert RECIPES["small-corpus"].remedies.reset_patience == "auto"
    assert RECIPES[DEFAULT_RECIPE].remedies.reset_patience == "off"
    # The published sizes and schedule stay one flag away.
    reference = TrainConfig.from_recipe("reference", n_clips=40_000, levels=2)
    assert (reference.batch_size, reference.video_output_dim, reference.epochs) == (80, 2048, 5)
    assert TrainConfig.from_recipe("reference", n_clips=40_000, levels=1).epochs == 6


def test_default_recipe_epochs_follow_the_step_budget():
    recipe = RECIPES[DEFAULT_RECIPE]
    assert recipe.step_budget is not None
    small = TrainConfig.from_recipe(n_clips=500, levels=1)  # 32 steps per epoch
    assert small.epochs == min(recipe.max_epochs, -(-recipe.step_budget // 32))
    assert TrainConfig.from_recipe(n_clips=50, levels=1).epochs == recipe.max_epochs
    assert TrainConfig.from_recipe(n_clips=100_000, levels=1).epochs == recipe.epochs[1]
    assert TrainConfig.from_recipe(n_clips=500, levels=1, epochs=2, batch_size=8).epochs == 2


def test_standardize_inputs_feeds_the_encoder_z_scored_channels(corpus, tmp_path):
    plain = _trainer(corpus, tmp_path, "plain")
    fixed = _trainer(corpus, tmp_path, "fixed", standardize_inputs=True)
    raw = corpus.read(range(len(corpus)))
    assert plain.normalization is None
    assert torch.equal(plain._tensors(raw)["audio"], torch.from_numpy(raw["audio"]))
    audio = fixed._tensors(raw)["audio"].double().reshape(-1, 128)
    video = fixed._tensors(raw)["video"].double().reshape(-1, 512)
    for x in (audio, video):
        assert x.mean(0).abs().max() < 1e-4
        assert (x.std(0, unbiased=False) - 1).abs().max() < 1e-3
    assert torch.equal(fixed._tensors(raw)["text"], torch.from_numpy(raw["text"]))  # text is left alone


@pytest.mark.parametrize("init", ["kmeans", "sample"])
def test_data_dependent_codebook_init_places_codes_among_the_features(corpus, tmp_path, init):
    plain_error, plain_used = _quantization_error(_trainer(corpus, tmp_path, "plain"))
    error, used = _quantization_error(_trainer(corpus, tmp_path, init, codebook_init=init))
    assert error < 0.5 * plain_error
    assert used > plain_used


def test_reset_patience_auto_revives_a_parked_code(corpus, tmp_path):
    revived = {}
    for patience in ("reference", "auto"):
        # Consistent EMA in both runs, so an unused code stays exactly where it is parked and only
        # the reset can move it.
        trainer = _trainer(corpus, tmp_path, patience, reset_patience=patience, ema_consistent=True)
        quantizer = trainer.model.encoder.Cross_quantizer
        parked = quantizer.embedding[0, 5].clone().fill_(50.0)  # level 1, code 5: far from every feature
        quantizer.embedding[0, 5] = parked
        quantizer.ema_weight[0, 5] = parked * quantizer.ema_count[0, 5]
        for step in range(4):  # two epochs of 2 batches
            trainer.train_step([(2 * step) % 8, (2 * step + 1) % 8, (2 * step + 2) % 8, (2 * step + 3) % 8])
        revived[patience] = not torch.allclose(quantizer.embedding[0, 5], parked)
        if patience == "auto":
            assert quantizer.reset_after == trainer.steps_per_epoch == 2
            assert float(quantizer.embedding[0, 5].abs().max()) < 50.0
    # The published 300-batch patience never reaches a reset in this run; one epoch does.
    assert revived == {"reference": False, "auto": True}


def test_consistent_ema_keeps_unused_codes_in_place(corpus, tmp_path):
    moved = {}
    for consistent in (False, True):
        trainer = _trainer(corpus, tmp_path, f"ema-{consistent}", ema_consistent=consistent)
        quantizer = trainer.model.encoder.Cross_quantizer
        before = quantizer.embedding[0].clone()
        # One MM-EMA step in which every feature sits on code 0: codes 1.. are unused.
        features = before[0].expand(2, 10, -1).contiguous()
        quantizer.quantize_level({"audio": features, "video": features.clone()}, level=0, cmcm=False)
        moved[consistent] = float((quantizer.embedding[0, 1:] - before[1:]).norm(dim=-1).max())
        if consistent:
            assert float(quantizer.ema_count[0].min()) > 0
    # Published zero-count start: unused codes jump (weight / tiny count); consistent: they stay.
    assert moved[True] < 1e-6
    assert moved[False] > 1e3 * max(moved[True], 1e-9)


def test_consistent_ema_makes_resets_stick():
    quantizer = CrossQuantizer(n_embeddings=4, embedding_dim=8, modalities=("audio", "video"), reset_after=1,
                               active_within=1, reset_updates_ema=True)
    quantizer.ema_count.fill_(3.0)
    quantizer.ema_weight.copy_(quantizer.embedding * 3.0)
    quantizer.unactivated_count.fill_(5)
    quantizer._reset_dead_codes(0, torch.tensor([0]))  # code 0 used, codes 1..3 dead
    assert int((quantizer.unactivated_count == 0).sum()) == 4  # all three dead codes were reset
    assert torch.allclose(quantizer.ema_weight, quantizer.embedding * quantizer.ema_count.unsqueeze(-1))


def test_alignment_term_pulls_paired_audio_and_video_together(corpus, tmp_path):
    similarity = {}
    for weight in (0.0, 1.0):
        trainer = _trainer(corpus, tmp_path, f"align-{weight}", align_weight=weight, align_temperature=0.1)
        metrics, audio, video = _train_and_embed(trainer, corpus)
        assert ("align" in metrics) == (weight > 0)
        similarity[weight] = float(torch.nn.functional.cosine_similarity(audio, video, dim=-1).mean())
    assert similarity[1.0] > similarity[0.0] + 0.05


def test_gap_term_shrinks_the_distance_between_modality_centroids(corpus, tmp_path):
    from hdcid.diagnostics import centroid_gap

    gaps = {}
    for weight in (0.0, 10.0):
        trainer = _trainer(corpus, tmp_path, f"gap-{weight}", gap_weight=weight)
        metrics, audio, video = _train_and_embed(trainer, corpus)
        assert ("gap" in metrics) == (weight > 0)
        gaps[weight] = centroid_gap(audio, video)
    assert gaps[10.0] < 0.5 * gaps[0.0]


def test_warmup_ramps_the_club_and_commitment_weights(corpus, tmp_path):
    plain = _trainer(corpus, tmp_path, "plain")
    warm = _trainer(corpus, tmp_path, "warm", warmup_steps=4)
    weights = {"plain": [], "warm": []}
    for step in range(5):
        rows = [(4 * step + i) % 8 for i in range(4)]
        weights["plain"].append(plain.train_step(rows)["loss_weight_warmup"])
        weights["warm"].append(warm.train_step(rows)["loss_weight_warmup"])
    assert weights == {"plain": [1.0] * 5, "warm": [0.25, 0.5, 0.75, 1.0, 1.0]}
