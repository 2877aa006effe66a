"""Small, fast checkpoints in the reference layouts, made in code (for tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import torch

from hdcid.models import CmgEncoder, EncoderSizes
from hdcid.modules import text_lstm

TINY = dict(audio_output_dim=8, video_output_dim=8, text_output_dim=8, n_embeddings=16, embedding_dim=16, dim_feedforward=32)


def tiny_sizes(family: str = "dcid-avt", **overrides) -> EncoderSizes:
    return EncoderSizes(family=family, **{**TINY, **overrides})


def tiny_encoder(family: str = "dcid-avt", seed: int = 0, dtype=torch.float64, **overrides) -> CmgEncoder:
    torch.manual_seed(seed)
    encoder = CmgEncoder(tiny_sizes(family, **overrides)).to(dtype)
    # Spread the codebook so codes differ between inputs (the reference init is ±1/K).
    with torch.no_grad():
        embedding = encoder.Cross_quantizer.embedding
        embedding.copy_(torch.randn(embedding.shape, dtype=embedding.dtype))
    return encoder.eval()


def save_reference_checkpoint(path: Path, family: str = "dcid-avt", *, seed: int = 0, dtype=torch.float64, with_text_lstm: bool = False, extra: dict | None = None, **overrides) -> Path:
    encoder = tiny_encoder(family, seed=seed, dtype=dtype, **overrides)
    payload = {"Encoder_parameters": encoder.state_dict(), "epoch": 2, "total_step": 10}
    if with_text_lstm:
        payload["Text_ar_lstm_parameters"] = text_lstm(768, encoder.sizes.text_dim // 2).to(dtype).state_dict()
    payload.update(extra or {})
    torch.save(payload, path)
    return path
