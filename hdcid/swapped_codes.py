"""Swapped code prediction: paired audio and video learn to choose the same code ids from each
other, without text and without a usage floor tuned to a number of classes.

For every paired position — audio and video of the same clip and second (DCID, H-DCID level 1,
and level 2 if asked), or of the same clip (FCID's clip codes) — each modality's soft assignment over the
level's codebook is trained to predict a *balanced* assignment computed from the other modality
(swapped prediction across two views, after SwAV, Caron et al. 2020, applied across audio and
video as in SeLaVi, Asano et al. 2020):

    s_m = code_logits(z_m, C, 1)          scores of modality m's rows over the K codes (detached C)
    p_m = softmax(s_m / τ)                 its prediction
    q_m = balanced(s_m / ε)                its target, no gradient
    loss = ½ · [H(q_v, p_a) + H(q_a, p_v)],   H(q, p) = −Σ_k q_k log p_k, mean over positions

`balanced` is a few Sinkhorn–Knopp iterations of the entropic transport between the positions
(each of mass 1) and the codes (mass N·r_k for a prior r), over the batch's rows plus a queue of
recent rows (detached features of earlier batches) when the batch holds fewer positions than the
codebook has codes. The equipartition prior (r = 1/K) forbids a collapse onto a few codes without
any usage term, but with far more codes than shared concepts it also splits every concept over
many codes, which the other modality cannot predict. The softer prior follows the codebook's
running usage u (its EMA counts): r = (1 − λ)·u^α / Σ u^α + λ/K, so α = 0 is equipartition, and
with α = 1 the targets keep the current code usage except for a share λ spread over every code —
no batch may pile onto a few codes, yet the number of codes in use is left to the data. The
alternative `centring` (after DINO's guard against collapse) replaces the Sinkhorn target by
softmax((s_m − c_m) / ε) with c_m a running mean of the batch-mean scores.

Gradients reach the features, never the codebook (it follows the features by its EMA update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdcid.errors import ModelError, literal
from hdcid.quantizer import PAIRED, code_logits
from hdcid.recipes import Remedies
from hdcid.vocabulary import SWAP_TARGETS

# The checkpoint key of the term's state (queue and centres), written only when the term is on.
CENTRE_MOMENTUM = 0.9  # DINO's centre update: c ← m·c + (1 − m)·batch mean


@dataclass(frozen=True)
class SwapSettings:
    """The term's settings: the `swap_*` remedies (hdcid.recipes, where their defaults live) and
    the codebook's `cosine_codes`."""

    temperature: float = Remedies.swap_temperature  # τ of the predictions
    target_temperature: float = Remedies.swap_target_temperature  # ε of the targets
    iterations: int = Remedies.swap_iterations  # Sinkhorn–Knopp iterations
    prior_power: float = Remedies.swap_prior_power  # α: 0 equipartition; > 0 follows the running usage
    prior_uniform: float = Remedies.swap_prior_uniform  # λ: the usage prior's uniform share
    targets: str = Remedies.swap_targets  # sinkhorn | centring
    cosine: bool = Remedies.cosine_codes  # cosine scores, or −squared distance / mean squared norm

    def __post_init__(self) -> None:
        if self.targets not in SWAP_TARGETS:
            raise ModelError(
                f"{{}} must be one of {', '.join(SWAP_TARGETS)}, got {literal(repr(self.targets))}",
                settings=("swap_targets",),
            )

    @staticmethod
    def from_remedies(remedies: Remedies) -> SwapSettings:
        r = remedies
        return SwapSettings(
            temperature=r.swap_temperature, target_temperature=r.swap_target_temperature, iterations=r.swap_iterations,
            prior_power=r.swap_prior_power, prior_uniform=r.swap_prior_uniform, targets=r.swap_targets,
            cosine=r.cosine_codes,
        )


def swap_levels(remedies: Remedies, levels: int) -> int:
    """How many codebook levels (from level 1) the term applies to: 0 while it is off."""
    if remedies.swap_weight <= 0:
        return 0
    return levels if remedies.swap_level2 else 1


def swap_state_for(remedies: Remedies, levels: int, width: int, n_codes: int) -> SwapState | None:
    """The state a run with these remedies keeps for the term (None while the term is off)."""
    used = swap_levels(remedies, levels)
    return SwapState(used, width, n_codes, remedies.swap_queue) if used else None


def usage_prior(
    counts: torch.Tensor | None, power: float, uniform: float = Remedies.swap_prior_uniform,
) -> torch.Tensor | None:
    """The code prior r [K] (sums to 1): (1 − λ)·u^α / Σ u^α + λ/K for running usage counts u
    (λ = `uniform`); None (equipartition) for α = 0 or no usage yet."""
    if power == 0 or counts is None:
        return None
    counts = counts.detach().double().clamp_min(0.0)
    if not bool(counts.sum() > 0):
        return None
    weights = counts.pow(power)
    return (1.0 - uniform) * weights / weights.sum() + uniform / counts.numel()


