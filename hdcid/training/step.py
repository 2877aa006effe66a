"""One pretraining step: the bundle of networks a run trains, and the step itself.

A step's loss is a sum of named terms, each times its weight (the scheme descript-audio-codec's
trainer uses): per level the CPC InfoNCE `nce` (for clips shorter than Cross-CPC needs, e.g.
T = 1, its clip-level stand-in `clip_nce`), the cross-modal code matching `cmcm`, and per
modality the reconstruction `recon`, the commitment `commit` and the CLUB MI bound `mi`, plus
the optional remedies `align`, `gap`, `code_match` and the swapped code prediction `swap`. The
total is level 1 + level2_weight · level 2. Every name written to metrics.jsonl comes from
`metric_name`: `{term}[_2][_{modality}]`.

A corpus without text trains the same networks (the published layout, text branch included);
the text terms are left out and the text branch keeps its initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from hdcid import normalization
from hdcid.checkpoint_keys import (
    DECODER_KEY,
    ENCODER_KEY,
    MI_MODALITIES,
    SWAP_STATE_KEY,
    TEXT_LSTM_KEY,
    cpc_key,
    mi_net_key,
)
from hdcid.decoders import DecoderSizes, build_decoder
from hdcid.losses import (
    CLUBSampleGroup,
    CrossCPC,
    alignment_loss,
    clip_contrastive,
    identical_rows,
    modality_gap_loss,
)
from hdcid.models import CmgEncoder, EncoderOutput, EncoderSizes
from hdcid.modules import run_text_lstm, text_lstm
from hdcid.quantizer import segment_code_matching
from hdcid.recipes import Remedies, TrainConfig
from hdcid.swapped_codes import (
    SwapSettings,
    swap_levels,
    swap_state_for,
    swapped_code_prediction,
)
from hdcid.training.distributed import Collective
from hdcid.vocabulary import MODALITIES, family_for

TEXT_LSTM_HIDDEN = 128  # the BiLSTM gives 2·128 = 256 text features (the encoder's text_dim)
CLUB_HIDDEN = 256
CPC_WIDTH = 256

# Loss terms in the order they are added (the order fixes the float result of the sum); for
# clips too short for Cross-CPC, `clip_nce` takes the place of `nce`.
LEVEL_TERMS = ("nce", "cmcm")
CLIP_NCE_TERM = "clip_nce"
MODALITY_TERMS = ("recon", "commit", "mi")
# Means over a batch's rows, computed on each rank's shard in a distributed run (the other terms
# compare clips and see the whole batch).
ROW_MEAN_TERMS = ("recon", "commit")
SWAP_TERM = "swap"  # swapped code prediction (hdcid/swapped_codes.py): level 1, level 2 if asked
REMEDY_TERMS = ("align", "gap", "code_match", "code_usage", SWAP_TERM)  # code_usage: level 2 (see _level_loss)


def metric_name(base: str, level: int, part: str | None = None) -> str:
    """`{base}[_2][_{part}]`: level 2 quantities get `_2`; `part` is a modality or a pair."""
    name = base + ("_2" if level else "")
    return f"{name}_{part}" if part else name


def level_loss_name(level: int) -> str:
    return f"loss_level{level + 1}"


def loss_weights(remedies: Remedies, warmup: float) -> dict[str, float | None]:
    """Weight of each loss term. None: the term enters as is (the published weight 1).

    Multiplying by 1.0 would not change the value, but each product is one more autograd node,
    and the order in which the backward pass accumulates gradients follows the graph — runs
    stay bit-identical with earlier ones only if the graph does.
    """
    return {
        "nce": None, "cmcm": None, "recon": None,
        "commit": warmup, "mi": warmup,  # ramped up by the warm-up remedy (1 without it)
        "align": remedies.align_weight, "gap": remedies.gap_weight, "code_match": remedies.code_match_weight,
        SWAP_TERM: remedies.swap_weight,
    }


@dataclass(frozen=True)
class WeightedTerm:
    value: torch.Tensor  # detached: what the term was in this step
    weight: float | None  # None: added as is


@dataclass
class LossSum:
    """Named terms × weights, added in the order they come."""

    terms: dict[str, WeightedTerm] = field(default_factory=dict)
    total: torch.Tensor | None = None

    def add(self, name: str, value: torch.Tensor, weight: float | None, scale: float | None = None) -> None:
        """`scale` (distributed runs with unequal shards): a factor on the total only."""
        part = value if weight is None else weight * value
        if scale is not None:
            part = scale * part
        self.total = part if self.total is None else self.total + part
        self.terms[name] = WeightedTerm(value.detach(), weight)


@dataclass
class StepResult:
    """What one step logs (`metrics`) and the loss terms of each level that was trained."""

    metrics: dict[str, float]
    terms: list[dict[str, WeightedTerm]]


class PretrainModel(nn.Module):
    """Every network of a DCID / H-DCID pretraining run, named as the checkpoint keys."""

    def __init__(
        self, config: TrainConfig, audio_dim: int, video_dim: int, word_dim: int | None, *, video_grid: bool = True,
    ):
        """`word_dim`: the text features' width, None for a corpus without text (the text LSTM is
        then built at its output width and never trained). `video_grid`: video as [T, H, W, C]
        maps (the published convolutional branch) or [T, C] vectors (a linear branch)."""
        super().__init__()
        c = config
        self.sizes = EncoderSizes(
            family=family_for(c.levels), audio_dim=audio_dim, video_dim=video_dim, text_dim=2 * TEXT_LSTM_HIDDEN,
            audio_output_dim=c.audio_output_dim, video_output_dim=c.video_output_dim,
            text_output_dim=c.text_output_dim, n_embeddings=c.n_embeddings, embedding_dim=c.embedding_dim,
            video_grid=video_grid,
        )
        word_dim = 2 * TEXT_LSTM_HIDDEN if word_dim is None else word_dim
        self.levels = c.levels
        # Built in this order because parameter initialisation draws from the global RNG.
        self.text_lstm = text_lstm(word_dim, TEXT_LSTM_HIDDEN)
        self.encoder = CmgEncoder(self.sizes)
        self.cpc = nn.ModuleList([CrossCPC(c.embedding_dim, CPC_WIDTH, CPC_WIDTH, 2) for _ in range(c.levels)])
        self.decoder = build_decoder(c.levels, DecoderSizes(
            audio_dim=audio_dim, video_dim=video_dim, text_dim=2 * TEXT_LSTM_HIDDEN,
            audio_output_dim=c.audio_output_dim, video_output_dim=c.video_output_dim,
            text_output_dim=c.text_output_dim, vq_dim=c.embedding_dim, video_grid=video_grid,
        ))
        y_dims = {"video": video_dim, "text": c.text_output_dim, "audio": c.audio_output_dim}
        # Per level, in the reference's training order video, text, audio.
        self.mi_nets = nn.ModuleList(
            nn.ModuleDict({m: CLUBSampleGroup(c.embedding_dim, y_dims[m], CLUB_HIDDEN) for m in MI_MODALITIES})
            for _ in range(c.levels)
        )
        # The swapped code prediction's queue and centres (None while the term is off).
        self.swap_state = swap_state_for(c.remedies, c.levels, c.embedding_dim, c.n_embeddings)

    # What the trainer asks of any family's bundle (FCID's: hdcid/training/fcid_step.py).
    @property
    def quantizer(self) -> nn.Module:
        return self.encoder.Cross_quantizer

    def prepare_text(self, text: torch.Tensor) -> torch.Tensor:
        """Word-level text features → the encoder's text input (the text BiLSTM)."""
        return run_text_lstm(self.text_lstm, text)

    def codebook_features(self, modality: str, features: torch.Tensor) -> list[torch.Tensor]:
        """Per level, what the quantizer sees in training (data-dependent codebook initialisation)."""
        return self.encoder.semantic_features(modality, features)

    def codes_per_clip(self, steps: int) -> int:
        """Code assignments per clip and modality in one quantizer call (one per second)."""
        return steps

    def main_modules(self) -> list[nn.Module]:
        """The modules of the main optimizer, in the reference's chain order."""
        return [self.text_lstm, self.encoder, *self.cpc, self.decoder]

    def clipped_modules(self) -> list[nn.Module]:
        """The modules whose gradient norm is clipped, each on its own (as the reference)."""
        return [*self.cpc, self.encoder, self.text_lstm, *self.mi_nets, self.decoder]

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        """Checkpoint key → module, in the order the checkpoint stores them."""
        modules: dict[str, nn.Module] = {
            ENCODER_KEY: self.encoder, TEXT_LSTM_KEY: self.text_lstm, cpc_key(0): self.cpc[0], DECODER_KEY: self.decoder,
        }
        if self.levels == 2:
            modules[cpc_key(1)] = self.cpc[1]
        for level, nets in enumerate(self.mi_nets):
            for m in MI_MODALITIES:
                modules[mi_net_key(m, level)] = nets[m]
        if self.swap_state is not None:
            modules[SWAP_STATE_KEY] = self.swap_state
        return modules

    def checkpoint_states(self) -> dict[str, dict]:
        return {key: module.state_dict() for key, module in self.checkpoint_modules().items()}

    def load_checkpoint_states(self, states: Mapping[str, dict]) -> None:
        for key, module in self.checkpoint_modules().items():
            module.load_state_dict(states[key])


