"""FCID pretraining: the published objective through the trainer, the published checkpoint layout,
exact resume, remedies, and `toc train --method fcid`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from hdcid.checkpoint_keys import FCID_MI_NETS, mi_net_key
from hdcid.fcid import FCID_DEFAULT_SIZES, FcidEncoder
from hdcid.fcid_objective import TERMS
from hdcid.training import TrainConfig, Trainer, train
from hdcid.training.fcid_step import PUBLISHED_FILE, FcidPretrainModel
from tests.fcid_fixtures import FCID_REFERENCE
from tests.train_corpus import PlantedCorpus
from toc.codebook.checkpoint import load_checkpoint
from toc.testing.datafixtures import write_pretrain

SMALL = dict(
    method="fcid", levels=1, batch_size=4, seed=0, n_embeddings=16, audio_output_dim=8, video_output_dim=8,
    text_output_dim=8, diagnostics_clips=8,
)
PUBLISHED_TERMS = [t for t in TERMS if t not in ("f_embedding", "f_cmcm")]


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return PlantedCorpus(n_clips=8, n_classes=2, word_dim=24)


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fcid-run")
    return train(TrainConfig(epochs=2, **SMALL), corpus, run_dir), run_dir


def _steps(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"step"' in x]


def test_published_file_is_exactly_the_published_layout(finished):
    result, run_dir = finished
    assert result.published_checkpoint == run_dir / PUBLISHED_FILE
    saved = torch.load(run_dir / PUBLISHED_FILE, map_location="cpu", weights_only=True)
    assert list(saved) == ["Encoder_parameters", "epoch", "total_step"]
    assert saved["epoch"] == 1 and saved["total_step"] == 4  # 2 epochs of 2 batches
    state = saved["Encoder_parameters"]
    assert all(v.dtype == torch.float64 for v in state.values())
    # What a published downstream script does with it: build the encoder at the file's sizes,
    # .double(), strict load_state_dict (keys, order and shapes must all agree).
    sizes = load_checkpoint(run_dir / PUBLISHED_FILE).sizes
    expected = FcidEncoder(sizes).double()
    assert [(k, tuple(v.shape)) for k, v in expected.state_dict().items()] == [(k, tuple(v.shape)) for k, v in state.items()]
    expected.load_state_dict(state, strict=True)
    assert (sizes.text_dim, sizes.audio_output_dim, sizes.n_embeddings, sizes.itrm_layers) == (24, 8, 16, 1)


def test_trainer_checkpoint_holds_the_published_keys_and_our_modules(finished):
    _, run_dir = finished
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert list(last)[0] == "Encoder_parameters" and {"epoch", "total_step"} <= set(last)
    assert all(v.dtype == torch.float64 for v in last["Encoder_parameters"].values())
    assert all(mi_net_key(m, 0) in last for m in FCID_MI_NETS) and "CPC_parameters" in last
    assert "text_ar_lstm" not in json.dumps(sorted(last))  # FCID has no text LSTM
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint.family == "fcid-avt"
    published = load_checkpoint(run_dir / PUBLISHED_FILE)
    assert all(torch.equal(checkpoint.encoder_state[k], published.encoder_state[k]) for k in published.encoder_state)


def test_every_published_term_is_logged_and_summed(finished):
    _, run_dir = finished
    steps = _steps(run_dir)
    assert len(steps) == 4
    for step in steps:
        assert all(name in step for name in PUBLISHED_TERMS)
        assert step["loss"] == pytest.approx(sum(step[n] for n in PUBLISHED_TERMS), rel=1e-5)
        assert all(f"club_lld_{m}" in step for m in FCID_MI_NETS)
    epochs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x and '"kind": "epoch"' in x]
    assert epochs and epochs[-1]["diagnostics"][0]["n_codes"] == 16


def test_exact_resume(corpus, finished, tmp_path):
    _, full_dir = finished
    partial = Trainer(TrainConfig(epochs=2, max_steps=3, **SMALL), corpus, tmp_path)
    partial.run()
    Trainer.resume_run(tmp_path, corpus, {"max_steps": 4}).run()
    assert _steps(tmp_path) == _steps(full_dir)
    a = torch.load(full_dir / "last.pt", weights_only=True)["Encoder_parameters"]
    b = torch.load(tmp_path / "last.pt", weights_only=True)["Encoder_parameters"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_remedies_run_and_keep_the_layout(corpus, tmp_path):
    config = TrainConfig.from_recipe("small-corpus", n_clips=len(corpus), levels=1, epochs=1, method="fcid",
                                     batch_size=4, n_embeddings=16)
    assert config.remedies.codebook_init == "kmeans" and config.remedies.align_weight > 0
    result = train(config, corpus, tmp_path)
    step = _steps(tmp_path)[-1]
    assert "align" in step and all(torch.isfinite(torch.tensor(step[n])) for n in PUBLISHED_TERMS)
    checkpoint = load_checkpoint(result.published_checkpoint)
    assert checkpoint.family == "fcid-avt" and checkpoint.input_normalization is None  # FCID.pt: published keys only
    assert load_checkpoint(tmp_path / "last.pt").input_normalization is not None


def test_settings_rules():
    with pytest.raises(Exception, match="fcid has 1 codebook level"):
        TrainConfig(method="fcid", levels=2).validate()
    with pytest.raises(Exception, match="FCID fixes the code width"):
        TrainConfig(method="fcid", levels=1, embedding_dim=64).validate()
    reference = TrainConfig.from_settings({"recipe": "reference", "method": "fcid"}, n_clips=100)
    assert (reference.levels, reference.epochs, reference.batch_size, reference.video_output_dim) == (1, 4, 80, 2048)
    assert reference.model_family == "fcid-avt" and TrainConfig(levels=2).model_family == "hdcid-avt"


def test_default_size_model_matches_the_reference_manifests():
    manifests = FCID_REFERENCE / "state_dict_manifests.json"
    expected = json.loads(manifests.read_text())
    with torch.device("meta"):
        model = FcidPretrainModel(TrainConfig.from_settings({"recipe": "reference", "method": "fcid"}, n_clips=10),
                                  128, 512, 768)
    assert model.sizes == FCID_DEFAULT_SIZES
    for key, module in (("AVT_VQVAE_Encoder(128,512,768,256,2048,256,400,256)", model.encoder),
                        ("AVT_VQVAE_Decoder(128,512,256,256,2048,256)", model.objective.decoder)):
        assert [(k, list(v.shape)) for k, v in module.state_dict().items()] == list(expected[key].items())


def test_cli_train_family_fcid(tmp_path):
    root = tmp_path / "data"
    write_pretrain(root)
    args = ["train", "--data-root", str(root), "--method", "fcid", "--n-embeddings", "16", "--audio-output-dim", "8",
            "--video-output-dim", "8", "--text-output-dim", "8", "--batch-size", "2", "--epochs", "1",
            "--diagnostics-clips", "4", "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["published_checkpoint"] == str(tmp_path / "run" / PUBLISHED_FILE)
    inspected = CliRunner().invoke(cli, ["inspect", summary["published_checkpoint"], "--format", "json"])
    assert inspected.exit_code == 0 and json.loads(inspected.output)["checkpoint"]["family"] == "fcid-avt"
    bad = CliRunner().invoke(cli, [*args[:-2], "--levels", "2", "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--method fcid has 1 codebook level" in bad.output
