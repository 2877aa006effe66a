"""DCID and H-DCID decoders (reconstruction losses), with the reference state_dict names and order."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdcid.modules import ResidualStack
from hdcid.vocabulary import PUBLISHED_SIZES

VGGSOUND_CLASSES = 141  # the reference's (unused) semantic heads are sized for VGGSound-AVEL40K


class VideoDecoder(nn.Module):
    """Rebuild the [B,T,7,7,C] video map from the [B,T,3,3,hidden] specific map and the codeword."""

    def __init__(self, input_dim: int = 2048, output_dim: int = 512, vq_dim: int = 256):
        super().__init__()
        self.inverse_conv_block = nn.Sequential(
            nn.ConvTranspose2d(input_dim + vq_dim, input_dim // 2, kernel_size=3, stride=1, padding=0),
            ResidualStack(input_dim // 2, input_dim // 2, input_dim // 2, 1),
            nn.ConvTranspose2d(input_dim // 2, output_dim, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.ConvTranspose2d(output_dim, output_dim, kernel_size=1, stride=1, padding=0),
        )
        self.video_linear = nn.Linear(vq_dim, vq_dim)

    def forward(self, encoder_map: torch.Tensor, vq: torch.Tensor) -> torch.Tensor:
        batch, steps, height, width, channels = encoder_map.shape
        code = self.video_linear(vq).reshape(batch * steps, 1, 1, -1).expand(-1, height, width, -1)
        maps = encoder_map.reshape(batch * steps, height, width, channels)
        # The codeword goes first on the channel axis, as in the reference.
        stacked = torch.cat([code, maps], dim=3).permute(0, 3, 1, 2)
        out = self.inverse_conv_block(stacked)
        return out.permute(0, 2, 3, 1).reshape(batch, steps, out.shape[2], out.shape[3], out.shape[1])


class _LinearDecoder(nn.Module):
    """`rec(cat[linear(vq), specific])`; subclasses only rename the two layers."""

    rec_name = "rec"
    linear_name = "linear"

    def __init__(self, input_dim: int, output_dim: int, vq_dim: int):
        super().__init__()
        # Registration order (rec first) is the reference's state_dict order.
        setattr(self, self.rec_name, nn.Linear(input_dim * 2, output_dim))
        setattr(self, self.linear_name, nn.Linear(vq_dim, input_dim))

    def forward(self, specific: torch.Tensor, vq: torch.Tensor) -> torch.Tensor:
        code = getattr(self, self.linear_name)(vq)
        return getattr(self, self.rec_name)(torch.cat([code, specific], dim=-1))


class AudioDecoder(_LinearDecoder):
    rec_name, linear_name = "audio_rec", "audio_linear"


class VectorVideoDecoder(_LinearDecoder):
    """Rebuilds video features without a spatial grid [B, T, C] (the VectorVideoEncoder's input)."""

    rec_name, linear_name = "video_rec", "video_linear"


class TextDecoder(_LinearDecoder):
    rec_name, linear_name = "text_rec", "text_linear"


class SimpleDecoder(_LinearDecoder):
    """H-DCID level-2 decoder: rebuilds a level-1 specific feature."""

    rec_name, linear_name = "simple_rec", "simple_linear"


class SemanticDecoder(nn.Module):
    """Clip classifier head: linear, max over time, classifier (unused in pretraining)."""

    def __init__(self, input_dim: int, class_num: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, input_dim)
        self.event_classifier = nn.Linear(input_dim, class_num)

    def forward(self, vq: torch.Tensor) -> torch.Tensor:
        return self.event_classifier(self.linear(vq).max(dim=1).values)


@dataclass(frozen=True)
class DecoderSizes:
    """Sizes of a decoder; `vq_dim` is the code width (256 in every published model)."""

    audio_dim: int = PUBLISHED_SIZES["audio_dim"]
    video_dim: int = PUBLISHED_SIZES["video_dim"]
    text_dim: int = PUBLISHED_SIZES["text_dim"]
    audio_output_dim: int = PUBLISHED_SIZES["audio_output_dim"]
    video_output_dim: int = PUBLISHED_SIZES["video_output_dim"]
    text_output_dim: int = PUBLISHED_SIZES["text_output_dim"]
    vq_dim: int = PUBLISHED_SIZES["embedding_dim"]
    n_classes: int = VGGSOUND_CLASSES
    video_grid: bool = True  # video as [.., H, W, C] maps (conv decoder) or [.., C] vectors


@dataclass
class ReconstructionLosses:
    """MSE reconstruction losses per level and modality."""

    level_1: dict[str, torch.Tensor]
    level_2: dict[str, torch.Tensor]


class DcidDecoder(nn.Module):
    """`AVT_VQVAE_Decoder`: level-1 reconstructions (plus the reference's unused semantic heads)."""

    def __init__(self, sizes: DecoderSizes = DecoderSizes()):
        super().__init__()
        s = sizes
        self.sizes = sizes
        if s.video_grid:
            self.Video_decoder = VideoDecoder(s.video_output_dim, s.video_dim, s.vq_dim)
        else:
            self.Video_decoder = VectorVideoDecoder(s.video_output_dim, s.video_dim, s.vq_dim)
        self.Audio_decoder = AudioDecoder(s.audio_output_dim, s.audio_dim, s.vq_dim)
        self.Text_decoder = TextDecoder(s.text_output_dim, s.text_dim, s.vq_dim)
        self._add_extra_heads()

    def _add_extra_heads(self) -> None:
        s = self.sizes
        self.video_semantic_decoder = SemanticDecoder(s.vq_dim, s.n_classes)
        self.text_semantic_decoder = SemanticDecoder(s.vq_dim, s.n_classes)
        self.audio_semantic_decoder = SemanticDecoder(s.vq_dim, s.n_classes)

    def level_1_losses(
        self,
        inputs: dict[str, torch.Tensor],
        specific: dict[str, torch.Tensor],
        quantized: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """MSE of each modality's reconstruction from (its specific feature, its codeword).

        `inputs['text']` is the text-LSTM output, not detached (the reference's target). A
        modality absent from `quantized` (a corpus without text) has no loss.
        """
        decoders = {"audio": self.Audio_decoder, "video": self.Video_decoder, "text": self.Text_decoder}
        return _reconstruction_losses(decoders, specific, quantized, inputs)

    def forward(self, inputs, specific, quantized, specific_2=None, quantized_2=None) -> ReconstructionLosses:
        # The semantic heads never enter a loss in the reference, so they are not computed.
        return ReconstructionLosses(self.level_1_losses(inputs, specific, quantized), {})


class HdcidDecoder(DcidDecoder):
    """`AVT_MLVQVAE_Decoder`: level 1 as DCID (no semantic heads) plus three level-2 Simple decoders."""

    def _add_extra_heads(self) -> None:
        s = self.sizes
        self.Video_decoder_2 = SimpleDecoder(s.video_dim, s.video_dim, s.vq_dim)
        self.Audio_decoder_2 = SimpleDecoder(s.audio_output_dim, s.audio_output_dim, s.vq_dim)
        self.Text_decoder_2 = SimpleDecoder(s.text_output_dim, s.text_output_dim, s.vq_dim)

    def level_2_losses(
        self,
        specific: dict[str, torch.Tensor],
        specific_2: dict[str, torch.Tensor],
        quantized_2: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Level 2 rebuilds the level-1 specific features (targets not detached, as the reference)."""
        decoders = {"audio": self.Audio_decoder_2, "video": self.Video_decoder_2, "text": self.Text_decoder_2}
        targets = {m: specific[key] for m, key in (("audio", "audio"), ("video", "video_club"), ("text", "text"))
                   if m in quantized_2}
        return _reconstruction_losses(decoders, specific_2, quantized_2, targets)

    def forward(self, inputs, specific, quantized, specific_2=None, quantized_2=None) -> ReconstructionLosses:
        level_1 = self.level_1_losses(inputs, specific, quantized)
        level_2 = {} if quantized_2 is None else self.level_2_losses(specific, specific_2, quantized_2)
        return ReconstructionLosses(level_1, level_2)


def _reconstruction_losses(
    decoders: dict[str, nn.Module],
    specific: dict[str, torch.Tensor],
    quantized: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """MSE of each modality in `quantized` rebuilt from (its specific feature, its codeword)
    against its target."""
    present = [m for m in ("audio", "video", "text") if m in quantized]
    # Every reconstruction first, then every loss: the published order of the autograd graph.
    rebuilt = {m: decoders[m](specific[m], quantized[m]) for m in present}
    return {m: F.mse_loss(rebuilt[m], targets[m]) for m in present}


def build_decoder(levels: int, sizes: DecoderSizes = DecoderSizes()) -> DcidDecoder:
    """The decoder for a one-level (DCID) or two-level (H-DCID) model."""
    return HdcidDecoder(sizes) if levels == 2 else DcidDecoder(sizes)
