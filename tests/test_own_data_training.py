"""Own data through the model and the trainer: any widths, video without a spatial grid, no time
axis (Cross-CPC replaced by clip-level InfoNCE), no text; then `toc eval paired`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from hdcid.losses import clip_contrastive
from hdcid.models import CmgEncoder, EncoderSizes
from hdcid.training import PretrainModel, TrainConfig, Trainer
from tests.test_paired_data import write_h5
from toc.codebook.checkpoint import load_checkpoint
from toc.corpora.paired import synthesize_paired
from toc.data.paired import PairedPretraining, load_paired

SMALL = dict(
    batch_size=4, seed=0, n_embeddings=16, audio_output_dim=8, video_output_dim=8,
    text_output_dim=8, diagnostics_clips=8, embedding_dim=16,
)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def corpus_file(path, *, n=16, steps=1, audio=(13,), video=(6,), text=None, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    shape = (steps,) if steps > 1 else ()
    data = {
        "audio": rng.normal(size=(n, *shape, *audio)) + labels.reshape(-1, *[1] * (len(shape) + len(audio))),
        "video": np.abs(rng.normal(size=(n, *shape, *video))) + labels.reshape(-1, *[1] * (len(shape) + len(video))),
        "labels": labels,
    }
    if text is not None:
        data["text"] = rng.normal(size=(n, *shape, text))
    return write_h5(path, **data)


def test_grid_free_video_branch_has_its_own_keys_and_the_published_one_is_unchanged():
    with torch.device("meta"):
        published = CmgEncoder(EncoderSizes(family="hdcid-avt")).state_dict()
    assert "Video_encoder.conv_stack.0.weight" in published and "Video_encoder.video_linear.weight" not in published
    sizes = EncoderSizes(family="hdcid-avt", audio_dim=13, video_dim=6, audio_output_dim=8, video_output_dim=8,
                         text_output_dim=8, n_embeddings=16, embedding_dim=16, dim_feedforward=32, video_grid=False)
    encoder = CmgEncoder(sizes).eval()
    keys = encoder.state_dict()
    assert "Video_encoder.video_linear.weight" in keys and not any(k.startswith("Video_encoder.conv_stack") for k in keys)
    codes = encoder.encode("video", torch.randn(3, 1, 6))
    assert [tuple(c.shape) for _, c in codes] == [(3, 1), (3, 1)]
    # The SE semantic encoder on a vector is the published one on a 1 x 1 grid.
    vector = torch.randn(2, 4, 6)
    assert torch.equal(encoder.video_semantic_encoder(vector), encoder.video_semantic_encoder(vector[:, :, None, None, :]))


def test_clip_contrastive_is_symmetric_infonce_over_clip_means():
    torch.manual_seed(0)
    audio, video = torch.randn(5, 2, 8), torch.randn(5, 2, 8)
    out = clip_contrastive({"audio": audio, "video": video})
    a, v = torch.nn.functional.normalize(audio.mean(1), dim=-1), torch.nn.functional.normalize(video.mean(1), dim=-1)
    logits = a @ v.t() / 0.1
    target = torch.arange(5)
    expected = 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.t(), target))
    assert torch.allclose(out.nce, expected, rtol=1e-6, atol=0)
    paired = clip_contrastive({"audio": audio, "video": audio.clone()})
    assert paired.accuracy == {"av": 1.0}


@pytest.mark.parametrize("steps,text,video,temporal", [
    (1, None, (6,), "clip_nce"),  # no time axis, no text, no grid
    (2, 5, (6,), "clip_nce"),  # too short for Cross-CPC
    (3, 5, (5, 5, 4), "nce"),  # a 5 x 5 grid (not the published 7 x 7) and enough steps for CPC
])
def test_one_step_of_every_shape(tmp_path, steps, text, video, temporal):
    corpus = load_paired(corpus_file(tmp_path / "p.h5", steps=steps, text=text, video=video))
    data = PairedPretraining(corpus)
    trainer = Trainer(TrainConfig(levels=2, level2_start=0, epochs=1, **SMALL), data, tmp_path / "run")
    metrics = trainer.train_step([0, 1, 2, 3])
    other = "clip_nce" if temporal == "nce" else "nce"
    assert temporal in metrics and other not in metrics and f"{temporal}_2" in metrics
    assert ("recon_text" in metrics) == (text is not None) and ("mi_text" in metrics) == (text is not None)
    assert np.isfinite(metrics["loss"])
    assert trainer.model.sizes.video_grid == (len(video) == 3)
    # The checkpoint states of a grid-free run load back (strict) into a fresh model.
    fresh = PretrainModel(trainer.config, 13, video[-1], text, video_grid=len(video) == 3)
    fresh.load_checkpoint_states(trainer.model.checkpoint_states())


def test_own_data_trains_and_evaluates_with_the_defaults(tmp_path):
    """Unusual widths, no spatial grid, no time axis, no text: `toc train` with the default recipe
    (capped at a few steps: a full run is measured in benchmarks/results/own_data.md), then
    `toc eval paired` with every default."""
    synthesize_paired(tmp_path / "data", scale=0.1, seed=1, audio_dim=37, video_dim=19)
    trained = run("train", "--data-root", tmp_path / "data", "-o", tmp_path / "run", "--max-steps", 3)
    assert trained.exit_code == 0, trained.output
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["data"]["shapes"] == {"audio": [1, 37], "video": [1, 19]}
    assert config["data"]["clips"] == 34  # every clip outside the test split
    # No text: the default recipe trains as small-corpus (no prompts for its usage floor to count).
    assert json.loads(trained.stdout)["recipe"] == "small-corpus"
    assert config["remedies"] == TrainConfig.from_recipe("small-corpus", n_clips=34).remedies.as_dict()
    checkpoint = load_checkpoint(tmp_path / "run/last.pt")
    sizes = checkpoint.sizes
    assert (sizes.family, sizes.audio_dim, sizes.video_dim, sizes.video_grid) == ("hdcid-avt", 37, 19, False)
    evaluated = run("eval", "paired", "--checkpoint", tmp_path / "run/last.pt", "--data-root", tmp_path / "data")
    assert evaluated.exit_code == 0, evaluated.output
    records = [json.loads(line) for line in evaluated.stdout.splitlines()]
    assert [(r["direction"], r["variant"], r["split"]) for r in records] == [
        ("v2a", "hdcid", "predefined"), ("a2v", "hdcid", "predefined"),
    ]
    assert all(r["n_eval"] == 6 and 0 <= r["metrics"]["accuracy"] <= 100 for r in records)
    # `toc encode` takes clip embeddings [N, D] as one step each; maps are refused in one line.
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(3, 37)).astype(np.float32))
    encoded = run("encode", tmp_path / "run/last.pt", "--modality", "audio", "--input", tmp_path / "a.npy", "-o", tmp_path / "a.h5")
    assert encoded.exit_code == 0, encoded.output
    assert json.loads(encoded.stdout)["steps"] == 1
    np.save(tmp_path / "v.npy", np.zeros((2, 1, 7, 7, 19), dtype=np.float32))
    wrong = run("encode", tmp_path / "run/last.pt", "--modality", "video", "--input", tmp_path / "v.npy", "-o", tmp_path / "o.h5")
    assert wrong.exit_code == 1 and "expected [N, T, 19]" in wrong.stderr


def test_the_default_recipe_without_text_is_small_corpus_and_with_text_shares_codes(tmp_path):
    """The recipe follows the corpus: the same command on the same clips with and without prompts;
    resuming with the default named explicitly continues the saved no-text run."""
    summaries = {}
    for text_dim in (None, 6):
        data = tmp_path / f"data-{text_dim}"
        synthesize_paired(data, scale=0.1, seed=1, audio_dim=9, video_dim=7, text_dim=text_dim)
        trained = run("train", "--data-root", data, "-o", tmp_path / f"run-{text_dim}", "--max-steps", 1)
        assert trained.exit_code == 0, trained.output
        summaries[text_dim] = json.loads(trained.stdout)
        config = json.loads((tmp_path / f"run-{text_dim}/config.json").read_text())
        expected = TrainConfig.from_recipe("small-corpus" if text_dim is None else "shared-codes", n_clips=34)
        assert config["remedies"] == expected.remedies.as_dict()
        assert config["level2_start"] == expected.level2_start
    assert [summaries[t]["recipe"] for t in (None, 6)] == ["small-corpus", "shared-codes"]
    assert TrainConfig.from_settings({}, n_clips=34, has_text=False) == TrainConfig.from_recipe("small-corpus", n_clips=34)
    resumed = run("train", "--data-root", tmp_path / "data-None", "--resume", tmp_path / "run-None",
                  "--recipe", "shared-codes", "--max-steps", 2)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["recipe"] == "small-corpus"
    other = run("train", "--data-root", tmp_path / "data-None", "--resume", tmp_path / "run-None",
                "--recipe", "reference", "--max-steps", 3)
    assert other.exit_code != 0 and "recipe" in other.output