@torch.no_grad()
def sinkhorn_targets(logits: torch.Tensor, prior: torch.Tensor | None = None, iterations: int = 3) -> torch.Tensor:
    """Balanced soft assignments [N, K] from logits [N, K] (already divided by ε).

    Entropic transport between N positions of mass 1 and K codes of mass N·r_k (r: `prior`, uniform
    if None), by alternating scalings in log space (float64, so large logits cannot overflow);
    the last scaling is over positions, so every row sums to 1 exactly and the column sums reach
    N·r as the iterations grow. Deterministic: no random draw.
    """
    n, k = logits.shape
    log_q = logits.detach().double()
    if prior is None:
        log_prior = torch.full((k,), -math.log(k), dtype=torch.float64, device=logits.device)
    else:
        log_prior = torch.log(prior.to(device=logits.device, dtype=torch.float64))
    log_n = math.log(n)
    for _ in range(iterations):
        # Codes: column sums N·r_k; positions: row sums 1.
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) + (log_prior + log_n)
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)
    return log_q.exp().to(logits.dtype)


class SwapState(nn.Module):
    """What the term keeps between steps, per level: a FIFO queue of recent paired rows (audio and
    video features, detached, newest first) and the centres of the `centring` targets.

    Stored in training checkpoints under hdcid.checkpoint_keys.SWAP_STATE_KEY, so a resumed run continues exactly; in a
    distributed run every rank pushes the same gathered rows and holds the same state.
    """

    def __init__(self, levels: int, width: int, n_codes: int, length: int):
        super().__init__()
        self.length = int(length)
        self.register_buffer("queue", torch.zeros(levels, len(PAIRED), self.length, width))
        self.register_buffer("filled", torch.zeros(levels, dtype=torch.long))
        self.register_buffer("centre", torch.zeros(levels, len(PAIRED), n_codes))
        self.register_buffer("centred", torch.zeros(levels, dtype=torch.long))  # 1 once a centre is set

    def queued(self, level: int) -> dict[str, torch.Tensor]:
        """The rows in the queue of `level`, per modality ([n, D], n up to the queue length)."""
        n = int(self.filled[level])
        return {m: self.queue[level, i, :n] for i, m in enumerate(PAIRED)}

    @torch.no_grad()
    def push(self, level: int, rows: dict[str, torch.Tensor]) -> None:
        """Put a batch's rows at the front of the queue (the oldest fall out at the end)."""
        if self.length == 0:
            return
        for i, m in enumerate(PAIRED):
            new = rows[m].detach().to(self.queue.dtype)
            kept = torch.cat([new, self.queue[level, i]])[: self.length]
            self.queue[level, i] = kept
        self.filled[level] = min(self.length, int(self.filled[level]) + len(rows[PAIRED[0]]))

    @torch.no_grad()
    def update_centre(self, level: int, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The centres the targets use now (before this batch), then the running mean moves on;
        the first batch's own mean is the first centre."""
        means = {m: scores[m].mean(0).to(self.centre.dtype) for m in PAIRED}
        if not int(self.centred[level]):
            for i, m in enumerate(PAIRED):
                self.centre[level, i] = means[m]
            self.centred[level] = 1
        used = {m: self.centre[level, i].clone() for i, m in enumerate(PAIRED)}
        for i, m in enumerate(PAIRED):
            self.centre[level, i] = CENTRE_MOMENTUM * self.centre[level, i] + (1 - CENTRE_MOMENTUM) * means[m]
        return used


def swapped_code_prediction(
    features: dict[str, torch.Tensor], codebook: torch.Tensor, settings: SwapSettings,
    state: SwapState | None = None, level: int = 0, usage: torch.Tensor | None = None,
) -> torch.Tensor:
    """½·[H(q_v, p_a) + H(q_a, p_v)] over the paired rows of `features` (audio and video
    [B, T, D], or [B, D]; other modalities are ignored), see the module docstring.

    `state`: the queue (its rows join the Sinkhorn problem; this batch's rows are pushed after)
    and the centring state; None: the batch alone. `usage`: the codebook's running counts [K] for
    the prior (`prior_power` > 0). Zero without both audio and video.
    """
    if not all(m in features for m in PAIRED):
        return codebook.new_zeros(())
    width = codebook.shape[1]
    rows = {m: features[m].reshape(-1, width) for m in PAIRED}
    # One scale per modality (the batch's mean squared norm): queue rows are scored as this batch's.
    scales = {m: None if settings.cosine else rows[m].detach().pow(2).sum(-1).mean().clamp_min(1e-12) for m in PAIRED}
    log_p = {
        m: F.log_softmax(code_logits(rows[m], codebook, settings.temperature, settings.cosine, scales[m]), dim=-1)
        for m in PAIRED
    }
    with torch.no_grad():
        queued = state.queued(level) if state is not None else {m: rows[m][:0] for m in PAIRED}
        scores = {
            m: code_logits(torch.cat([rows[m].detach(), queued[m].to(rows[m].dtype)]), codebook, 1.0,
                           settings.cosine, scales[m])
            for m in PAIRED
        }  # fmt: skip
        n = len(rows[PAIRED[0]])
        if settings.targets == "centring":
            centres = state.update_centre(level, {m: s[:n] for m, s in scores.items()}) if state is not None else {
                m: s[:n].mean(0) for m, s in scores.items()
            }
            targets = {m: F.softmax((scores[m][:n] - centres[m]) / settings.target_temperature, dim=-1) for m in PAIRED}
        else:
            prior = usage_prior(usage, settings.prior_power, settings.prior_uniform)
            targets = {
                m: sinkhorn_targets(scores[m] / settings.target_temperature, prior, settings.iterations)[:n]
                for m in PAIRED
            }
        if state is not None:
            state.push(level, rows)
    audio, video = PAIRED
    return 0.5 * (-(targets[video] * log_p[audio]).sum(-1).mean() - (targets[audio] * log_p[video]).sum(-1).mean())
