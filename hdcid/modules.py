"""Building blocks of the DCID / H-DCID encoders, named as the reference state_dict requires."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EncoderLayer(nn.Module):
    """Post-norm transformer layer (sequence-first, ReLU, dropout 0.1), reference key names."""

    def __init__(self, d_model: int, nhead: int = 4, dim_feedforward: int = 1024, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        # need_weights=True (the default) keeps the explicit-softmax attention path the reference
        # ran, so float64 outputs agree to the last bits.
        attended = self.self_attn(src, src, src)[0]
        src = self.norm1(src + self.dropout1(attended))
        hidden = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(hidden))


class LayerStack(nn.Module):
    """`encoder.layers.{i}`: independent copies of the layer, applied in order, no final norm."""

    def __init__(self, d_model: int, num_layers: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, nhead, dim_feedforward) for _ in range(num_layers)
        )

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src)
        return src


class InternalTemporalRelationModule(nn.Module):
    """ITRM: affine projection then a transformer stack, no positional encoding.

    `encoder_layer` is the reference's template layer: registered (so checkpoints load with
    strict=True) but never used in forward.
    """

    def __init__(
        self,
        input_dim: int,
        d_model: int = 256,
        num_layers: int = 2,
        nhead: int = 4,
        dim_feedforward: int = 1024,
    ):
        super().__init__()
        self.encoder_layer = EncoderLayer(d_model, nhead, dim_feedforward)
        self.encoder = LayerStack(d_model, num_layers, nhead, dim_feedforward)
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, B, input_dim] → [T, B, d_model]."""
        return self.encoder(self.affine_matrix(x))

    def forward_batch_first(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, input_dim] → [B, T, d_model]."""
        return self.forward(x.transpose(0, 1)).transpose(0, 1)


class VideoSemanticEncoder(nn.Module):
    """SE channel reweighting then a spatial *sum* over the 7x7 map (the reference's effective output).

    The reference's spatial attention takes a softmax over a size-1 axis, so every weight is 1 and
    `affine_video_ave`, `affine_video_self` and `ave_v_att` have no effect; they are kept for
    checkpoint compatibility. Video without a spatial grid, [B, T, C], is a 1 x 1 grid: the SE
    reweighting of the vector itself, and the sum over one cell is the identity.
    """

    def __init__(self, video_dim: int = 512, se_hidden: int | None = None, att_dim: int | None = None):
        super().__init__()
        # At least one unit, so that narrow video features (C < 8) still get an SE bottleneck.
        se_hidden = se_hidden or max(1, video_dim // 8)
        att_dim = att_dim or max(1, video_dim // 2)
        self.se_layer = nn.Sequential(
            nn.Linear(video_dim, se_hidden, bias=False),
            nn.ReLU(),
            nn.Linear(se_hidden, video_dim, bias=False),
            nn.Sigmoid(),
        )
        self.affine_video_ave = nn.Linear(video_dim, att_dim)
        self.affine_video_self = nn.Linear(video_dim, att_dim)
        self.ave_v_att = nn.Linear(att_dim, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, C] (or [B, T, C]: no grid) → [B, T, C]."""
        if video.dim() == 3:
            video = video[:, :, None, None, :]
        batch, steps, height, width, channels = video.shape
        maps = video.reshape(batch * steps, height * width, channels)
        channel_weight = self.se_layer(maps.mean(dim=1)).unsqueeze(1)
        reweighted = maps * (channel_weight + 1)
        # A batched product with all-one weights, as the reference computes its degenerate
        # attention, so the summation order (and float64 bits) match.
        ones = torch.ones(batch * steps, 1, height * width, dtype=video.dtype, device=video.device)
        pooled = torch.bmm(ones, reweighted)
        return pooled.reshape(batch, steps, channels)


class ResidualLayer(nn.Module):
    """ReLU(x) + block(ReLU(x)): the reference's in-place ReLU rectifies the skip input too."""

    def __init__(self, in_dim: int, h_dim: int, res_h_dim: int):
        super().__init__()
        self.res_block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_dim, res_h_dim, kernel_size=3, stride=1, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(res_h_dim, h_dim, kernel_size=1, stride=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rectified = F.relu(x)
        return rectified + self.res_block[1:](rectified)


class ResidualStack(nn.Module):
    """A stack of residual layers followed by a ReLU."""

    def __init__(self, in_dim: int, h_dim: int, res_h_dim: int, n_res_layers: int = 1):
        super().__init__()
        self.stack = nn.ModuleList(ResidualLayer(in_dim, h_dim, res_h_dim) for _ in range(n_res_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.stack:
            x = layer(x)
        return F.relu(x)


# The convolutional video branch's two unpadded 3 x 3 convolutions need maps of at least 5 x 5.
MIN_VIDEO_GRID = 5


class VideoEncoder(nn.Module):
    """Video-specific branch: conv stack on the 7x7 map, plus the pooled `club` feature vector.

    Other grids of at least 5 x 5 work too: the two unpadded 3 x 3 convolutions leave an
    (H - 4) x (W - 4) map, which is averaged to one vector (for 7 x 7 the published 3 x 3 pool).
    """

    def __init__(self, video_dim: int = 512, hidden_dim: int = 2048):
        super().__init__()
        self.conv_stack = nn.Sequential(
            nn.Conv2d(video_dim, hidden_dim // 2, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Conv2d(hidden_dim // 2, hidden_dim, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size=1, stride=1),
            ResidualStack(hidden_dim, hidden_dim, hidden_dim, 1),
        )
        self.video_pool = nn.AvgPool2d(kernel_size=(3, 3), stride=(1, 1))
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim // 2),
            nn.ReLU(),
            nn.Linear(hidden_dim // 2, video_dim),
        )

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, 7, 7, C] → (map [B, T, 3, 3, hidden], club feature [B, T, C])."""
        batch, steps = video.shape[:2]
        maps = video.reshape(batch * steps, *video.shape[2:]).permute(0, 3, 1, 2)
        encoded = self.conv_stack(maps)
        if encoded.shape[2:] == (3, 3):
            pooled = self.video_pool(encoded).reshape(batch, steps, -1)
        else:
            pooled = encoded.mean(dim=(2, 3)).reshape(batch, steps, -1)
        club_feature = self.feed_forward(pooled)
        encoded = encoded.permute(0, 2, 3, 1).reshape(batch, steps, *encoded.shape[2:], encoded.shape[1])
        return encoded, club_feature


class VectorVideoEncoder(nn.Module):
    """Video-specific branch for video features without a spatial grid, [B, T, C] (clip or frame
    embeddings such as CLIP's): Linear + ReLU to the specific feature, and the published branch's
    feed-forward back to C for the `club` feature. Keys `Video_encoder.video_linear.*` tell its
    checkpoints apart from the convolutional branch's (`Video_encoder.conv_stack.*`).
    """

    def __init__(self, video_dim: int = 512, hidden_dim: int = 2048):
        super().__init__()
        self.video_linear = nn.Linear(video_dim, hidden_dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_dim, max(1, hidden_dim // 2)),
            nn.ReLU(),
            nn.Linear(max(1, hidden_dim // 2), video_dim),
        )

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, C] → (specific feature [B, T, hidden], club feature [B, T, C])."""
        specific = F.relu(self.video_linear(video))
        return specific, self.feed_forward(specific)


class _LinearReluEncoder(nn.Module):
    """`relu(linear(x))`; subclasses only name the layer (the reference's state_dict key)."""

    linear_name = "linear"

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        setattr(self, self.linear_name, nn.Linear(input_dim, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, self.linear_name)(x))


class AudioEncoder(_LinearReluEncoder):
    """Audio-specific branch: Linear + ReLU."""

    linear_name = "audio_linear"


class TextEncoder(_LinearReluEncoder):
    """Text-specific branch: Linear + ReLU."""

    linear_name = "text_linear"


class SimpleEncoder(_LinearReluEncoder):
    """H-DCID level-2 specific branch: Linear + ReLU."""

    linear_name = "input_linear"


def text_lstm(input_dim: int = 768, hidden: int = 128) -> nn.LSTM:
    """The reference `Text_ar_lstm`: 2-layer BiLSTM turning word vectors into [B, T, 2*hidden]."""
    return nn.LSTM(input_dim, hidden, num_layers=2, batch_first=True, bidirectional=True)


def run_text_lstm(lstm: nn.LSTM, words: torch.Tensor) -> torch.Tensor:
    """Run the text LSTM from zero states (as the reference does) and return its outputs."""
    layers = lstm.num_layers * (2 if lstm.bidirectional else 1)
    zeros = words.new_zeros(layers, words.shape[0], lstm.hidden_size)
    output, _ = lstm(words, (zeros, zeros.clone()))
    return output
