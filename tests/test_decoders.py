"""Decoders: reference key names / order / shapes, and finite reconstruction losses at small sizes."""

from __future__ import annotations

import json

import pytest
import torch

from hdcid.decoders import DecoderSizes, build_decoder
from tests.conftest import reference_file

DECODERS = {
    1: "AVT_VQVAE_Decoder(128,512,256,256,2048,256)",
    2: "AVT_MLVQVAE_Decoder(128,512,256,256,2048,256)",
}


@pytest.mark.parametrize("levels", [1, 2])
def test_decoder_keys_match_reference_manifest(levels):
    manifest = json.loads(reference_file("state_dict_manifests.json").read_text())[DECODERS[levels]]
    with torch.device("meta"):
        decoder = build_decoder(levels, DecoderSizes())
    state = decoder.state_dict()
    assert list(state) == list(manifest)
    assert {k: list(v.shape) for k, v in state.items()} == {k: list(v) for k, v in manifest.items()}


def test_small_decoder_losses_finite_with_gradients():
    torch.manual_seed(0)
    sizes = DecoderSizes(audio_output_dim=16, video_output_dim=16, text_output_dim=16, vq_dim=32)
    decoder = build_decoder(2, sizes)
    b, t = 2, 10
    inputs = {"audio": torch.randn(b, t, 128), "video": torch.randn(b, t, 7, 7, 512), "text": torch.randn(b, t, 256)}
    specific = {
        "audio": torch.randn(b, t, 16), "video": torch.randn(b, t, 3, 3, 16),
        "video_club": torch.randn(b, t, 512), "text": torch.randn(b, t, 16),
    }
    specific_2 = {"audio": torch.randn(b, t, 16), "video": torch.randn(b, t, 512), "text": torch.randn(b, t, 16)}
    vq = {m: torch.randn(b, t, 32, requires_grad=True) for m in ("audio", "video", "text")}
    vq2 = {m: torch.randn(b, t, 32, requires_grad=True) for m in ("audio", "video", "text")}
    losses = decoder(inputs, specific, vq, specific_2, vq2)
    total = sum(losses.level_1.values()) + sum(losses.level_2.values())
    assert len(losses.level_1) == 3 and len(losses.level_2) == 3
    assert torch.isfinite(total)
    total.backward()
    for m in vq:
        assert vq[m].grad is not None and vq[m].grad.abs().sum() > 0
        assert vq2[m].grad is not None and vq2[m].grad.abs().sum() > 0
