"""FCID reference parity: manifest, codes, codewords, pretraining forward and every TOC list.

The fixtures are outputs of the published FCID code, shipped in tests/fixtures/fcid-reference.
"""

from __future__ import annotations

import functools
import json
import re
import warnings

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from hdcid.fcid import FCID_DEFAULT_SIZES
from hdcid.registry import new_encoder
from hdcid.vocabulary import FCID_FAMILY
from tests.fcid_fixtures import fcid_reference_file, load_fcid_reference
from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.presets import FCID_TOC_PRESETS
from toc.codebook.selection import ShortSelectionWarning, TocSettings, select_channels, select_level
from toc.codebook.settings import score_weights

CHECKPOINT = fcid_reference_file("fcid_small.pt")
ENCODER_MANIFEST = "AVT_VQVAE_Encoder(128,512,768,256,2048,256,400,256)"
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def io():
    return load_fcid_reference("fcid_small_io.pt")


@pytest.fixture(scope="module")
def encoder():
    return load_checkpoint(CHECKPOINT).build_encoder(torch.float64)


def _close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
    return ours.shape == reference.shape and (ours.double() - reference.double()).abs().max().item() <= TOLERANCE


def test_default_state_dict_equals_the_reference_manifest():
    manifests = json.loads(fcid_reference_file("state_dict_manifests.json").read_text())
    with torch.device("meta"):
        encoder = new_encoder(FCID_DEFAULT_SIZES)
    ours = [(key, list(t.shape)) for key, t in encoder.state_dict().items()]
    assert ours == list(manifests[ENCODER_MANIFEST].items())
    layout = manifests["pretrain_fc.py checkpoint"]
    assert layout["Encoder_parameters_entries"] == len(ours)
    assert layout["Encoder_parameters_elements"] == sum(t.numel() for t in encoder.state_dict().values())


def test_default_decoder_equals_the_reference_manifest():
    from hdcid.fcid_decoders import FcidDecoder

    manifests = json.loads(fcid_reference_file("state_dict_manifests.json").read_text())
    with torch.device("meta"):
        decoder = FcidDecoder(FCID_DEFAULT_SIZES)
    ours = [(key, list(t.shape)) for key, t in decoder.state_dict().items()]
    assert ours == list(manifests["AVT_VQVAE_Decoder(128,512,256,256,2048,256)"].items())


def test_checkpoint_family_sizes_and_bookkeeping():
    checkpoint = load_checkpoint(CHECKPOINT)
    config = load_fcid_reference("fcid_small_io.pt")["config"]
    s = checkpoint.sizes
    assert checkpoint.family == FCID_FAMILY and checkpoint.levels == 1
    assert [s.audio_dim, s.video_dim, s.text_dim, s.audio_output_dim, s.video_output_dim, s.text_output_dim,
            s.n_embeddings, s.embedding_dim] == config["encoder_args"]
    assert (checkpoint.epoch, checkpoint.total_step) == (config["epoch"], config["total_step"])
    assert checkpoint.extra_keys == []


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_per_second_coarse_codes_and_codewords(encoder, io, modality):
    x = io[modality].double()
    with torch.no_grad():
        [(codewords, codes)] = encoder.encode(modality, x)
        assert torch.equal(codes.flatten(), io[f"{modality}_codes"])  # batch-major b*T + t
        assert _close(codewords, io[f"{modality}_vq"])
        assert torch.equal(codewords, encoder.codebook()[codes])  # exactly codebook rows
        assert _close(encoder.fine_features(modality, x), io[f"{modality}_fine"])
        assert _close(encoder.split_coarse_features(modality, x), io[f"{modality}_coarse_split"])


@pytest.mark.parametrize("modality", ["audio", "video", "text"])
def test_clip_level_codes_and_codewords(encoder, io, modality):
    with torch.no_grad():
        codewords, codes = encoder.encode_clip(modality, io[modality].double())
    assert torch.equal(codes, io[f"{modality}_codes_ret"])
    assert _close(codewords, io[f"{modality}_vq_ret"])


def test_text_per_slot_codes(encoder, io):
    with torch.no_grad():
        [(_, codes)] = encoder.encode("text", io["text"].double())
    assert torch.equal(codes.flatten(), io["text_codes_split"])


def test_pretraining_forward_in_eval_mode(io):
    # A fresh encoder: the forward bumps the dead-code counters, so it must not share state.
    encoder = load_checkpoint(CHECKPOINT).build_encoder(torch.float64)
    expected = io["forward_eval"]
    with torch.no_grad():
        out = encoder(io["audio"].double(), io["video"].double(), io["text"].double())
    ours = out.tensors()
    compared = 0
    for name, value in expected.items():
        if name in ("f_embedding_loss", "f_cmcm_loss", "f_equal_num", "unactivated_count_after"):
            continue  # the discarded fine codebook's zero placeholders; the counter is checked below
        if value.dtype == torch.int64:
            assert int(ours[name]) == int(value), name
        else:
            assert _close(ours[name], value), name
        compared += 1
    assert compared == 20
    assert torch.equal(encoder.Cross_quantizer_coarse.unactivated_count, expected["unactivated_count_after"])
    assert all(float(expected[n].abs().sum()) == 0 for n in ("f_embedding_loss", "f_cmcm_loss", "f_equal_num"))


def _reference_cases():
    expected = json.loads(fcid_reference_file("toc_reference_indices.json").read_text())
    for name, settings in expected.items():
        for key, indices in settings.items():
            score = re.search(r"score=(\w+)", key).group(1)
            channels, max_num, min_num = (int(v) for v in re.findall(r"=(\d+)", key))
            yield pytest.param(name, score, channels, max_num, min_num, indices, id=f"{name}:{key}")


