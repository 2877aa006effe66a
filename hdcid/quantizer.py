"""The shared codebook(s): nearest-code lookup, the MM-EMA update and the dead-code reset."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

COMMITMENT_COST = 0.25
DECAY = 0.99
EPSILON = 1e-5
RESET_AFTER = 300  # batches without use before a code counts as dead
ACTIVE_WITHIN = 100  # batches since last use for a code to count as active


def squared_distances(features: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """‖e‖² + ‖x‖² − 2·x·e for flattened features [N, D] and a codebook [K, D] → [N, K].

    Computed with `addmm` in the same order as the reference, so float64 argmins agree exactly.
    """
    return torch.addmm(
        torch.sum(codebook**2, dim=1) + torch.sum(features**2, dim=1, keepdim=True),
        features,
        codebook.t(),
        alpha=-2.0,
        beta=1.0,
    )


def nearest_codes(features: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codeword for each row (argmin in float64; ties to the lowest index)."""
    flat = features.detach().reshape(-1, codebook.shape[1])
    distances = squared_distances(flat.to(codebook.dtype), codebook)
    return torch.argmin(distances.double(), dim=-1)


def quantize(features: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure lookup: (codewords [..., D] exactly equal to codebook rows, indices [N] flattened)."""
    indices = nearest_codes(features, codebook)
    codewords = F.embedding(indices, codebook).reshape(*features.shape[:-1], codebook.shape[1])
    return codewords, indices


class NonFiniteFeatures(ValueError):
    """Features to quantize hold NaN/Inf: every distance would be NaN and every code 0, which
    would look like a result."""

    def __init__(self, clip: int):
        self.clip = clip
        super().__init__(f"NaN/Inf features for clip {clip} of the batch")


def quantize_finite(features: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`quantize` for inference ([B, ...] features): refuses NaN/Inf, naming the first such clip."""
    finite = torch.isfinite(features).reshape(len(features), -1).all(dim=1)
    if not bool(finite.all()):
        raise NonFiniteFeatures(int(torch.nonzero(~finite).flatten()[0]))
    return quantize(features, codebook)


@dataclass
class QuantizerOutput:
    """What one training-mode quantizer call returns for the three modalities."""

    quantized: dict[str, torch.Tensor]  # straight-through codewords [B, T, D] per modality
    commitment: dict[str, torch.Tensor]  # commitment loss per modality
    indices: dict[str, torch.Tensor]  # [B*T] per modality
    cmcm_loss: torch.Tensor  # cross-modal code matching (zero for H-DCID levels)
    equal_num: torch.Tensor  # items whose most frequent code agrees across modalities


def _soft_code_distribution(features: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    batch, steps, width = features.shape
    distances = squared_distances(features.reshape(-1, width), codebook)
    # Clamp: the expanded form can be slightly negative, and sqrt of it is NaN (the reference
    # takes the sqrt unclamped and can produce NaN).
    probs = F.softmax(-torch.sqrt(distances.clamp_min(0.0)), dim=-1)
    return probs.reshape(batch, steps, -1).mean(dim=1)


def _pair_matching_loss(p_x: torch.Tensor, p_y: torch.Tensor) -> torch.Tensor:
    scores = p_x @ torch.log(p_y.t() + 1e-10) + p_y @ torch.log(p_x.t() + 1e-10)
    shift = torch.max(-scores)
    logits = scores + shift
    positives = torch.diagonal(logits)
    return -torch.mean(torch.log(torch.exp(positives) / (torch.exp(logits).sum(dim=1) + 1e-5)))


def cross_modal_code_matching(features: dict[str, torch.Tensor], codebook: torch.Tensor) -> torch.Tensor:
    """Lcmcm: contrastive agreement of clip-level soft code distributions, pairs (a,v),(a,t),(t,v)."""
    dist = {name: _soft_code_distribution(x, codebook) for name, x in features.items()}
    pairs = [("audio", "video"), ("audio", "text"), ("text", "video")]
    terms = [_pair_matching_loss(dist[x], dist[y]) for x, y in pairs if x in dist and y in dist]
    return 0.5 * torch.stack(terms).sum()


def init_codebook(n_embeddings: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    bound = 1.0 / n_embeddings
    return torch.empty(n_embeddings, width).uniform_(-bound, bound, generator=generator)


class LevelState(NamedTuple):
    """The buffers of one codebook level (views: read them, change them through the methods)."""

    embedding: torch.Tensor  # [K, D] the codewords
    ema_count: torch.Tensor  # [K] EMA of how many features each code took
    ema_weight: torch.Tensor  # [K, D] EMA of the features pulled to each code
    unactivated_count: torch.Tensor  # [K] batches since each code was last used (-1: never)


class _QuantizerBase(nn.Module):
    """MM-EMA training logic shared by the one-level and the multi-level quantizers."""

    def __init__(
        self,
        modalities: tuple[str, ...],
        commitment_cost: float = COMMITMENT_COST,
        decay: float = DECAY,
        epsilon: float = EPSILON,
        reset_after: int = RESET_AFTER,
        active_within: int = ACTIVE_WITHIN,
        reset_noise_width: int | None = 256,
        reset_updates_ema: bool = False,
        reset_noise_bounds: tuple[float, float] = (-1.0 / 1024, 1.0 / 1024),
    ):
        super().__init__()
        self.modalities = modalities
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        # The reference hard-codes 256 for the reset noise; None means "the code width".
        self.reset_noise_width = reset_noise_width
        # Bounds of the uniform reset noise. FCID's published quantizer passes equal bounds
        # (-1/1024, -1/1024), i.e. the constant -1/1024; the draw still advances the RNG.
        self.reset_noise_bounds = (float(reset_noise_bounds[0]), float(reset_noise_bounds[1]))
        # Seeds the choice of the active code a dead code is reset to (the reference's `random`).
        self.python_random = random.Random(57)
        # Set by a distributed run (hdcid.training.distributed.Collective): batch statistics are
        # reduced over processes, resets are drawn on rank 0. None: one process.
        self.collective = None
        self.set_reset_policy(reset_after, active_within, updates_ema=reset_updates_ema)

    def set_reset_policy(self, reset_after: int, active_within: int, *, updates_ema: bool = False) -> None:
        """When the dead-code reset fires: a code unused for more than `reset_after` batches is
        dead, and is reset to a code used within the last `active_within` batches.

        `updates_ema` (a remedy, off in the reference): also set a reset code's EMA weight to
        codeword · count, so the next EMA step keeps the reset instead of undoing it.
        """
        self.reset_after = int(reset_after)
        self.active_within = int(active_within)
        self.reset_updates_ema = bool(updates_ema)

    # Subclasses expose per-level views of their buffers.
    def _level_buffers(self, level: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _write_level(self, level: int, **buffers: torch.Tensor) -> None:
        raise NotImplementedError

    def codebook(self, level: int = 0) -> torch.Tensor:
        return self._level_buffers(level)[0]

    def level_state(self, level: int = 0) -> LevelState:
        """The codewords and EMA statistics of one level."""
        return LevelState(*self._level_buffers(level))

    @torch.no_grad()
    def replace_codes(self, level: int, codes: torch.Tensor) -> None:
        """Put new codewords [K, D] in place (e.g. a data-dependent initialisation).

        The EMA weight follows the codes so the next EMA step starts from them: codes · count
        where codes already have counts, the codes themselves while every count is zero.
        """
        counts = self._level_buffers(level)[1]
        ema_weight = codes * counts.unsqueeze(-1) if counts.abs().sum() > 0 else codes.clone()
        self._write_level(level, embedding=codes, ema_weight=ema_weight)

    @torch.no_grad()
    def start_uniform_counts(self, level: int, count: float) -> None:
        """Give every code the EMA count `count` and the matching weight codeword · count, so
        the EMA statistics are consistent with the codes (unused codes then stay in place)."""
        embedding = self._level_buffers(level)[0]
        counts = torch.full((embedding.shape[0],), count, dtype=embedding.dtype, device=embedding.device)
        self._write_level(level, ema_count=counts, ema_weight=embedding * count)

    def _ema_update(self, level: int, one_hot: dict[str, torch.Tensor], flat: dict[str, torch.Tensor]) -> None:
        embedding, ema_count, ema_weight, _ = self._level_buffers(level)
        n_codes = embedding.shape[0]
        names = [m for m in self.modalities if m in one_hot]
        batch_counts, pulled = {}, {}
        for name in names:
            partners = [m for m in names if m != name]
            batch_counts[name] = one_hot[name].sum(dim=0)
            # Own features pull with weight 1/2, each partner's features at the same (b, t) with the
            # rest split evenly (0.25 each for three modalities, as the reference).
            pulled[name] = 0.5 * one_hot[name].t() @ flat[name]
            for partner in partners:
                pulled[name] = pulled[name] + (0.5 / len(partners)) * one_hot[name].t() @ flat[partner]
        if self.collective is not None:
            # The batch's counts and sums over every process, before the EMA step.
            self.collective.sum_([*batch_counts.values(), *pulled.values()])
        for name in names:
            counts = self.decay * ema_count + (1 - self.decay) * batch_counts[name]
            total = counts.sum()
            counts = (counts + self.epsilon) / (total + n_codes * self.epsilon) * total
            ema_weight = self.decay * ema_weight + (1 - self.decay) * pulled[name]
            ema_count = counts
            embedding = ema_weight / ema_count.unsqueeze(-1)
        self._write_level(level, embedding=embedding, ema_count=ema_count, ema_weight=ema_weight)

    def _reset_dead_codes(self, level: int, used: torch.Tensor) -> int:
        embedding, ema_count, ema_weight, unactivated = self._level_buffers(level)
        unactivated = unactivated + 1
        unactivated[used] = 0
        dead_mask = unactivated > self.reset_after
        active_mask = (~dead_mask) & (unactivated >= 0) & (unactivated < self.active_within)
        unactivated = torch.where(dead_mask, torch.zeros_like(unactivated), unactivated)
        dead = torch.nonzero(dead_mask).flatten().tolist()
        active = torch.nonzero(active_mask).flatten().tolist()
        embedding = embedding.clone()
        if dead and active:
            snapshot = embedding[active].clone()
            width = embedding.shape[1] if self.reset_noise_width is None else self.reset_noise_width
            # Distributed: every process sees the same dead and active codes; rank 0 draws the
            # replacements and sends its codebook.
            main = self.collective is None or self.collective.is_main
            for index in dead if main else ():
                source = self.python_random.randint(0, len(active) - 1)
                noise = torch.empty(width, dtype=embedding.dtype).uniform_(*self.reset_noise_bounds)
                embedding[index] = snapshot[source] + noise.to(embedding.device)[: embedding.shape[1]]
            if self.collective is not None:
                self.collective.broadcast_([embedding])
            if self.reset_updates_ema:
                ema_weight = ema_weight.clone()
                ema_weight[dead] = embedding[dead] * ema_count[dead].unsqueeze(-1)
                self._write_level(level, ema_weight=ema_weight)
        self._write_level(level, embedding=embedding, unactivated_count=unactivated)
        return len(dead) if active else 0

    def _whole_batch(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The code matching compares clips: in a distributed run it sees every process' rows."""
        if self.collective is None:
            return features
        return {m: self.collective.gather_batch(x) for m, x in features.items()}

    def quantize_level(self, features: dict[str, torch.Tensor], level: int = 0, *, cmcm: bool = True) -> QuantizerOutput:
        """One training-style call on semantic features [B, T, D] per modality: nearest codes,
        the MM-EMA update (train mode), the dead-code reset, commitment and code-matching losses."""
        embedding = self.codebook(level)
        n_codes, width = embedding.shape
        flat = {m: x.detach().reshape(-1, width) for m, x in features.items()}
        cmcm_loss = (
            cross_modal_code_matching(self._whole_batch(features), embedding)
            if cmcm and len(features) > 1
            else embedding.new_zeros(())
        )
        indices = {m: torch.argmin(squared_distances(f, embedding).double(), dim=-1) for m, f in flat.items()}
        one_hot = {m: F.one_hot(i, n_codes).to(embedding.dtype) for m, i in indices.items()}
        codewords = {m: F.embedding(indices[m], embedding).view_as(features[m]) for m in features}
        batch, steps = next(iter(features.values())).shape[:2]
        modes = [torch.mode(indices[m].reshape(batch, steps), dim=-1).values for m in features]
        equal = torch.ones(batch, dtype=torch.bool, device=embedding.device)
        for mode in modes[1:]:
            equal &= mode == modes[0]
        if self.training:
            self._ema_update(level, one_hot, flat)
        used = torch.unique(torch.cat(list(indices.values())))
        if self.collective is not None:
            used = self.collective.used_codes(used, n_codes)
        self._reset_dead_codes(level, used)
        commitment = {}
        for name, x in features.items():
            own = F.mse_loss(x, codewords[name].detach())
            others = [F.mse_loss(x, codewords[m].detach()) for m in features if m != name]
            # β·(2·own + 0.5·Σ partners): the reference's weighting of its own and partner codewords.
            loss = 2 * own + 0.5 * sum(others) if others else 2 * own
            commitment[name] = self.commitment_cost * loss
        quantized = {m: x + (codewords[m] - x).detach() for m, x in features.items()}
        return QuantizerOutput(quantized, commitment, indices, cmcm_loss, equal.sum())


class CrossQuantizer(_QuantizerBase):
    """One shared codebook (DCID): buffers [K, D]."""

    def __init__(self, n_embeddings: int = 400, embedding_dim: int = 256, modalities=("audio", "video", "text"), **kwargs):
        super().__init__(tuple(modalities), **kwargs)
        embedding = init_codebook(n_embeddings, embedding_dim)
        self.register_buffer("embedding", embedding)
        self.register_buffer("ema_count", torch.zeros(n_embeddings))
        self.register_buffer("ema_weight", embedding.clone())
        # torch.full, not -torch.ones: negation on the meta device (the loader's key check) goes
        # through a Python decomposition whose first use costs seconds of imports.
        self.register_buffer("unactivated_count", torch.full((n_embeddings,), -1.0))

    @property
    def levels(self) -> int:
        return 1

    def _level_buffers(self, level: int):
        if level != 0:
            raise IndexError(f"a one-level quantizer has no level {level}")
        return self.embedding, self.ema_count, self.ema_weight, self.unactivated_count

    def _write_level(self, level: int, **buffers: torch.Tensor) -> None:
        for name, value in buffers.items():
            setattr(self, name, value)


class MultiLevelQuantizer(_QuantizerBase):
    """H-DCID: separate codebooks stacked on a leading level axis, buffers [L, K, D] (not residual)."""

    def __init__(self, n_embeddings: int = 400, embedding_dim: int = 256, levels: int = 2, modalities=("audio", "video", "text"), **kwargs):
        super().__init__(tuple(modalities), **kwargs)
        embedding = torch.stack([init_codebook(n_embeddings, embedding_dim) for _ in range(levels)])
        self.register_buffer("embedding", embedding)
        self.register_buffer("ema_count", torch.zeros(levels, n_embeddings))
        self.register_buffer("ema_weight", embedding.clone())
        self.register_buffer("unactivated_count", torch.full((levels, n_embeddings), -1.0))

    @property
    def levels(self) -> int:
        return self.embedding.shape[0]

    def _level_buffers(self, level: int):
        return self.embedding[level], self.ema_count[level], self.ema_weight[level], self.unactivated_count[level]

    def _write_level(self, level: int, **buffers: torch.Tensor) -> None:
        # Stacked buffers are updated slice-wise; gradients never flow into them.
        with torch.no_grad():
            for name, value in buffers.items():
                getattr(self, name)[level] = value
