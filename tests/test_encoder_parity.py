"""Our encoders reproduce the reference: state_dict manifests, codes and quantized values."""

from __future__ import annotations

import json

import pytest
import torch

from hdcid.models import CmgEncoder, EncoderSizes
from tests.conftest import load_reference, reference_file
from toc.codebook.checkpoint import load_checkpoint

MANIFEST_FAMILIES = {
    "AVT_VQVAE_Encoder(128,512,256,256,2048,256,400,256)": "dcid-avt",
    "AVT_MLVQVAE_Encoder(128,512,256,256,2048,256,400,256)": "hdcid-avt",
    "AV_VQVAE_Encoder(512,128,2048,256,400,256)": "dcid-av",
    "AT_VQVAE_Encoder(256,128,256,256,400,256)": "dcid-at",
}


@pytest.mark.parametrize("manifest_name,family", sorted(MANIFEST_FAMILIES.items()))
def test_default_encoder_state_dict_equals_reference_manifest(manifest_name, family):
    manifests = json.loads(reference_file("state_dict_manifests.json").read_text())
    with torch.device("meta"):
        encoder = CmgEncoder(EncoderSizes(family=family))
    ours = [(key, list(t.shape)) for key, t in encoder.state_dict().items()]
    assert ours == list(manifests[manifest_name].items())


def test_dcid_codes_and_quantized_values_equal_reference(dcid_small_path):
    checkpoint = load_checkpoint(dcid_small_path)
    encoder = checkpoint.build_encoder(torch.float64)
    io = load_reference("dcid_small_io.pt")
    with torch.no_grad():
        for modality in ("audio", "video", "text"):
            [(codewords, codes)] = encoder.encode(modality, io[modality].double())
            assert torch.equal(codes.flatten(), io[f"{modality}_codes"]), modality
            assert (codewords - io[f"{modality}_vq"]).abs().max().item() <= 1e-12, modality
            # Quantized values are exactly codebook rows.
            assert torch.equal(codewords.reshape(-1, codewords.shape[-1]), encoder.codebook(0)[codes.flatten()])


def test_hdcid_codes_and_quantized_values_equal_reference(hdcid_small_path):
    checkpoint = load_checkpoint(hdcid_small_path)
    assert checkpoint.family == "hdcid-avt" and checkpoint.levels == 2
    encoder = checkpoint.build_encoder(torch.float64)
    io = load_reference("hdcid_small_io.pt")
    with torch.no_grad():
        for modality in ("audio", "video"):
            levels = encoder.encode(modality, io[modality].double())
            for level, (codewords, codes) in enumerate(levels, start=1):
                assert torch.equal(codes.flatten(), io[f"{modality}_codes_l{level}"]), (modality, level)
                assert (codewords - io[f"{modality}_vq_l{level}"]).abs().max().item() <= 1e-12
        text = encoder.encode("text", io["text"].double())
        concat = torch.cat([text[0][0], text[1][0]], dim=-1)
        assert (concat - io["text_vq_concat"]).abs().max().item() <= 1e-12


def test_sizes_are_read_from_the_checkpoint(dcid_small_path, hdcid_small_path):
    dcid = load_checkpoint(dcid_small_path)
    assert dcid.sizes.audio_output_dim == 32 and dcid.sizes.n_embeddings == 64
    assert dcid.sizes.embedding_dim == 256 and dcid.epoch == 3 and dcid.total_step == 1234
    hdcid = load_checkpoint(hdcid_small_path)
    assert hdcid.sizes.embedding_dim == 64 and [tuple(c.shape) for c in hdcid.codebooks] == [(64, 64), (64, 64)]


def test_float32_path_agrees_with_float64_on_fixture_codes(dcid_small_path, hdcid_small_path):
    """The float32 fast path is not bit-faithful; it must still agree on (nearly) all fixture codes."""
    for path, name in ((dcid_small_path, "dcid_small_io.pt"), (hdcid_small_path, "hdcid_small_io.pt")):
        checkpoint = load_checkpoint(path)
        io = load_reference(name)
        exact = checkpoint.build_encoder(torch.float64)
        fast = checkpoint.build_encoder(torch.float32)
        agree = total = 0
        with torch.no_grad():
            for modality in ("audio", "video", "text"):
                for (_, c64), (_, c32) in zip(exact.encode(modality, io[modality].double()), fast.encode(modality, io[modality].float()), strict=True):
                    agree += int((c64 == c32).sum())
                    total += c64.numel()
        assert agree / total >= 0.95
