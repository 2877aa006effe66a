"""One FCID pretraining step: the networks an FCID run trains, and the step itself.

The published recipe (ACL 2025 FCID): one encoder forward in train mode; five CLUB-estimator
updates on that forward's detached features (video, audio, audio-visual, text, each with its own
Adam); then the published terms (hdcid.fcid_objective) added as named terms × weights with the
same mechanism as DCID / H-DCID (hdcid.training.step.LossSum): every weight is 1 unless a remedy
sets it (the warm-up ramps the CLUB and commitment terms); one backward pass; each module's
gradient clipped on its own, in the published order CPC, encoder, the four estimators, decoder;
one step of the main Adam (encoder, CPC, decoder).

Remedies that apply here: input standardisation, a data-dependent codebook (from clip-level
coarse general vectors, what pretraining quantizes), the reset patience, consistent EMA counts,
the warm-up, and the alignment / modality-gap terms — on the per-second coarse general vectors of
audio and video, the vectors downstream heads read, with the clip-level coarse text vector — and
the swapped code prediction, on the clip-level coarse general vectors the codebook quantizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hdcid.checkpoint_keys import (
    DECODER_KEY,
    ENCODER_KEY,
    EPOCH_KEY,
    FCID_MI_NETS,
    SWAP_STATE_KEY,
    TOTAL_STEP_KEY,
    cpc_key,
    mi_net_key,
)
from hdcid.fcid import FcidEncoder, FcidForward, fcid_sizes
from hdcid.fcid_objective import FINE_PLACEHOLDERS, FcidObjective
from hdcid.losses import alignment_loss, identical_rows, modality_gap_loss
from hdcid.recipes import TrainConfig
from hdcid.swapped_codes import (
    SwapSettings,
    swap_state_for,
    swapped_code_prediction,
)
from hdcid.training.step import (
    SWAP_TERM,
    LossSum,
    Optimizers,
    StepResult,
    apply_gradients,
    loss_weights,
    warmup_weight,
)

# Which weight of hdcid.training.step.loss_weights each published term takes (None: weight 1).
TERM_WEIGHTS = {
    "fine_recon": "recon", "coarse_recon": "recon", "c_embedding": "commit", "c_cmcm": "cmcm",
    "mi_audio": "mi", "mi_video": "mi", "mi_text": "mi", "mi_audiovisual": "mi", "cpc": "nce",
    "infonce": None,
}
PUBLISHED_FILE = "FCID.pt"  # the published layout, written beside the trainer's checkpoints


class FcidPretrainModel(nn.Module):
    """Every network of an FCID pretraining run, named as the checkpoint keys."""

    levels = 1

    def __init__(self, config: TrainConfig, audio_dim: int, video_dim: int, word_dim: int):
        super().__init__()
        c = config
        # FCID reads the word vectors directly (no text LSTM): text_dim is their width.
        self.sizes = fcid_sizes(
            audio_dim=audio_dim, video_dim=video_dim, text_dim=word_dim, audio_output_dim=c.audio_output_dim,
            video_output_dim=c.video_output_dim, text_output_dim=c.text_output_dim,
            n_embeddings=c.n_embeddings, embedding_dim=c.embedding_dim,
        )
        # Built in this order because parameter initialisation draws from the global RNG.
        self.encoder = FcidEncoder(self.sizes)
        self.objective = FcidObjective(self.sizes)
        # The swapped code prediction's queue of clip rows (None while the term is off).
        self.swap_state = swap_state_for(c.remedies, 1, c.embedding_dim, c.n_embeddings)

    @property
    def quantizer(self) -> nn.Module:
        return self.encoder.Cross_quantizer_coarse

    def prepare_text(self, text: torch.Tensor) -> torch.Tensor:
        return text

    def codebook_features(self, modality: str, features: torch.Tensor) -> list[torch.Tensor]:
        """What pretraining quantizes: the clip-level coarse general vector, [B, 1, D]."""
        return [self.encoder.clip_coarse_features(modality, features)[:, None]]

    def codes_per_clip(self, steps: int) -> int:
        return 1  # one coarse code per clip and modality

    def club_nets(self) -> dict[str, nn.Module]:
        return self.objective.club_nets()

    def main_modules(self) -> list[nn.Module]:
        """The main optimizer's modules, in the published chain order (encoder, CPC, decoder)."""
        return [self.encoder, self.objective.cpc, self.objective.decoder]

    def clipped_modules(self) -> list[nn.Module]:
        """Gradient clipping order of the published step."""
        nets = self.club_nets()
        return [self.objective.cpc, self.encoder, nets["audio"], nets["video"], nets["text"], nets["audiovisual"],
                self.objective.decoder]

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {
            ENCODER_KEY: self.encoder, cpc_key(0): self.objective.cpc, DECODER_KEY: self.objective.decoder,
        }
        nets = self.club_nets()
        modules.update({mi_net_key(m, 0): nets[m] for m in FCID_MI_NETS})
        if self.swap_state is not None:
            modules[SWAP_STATE_KEY] = self.swap_state
        return modules

    def checkpoint_states(self) -> dict[str, dict]:
        """The module states; the encoder's in float64, as the published files hold it."""
        states = {key: module.state_dict() for key, module in self.checkpoint_modules().items()}
        states[ENCODER_KEY] = {k: v.double() for k, v in states[ENCODER_KEY].items()}
        return states

    def load_checkpoint_states(self, states: Mapping[str, dict]) -> None:
        for key, module in self.checkpoint_modules().items():
            module.load_state_dict(states[key])

    def published_checkpoint(self, epoch: int, total_step: int) -> dict:
        """`{Encoder_parameters, epoch, total_step}`: what the published pretraining script saves
        and its downstream scripts load (encoder tensors in float64, on the CPU)."""
        encoder = {k: v.detach().to(device="cpu", dtype=torch.float64) for k, v in self.encoder.state_dict().items()}
        return {ENCODER_KEY: encoder, EPOCH_KEY: int(epoch), TOTAL_STEP_KEY: int(total_step)}


