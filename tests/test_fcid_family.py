"""FCID as a family, without the shared fixtures: layout, loading, encoding, quantizer, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from cli.main import cli
from hdcid.errors import ModelError
from hdcid.fcid import FCID_DEFAULT_SIZES, FcidEncoder, fcid_sizes
from hdcid.quantizer import squared_distances
from hdcid.registry import detect_family, family_spec, new_encoder
from hdcid.vocabulary import FCID_FAMILY
from tests.fcid_fixtures import TINY_FCID, save_fcid_checkpoint, tiny_fcid_encoder, tiny_fcid_inputs
from toc.codebook.checkpoint import load_checkpoint, load_codebooks
from toc.errors import CheckpointError
from toc.testing.checkpoints import save_reference_checkpoint


def test_default_state_dict_has_the_published_layout():
    with torch.device("meta"):
        encoder = new_encoder(FCID_DEFAULT_SIZES)
    assert isinstance(encoder, FcidEncoder)
    state = encoder.state_dict()
    keys = list(state)
    # 116 entries (112 parameters, 4 quantizer buffers first), 78,420,001 elements.
    assert len(keys) == 116 and sum(t.numel() for t in state.values()) == 78_420_001
    assert keys[:4] == [f"Cross_quantizer_coarse.{n}" for n in ("embedding", "ema_count", "ema_weight", "unactivated_count")]
    assert tuple(state["Cross_quantizer_coarse.embedding"].shape) == (400, 256)
    assert not any(".encoder.layers.1." in k for k in keys)  # one temporal layer
    assert tuple(state["t_self_att.affine_matrix.weight"].shape) == (256, 768)  # raw BERT vectors
    children = [name for name, _ in encoder.named_children()]
    assert children == [
        "Cross_quantizer_coarse", "v_spe_encoder", "a_spe_encoder", "v_gen_encoder", "v_self_att",
        "a_self_att", "va_gen_encoder", "va_spe_encoder", "va2vat", "t_self_att", "t2vat",
        "t_gen_encoder", "t_spe_encoder",
    ]


def test_registry_knows_every_family():
    assert family_spec(FCID_FAMILY).codebook_key == "Cross_quantizer_coarse.embedding"
    assert family_spec("dcid-avt").codebook_key == "Cross_quantizer.embedding"
    with pytest.raises(ModelError, match="unknown encoder family"):
        family_spec("nope")
    # Detection goes through the same registry for every family.
    assert detect_family(tiny_fcid_encoder().state_dict()) == FCID_FAMILY
    assert detect_family({"Video_encoder_2.x": 0, "Video_encoder.x": 0, "Text_encoder.x": 0}) == "hdcid-avt"
    assert detect_family({"Video_encoder.x": 0, "Text_encoder.x": 0}) == "dcid-avt"
    assert detect_family({"foo.x": 0}) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_published_layout_loads_with_every_size_inferred(tmp_path, dtype):
    encoder = tiny_fcid_encoder()
    path = save_fcid_checkpoint(tmp_path / "fcid.pt", encoder, dtype=dtype, extra={"my_notes": "kept aside"})
    checkpoint = load_checkpoint(path)
    assert checkpoint.family == FCID_FAMILY and checkpoint.levels == 1
    assert checkpoint.sizes == encoder.sizes
    assert checkpoint.epoch == 3 and checkpoint.total_step == 1497
    assert checkpoint.extra_keys == ["my_notes"]
    assert [tuple(c.shape) for c in checkpoint.codebooks] == [(16, 16)]
    assert checkpoint.codebooks[0].dtype == dtype
    loaded = load_codebooks(path)
    assert loaded.family == FCID_FAMILY and loaded.sizes["text_dim"] == TINY_FCID["text_dim"]


def test_loaded_encoder_reproduces_the_saved_one(tmp_path):
    encoder = tiny_fcid_encoder()
    inputs = tiny_fcid_inputs(encoder)
    rebuilt = load_checkpoint(save_fcid_checkpoint(tmp_path / "fcid.pt", encoder)).build_encoder(torch.float64)
    with torch.no_grad():
        for modality, x in inputs.items():
            [(expected_words, expected_codes)] = encoder.encode(modality, x)
            [(words, codes)] = rebuilt.encode(modality, x)
            assert torch.equal(codes, expected_codes) and torch.equal(words, expected_words), modality


@pytest.mark.parametrize("family", ["dcid-avt", FCID_FAMILY])
def test_float64_weights_are_not_rounded_through_float32(tmp_path, family):
    if family == FCID_FAMILY:
        path = save_fcid_checkpoint(tmp_path / "ck.pt", tiny_fcid_encoder())
    else:
        path = save_reference_checkpoint(tmp_path / "ck.pt", family)
    checkpoint = load_checkpoint(path)
    built = checkpoint.build_encoder(torch.float64).state_dict()
    assert all(torch.equal(built[k], v) for k, v in checkpoint.encoder_state.items())


def test_bare_and_prefixed_state_dicts_are_recognised(tmp_path):
    state = tiny_fcid_encoder().state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "bare.pt")
    assert load_checkpoint(tmp_path / "bare.pt").family == FCID_FAMILY


def test_missing_and_misshaped_keys_are_named(tmp_path):
    state = tiny_fcid_encoder().state_dict()
    missing = {k: v for k, v in state.items() if k != "t2vat.linear.bias"}
    torch.save({"Encoder_parameters": missing}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \[t2vat\.linear\.bias\]") as error:
        load_checkpoint(tmp_path / "missing.pt")
    assert "\n" not in str(error.value)
    bad = dict(state, **{"va2vat.linear.weight": torch.zeros(16, 15, dtype=torch.float64)})
    torch.save({"Encoder_parameters": bad}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"va2vat\.linear\.weight.*\[16, 16\].*\[16, 15\]"):
        load_checkpoint(tmp_path / "shape.pt")
    no_codebook = {k: v for k, v in state.items() if not k.startswith("Cross_quantizer_coarse.")}
    torch.save({"Encoder_parameters": no_codebook}, tmp_path / "nocodebook.pt")
    with pytest.raises(CheckpointError, match="Cross_quantizer_coarse.embedding"):
        load_checkpoint(tmp_path / "nocodebook.pt")


def _independent_audio_codes(encoder: FcidEncoder, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-second path written out with plain torch ops and torch's own transformer layer."""
    itrm = encoder.a_self_att
    width = encoder.sizes.embedding_dim
    layer = nn.TransformerEncoderLayer(width, 4, encoder.sizes.dim_feedforward, 0.1).to(audio.dtype).eval()
    layer.load_state_dict(itrm.encoder.layers[0].state_dict(), strict=False)
    projected = F.linear(audio, itrm.affine_matrix.weight, itrm.affine_matrix.bias)
    fine = layer(projected.transpose(0, 1)).transpose(0, 1)  # [B, T, D]
    compressed = F.linear(fine, encoder.va2vat.linear.weight, encoder.va2vat.linear.bias)
    general = F.relu(F.linear(compressed, encoder.va_gen_encoder.input_linear.weight, encoder.va_gen_encoder.input_linear.bias))
    codebook = encoder.codebook()
    distances = torch.cdist(general.reshape(-1, width), codebook)
    return distances.argmin(dim=1).reshape(general.shape[:2]), general


