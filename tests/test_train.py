"""Trainer: checkpoint layout, reference manifests, exact resume, warm start, remedies, diagnostics."""

from __future__ import annotations

import json

import pytest
import torch

from hdcid.checkpoint_keys import module_keys
from hdcid.errors import ModelError
from hdcid.training import (
    NORMALIZATION_KEY,
    PretrainModel,
    Remedies,
    TrainConfig,
    TrainDataError,
    Trainer,
    loss_weights,
    metric_name,
    train,
)
from hdcid.vocabulary import MODALITIES
from tests.conftest import reference_file
from tests.train_corpus import PlantedCorpus

SMALL = dict(
    batch_size=4, seed=0, n_embeddings=32, audio_output_dim=16, video_output_dim=16,
    text_output_dim=16, diagnostics_clips=8,
)
ENCODERS = {
    1: "AVT_VQVAE_Encoder(128,512,256,256,2048,256,400,256)",
    2: "AVT_MLVQVAE_Encoder(128,512,256,256,2048,256,400,256)",
}


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return PlantedCorpus(n_clips=8, n_classes=2, word_dim=24)


@pytest.mark.parametrize("levels", [1, 2])
def test_encoder_parameters_match_reference_manifest_at_default_sizes(levels):
    manifest = json.loads(reference_file("state_dict_manifests.json").read_text())[ENCODERS[levels]]
    with torch.device("meta"):
        model = PretrainModel(TrainConfig(levels=levels), audio_dim=128, video_dim=512, word_dim=768)
    states = model.checkpoint_states()
    encoder = states["Encoder_parameters"]
    assert list(encoder) == list(manifest)
    assert {k: list(v.shape) for k, v in encoder.items()} == {k: list(v) for k, v in manifest.items()}
    assert list(states["Text_ar_lstm_parameters"]["weight_ih_l0"].shape) == [512, 768]
    expected = {"Encoder_parameters", "Text_ar_lstm_parameters", "CPC_parameters", "Decoder_parameters",
                "Video_mi_net_parameters", "Text_mi_net_parameters", "Audio_mi_net_parameters"}
    if levels == 2:
        expected |= {"CPC_2_parameters", "Video_mi_net_2_parameters", "Text_mi_net_2_parameters", "Audio_mi_net_2_parameters"}
    assert set(states) == expected
    assert tuple(states) == module_keys(levels)  # the one key table, in the order checkpoints store them


def test_dcid_rejects_other_code_width():
    with pytest.raises(ModelError, match="256"):
        TrainConfig(levels=1, embedding_dim=64).validate()


def test_hdcid_run_writes_published_layout_and_loads_in_toc(corpus, tmp_path):
    from toc.codebook.checkpoint import load_checkpoint

    config = TrainConfig(levels=2, epochs=1, embedding_dim=32, level2_start=0, **SMALL)
    result = train(config, corpus, tmp_path / "run")
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "epoch-0.pt", "last.pt", "metrics.jsonl"]
    saved = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    for key in ("Encoder_parameters", "Text_ar_lstm_parameters", "CPC_parameters", "CPC_2_parameters",
                "Decoder_parameters", "Video_mi_net_parameters", "Audio_mi_net_2_parameters", "optimizer",
                "optimizer_video_mi_net", "optimizer_audio_mi_net_2", "epoch", "total_step"):
        assert key in saved
    assert saved["total_step"] == 2 and saved["epoch"] == 0
    loaded = load_checkpoint(run / "epoch-0.pt")
    assert loaded.family == "hdcid-avt" and loaded.sizes.embedding_dim == 32 and loaded.sizes.n_embeddings == 32
    assert loaded.sizes.video_output_dim == 16 and loaded.text_lstm_input_dim == 24
    # Every loss finite; level-2 terms present from epoch 0 (level2_start=0).
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) == 2
    for record in steps:
        for key in ("loss", "nce", "nce_2", "recon_video", "recon_2_audio", "mi_text", "mi_2_video",
                    "commit_audio", "commit_2_text", "cpc_acc_av"):
            assert key in record and record[key] == record[key] and abs(record[key]) < 1e6
    epoch = [r for r in lines if r["kind"] == "epoch"][0]
    assert len(epoch["diagnostics"]) == 2 and "kappa" in epoch["diagnostics"][0]["pairs"]["audio-video"]
    assert result.finished


