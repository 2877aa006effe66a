"""The FCID pretraining objective, term by term, for one batch (the trainer's step adds them with
their weights: hdcid/training/fcid_step.py).

Terms (all weights 1, as published):

* `fine_recon`   MSE(raw video) + MSE(raw audio) from fine general + fine specific;
* `coarse_recon` Σ over v, a, t of MSE(clip vector) from coarse codeword + coarse specific;
* `c_embedding`  the three coarse commitment losses; `c_cmcm` cross-modal code matching;
* `f_embedding`, `f_cmcm` zeros: the published fine codebook is discarded (kept so the dict
  lists every published term; here 0-dim zeros in the model dtype, see below);
* `mi_video`, `mi_audio` CLUB bounds between fine general and fine specific (per second);
* `mi_text`, `mi_audiovisual` CLUB bounds between coarse general and coarse specific (per clip;
  audio-visual stacks the video and audio rows, 2B rows, so its negatives mix modalities);
* `cpc` Cross-CPC over the fine general video and audio sequences;
* `infonce` InfoNCE(coarse video general -> coarse text general) + the same for audio, one way.

Published quirk not reproduced: its fine placeholders are float32 `[1]` tensors, which turn the
logged total into float32 `[1]`; gradients are the same, so the total here is a 0-dim tensor in
the model dtype (and the trainer leaves the zero placeholders out of its sum). The CLUB estimators are trained separately on detached features
(`club_learning_losses`, five iterations per batch in the published script).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdcid.fcid import FCID_DEFAULT_SIZES, FcidForward
from hdcid.fcid_decoders import FcidDecoder
from hdcid.losses import CLUBSampleGroup, CrossCPC
from hdcid.models import EncoderSizes

INFONCE_TEMPERATURE = 0.1
CLUB_ITERATIONS = 5  # estimator steps per batch in the published script
# The published total, in its order of summation.
TERMS = (
    "fine_recon", "coarse_recon", "f_embedding", "c_embedding", "f_cmcm", "c_cmcm",
    "mi_audio", "mi_video", "mi_text", "mi_audiovisual", "cpc", "infonce",
)


# The two published placeholders of the discarded fine codebook (always zero).
FINE_PLACEHOLDERS = ("f_embedding", "f_cmcm")


@dataclass
class FcidLossTerms:
    """Every published term of one batch, in the published order, and CPC's logging accuracies."""

    terms: dict[str, torch.Tensor]
    cpc_accuracy: dict[str, float]

    @property
    def total(self) -> torch.Tensor:
        """The published total: every term with weight 1, added in the published order."""
        total = self.terms["f_embedding"].new_zeros(())
        for name in TERMS:
            total = total + self.terms[name]
        return total


def one_way_info_nce(query: torch.Tensor, keys: torch.Tensor, temperature: float = INFONCE_TEMPERATURE) -> torch.Tensor:
    """Cross-entropy of cosine/temperature logits [B, B] with the diagonal as target, rows only.

    Row i's positive is keys[i]; every other key is a negative. No reverse (key -> query) term.
    """
    logits = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).t() / temperature
    return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))


class FcidObjective(nn.Module):
    """The modules FCID pretraining trains besides the encoder, and the loss of one batch.

    `cpc` and `decoder` belong with the encoder in the main optimizer; the four CLUB estimators
    have their own optimizers and learn from `club_learning_losses`.
    """

    def __init__(self, sizes: EncoderSizes = FCID_DEFAULT_SIZES):
        super().__init__()
        width = sizes.embedding_dim
        self.sizes = sizes
        self.cpc = CrossCPC(width, width, width, 2, modalities=("video", "audio"))
        self.decoder = FcidDecoder(sizes)
        self.Video_mi_net = CLUBSampleGroup(width, sizes.video_dim, width)
        self.Audio_mi_net = CLUBSampleGroup(width, sizes.audio_output_dim, width)
        self.Text_mi_net = CLUBSampleGroup(width, sizes.text_output_dim, width)
        self.AudioVisual_mi_net = CLUBSampleGroup(width, width, width)

    def club_nets(self) -> dict[str, CLUBSampleGroup]:
        """The estimators in the order the published script steps them."""
        return {
            "video": self.Video_mi_net,
            "audio": self.Audio_mi_net,
            "audiovisual": self.AudioVisual_mi_net,
            "text": self.Text_mi_net,
        }

    @staticmethod
    def _club_pairs(out: FcidForward) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {
            "video": (out.v_gen_result, out.v_club_feature),
            "audio": (out.a_gen_result, out.a_spe_result),
            "audiovisual": (
                torch.cat([out.coarse_v_gen_result, out.coarse_a_gen_result], dim=0),
                torch.cat([out.coarse_v_spe_result, out.coarse_a_spe_result], dim=0),
            ),
            "text": (out.coarse_t_gen_result, out.coarse_t_spe_result),
        }

    def club_learning_losses(self, out: FcidForward) -> dict[str, torch.Tensor]:
        """-loglikelihood per estimator on *detached* features (they never reach the encoder)."""
        pairs = self._club_pairs(out)
        return {
            name: net.learning_loss(pairs[name][0].detach(), pairs[name][1].detach())
            for name, net in self.club_nets().items()
        }

    def loss_terms(self, out: FcidForward, audio: torch.Tensor, video: torch.Tensor) -> FcidLossTerms:
        """Every published term for one batch (`out` is the encoder's forward on it)."""
        fine = self.decoder.fine_losses(audio, video, out)
        coarse = self.decoder.coarse_losses(out)
        pairs = self._club_pairs(out)
        zero = out.c_embedding_loss.new_zeros(())
        cpc = self.cpc(out.a_gen_result, out.v_gen_result)
        terms = {
            # The MI terms first, each drawing one batch permutation, in the published order.
            "mi_video": self.Video_mi_net.mi_est(*pairs["video"]),
            "mi_audio": self.Audio_mi_net.mi_est(*pairs["audio"]),
            "mi_text": self.Text_mi_net.mi_est(*pairs["text"]),
            "mi_audiovisual": self.AudioVisual_mi_net.mi_est(*pairs["audiovisual"]),
            "cpc": cpc.nce,
            "infonce": one_way_info_nce(out.coarse_v_gen_result, out.coarse_t_gen_result)
            + one_way_info_nce(out.coarse_a_gen_result, out.coarse_t_gen_result),
            "fine_recon": fine["video"] + fine["audio"],
            "coarse_recon": coarse["video"] + coarse["audio"] + coarse["text"],
            "f_embedding": zero,
            "c_embedding": out.c_embedding_loss,
            "f_cmcm": zero,
            "c_cmcm": out.c_cmcm_loss,
        }
        return FcidLossTerms({name: terms[name] for name in TERMS}, cpc.accuracy)