@functools.cache
def _reference_codebooks() -> dict[str, torch.Tensor]:
    # The FCID scripts see a float64 codebook.
    state = load_fcid_reference("fcid_small.pt")["Encoder_parameters"]
    return {
        "fcid_small": state["Cross_quantizer_coarse.embedding"].double(),
        "codebook_400x256": load_fcid_reference("codebook_400x256.pt")["codebook"].double(),
    }


def test_every_reference_codebook_score_and_setting_is_covered():
    cases = list(_reference_cases())
    assert len(cases) == 56
    assert {c.values[1] for c in cases} == {"sim_var", "sim_only"}
    assert {c.values[0] for c in cases} == set(_reference_codebooks())


@pytest.mark.parametrize("name,score,channels,max_num,min_num,expected", list(_reference_cases()))
def test_toc_indices_equal_the_reference(name, score, channels, max_num, min_num, expected):
    codebook = _reference_codebooks()[name]
    sim_weight, var_weight = score_weights(score)
    settings = TocSettings(channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight, reference_topk=True)
    assert select_level(codebook, settings).indices.tolist() == expected
    if channels <= codebook.shape[1]:
        # Within the codebook width the default (distinct-channel) rule gives the same lists.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSelectionWarning)  # (199, 3, 1) returns 196, as the reference
            got = select_channels(codebook, channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight)
        assert got.tolist() == expected


@pytest.mark.parametrize("script", sorted(FCID_TOC_PRESETS[t].script + " --dataset_name " + FCID_TOC_PRESETS[t].dataset_name for t in FCID_TOC_PRESETS))
def test_head_inputs_of_the_four_shipped_settings(encoder, io, script):
    case = io["head_inputs"][script]
    preset = next(p for p in FCID_TOC_PRESETS.values() if script.startswith(p.script))
    assert (preset.score, preset.channels, preset.max_num, preset.min_num) == (
        case["score"], case["choose_channel"], case["toc_max_num"], case["toc_min_num"],
    )
    indices = select_level(encoder.codebook(), preset.settings()).indices
    assert torch.equal(indices, case["indices"])
    for key, expected in case.items():
        if not key.startswith(("train_", "eval_")):
            continue
        modality = key.split("_", 1)[1]
        with torch.no_grad():
            [(codewords, _)] = encoder.encode(modality, io[modality].double())
        selected = codewords[:, :, indices]
        if expected.dim() == 2:  # AVVP-type heads read [B*T, C]
            selected = selected.reshape(-1, selected.shape[-1])
        assert _close(selected, expected), key


def test_float64_copy_with_an_extra_key_gives_the_same_results(tmp_path, io):
    raw = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    payload = {
        "Encoder_parameters": {k: v.double() for k, v in raw["Encoder_parameters"].items()},
        "epoch": raw["epoch"], "total_step": raw["total_step"], "optimizer_notes": {"lr": 4e-4},
    }
    torch.save(payload, tmp_path / "fcid64.pt")
    checkpoint = load_checkpoint(tmp_path / "fcid64.pt")
    assert checkpoint.family == FCID_FAMILY and checkpoint.extra_keys == ["optimizer_notes"]
    encoder = checkpoint.build_encoder(torch.float64)
    with torch.no_grad():
        for modality in ("audio", "video"):
            [(codewords, codes)] = encoder.encode(modality, io[modality].double())
            assert torch.equal(codes.flatten(), io[f"{modality}_codes"])
            assert _close(codewords, io[f"{modality}_vq"])


def test_cli_inspect_names_the_family_and_encode_writes_reference_codes(tmp_path, io):
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(CHECKPOINT)])
    assert result.exit_code == 0 and re.search(r"^family\s+fcid-avt$", result.output, re.M)
    for modality in ("audio", "video", "text"):
        np.save(tmp_path / f"{modality}.npy", io[modality].numpy())
        out = tmp_path / f"{modality}.h5"
        result = runner.invoke(cli, ["encode", str(CHECKPOINT), "--modality", modality, "--input",
                                     str(tmp_path / f"{modality}.npy"), "-o", str(out), "--dtype", "float64"])
        assert result.exit_code == 0, result.output
        with h5py.File(out) as h5:
            per_second = io["text_codes_split"] if modality == "text" else io[f"{modality}_codes"]
            assert np.array_equal(h5["level0/codes"][:].reshape(-1), per_second.numpy())
            assert np.array_equal(h5["clip/codes"][:], io[f"{modality}_codes_ret"].numpy())
            assert np.abs(h5["clip/quantized"][:] - io[f"{modality}_vq_ret"].numpy()).max() <= TOLERANCE
            if modality != "text":
                assert np.abs(h5["level0/quantized"][:] - io[f"{modality}_vq"].numpy()).max() <= TOLERANCE


def test_cli_select_with_the_sim_only_score(tmp_path):
    expected = json.loads(fcid_reference_file("toc_reference_indices.json").read_text())["fcid_small"]
    args = ["select", str(CHECKPOINT), "--channels", "512", "--max-num", "1", "--min-num", "1",
            "--score", "sim_only", "--reference-topk", "-o", str(tmp_path / "sel.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "sel.json").read_text())
    assert document["levels"][0]["indices"] == expected["score=sim_only,choose_channel=512,toc_max_num=1,toc_min_num=1"]
    assert document["parameters"]["var_weight"] == 0.0 and document["parameters"]["score"] == "sim_only"
    from toc.codebook.selection import read_selection

    assert len(read_selection(tmp_path / "sel.json").levels[0].indices) == 512