def _flat_state(path):
    saved = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for key, value in saved.items():
        if key.endswith("_parameters"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
    return out, saved


def test_resume_reproduces_an_uninterrupted_run(corpus, tmp_path):
    # 8 clips, batch 4 → 2 steps per epoch; level 2 joins at epoch 1; stop mid-epoch-1 at step 3.
    config = TrainConfig(levels=2, epochs=3, embedding_dim=32, level2_start=1, **SMALL)
    train(config, corpus, tmp_path / "full", )
    train(TrainConfig(**{**config.__dict__, "max_steps": 3}), corpus, tmp_path / "part")
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["total_step"] == 3
    train(config, corpus, tmp_path / "part", resume=True)

    def step_losses(run):
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r for r in lines if r["kind"] == "step"], [r for r in lines if r["kind"] == "epoch"]

    full_steps, full_epochs = step_losses(tmp_path / "full")
    part_steps, part_epochs = step_losses(tmp_path / "part")
    assert len(full_steps) == 6
    assert part_steps == full_steps
    assert part_epochs == full_epochs
    full, full_raw = _flat_state(tmp_path / "full" / "last.pt")
    part, part_raw = _flat_state(tmp_path / "part" / "last.pt")
    assert full.keys() == part.keys()
    assert all(torch.equal(full[k], part[k]) for k in full)
    for key in ("optimizer", "optimizer_video_mi_net_2"):
        a, b = full_raw[key]["state"], part_raw[key]["state"]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)


def test_the_same_run_writes_byte_identical_checkpoints(corpus, tmp_path):
    config = TrainConfig(levels=1, epochs=1, **SMALL)
    first = train(config, corpus, tmp_path / "a").last_checkpoint
    second = train(config, corpus, tmp_path / "b").last_checkpoint
    assert first.read_bytes() == second.read_bytes()


def test_resume_without_checkpoint_is_one_line_error(corpus, tmp_path):
    from hdcid.errors import CmgError

    with pytest.raises(CmgError, match="no last.pt"):
        Trainer(TrainConfig(levels=2, epochs=1, embedding_dim=32, **SMALL), corpus, tmp_path, resume=True)


def test_bad_data_shapes_are_reported(tmp_path):
    class Broken(PlantedCorpus):
        def read(self, rows):
            out = super().read(rows)
            out["video"] = out["video"][:, :, :4]  # a 4 x 7 grid: too small for the conv branch
            return out

    with pytest.raises(TrainDataError, match=r"video.*H, W >= 5"):
        Trainer(TrainConfig(levels=2, epochs=1, embedding_dim=32, **SMALL), Broken(4), tmp_path)

    class Unequal(PlantedCorpus):
        def read(self, rows):
            out = super().read(rows)
            out["video"] = out["video"][:, :9]
            return out

    with pytest.raises(TrainDataError, match="different time lengths"):
        Trainer(TrainConfig(levels=2, epochs=1, embedding_dim=32, **SMALL), Unequal(4), tmp_path)


def test_init_from_dcid_warm_starts_level_one(tmp_path):
    data = PlantedCorpus(n_clips=4, n_classes=2, word_dim=24)
    dcid = TrainConfig(levels=1, epochs=1, **{**SMALL, "diagnostics_clips": 0})
    train(dcid, data, tmp_path / "dcid")
    source = torch.load(tmp_path / "dcid" / "last.pt", weights_only=True)
    hdcid = TrainConfig(levels=2, epochs=1, max_steps=1, embedding_dim=256, **{**SMALL, "diagnostics_clips": 0})
    trainer = Trainer(hdcid, data, tmp_path / "h", init_from=tmp_path / "dcid" / "last.pt")
    state = trainer.model.encoder.state_dict()
    assert torch.equal(state["audio_self_att.affine_matrix.weight"], source["Encoder_parameters"]["audio_self_att.affine_matrix.weight"])
    assert torch.equal(state["Cross_quantizer.embedding"][0], source["Encoder_parameters"]["Cross_quantizer.embedding"])
    assert torch.equal(trainer.model.text_lstm.weight_ih_l0, source["Text_ar_lstm_parameters"]["weight_ih_l0"])
    bad = TrainConfig(levels=2, epochs=1, embedding_dim=32, **SMALL)
    with pytest.raises(ModelError, match="Cross_quantizer"):
        Trainer(bad, data, tmp_path / "h2", init_from=tmp_path / "dcid" / "last.pt")


