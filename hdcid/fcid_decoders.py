"""FCID decoder (`AVT_VQVAE_Decoder` of the FCID release): fine and coarse reconstructions.

Fine: the raw audio and video inputs are rebuilt from each second's fine general vector (the
continuous temporal-module output; there is no fine codebook) and its fine specific feature.
Coarse: each modality's clip vector (compress-projector output) is rebuilt from its coarse
codeword and its coarse specific vector. There are no class heads. The published pretraining
script never saves this module; the key names follow its construction anyway, so the layout
can be compared with the reference's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdcid.decoders import AudioDecoder, SimpleDecoder, VideoDecoder
from hdcid.fcid import FCID_DEFAULT_SIZES, FcidForward
from hdcid.models import EncoderSizes


class FcidDecoder(nn.Module):
    """Children in the published order: v_fine, a_fine, then the v, a, t coarse decoders."""

    def __init__(self, sizes: EncoderSizes = FCID_DEFAULT_SIZES):
        super().__init__()
        self.sizes = sizes
        width = sizes.embedding_dim
        # The codeword (here: the fine general vector) is tiled over the 3x3 specific map and
        # concatenated in front of it, as DCID's video decoder does.
        self.v_fine_decoder = VideoDecoder(sizes.video_output_dim, sizes.video_dim, width)
        self.a_fine_decoder = AudioDecoder(sizes.audio_output_dim, sizes.audio_dim, width)
        self.v_coarse_decoder = SimpleDecoder(width, width, width)
        self.a_coarse_decoder = SimpleDecoder(width, width, width)
        # The published model fixes this at 256 = text_output_dim; sized by the specific width here
        # so that other text_output_dim values also fit (the published script cannot run them).
        self.t_coarse_decoder = SimpleDecoder(sizes.text_output_dim, width, width)

    def fine_losses(self, audio: torch.Tensor, video: torch.Tensor, out: FcidForward) -> dict[str, torch.Tensor]:
        """MSE of the rebuilt raw inputs (means over all elements), keyed by modality."""
        rebuilt_video = self.v_fine_decoder(out.v_spe_result, out.v_gen_result)
        rebuilt_audio = self.a_fine_decoder(out.a_spe_result, out.a_gen_result)
        return {"video": F.mse_loss(rebuilt_video, video), "audio": F.mse_loss(rebuilt_audio, audio)}

    def coarse_losses(self, out: FcidForward) -> dict[str, torch.Tensor]:
        """MSE of the rebuilt clip vectors from (coarse specific, coarse codeword); targets not detached."""
        return {
            "video": F.mse_loss(self.v_coarse_decoder(out.coarse_v_spe_result, out.c_v_vq[:, 0]), out.coarse_v_result),
            "audio": F.mse_loss(self.a_coarse_decoder(out.coarse_a_spe_result, out.c_a_vq[:, 0]), out.coarse_a_result),
            "text": F.mse_loss(self.t_coarse_decoder(out.coarse_t_spe_result, out.c_t_vq[:, 0]), out.coarse_t_result),
        }