def build_fcid_optimizers(model: FcidPretrainModel, config: TrainConfig) -> Optimizers:
    main = torch.optim.Adam([p for module in model.main_modules() for p in module.parameters()], lr=config.lr)
    nets = model.club_nets()
    return Optimizers(main, [{m: torch.optim.Adam(nets[m].parameters(), lr=config.mi_lr) for m in FCID_MI_NETS}])


def train_fcid_club(model: FcidPretrainModel, optimizers: Optimizers, out: FcidForward, iterations: int) -> dict[str, float]:
    """`iterations` updates of the four estimators on the forward's detached features (the encoder
    is not re-run); returns the last log-likelihood of each."""
    losses: dict[str, float] = {}
    mi = optimizers.mi[0]
    for _ in range(iterations):
        for optimizer in mi.values():
            optimizer.zero_grad()
        for name, loss in model.objective.club_learning_losses(out).items():
            loss.backward()
            mi[name].step()
            losses[f"club_lld_{name}"] = -float(loss.detach())
    return losses


def _remedy_features(model: FcidPretrainModel, out: FcidForward) -> dict[str, torch.Tensor]:
    """Per-second coarse general audio / video vectors [B, T, D] (what downstream heads read),
    and the clip-level coarse text vector [B, 1, D]: what the alignment remedies act on."""
    encoder = model.encoder
    return {
        "audio": encoder.split_from_fine("audio", out.a_gen_result),
        "video": encoder.split_from_fine("video", out.v_gen_result),
        "text": out.coarse_t_gen_result[:, None],
    }


def fcid_training_step(
    model: FcidPretrainModel, optimizers: Optimizers, inputs: dict[str, torch.Tensor], config: TrainConfig,
    *, epoch: int, total_step: int,
) -> StepResult:
    """One optimizer step of FCID pretraining on a batch of model inputs."""
    c = config
    out = model.encoder(inputs["audio"], inputs["video"], inputs["text"])
    metrics = train_fcid_club(model, optimizers, out, c.mi_iters)
    warm = warmup_weight(c.remedies, total_step)
    weights = loss_weights(c.remedies, warm)
    published = model.objective.loss_terms(out, inputs["audio"], inputs["video"])
    loss = LossSum()
    for name, value in published.terms.items():
        if name in FINE_PLACEHOLDERS:
            continue  # the discarded fine codebook's zeros
        kind = TERM_WEIGHTS[name]
        loss.add(name, value.reshape(()), None if kind is None else weights[kind])
    if c.remedies.align_weight > 0 or c.remedies.gap_weight > 0:
        features = _remedy_features(model, out)
        if c.remedies.align_weight > 0:
            same_text = identical_rows(inputs["text"])
            align = alignment_loss(features, c.remedies.align_temperature, same_text, c.remedies.align_distance)
            loss.add("align", align, weights["align"])
        if c.remedies.gap_weight > 0:
            loss.add("gap", modality_gap_loss(features), weights["gap"])
    if c.remedies.swap_weight > 0:
        # On what the coarse codebook quantizes in pretraining: one vector per clip and modality.
        clips = {"audio": out.coarse_a_gen_result, "video": out.coarse_v_gen_result}
        swap = swapped_code_prediction(
            clips, model.encoder.codebook(), SwapSettings.from_remedies(c.remedies), model.swap_state, 0,
            model.quantizer.level_state(0).ema_count,
        )
        loss.add(SWAP_TERM, swap, weights[SWAP_TERM])
    metrics.update({name: float(term.value) for name, term in loss.terms.items()})
    q = out.quantizer
    metrics["equal_num"] = float(out.c_equal_num)
    for pair, value in published.cpc_accuracy.items():
        metrics[f"cpc_acc_{pair}"] = value
    for m in ("audio", "video", "text"):
        metrics[f"batch_codes_{m}"] = float(len(torch.unique(q.indices[m])))
    metrics["batch_agree_av"] = float((q.indices["audio"] == q.indices["video"]).double().mean())
    total = loss.total
    metrics["loss_level1"] = metrics["loss"] = float(total.detach())
    metrics["loss_weight_warmup"] = warm
    apply_gradients(model, optimizers, total, c.clip)
    return StepResult(metrics, [loss.terms])
