"""FCID encoder (TOC + FCID, ACL 2025): fine per-second features, one coarse codebook per clip.

FCID splits each modality into a general and a specific part at two granularities:

* fine (audio, video; one vector per second): the temporal module's output is the fine general
  feature and is *not* quantized (the published model discards its fine codebook); the specific
  branches are the same blocks as DCID's.
* coarse (audio, video, text; one vector per clip): a compress projector (time mean, then a
  linear map) and two ReLU heads split the clip vector into a coarse general vector, quantized
  with the single codebook `Cross_quantizer_coarse`, and a coarse specific vector.

Downstream heads do not read clip codes: they read one coarse codeword per *second*, obtained by
applying the compress projector to each second alone (see `FcidEncoder.encode`). Attribute
names and registration order give the published state_dict key for key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from hdcid.models import EncoderSizes
from hdcid.modules import (
    AudioEncoder,
    InternalTemporalRelationModule,
    SimpleEncoder,
    VideoEncoder,
    VideoSemanticEncoder,
)
from hdcid.quantizer import CrossQuantizer, QuantizerOutput, quantize_finite
from hdcid.vocabulary import FCID_FAMILY

CODEBOOK_PREFIX = "Cross_quantizer_coarse"
# The published quantizer is called with video, audio, text in its three slots, so the MM-EMA
# updates run in this order (the loss terms are symmetric in the modalities).
QUANTIZER_ORDER = ("video", "audio", "text")
# The published code-reset "noise" is drawn from U(-1/1024, -1/1024): the constant -1/1024.
RESET_NOISE_BOUNDS = (-1.0 / 1024, -1.0 / 1024)


def fcid_sizes(**overrides) -> EncoderSizes:
    """FCID sizes: the published ones (text_dim 768 for raw BERT word vectors, one temporal layer,
    400 codes of width 256) unless overridden. `embedding_dim` is the code width and also every
    internal width (temporal modules, heads, projectors), as in the published model."""
    values = {"family": FCID_FAMILY, "text_dim": 768, "itrm_layers": 1}
    values.update(overrides)
    return EncoderSizes(**values)


FCID_DEFAULT_SIZES = fcid_sizes()


class CompressProjector(nn.Module):
    """`Fine2CoarseEncoder`: mean over the time axis of [B, L, D], then a linear map → [B, D].

    No activation. On a one-step slice [B, 1, D] the mean is the element itself, so this is just
    the linear map; that is how the per-second downstream path uses it.
    """

    def __init__(self, width: int = 256):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.linear(sequence.mean(dim=1))


@dataclass
class FcidForward:
    """The pretraining forward's results, under the published variable names.

    Shapes: B clips, T seconds (10), D the code width. `f_v_vq` / `f_a_vq` of the published
    forward are the fine general tensors themselves (no fine codebook), so they are not repeated.
    """

    v_gen_result: torch.Tensor  # [B, T, D] fine video general (continuous)
    a_gen_result: torch.Tensor  # [B, T, D] fine audio general (continuous)
    v_spe_result: torch.Tensor  # [B, T, 3, 3, video_output_dim] fine video specific map
    v_club_feature: torch.Tensor  # [B, T, video_dim] pooled fine video specific feature
    a_spe_result: torch.Tensor  # [B, T, audio_output_dim] fine audio specific
    coarse_v_gen_result: torch.Tensor  # [B, D]
    coarse_a_gen_result: torch.Tensor  # [B, D]
    coarse_t_gen_result: torch.Tensor  # [B, D]
    coarse_v_spe_result: torch.Tensor  # [B, D]
    coarse_a_spe_result: torch.Tensor  # [B, D]
    coarse_t_spe_result: torch.Tensor  # [B, text_output_dim]
    coarse_v_result: torch.Tensor  # [B, D] clip vectors (compress projector outputs)
    coarse_a_result: torch.Tensor
    coarse_t_result: torch.Tensor
    quantizer: QuantizerOutput  # coarse codebook step on [B, 1, D] per modality

    @property
    def c_v_vq(self) -> torch.Tensor:
        return self.quantizer.quantized["video"]

    @property
    def c_a_vq(self) -> torch.Tensor:
        return self.quantizer.quantized["audio"]

    @property
    def c_t_vq(self) -> torch.Tensor:
        return self.quantizer.quantized["text"]

    @property
    def c_embedding_loss(self) -> torch.Tensor:
        """Sum of the three coarse commitment losses, in the published (v, a, t) order."""
        commitment = self.quantizer.commitment
        return commitment["video"] + commitment["audio"] + commitment["text"]

    @property
    def c_cmcm_loss(self) -> torch.Tensor:
        return self.quantizer.cmcm_loss

    @property
    def c_equal_num(self) -> torch.Tensor:
        """Clips whose video, audio and text codes are identical (one code per clip)."""
        return self.quantizer.equal_num

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every result by its published name (the fine quantizer placeholders excluded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "quantizer"}
        for name in ("c_v_vq", "c_a_vq", "c_t_vq", "c_embedding_loss", "c_cmcm_loss", "c_equal_num"):
            out[name] = getattr(self, name)
        return out


class FcidEncoder(nn.Module):
    """`AVT_VQVAE_Encoder` of the FCID release; children registered in the published order.

    Inference (`encode`, `encode_clip`, ...) never changes state. `forward` is the pretraining
    step: one coarse quantizer call, which updates the codebook in train mode and bumps the
    dead-code counters in either mode, as the published code does.
    """

    def __init__(self, sizes: EncoderSizes = FCID_DEFAULT_SIZES):
        super().__init__()
        if sizes.family != FCID_FAMILY:
            raise ValueError(f"FcidEncoder builds the {FCID_FAMILY!r} family, not {sizes.family!r}")
        self.sizes = sizes
        s, width = sizes, sizes.embedding_dim

        def itrm(input_dim: int) -> InternalTemporalRelationModule:
            return InternalTemporalRelationModule(input_dim, width, s.itrm_layers, s.nhead, s.dim_feedforward)

        self.Cross_quantizer_coarse = CrossQuantizer(
            s.n_embeddings, width, QUANTIZER_ORDER, reset_noise_bounds=RESET_NOISE_BOUNDS
        )
        self.v_spe_encoder = VideoEncoder(s.video_dim, s.video_output_dim)
        self.a_spe_encoder = AudioEncoder(s.audio_dim, s.audio_output_dim)
        self.v_gen_encoder = VideoSemanticEncoder(s.video_dim, s.se_hidden, s.video_att_dim)
        self.v_self_att = itrm(s.video_dim)
        self.a_self_att = itrm(s.audio_dim)
        self.va_gen_encoder = SimpleEncoder(width, width)
        self.va_spe_encoder = SimpleEncoder(width, width)
        self.va2vat = CompressProjector(width)
        self.t_self_att = itrm(s.text_dim)
        self.t2vat = CompressProjector(width)
        self.t_gen_encoder = SimpleEncoder(width, width)
        self.t_spe_encoder = SimpleEncoder(width, s.text_output_dim)

    # ------------------------------------------------------------------ shared pieces
    @property
    def levels(self) -> int:
        return 1

    def codebook(self, level: int = 0) -> torch.Tensor:
        return self.Cross_quantizer_coarse.codebook(level)

    def _check_modality(self, modality: str) -> None:
        if modality not in self.sizes.modalities:
            raise ValueError(f"unknown modality {modality!r}; an FCID encoder reads audio, video or text")

    def _projector_and_head(self, modality: str) -> tuple[CompressProjector, SimpleEncoder]:
        if modality == "text":
            return self.t2vat, self.t_gen_encoder
        return self.va2vat, self.va_gen_encoder  # shared by audio and video

    def fine_features(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """The temporal module's output [B, T, D]: fine general audio / video, per word slot for text.

        Audio [B, T, audio_dim]; video [B, T, 7, 7, video_dim] (spatial sum first); text
        [B, L, text_dim] raw word vectors (zero rows for missing words, no mask).
        """
        self._check_modality(modality)
        if modality == "audio":
            return self.a_self_att.forward_batch_first(features)
        if modality == "video":
            return self.v_self_att.forward_batch_first(self.v_gen_encoder(features))
        return self.t_self_att.forward_batch_first(features)

    def split_coarse_features(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """Per-second coarse general vectors [B, T, D]: each second compressed on its own.

        The compress projector is applied to every one-step slice separately (its time mean is
        then the identity), then the coarse general head. This is what gets quantized for the
        vectors the published downstream scripts feed their heads.
        """
        return self.split_from_fine(modality, self.fine_features(modality, features))

    def split_from_fine(self, modality: str, fine: torch.Tensor) -> torch.Tensor:
        projector, head = self._projector_and_head(modality)
        steps = [projector(fine[:, t : t + 1]) for t in range(fine.shape[1])]
        return head(torch.stack(steps, dim=1))

    def clip_coarse_features(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """Clip-level coarse general vector [B, D]: time mean, projector, head (what pretraining quantizes)."""
        return self.clip_from_fine(modality, self.fine_features(modality, features))

    def clip_from_fine(self, modality: str, fine: torch.Tensor) -> torch.Tensor:
        projector, head = self._projector_and_head(modality)
        return head(projector(fine))

    def semantic_features(self, modality: str, features: torch.Tensor) -> list[torch.Tensor]:
        """What `encode` quantizes, per level (one level): the per-second coarse general vectors."""
        return [self.split_coarse_features(modality, features)]

    # ------------------------------------------------------------------ inference
    def encode(self, modality: str, features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One level: (per-second coarse codewords [B, T, D] equal to codebook rows, codes [B, T]).

        These are the vectors every published FCID downstream script selects TOC channels from
        and feeds to its head. For text the steps are the word slots. No state changes.
        """
        split = self.split_coarse_features(modality, features)
        codewords, codes = quantize_finite(split, self.codebook())
        return [(codewords, codes.reshape(split.shape[:2]))]

    def encode_clip(self, modality: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip-level coarse (codewords [B, D], codes [B]): one code per clip, no state change."""
        clip = self.clip_coarse_features(modality, features)
        return quantize_finite(clip, self.codebook())

    def encode_with_clip(
        self, modality: str, features: torch.Tensor
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]:
        """`encode` and `encode_clip` from one pass through the temporal module."""
        fine = self.fine_features(modality, features)
        split = self.split_from_fine(modality, fine)
        codewords, codes = quantize_finite(split, self.codebook())
        return [(codewords, codes.reshape(split.shape[:2]))], quantize_finite(self.clip_from_fine(modality, fine), self.codebook())

    # ------------------------------------------------------------------ training
    def forward(self, audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor) -> FcidForward:
        """The published pretraining forward (same order of computation, so the same RNG use)."""
        v_spe_result, v_club_feature = self.v_spe_encoder(video)
        a_spe_result = self.a_spe_encoder(audio)
        v_gen_result = self.v_self_att.forward_batch_first(self.v_gen_encoder(video))
        a_gen_result = self.a_self_att.forward_batch_first(audio)
        coarse_v_result = self.va2vat(v_gen_result)
        coarse_a_result = self.va2vat(a_gen_result)
        coarse_v_gen = self.va_gen_encoder(coarse_v_result)
        coarse_v_spe = self.va_spe_encoder(coarse_v_result)
        coarse_a_gen = self.va_gen_encoder(coarse_a_result)
        coarse_a_spe = self.va_spe_encoder(coarse_a_result)
        t_result = self.t_self_att.forward_batch_first(text)
        coarse_t_result = self.t2vat(t_result)
        coarse_t_gen = self.t_gen_encoder(coarse_t_result)
        coarse_t_spe = self.t_spe_encoder(coarse_t_result)
        # One code per clip: the quantizer sees [B, 1, D] per modality, slots (video, audio, text).
        quantized = self.Cross_quantizer_coarse.quantize_level(
            {"video": coarse_v_gen[:, None], "audio": coarse_a_gen[:, None], "text": coarse_t_gen[:, None]}, 0
        )
        return FcidForward(
            v_gen_result=v_gen_result,
            a_gen_result=a_gen_result,
            v_spe_result=v_spe_result,
            v_club_feature=v_club_feature,
            a_spe_result=a_spe_result,
            coarse_v_gen_result=coarse_v_gen,
            coarse_a_gen_result=coarse_a_gen,
            coarse_t_gen_result=coarse_t_gen,
            coarse_v_spe_result=coarse_v_spe,
            coarse_a_spe_result=coarse_a_spe,
            coarse_t_spe_result=coarse_t_spe,
            coarse_v_result=coarse_v_result,
            coarse_a_result=coarse_a_result,
            coarse_t_result=coarse_t_result,
            quantizer=quantized,
        )


def build_fcid_encoder(sizes: EncoderSizes = FCID_DEFAULT_SIZES, dtype: torch.dtype = torch.float64) -> FcidEncoder:
    """An FCID encoder with random weights in the given dtype, eval mode."""
    return FcidEncoder(sizes).to(dtype).eval()