@dataclass
class Optimizers:
    """The main Adam (text LSTM, encoder, CPC, decoder) and one Adam per CLUB estimator."""

    main: torch.optim.Adam
    mi: list[dict[str, torch.optim.Adam]]  # per level: modality → optimizer


def build_optimizers(model: PretrainModel, config: TrainConfig) -> Optimizers:
    main = torch.optim.Adam([p for module in model.main_modules() for p in module.parameters()], lr=config.lr)
    mi = [
        {m: torch.optim.Adam(nets[m].parameters(), lr=config.mi_lr) for m in MI_MODALITIES}
        for nets in model.mi_nets
    ]
    return Optimizers(main, mi)


def model_inputs(
    batch: Mapping[str, np.ndarray], *, dtype: torch.dtype, device: torch.device,
    stats: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """A batch as tensors in the run's dtype and device, standardised with `stats` if any
    (the modalities it holds: text is optional)."""
    out = {}
    for key in (m for m in MODALITIES if m in batch):
        x = torch.as_tensor(np.asarray(batch[key]), dtype=dtype).to(device)
        out[key] = normalization.apply(stats, key, x)
    return out


def club_targets(out: EncoderOutput, level: int) -> dict[str, torch.Tensor]:
    """The modality-specific features each level's CLUB estimators pair with the codewords."""
    if level:
        return out.specific_2
    names = {"video": "video_club", "text": "text", "audio": "audio"}
    return {m: out.specific[name] for m, name in names.items() if name in out.specific}


def train_club(
    model: PretrainModel, optimizers: Optimizers, out: EncoderOutput, levels: int, iterations: int,
    collective: Collective | None = None,
) -> dict[str, float]:
    """`iterations` updates of every CLUB estimator on detached (codeword, specific) pairs;
    returns the last log-likelihood of each. Distributed: each rank's gradient of its rows,
    combined into the batch gradient before every update."""
    losses: dict[str, float] = {}
    for level in range(levels):
        quantized = out.quantized[level].quantized
        specific = club_targets(out, level)
        present = [m for m in MI_MODALITIES if m in quantized]
        pairs = {m: (quantized[m].detach(), specific[m].detach()) for m in present}
        for _ in range(iterations):
            for m in present:
                optimizer = optimizers.mi[level][m]
                optimizer.zero_grad()
                loss = model.mi_nets[level][m].learning_loss(*pairs[m])
                loss.backward()
                if collective is not None:
                    collective.combine_gradients(model.mi_nets[level][m].parameters())
                optimizer.step()
                losses[metric_name("club_lld", level, m)] = -float(loss.detach())
    return losses


def warmup_weight(remedies: Remedies, total_step: int) -> float:
    """The warm-up remedy's weight of the CLUB and commitment terms at this step (1 without it)."""
    warmup = remedies.warmup_steps
    return 1.0 if warmup <= 0 else min(1.0, (total_step + 1) / warmup)


def whole_batch(collective: Collective | None, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Terms that compare clips see the whole batch: in a distributed run, every rank's rows."""
    if collective is None:
        return tensors
    return {m: collective.gather_batch(x) for m, x in tensors.items()}


def _club_bounds(
    model: PretrainModel, level: int, codewords: dict[str, torch.Tensor], specific: dict[str, torch.Tensor],
    collective: Collective | None,
) -> dict[str, torch.Tensor]:
    """The CLUB bound per modality; distributed, on the whole batch with rank 0's permutation."""
    nets = model.mi_nets[level]
    if collective is None:
        return {m: nets[m].mi_est(codewords[m], specific[m]) for m in MI_MODALITIES if m in codewords}
    return {
        m: nets[m].mi_est(
            collective.gather_batch(codewords[m]), collective.gather_batch(specific[m]),
            collective.shared_permutation(collective.batch_rows, codewords[m].device),
        )
        for m in MI_MODALITIES if m in codewords
    }


def level_2_reconstruction(model: PretrainModel, out: EncoderOutput, remedies: Remedies) -> dict[str, torch.Tensor]:
    """H-DCID level 2 rebuilds level 1's specific features from its own (per modality). The
    targets are features this step also trains: as published they take gradients, and the
    cheapest way to rebuild them is to make them constant (recon_2 → 0, one level-2 code); with
    `detach_level2_targets` they are fixed targets of the step."""
    targets = {m: x.detach() for m, x in out.specific.items()} if remedies.detach_level2_targets else out.specific
    return model.decoder.level_2_losses(targets, out.specific_2, out.quantized[1].quantized)


def distinct_rows(same: torch.Tensor) -> int:
    """How many distinct inputs a batch holds, from its [B, B] identical-rows matrix."""
    return int((~torch.tril(same, diagonal=-1).any(dim=1)).sum())


def usage_floor(
    remedies: Remedies, same_text: torch.Tensor | None, n_codes: int, batch: dict[str, torch.Tensor],
) -> float | None:
    """The usage floor of code matching: codes per distinct prompt × prompts in the batch, at most
    the codebook and the batch's positions; None without a floor (the plain usage term).

    Without text nothing says how many concepts a batch holds, and there is no floor: the plain
    usage term at the same weight. Counting every clip as one prompt was measured and dropped:
    2 codes per clip cannot be met on spoken digits (32 per batch of 16), the unmet floor keeps
    sharpening every assignment, and training settled on 6 codes with every head at 13-28%; a
    floor of 1 per clip left 7 codes (20-32%); the plain term at weight 3 kept 41 / 37 codes at
    code-id transfer 63 / 67% (one training seed; benchmarks/results/unified_codes.md)."""
    if remedies.code_usage_per_prompt <= 0 or same_text is None:
        return None
    clips, steps = batch["audio"].shape[:2]
    return float(min(remedies.code_usage_per_prompt * distinct_rows(same_text), n_codes, clips * steps))


def _level_loss(
    model: PretrainModel, out: EncoderOutput, targets: dict[str, torch.Tensor], level: int,
    weights: dict[str, float | None], remedies: Remedies, same_text: torch.Tensor | None,
    metrics: dict[str, float], collective: Collective | None = None,
) -> LossSum:
    q = out.quantized[level]
    semantic = out.semantic[level]
    specific = club_targets(out, level)
    batch = whole_batch(collective, semantic)  # for the terms that compare clips
    if level == 0:
        recon = model.decoder.level_1_losses(targets, out.specific, q.quantized)
    else:
        recon = level_2_reconstruction(model, out, remedies)
    present = [m for m in MODALITIES if m in semantic]
    mi = _club_bounds(model, level, {m: q.quantized[m] for m in semantic}, specific, collective)
    loss = LossSum()
    if semantic["audio"].shape[1] >= model.cpc[level].min_steps:
        module = model.cpc[level]
        steps = semantic["audio"].shape[1]
        start = None if collective is None else collective.shared_integer(lambda: module.draw_start(steps))
        cpc = module(batch["audio"], batch["video"], batch.get("text"), start=start)
        loss.add(metric_name("nce", level), cpc.nce, weights["nce"])
        accuracy_name = "cpc_acc"
    else:
        # Too few time steps to predict one (e.g. T = 1): clip-level InfoNCE instead, same weight.
        cpc = clip_contrastive(batch, same_text=same_text)
        loss.add(metric_name(CLIP_NCE_TERM, level), cpc.nce, weights["nce"])
        accuracy_name = f"{CLIP_NCE_TERM}_acc"
    loss.add(metric_name("cmcm", level), q.cmcm_loss.reshape(()), weights["cmcm"])
    per_modality = {"recon": recon, "commit": q.commitment, "mi": mi}
    scale = None if collective is None else collective.local_scale
    for m in present:
        for term in MODALITY_TERMS:
            loss.add(metric_name(term, level, m), per_modality[term][m], weights[term],
                     scale if term in ROW_MEAN_TERMS else None)
    if remedies.align_weight > 0:
        align = alignment_loss(batch, remedies.align_temperature, same_text, remedies.align_distance)
        loss.add(metric_name("align", level), align, weights["align"])
    if remedies.gap_weight > 0:
        loss.add(metric_name("gap", level), modality_gap_loss(batch), weights["gap"])
    if remedies.code_match_weight > 0:
        # Matching on level 1 only: level 2 quantizes what the CLUB terms keep out of level 1's
        # codes, the modality-specific rest, where matching has nothing to match and pulls the
        # codebook to one code; its usage term still keeps level 2's codes spread
        # (docs/training.md). The usage entropy is a batch statistic: the whole batch, as for
        # align and gap.
        codebook = model.encoder.codebook(level)
        match = segment_code_matching(
            batch, codebook, remedies.code_match_temperature, remedies.cosine_codes, remedies.code_usage_weight,
            match=level == 0, usage_floor=usage_floor(remedies, same_text, codebook.shape[0], batch) if level == 0 else None,
        )
        loss.add(metric_name("code_match" if level == 0 else "code_usage", level), match, weights["code_match"])
    if level < swap_levels(remedies, model.levels):
        # Targets are batch statistics: the whole batch (every rank the same), as for align.
        swap = swapped_code_prediction(
            batch, model.encoder.codebook(level), SwapSettings.from_remedies(remedies), model.swap_state, level,
            model.quantizer.level_state(level).ema_count,
        )
        loss.add(metric_name(SWAP_TERM, level), swap, weights[SWAP_TERM])
    metrics.update({name: float(term.value) for name, term in loss.terms.items()})
    # Batch statistics (not losses).
    metrics[metric_name("equal_num", level)] = float(q.equal_num)
    for pair, value in cpc.accuracy.items():
        metrics[metric_name(accuracy_name, level, pair)] = value
    for m in present:
        metrics[metric_name("batch_codes", level, m)] = float(len(torch.unique(q.indices[m])))
    metrics[metric_name("batch_agree", level, "av")] = float((q.indices["audio"] == q.indices["video"]).double().mean())
    metrics[level_loss_name(level)] = float(loss.total.detach())
    return loss


def training_step(
    model: PretrainModel, optimizers: Optimizers, inputs: dict[str, torch.Tensor], config: TrainConfig,
    *, epoch: int, total_step: int, collective: Collective | None = None,
) -> StepResult:
    """One optimizer step on a batch of model inputs (see model_inputs) in epoch `epoch`, after
    `total_step` steps; returns every loss term and batch statistic. `collective`: a distributed
    run's (hdcid.training.distributed); the inputs are then this rank's shard of the batch."""
    compute = partial(_step_losses, model, optimizers, inputs, config, epoch, total_step, collective)
    total, metrics, levels = compute() if collective is None else collective.forward(compute)
    apply_gradients(model, optimizers, total, config.clip)
    return StepResult(metrics, [level.terms for level in levels])


def apply_gradients(model: nn.Module, optimizers: Optimizers, total: torch.Tensor, clip: float) -> None:
    """Backpropagate `total` and take one step of the main optimizer, every family's bundle
    (`clipped_modules()`) clipped per module, as the reference (each module's own norm ≤ clip)."""
    optimizers.main.zero_grad()
    total.backward()
    for module in model.clipped_modules():
        nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizers.main.step()
    optimizers.main.zero_grad()


def _step_losses(
    model: PretrainModel, optimizers: Optimizers, inputs: dict[str, torch.Tensor], config: TrainConfig,
    epoch: int, total_step: int, collective: Collective | None,
) -> tuple[torch.Tensor, dict[str, float], list[LossSum]]:
    """A step's forward half: the CLUB updates, then the total loss, the metrics and each level's terms."""
    c = config
    text = run_text_lstm(model.text_lstm, inputs["text"]) if "text" in inputs else None
    level_2 = c.levels == 2 and epoch >= c.level2_start
    active_levels = 2 if level_2 else 1
    metrics: dict[str, float] = {}
    if c.reference_forwards and c.levels == 2:
        # The published H-DCID loop: every CLUB iteration re-runs the full encoder in train mode
        # (one more MM-EMA update and reset step each), then a sixth forward for the loss.
        for _ in range(c.mi_iters):
            extra = model.encoder(inputs["audio"], inputs["video"], text)
            metrics.update(train_club(model, optimizers, extra, active_levels, 1, collective))
        out = model.encoder(inputs["audio"], inputs["video"], text)
    else:
        out = model.encoder(inputs["audio"], inputs["video"], text)
        metrics.update(train_club(model, optimizers, out, active_levels, c.mi_iters, collective))
    warm = warmup_weight(c.remedies, total_step)
    weights = loss_weights(c.remedies, warm)
    targets = {"audio": inputs["audio"], "video": inputs["video"], "text": text}
    same_text = identical_rows(whole_batch(collective, {"text": inputs["text"]})["text"]) if "text" in inputs else None
    levels = [
        _level_loss(model, out, targets, level, weights, c.remedies, same_text, metrics, collective)
        for level in range(active_levels)
    ]
    total = levels[0].total + (c.level2_weight * levels[1].total if level_2 else 0.0)
    metrics["loss"] = float(total.detach())
    metrics["loss_weight_warmup"] = warm
    return total, metrics, levels