def test_remedies_change_what_they_claim(corpus, tmp_path):
    base = TrainConfig(levels=2, epochs=1, max_steps=1, embedding_dim=32, **SMALL)
    plain = Trainer(base, corpus, tmp_path / "a")
    remedies = Remedies(standardize_inputs=True, codebook_init="kmeans", reset_patience="auto",
                        ema_consistent=True, align_weight=0.5, warmup_steps=4)
    fixed = Trainer(TrainConfig(**{**base.__dict__, "remedies": remedies}), corpus, tmp_path / "b")
    # Reset patience scaled to the corpus: 2 steps per epoch instead of 300 batches.
    assert plain.model.encoder.Cross_quantizer.reset_after == 300
    assert fixed.model.encoder.Cross_quantizer.reset_after == 2
    # Data-dependent codebook: codes sit among the semantic features, not in ±1/K.
    codebook = fixed.model.encoder.codebook(0)
    assert float(codebook.abs().max()) > 1.0 / 32
    # EMA counts consistent with the codebook: weight = code · count, no zero counts.
    q = fixed.model.encoder.Cross_quantizer
    assert float(q.ema_count.min()) > 0 and torch.allclose(q.ema_weight, q.embedding * q.ema_count.unsqueeze(-1))
    # Standardisation statistics are kept and stored under Input_normalization.
    stats = fixed.normalization
    assert set(stats) == {"audio_mean", "audio_std", "video_mean", "video_std"}
    assert torch.allclose(stats["audio_mean"].double(), torch.from_numpy(corpus.audio).double().mean((0, 1)), atol=1e-4)
    metrics = fixed.train_step([0, 1, 2, 3])
    assert "align" in metrics and metrics["align"] > 0 and metrics["loss_weight_warmup"] == 0.25
    assert "align" not in plain.train_step([0, 1, 2, 3])
    result = fixed.run()
    saved = torch.load(result.last_checkpoint, weights_only=True)
    assert set(saved[NORMALIZATION_KEY]) == {"audio_mean", "audio_std", "video_mean", "video_std"}


def test_reference_forwards_runs_the_encoder_six_times(corpus, tmp_path):
    config = TrainConfig(levels=2, epochs=1, max_steps=1, embedding_dim=32, reference_forwards=True, **SMALL)
    trainer = Trainer(config, corpus, tmp_path)
    calls = []
    trainer.model.encoder.register_forward_hook(lambda *args: calls.append(1))
    trainer.train_step([0, 1, 2, 3])
    assert len(calls) == 6
    default = Trainer(TrainConfig(**{**config.__dict__, "reference_forwards": False}), corpus, tmp_path / "d")
    calls.clear()
    default.model.encoder.register_forward_hook(lambda *args: calls.append(1))
    default.train_step([0, 1, 2, 3])
    assert len(calls) == 1


def test_loss_terms_times_weights_sum_to_the_logged_totals(corpus, tmp_path):
    remedies = Remedies(align_weight=0.5, gap_weight=0.25, warmup_steps=4)
    config = TrainConfig(levels=2, epochs=1, embedding_dim=32, level2_start=0, remedies=remedies, **SMALL)
    trainer = Trainer(config, corpus, tmp_path)
    metrics = trainer.train_step([0, 1, 2, 3])
    weights = loss_weights(remedies, metrics["loss_weight_warmup"])
    assert metrics["loss_weight_warmup"] == 0.25 and weights["commit"] == weights["mi"] == 0.25
    assert (weights["align"], weights["gap"]) == (0.5, 0.25)
    level_totals = []
    for level, terms in enumerate(trainer.last_step.terms):
        assert set(terms) == {metric_name(t, level) for t in ("nce", "cmcm", "align", "gap")} | {
            metric_name(t, level, m) for t in ("recon", "commit", "mi") for m in MODALITIES
        }
        total = None
        for name, term in terms.items():
            assert term.weight == weights[name.split("_")[0]], name
            assert metrics[name] == float(term.value), name  # what is logged is the term itself
            part = term.value if term.weight is None else term.weight * term.value
            total = part if total is None else total + part
        # Same values, same order, same dtype: the sum is exactly the logged level loss.
        assert float(total) == metrics[f"loss_level{level + 1}"]
        level_totals.append(total)
    assert len(level_totals) == 2
    assert float(level_totals[0] + config.level2_weight * level_totals[1]) == metrics["loss"]