def test_per_second_codes_match_an_independent_computation():
    encoder = tiny_fcid_encoder()
    audio = tiny_fcid_inputs(encoder)["audio"]
    with torch.no_grad():
        expected_codes, general = _independent_audio_codes(encoder, audio)
        [(words, codes)] = encoder.encode("audio", audio)
        split = encoder.split_coarse_features("audio", audio)
    assert torch.allclose(split, general, atol=1e-12, rtol=0)
    assert torch.equal(codes, expected_codes)
    assert len(codes.unique()) >= 3  # the inputs really spread over the codebook
    assert torch.equal(words, encoder.codebook()[codes])


def test_clip_vector_is_the_time_mean_before_the_affine_projector():
    encoder = tiny_fcid_encoder()
    inputs = tiny_fcid_inputs(encoder)
    with torch.no_grad():
        for modality, x in inputs.items():
            fine = encoder.fine_features(modality, x)
            per_second = torch.stack([encoder.va2vat(fine[:, t : t + 1]) for t in range(fine.shape[1])], 1)
            projector = encoder.t2vat if modality == "text" else encoder.va2vat
            clip = projector(fine)
            if modality != "text":
                assert torch.allclose(per_second.mean(dim=1), clip, atol=1e-12, rtol=0)
            clip_words, clip_codes = encoder.encode_clip(modality, x)
            assert clip_codes.shape == (x.shape[0],) and clip_words.shape == (x.shape[0], 16)
            head = encoder.t_gen_encoder if modality == "text" else encoder.va_gen_encoder
            distances = squared_distances(head(clip), encoder.codebook())
            assert torch.equal(clip_codes, distances.argmin(dim=1))
            levels, (both_words, both_codes) = encoder.encode_with_clip(modality, x)
            assert torch.equal(both_codes, clip_codes) and torch.equal(both_words, clip_words)
            assert torch.equal(levels[0][1], encoder.encode(modality, x)[0][1])


def test_encoding_is_deterministic_and_batch_invariant():
    encoder = tiny_fcid_encoder()
    video = tiny_fcid_inputs(encoder)["video"]
    with torch.no_grad():
        first = encoder.encode("video", video)[0][1]
        again = encoder.encode("video", video)[0][1]
        one_by_one = torch.cat([encoder.encode("video", video[i : i + 1])[0][1] for i in range(video.shape[0])])
    assert torch.equal(first, again) and torch.equal(first, one_by_one)


