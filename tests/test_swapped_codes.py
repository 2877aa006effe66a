"""The swapped code prediction (hdcid/swapped_codes.py): balanced targets, the swapped
cross-entropy, its queue, and what it does in training — on a planted two-view corpus it puts
paired audio and video on the same code ids where training without it does not; the same seed
gives the same losses (and a resumed run the same as an uninterrupted one); two processes with
half batches compute the one-process term."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hdcid.checkpoint_keys import SWAP_STATE_KEY
from hdcid.diagnostics import normalized_mutual_information, pair_measures
from hdcid.errors import CmgError
from hdcid.quantizer import code_logits, quantize
from hdcid.recipes import RECIPES
from hdcid.swapped_codes import (
    SwapSettings,
    SwapState,
    sinkhorn_targets,
    swapped_code_prediction,
    usage_prior,
)
from hdcid.training import Remedies, TrainConfig, Trainer, train
from tests.distributed_workers import final_states, run_processes, run_steps, trainer_for
from tests.train_corpus import PlantedCorpus
from toc.codebook.checkpoint import load_checkpoint


def _logits(n: int, k: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Every position prefers the first codes: unbalanced on purpose.
    return torch.randn(n, k, generator=generator, dtype=torch.float64) - 2 * torch.arange(k, dtype=torch.float64)


def test_sinkhorn_targets_sum_to_one_per_position_and_to_the_prior_per_code():
    n, k = 60, 7
    logits = _logits(n, k, 0)
    assert F.softmax(logits, -1).sum(0)[0] > 4 * n / k  # the plain softmax is far from balanced
    counts = torch.tensor([50.0, 0.0, 3.0, 9.0, 1.0, 20.0, 7.0])
    for prior in (None, usage_prior(counts, 1.0, 0.1), usage_prior(counts, 0.5, 0.3)):
        expected = torch.full((k,), 1.0 / k, dtype=torch.float64) if prior is None else prior
        assert float(expected.sum()) == pytest.approx(1.0)
        targets = sinkhorn_targets(logits, prior, iterations=300)
        assert torch.allclose(targets.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(targets.sum(0), n * expected, rtol=1e-6)
        # The default 3 iterations: rows exact, code totals already close to the prior.
        few = sinkhorn_targets(logits, prior, iterations=3)
        assert torch.allclose(few.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-12)
        assert float((few.sum(0) - n * expected).abs().max()) < 0.1 * n / k


def test_usage_prior_is_equipartition_at_power_0_and_follows_the_usage_above():
    counts = torch.tensor([6.0, 2.0, 0.0, 0.0])
    assert usage_prior(counts, 0.0) is None and usage_prior(torch.zeros(4), 1.0) is None
    prior = usage_prior(counts, 1.0, 0.2)
    assert torch.allclose(prior, torch.tensor([0.8 * 0.75 + 0.05, 0.8 * 0.25 + 0.05, 0.05, 0.05], dtype=torch.float64))
    assert float(usage_prior(counts, 0.5, 0.0)[0]) == pytest.approx(math.sqrt(6) / (math.sqrt(6) + math.sqrt(2)))


def test_the_term_is_the_cross_entropy_of_each_modality_against_the_others_balanced_target():
    generator = torch.Generator().manual_seed(1)
    codebook = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    audio = torch.randn(3, 2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    video = torch.randn(3, 2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    for cosine in (False, True):
        settings = SwapSettings(temperature=0.2, target_temperature=0.05, iterations=3, prior_power=0.0, cosine=cosine)
        loss = swapped_code_prediction({"audio": audio, "video": video, "text": audio}, codebook, settings)
        rows = {"audio": audio.reshape(-1, 4), "video": video.reshape(-1, 4)}
        log_p = {m: F.log_softmax(code_logits(x, codebook, 0.2, cosine), -1) for m, x in rows.items()}
        q = {m: sinkhorn_targets(code_logits(x.detach(), codebook, 1.0, cosine) / 0.05, None, 3) for m, x in rows.items()}
        by_hand = -0.5 * ((q["video"] * log_p["audio"]).sum(-1).mean() + (q["audio"] * log_p["video"]).sum(-1).mean())
        assert float(loss.detach()) == pytest.approx(float(by_hand.detach()), rel=1e-12)
    # Swapped: audio's gradient comes from video's target only (the targets take no gradient).
    audio.grad = video.grad = None
    settings = SwapSettings(prior_power=0.0)
    swapped_code_prediction({"audio": audio, "video": video}, codebook, settings).backward()
    grad = audio.grad.clone()
    audio.grad = None
    rows = {"audio": audio.reshape(-1, 4), "video": video.reshape(-1, 4)}
    q_video = sinkhorn_targets(code_logits(rows["video"].detach(), codebook, 1.0, False) / 0.05, None, 3)
    own = -0.5 * (q_video * F.log_softmax(code_logits(rows["audio"], codebook, 0.1, False), -1)).sum(-1).mean()
    own.backward()
    assert torch.allclose(audio.grad, grad, rtol=1e-10, atol=1e-14)
    assert float(swapped_code_prediction({"audio": audio}, codebook, settings)) == 0.0  # no pair: no term


def test_queue_rows_join_the_targets_and_the_batch_is_pushed_after():
    generator = torch.Generator().manual_seed(2)
    codebook = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    batches = [{m: torch.randn(2, 2, 4, generator=generator, dtype=torch.float64) for m in ("audio", "video")}
               for _ in range(3)]  # fmt: skip
    state = SwapState(levels=1, width=4, n_codes=6, length=6).double()
    settings = SwapSettings(prior_power=0.0)
    alone = [float(swapped_code_prediction(b, codebook, settings)) for b in batches]
    queued = [float(swapped_code_prediction(b, codebook, settings, state, 0)) for b in batches]
    assert queued[0] == alone[0]  # an empty queue adds nothing
    assert queued[1] != alone[1] and queued[2] != alone[2]  # later batches share the problem with earlier rows
    # FIFO, newest first: 3 batches of 4 rows in a queue of 6 keep batch 3 and half of batch 2.
    assert int(state.filled[0]) == 6
    kept = state.queued(0)["video"]
    assert torch.equal(kept[:4], batches[2]["video"].reshape(-1, 4))
    assert torch.equal(kept[4:], batches[1]["video"].reshape(-1, 4)[:2])


def test_centring_targets_subtract_the_running_mean_of_the_scores():
    codebook = torch.eye(3, 4, dtype=torch.float64)
    features = {m: torch.eye(3, 4, dtype=torch.float64)[None].repeat(2, 1, 1) for m in ("audio", "video")}
    state = SwapState(1, 4, 3, 0).double()
    settings = SwapSettings(targets="centring", cosine=True)
    first = float(swapped_code_prediction(features, codebook, settings, state, 0))
    # Balanced scores: the centre is the same for every code, so the targets are the plain
    # sharpened softmax, each position on its own code.
    scores = features["video"].reshape(-1, 4) @ codebook.t()
    q = F.softmax((scores - scores.mean(0)) / 0.05, -1)
    log_p = F.log_softmax(scores / 0.1, -1)
    assert first == pytest.approx(float(-(q * log_p).sum(-1).mean()), rel=1e-12)
    assert int(state.centred[0]) == 1 and torch.allclose(state.centre[0, 0], scores.mean(0))


# ---------------------------------------------------------------------- in training


class TwoViews:
    """Planted clusters seen through two views: each clip belongs to one of `classes` hidden
    clusters; audio and video are different random linear maps of the cluster's mean plus noise,
    and each view adds, per second, one of `nuisance` view-specific offsets, independent across
    the views and larger than the shared signal (what a voice or a handwriting adds to one
    modality only). No text."""

    def __init__(self, clips: int = 64, classes: int = 5, steps: int = 4, seed: int = 0, nuisance: int = 4):
        rng = np.random.default_rng(seed)
        self.labels = np.arange(clips) % classes
        means = rng.normal(size=(classes, 8))
        views = {}
        for name, width in (("audio", 16), ("video", 24)):
            mapped = means[self.labels] @ rng.normal(size=(8, width))
            offsets = 2.0 * rng.normal(size=(nuisance, width))[rng.integers(nuisance, size=(clips, steps))]
            views[name] = (mapped[:, None] + offsets + rng.normal(size=(clips, steps, width))).astype(np.float32)
        self.audio, self.video = views["audio"], views["video"]

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, rows) -> dict[str, np.ndarray]:
        rows = list(rows)
        return {"audio": self.audio[rows], "video": self.video[rows]}


# The small-corpus remedies without dead-code resets (a revived copy of a shared code splits it).
PLANTED_REMEDIES = dict(
    standardize_inputs=True, codebook_init="kmeans", reset_patience="off", ema_consistent=True, align_weight=1.0,
    warmup_steps=20,
)
PLANTED = dict(
    levels=2, epochs=100, batch_size=8, n_embeddings=128, embedding_dim=32, audio_output_dim=8,
    video_output_dim=8, text_output_dim=8, diagnostics_clips=0, mi_iters=1, level2_start=0,
)


def _planted_sharing(swap_weight: float, seed: int, steps: int, run_dir) -> tuple[float, int, float]:
    """After `steps` seeded batches, over every position of the planted corpus: the level-1
    audio–video Cohen's κ, the codes audio uses, and the smaller of the two modalities' NMI
    between their codes and the hidden clusters (whether the shared ids tell the clusters apart)."""
    data = TwoViews()
    remedies = Remedies(**PLANTED_REMEDIES, swap_weight=swap_weight)
    trainer = Trainer(TrainConfig(**PLANTED, seed=seed, remedies=remedies), data, run_dir)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        trainer.train_step(sorted(rng.choice(len(data), PLANTED["batch_size"], replace=False).tolist()))
    inputs = trainer._tensors(data.read(range(len(data))))
    trainer.model.eval()
    with torch.no_grad():
        codes = {
            m: quantize(trainer.model.encoder.semantic_features(m, inputs[m])[0], trainer.model.encoder.codebook(0))[1]
            for m in ("audio", "video")
        }
    measures = pair_measures(codes["audio"].reshape(len(data), -1), codes["video"].reshape(len(data), -1))
    clusters = np.repeat(data.labels, codes["audio"].numel() // len(data))
    nmi = min(normalized_mutual_information(codes[m].numpy(), clusters) for m in ("audio", "video"))
    return measures.kappa, measures.codes_used["audio"], nmi


def test_the_term_puts_paired_audio_and_video_on_shared_code_ids_where_plain_training_does_not(tmp_path):
    # Seed 1 of the 5 measured (docs/training.md, "Swapped code prediction"): over seeds 0-4,
    # κ 0.31-0.46 without the term and 0.74-1.00 with it, 5-9 codes for the 5 clusters.
    plain, _, _ = _planted_sharing(0.0, seed=1, steps=100, run_dir=tmp_path / "plain")
    swapped, codes, nmi = _planted_sharing(1.0, seed=1, steps=100, run_dir=tmp_path / "swap")
    print(f"planted two-view corpus, seed 1: κ without the term {plain:.2f}, with it {swapped:.2f} "
          f"({codes} codes, NMI with the clusters {nmi:.2f})")  # fmt: skip
    assert plain < 0.5
    assert swapped > 0.8 and swapped > plain + 0.3
    assert codes >= 5 and nmi > 0.8  # the shared ids tell the 5 hidden clusters apart: no collapse


SMALL = dict(
    levels=2, epochs=2, batch_size=4, seed=0, n_embeddings=16, embedding_dim=16, audio_output_dim=8,
    video_output_dim=8, text_output_dim=8, diagnostics_clips=0, level2_start=0, mi_iters=1,
)


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return PlantedCorpus(n_clips=8, n_classes=2, word_dim=8, audio_dim=16, video_dim=24)


def _steps(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"step"' in x]


def test_same_seed_gives_identical_losses_and_a_resumed_run_continues_the_queue_exactly(corpus, tmp_path):
    remedies = Remedies(swap_weight=1.0, swap_queue=12, swap_level2=True, codebook_init="kmeans", ema_consistent=True)
    config = TrainConfig(**SMALL, remedies=remedies)
    train(config, corpus, tmp_path / "a")
    train(config, corpus, tmp_path / "b")
    train(TrainConfig(**{**config.__dict__, "max_steps": 3}), corpus, tmp_path / "part")
    train(config, corpus, tmp_path / "part", resume=True)
    steps = {name: _steps(tmp_path / name) for name in ("a", "b", "part")}
    assert len(steps["a"]) == 4 and all("swap" in s and "swap_2" in s for s in steps["a"])
    assert steps["a"] == steps["b"] == steps["part"]
    saved = {name: torch.load(tmp_path / name / "last.pt", weights_only=True) for name in ("a", "part")}
    queue = saved["a"][SWAP_STATE_KEY]
    assert queue["filled"].tolist() == [12, 12]  # 4 steps x 16 positions, 12 kept per level
    for key, tensors in saved["a"][SWAP_STATE_KEY].items():
        assert torch.equal(tensors, saved["part"][SWAP_STATE_KEY][key])
    assert load_checkpoint(tmp_path / "a" / "last.pt").family == "hdcid-avt"  # the toolkit still reads it
    # Off (every existing recipe): no term, no state in the checkpoint.
    train(TrainConfig(**{**SMALL, "epochs": 1}), corpus, tmp_path / "off")
    assert SWAP_STATE_KEY not in torch.load(tmp_path / "off" / "last.pt", weights_only=True)
    assert all("swap" not in s for s in _steps(tmp_path / "off"))
    # Level 1 only unless asked: no level-2 term, a queue for level 1 alone.
    train(TrainConfig(**{**SMALL, "epochs": 1}, remedies=Remedies(swap_weight=1.0, swap_queue=4)), corpus, tmp_path / "one")
    assert all("swap" in s and "swap_2" not in s for s in _steps(tmp_path / "one"))
    assert torch.load(tmp_path / "one" / "last.pt", weights_only=True)[SWAP_STATE_KEY]["filled"].tolist() == [4]


def test_fcid_applies_the_term_to_its_clip_codes(corpus, tmp_path):
    remedies = Remedies(swap_weight=1.0, swap_queue=6)
    config = TrainConfig(method="fcid", levels=1, epochs=1, batch_size=4, seed=0, n_embeddings=16,
                         audio_output_dim=8, video_output_dim=8, text_output_dim=8, diagnostics_clips=0,
                         remedies=remedies)  # fmt: skip
    train(config, corpus, tmp_path / "fcid")
    steps = _steps(tmp_path / "fcid")
    assert all(math.isfinite(s["swap"]) for s in steps)
    state = torch.load(tmp_path / "fcid" / "last.pt", weights_only=True)[SWAP_STATE_KEY]
    assert state["filled"].tolist() == [6]  # one row per clip: 2 steps x 4 clips, 6 kept
    assert state["queue"].shape == (1, 2, 6, 256)


def test_settings_are_checked_and_the_term_is_off_in_every_recipe_but_its_own():
    for name, recipe in RECIPES.items():
        expected = 1.0 if name == "swapped-codes" else 0.0
        assert recipe.remedies.swap_weight == expected, name
        assert recipe.fcid_remedies is None or recipe.fcid_remedies.swap_weight == 0.0
    config = TrainConfig.from_settings({"recipe": "swapped-codes"}, n_clips=500, has_text=False)
    assert config.recipe == "swapped-codes" and config.remedies.reset_patience == "off"
    assert config.remedies == Remedies(**{**RECIPES["small-corpus"].remedies.__dict__, "swap_weight": 1.0,
                                          "reset_patience": "off"})  # fmt: skip
    for bad, message in (
        ({"swap_targets": "dino"}, "swap_targets must be one of sinkhorn, centring"),
        ({"swap_iterations": 0}, "swap_iterations must be a whole number >= 1"),
        ({"swap_queue": -1}, "swap_queue must be a whole number >= 0"),
        ({"swap_prior_uniform": 1.5}, "swap_prior_uniform must be at most 1"),
        ({"swap_target_temperature": 0.0}, "swap_target_temperature must be > 0"),
        ({"swap_weight": float("nan")}, "swap_weight must be a finite number"),
    ):
        with pytest.raises(CmgError, match=message):
            TrainConfig(remedies=Remedies(**{"swap_weight": 1.0, **bad})).validate()
    with pytest.raises(CmgError, match="swap_targets must be one of"):
        SwapSettings(targets="dino")
    with pytest.raises(CmgError, match="swapped-codes queue would hold"):
        TrainConfig(remedies=Remedies(swap_weight=1.0, swap_queue=1 << 20)).validate()


# ---------------------------------------------------------------------- distributed

DISTRIBUTED = dict(
    levels=2, epochs=2, batch_size=5, seed=3, dtype="float64", n_embeddings=24, embedding_dim=32,
    audio_output_dim=16, video_output_dim=16, text_output_dim=16, diagnostics_clips=0, mi_iters=2, level2_start=0,
    # Uniform codebook initialisation: k-means on this corpus (3 prompts, each repeated) leaves two
    # level-1 codewords 2e-15 apart, and which of the two a row takes then follows the summation
    # order, which differs between one process and two.
    remedies=Remedies(swap_weight=1.0, swap_queue=20, swap_level2=True, codebook_init="uniform", ema_consistent=True,
                      standardize_inputs=True),
)  # fmt: skip


def test_two_processes_compute_the_one_process_term(tmp_path):
    """Batches of 5 split 3 + 2 and 3 split 2 + 1: the targets, the queue and the usage prior come
    from the gathered batch, so the step losses and the term's state match one process."""
    out = tmp_path / "states"
    out.mkdir()
    run_processes([{"name": "swap", "run_dir": str(tmp_path / "two"), "settings": DISTRIBUTED, "steps_only": True}], out)
    ranks = [torch.load(out / f"swap-rank{r}.pt", weights_only=True) for r in range(2)]
    single = trainer_for(tmp_path / "one", DISTRIBUTED, None)
    one_steps = run_steps(single)
    two_steps = ranks[0].pop("steps")
    ranks[1].pop("steps")
    assert len(one_steps) == 4
    for one, two in zip(one_steps, two_steps, strict=True):
        for name in ("swap", "swap_2", "loss"):
            assert two[name] == pytest.approx(one[name], rel=1e-8), name
    one_state = final_states(single)[SWAP_STATE_KEY]
    for key, value in one_state.items():
        assert torch.equal(ranks[0][SWAP_STATE_KEY][key], ranks[1][SWAP_STATE_KEY][key])  # identical on the ranks
        torch.testing.assert_close(ranks[0][SWAP_STATE_KEY][key], value, rtol=1e-7, atol=1e-8)
    assert one_state["filled"].tolist() == [20, 20]
