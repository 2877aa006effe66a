"""FCID test helpers: the FCID parity fixtures (tests/fixtures/fcid-reference) and tiny FCID checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from hdcid.fcid import FcidEncoder, fcid_sizes

FCID_REFERENCE = Path(__file__).resolve().parent / "fixtures" / "fcid-reference"

# Small enough to build and run in milliseconds; every width differs so a swapped size fails.
TINY_FCID = dict(
    audio_dim=12, video_dim=16, text_dim=20, audio_output_dim=6, video_output_dim=8, text_output_dim=10,
    n_embeddings=16, embedding_dim=16, dim_feedforward=24, se_hidden=2, video_att_dim=8,
)


def fcid_reference_file(name: str) -> Path:
    path = FCID_REFERENCE / name
    if not path.is_file():
        raise FileNotFoundError(f"FCID reference fixture {path} is missing (it ships with the repository)")
    return path


def load_fcid_reference(name: str):
    return torch.load(fcid_reference_file(name), map_location="cpu", weights_only=True)


def tiny_fcid_encoder(seed: int = 0, dtype=torch.float64, **overrides) -> FcidEncoder:
    torch.manual_seed(seed)
    encoder = FcidEncoder(fcid_sizes(**{**TINY_FCID, **overrides})).to(dtype)
    with torch.no_grad():
        # Spread the codebook (the published init is +-1/K) so different inputs get different codes.
        embedding = encoder.Cross_quantizer_coarse.embedding
        embedding.copy_(0.3 * torch.randn(embedding.shape, dtype=embedding.dtype))
        encoder.Cross_quantizer_coarse.ema_weight.copy_(embedding)
    return encoder.eval()


def tiny_fcid_inputs(encoder: FcidEncoder, batch: int = 3, steps: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    s = encoder.sizes
    generator = torch.Generator().manual_seed(seed)
    dtype = encoder.codebook().dtype
    return {
        "audio": torch.randn(batch, steps, s.audio_dim, generator=generator, dtype=dtype),
        "video": torch.randn(batch, steps, 7, 7, s.video_dim, generator=generator, dtype=dtype).relu(),
        "text": torch.randn(batch, steps, s.text_dim, generator=generator, dtype=dtype),
    }


def save_fcid_checkpoint(path: Path, encoder: FcidEncoder, *, dtype=torch.float64, extra: dict | None = None) -> Path:
    """The published layout `{Encoder_parameters, epoch, total_step}`, plus any extra keys."""
    state = {k: v.to(dtype) for k, v in encoder.state_dict().items()}
    payload = {"Encoder_parameters": state, "epoch": 3, "total_step": 1497, **(extra or {})}
    torch.save(payload, path)
    return path