def test_pretraining_forward_quantizes_one_vector_per_clip_in_video_audio_text_order():
    encoder = tiny_fcid_encoder()
    inputs = tiny_fcid_inputs(encoder)
    quantizer = encoder.Cross_quantizer_coarse
    assert quantizer.modalities == ("video", "audio", "text")
    before = quantizer.embedding.clone()
    with torch.no_grad():
        out = encoder(inputs["audio"], inputs["video"], inputs["text"])
    assert out.c_v_vq.shape == (3, 1, 16) and out.coarse_t_spe_result.shape == (3, TINY_FCID["text_output_dim"])
    assert out.v_spe_result.shape == (3, 10, 3, 3, TINY_FCID["video_output_dim"])
    # Eval mode: no EMA update, but the dead-code counters move (+1, used codes back to 0).
    assert torch.equal(quantizer.embedding, before)
    used = torch.unique(torch.cat(list(out.quantizer.indices.values())))
    assert (quantizer.unactivated_count[used] == 0).all()
    expected = out.quantizer.commitment["video"] + out.quantizer.commitment["audio"] + out.quantizer.commitment["text"]
    assert torch.equal(out.c_embedding_loss, expected)
    codes = {m: out.quantizer.indices[m] for m in ("video", "audio", "text")}
    agree = (codes["video"] == codes["audio"]) & (codes["audio"] == codes["text"])
    assert int(out.c_equal_num) == int(agree.sum())


def test_code_reset_adds_the_constant_minus_one_over_1024():
    encoder = tiny_fcid_encoder()
    quantizer = encoder.Cross_quantizer_coarse
    with torch.no_grad():
        quantizer.unactivated_count.copy_(torch.full((16,), 50.0))
        quantizer.unactivated_count[:4] = 400.0  # dead: reset on the next call
        snapshot = quantizer.embedding.clone()
        inputs = tiny_fcid_inputs(encoder, batch=1)
        out = encoder(inputs["audio"], inputs["video"], inputs["text"])
    used = set(torch.cat(list(out.quantizer.indices.values())).tolist())
    dead = [i for i in range(4) if i not in used]
    assert dead
    active = [i for i in range(16) if i not in dead]
    shifted = snapshot[active] + (-1.0 / 1024)
    for index in dead:
        # Exactly some active code plus -1/1024 in every channel.
        assert (shifted == quantizer.embedding[index]).all(dim=1).any(), index
        assert quantizer.unactivated_count[index] == 0


def test_fcid_sizes_defaults_are_the_published_ones():
    sizes = fcid_sizes()
    assert (sizes.audio_dim, sizes.video_dim, sizes.text_dim) == (128, 512, 768)
    assert (sizes.audio_output_dim, sizes.video_output_dim, sizes.text_output_dim) == (256, 2048, 256)
    assert (sizes.n_embeddings, sizes.embedding_dim, sizes.itrm_layers, sizes.levels) == (400, 256, 1, 1)
    with pytest.raises(ValueError, match="fcid-avt"):
        FcidEncoder(fcid_sizes(family="dcid-avt"))


def test_cli_inspect_and_encode(tmp_path):
    encoder = tiny_fcid_encoder()
    path = save_fcid_checkpoint(tmp_path / "fcid.pt", encoder, extra={"note": 1})
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["checkpoint"]["family"] == FCID_FAMILY and report["sizes"]["n_embeddings"] == 16
    inputs = tiny_fcid_inputs(encoder, batch=5)
    for modality, x in inputs.items():
        np.save(tmp_path / f"{modality}.npy", x.numpy())
        out = tmp_path / f"{modality}.h5"
        args = ["encode", str(path), "--modality", modality, "--input", str(tmp_path / f"{modality}.npy"),
                "-o", str(out), "--dtype", "float64", "--batch-size", "2"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.strip().splitlines()[-1])["clip_codes"] is True
        with torch.no_grad():
            [(words, codes)] = encoder.encode(modality, x)
            clip_words, clip_codes = encoder.encode_clip(modality, x)
        with h5py.File(out) as h5:
            assert h5.attrs["family"] == FCID_FAMILY
            assert np.array_equal(h5["level0/codes"][:], codes.numpy())
            assert np.array_equal(h5["level0/quantized"][:], words.numpy())
            assert np.array_equal(h5["clip/codes"][:], clip_codes.numpy())
            assert np.array_equal(h5["clip/quantized"][:], clip_words.numpy())


def test_cli_refuses_wrong_feature_width(tmp_path):
    path = save_fcid_checkpoint(tmp_path / "fcid.pt", tiny_fcid_encoder())
    np.save(tmp_path / "text.npy", np.zeros((2, 10, 256)))
    result = CliRunner().invoke(cli, ["encode", str(path), "--modality", "text", "--input", str(tmp_path / "text.npy"), "-o", str(tmp_path / "o.h5")])
    assert result.exit_code == 1
    assert "wrong text feature shape" in result.output and "20" in result.output
    assert not (tmp_path / "o.h5").exists()
