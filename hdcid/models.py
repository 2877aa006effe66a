"""DCID (AVT, AV, AT) and H-DCID encoders, with attribute names that load reference checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from hdcid.modules import (
    AudioEncoder,
    InternalTemporalRelationModule,
    SimpleEncoder,
    TextEncoder,
    VectorVideoEncoder,
    VideoEncoder,
    VideoSemanticEncoder,
)
from hdcid.quantizer import CrossQuantizer, MultiLevelQuantizer, QuantizerOutput, quantize_finite
from hdcid.vocabulary import CMG_FAMILIES, FAMILIES, FAMILY_MODALITIES, PUBLISHED_SIZES, levels_of

__all__ = ["FAMILIES", "FAMILY_MODALITIES", "CmgEncoder", "EncoderOutput", "EncoderSizes"]


@dataclass(frozen=True)
class EncoderSizes:
    """Every size an encoder needs; read from a checkpoint, never typed by the user.

    Defaults are the published ones (the released `nips2023_AVT_vgg40k_size400.pt`).
    """

    family: str = "dcid-avt"
    audio_dim: int = PUBLISHED_SIZES["audio_dim"]
    video_dim: int = PUBLISHED_SIZES["video_dim"]
    text_dim: int = PUBLISHED_SIZES["text_dim"]
    audio_output_dim: int = PUBLISHED_SIZES["audio_output_dim"]
    video_output_dim: int = PUBLISHED_SIZES["video_output_dim"]
    text_output_dim: int = PUBLISHED_SIZES["text_output_dim"]
    n_embeddings: int = PUBLISHED_SIZES["n_embeddings"]
    embedding_dim: int = PUBLISHED_SIZES["embedding_dim"]  # code width = ITRM width
    itrm_layers: int = 2
    nhead: int = 4
    dim_feedforward: int = 1024
    se_hidden: int | None = None  # video SE bottleneck (video_dim // 8)
    video_att_dim: int | None = None  # width of the dead attention linears (video_dim // 2)
    # Video as a spatial grid [.., T, H, W, C] (the published VGG19 maps: a convolutional video
    # branch), or as vectors [.., T, C] (a linear video branch; see VectorVideoEncoder).
    video_grid: bool = True

    @property
    def levels(self) -> int:
        return levels_of(self.family)

    @property
    def modalities(self) -> tuple[str, ...]:
        return FAMILY_MODALITIES[self.family]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["levels"] = self.levels
        return out


@dataclass
class EncoderOutput:
    """Training-mode forward results: per-level semantic features and quantizer outputs, specific features."""

    semantic: list[dict[str, torch.Tensor]]  # per level: modality → [B, T, D] (continuous)
    quantized: list[QuantizerOutput]  # per level
    specific: dict[str, torch.Tensor] = field(default_factory=dict)  # level-1 specific features
    specific_2: dict[str, torch.Tensor] = field(default_factory=dict)  # H-DCID level-2 specific


def _itrm(sizes: EncoderSizes, input_dim: int) -> InternalTemporalRelationModule:
    return InternalTemporalRelationModule(
        input_dim, sizes.embedding_dim, sizes.itrm_layers, sizes.nhead, sizes.dim_feedforward
    )


class CmgEncoder(nn.Module):
    """One class for the four DCID / H-DCID families; children are registered in the reference's order."""

    def __init__(self, sizes: EncoderSizes = EncoderSizes()):
        super().__init__()
        if sizes.family not in CMG_FAMILIES:
            raise ValueError(f"CmgEncoder builds {', '.join(CMG_FAMILIES)}, not {sizes.family!r}")
        self.sizes = sizes
        family, s = sizes.family, sizes
        has_video = "video" in sizes.modalities
        has_text = "text" in sizes.modalities

        def video_encoder():
            if not s.video_grid:
                return VectorVideoEncoder(s.video_dim, s.video_output_dim)
            return VideoEncoder(s.video_dim, s.video_output_dim)

        if family == "dcid-av":
            self.Audio_encoder = AudioEncoder(s.audio_dim, s.audio_output_dim)
            self.Video_encoder = video_encoder()
        elif family == "dcid-at":
            self.Audio_encoder = AudioEncoder(s.audio_dim, s.audio_output_dim)
            self.Text_encoder = TextEncoder(s.text_dim, s.text_output_dim)
        else:
            self.Video_encoder = video_encoder()
            self.Audio_encoder = AudioEncoder(s.audio_dim, s.audio_output_dim)
            self.Text_encoder = TextEncoder(s.text_dim, s.text_output_dim)
        if family == "hdcid-avt":
            self.Video_encoder_2 = SimpleEncoder(s.video_dim, s.video_dim)
            self.Audio_encoder_2 = SimpleEncoder(s.audio_output_dim, s.audio_output_dim)
            self.Text_encoder_2 = SimpleEncoder(s.text_output_dim, s.text_output_dim)
            self.Cross_quantizer = MultiLevelQuantizer(s.n_embeddings, s.embedding_dim, 2, sizes.modalities)
        else:
            self.Cross_quantizer = CrossQuantizer(s.n_embeddings, s.embedding_dim, sizes.modalities)
        if has_video:
            self.video_semantic_encoder = VideoSemanticEncoder(s.video_dim, s.se_hidden, s.video_att_dim)
            self.video_self_att = _itrm(s, s.video_dim)
        if has_text:
            self.text_self_att = _itrm(s, s.text_dim)
        self.audio_self_att = _itrm(s, s.audio_dim)
        if family == "hdcid-avt":
            self.video_self_att_2 = _itrm(s, s.video_dim)
            self.text_self_att_2 = _itrm(s, s.text_output_dim)
            self.audio_self_att_2 = _itrm(s, s.audio_output_dim)

    # ------------------------------------------------------------------ inference
    @property
    def levels(self) -> int:
        return self.sizes.levels

    def codebook(self, level: int = 0) -> torch.Tensor:
        return self.Cross_quantizer.codebook(level)

    def semantic_features(self, modality: str, features: torch.Tensor) -> list[torch.Tensor]:
        """Continuous semantic features per level, [B, T, D] each (what gets quantized)."""
        if modality not in self.sizes.modalities:
            raise ValueError(f"a {self.sizes.family} encoder has no {modality} input")
        if modality == "audio":
            levels = [self.audio_self_att.forward_batch_first(features)]
            if self.levels == 2:
                levels.append(self.audio_self_att_2.forward_batch_first(self.Audio_encoder(features)))
        elif modality == "video":
            levels = [self.video_self_att.forward_batch_first(self.video_semantic_encoder(features))]
            if self.levels == 2:
                club_feature = self.Video_encoder(features)[1]
                levels.append(self.video_self_att_2.forward_batch_first(club_feature))
        elif modality == "text":
            levels = [self.text_self_att.forward_batch_first(features)]
            if self.levels == 2:
                levels.append(self.text_self_att_2.forward_batch_first(self.Text_encoder(features)))
        else:
            raise ValueError(f"unknown modality {modality!r}")
        return levels

    def encode(self, modality: str, features: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level: (codewords [B, T, D] equal to codebook rows, code indices [B, T]).

        No state changes: no EMA update, no reset, no loss (the reference's `*_VQ_Encoder`).
        """
        out = []
        for level, semantic in enumerate(self.semantic_features(modality, features)):
            codewords, indices = quantize_finite(semantic, self.codebook(level))
            out.append((codewords, indices.reshape(semantic.shape[:2])))
        return out

    # ------------------------------------------------------------------ training
    def forward(self, audio=None, video=None, text=None, *, cmcm: bool = True) -> EncoderOutput:
        """Training forward: semantic + specific features, then the quantizer step.

        Modules run in the published encoder's order (video branch, video / text / audio
        semantic features, text and audio specific features): dropout draws follow it.
        """
        specific: dict[str, torch.Tensor] = {}
        semantic: dict[str, torch.Tensor] = {}
        if video is not None:
            video_map, video_club = self.Video_encoder(video)
            specific["video"], specific["video_club"] = video_map, video_club
            semantic["video"] = self.video_self_att.forward_batch_first(self.video_semantic_encoder(video))
        if text is not None:
            semantic["text"] = self.text_self_att.forward_batch_first(text)
        if audio is not None:
            semantic["audio"] = self.audio_self_att.forward_batch_first(audio)
        if text is not None:
            specific["text"] = self.Text_encoder(text)
        if audio is not None:
            specific["audio"] = self.Audio_encoder(audio)
        ordered = {m: semantic[m] for m in ("audio", "video", "text") if m in semantic}
        if self.levels == 1:
            return EncoderOutput([ordered], [self.Cross_quantizer.quantize_level(ordered, 0, cmcm=cmcm)], specific)
        specific_2: dict[str, torch.Tensor] = {}
        semantic_2: dict[str, torch.Tensor] = {}
        if "video" in semantic:
            specific_2["video"] = self.Video_encoder_2(specific["video_club"])
            semantic_2["video"] = self.video_self_att_2.forward_batch_first(specific["video_club"])
        if "text" in semantic:
            specific_2["text"] = self.Text_encoder_2(specific["text"])
            semantic_2["text"] = self.text_self_att_2.forward_batch_first(specific["text"])
        if "audio" in semantic:
            specific_2["audio"] = self.Audio_encoder_2(specific["audio"])
            semantic_2["audio"] = self.audio_self_att_2.forward_batch_first(specific["audio"])
        ordered_2 = {m: semantic_2[m] for m in ("audio", "video", "text") if m in semantic_2}
        # The published H-DCID quantizer computes no cross-modal code matching at either level.
        level_1 = self.Cross_quantizer.quantize_level(ordered, 0, cmcm=False)
        level_2 = self.Cross_quantizer.quantize_level(ordered_2, 1, cmcm=False)
        return EncoderOutput([ordered, ordered_2], [level_1, level_2], specific, specific_2)

