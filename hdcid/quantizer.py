"""The shared codebook(s): nearest-code lookup, the MM-EMA update and the dead-code reset, and
the code-sharing options on them (cosine codes, paired / shared-only / rate-limited resets, the
segment-level code-matching term)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hdcid.errors import ModelError, literal
from hdcid.vocabulary import PUBLISHED_SIZES, RESET_SOURCES

COMMITMENT_COST = 0.25
DECAY = 0.99
EPSILON = 1e-5
RESET_AFTER = 300  # batches without use before a code counts as dead
ACTIVE_WITHIN = 100  # batches since last use for a code to count as active
NEVER_RESET = 1 << 62  # a reset patience no run reaches (`--reset-patience off`)
PAIRED = ("audio", "video")  # the modalities whose positions are paired (same clip, same second)


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


def code_logits(
    features: torch.Tensor, codebook: torch.Tensor, temperature: float, cosine: bool, scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft nearest-code logits [N, K] of rows [N, D] over a (detached) codebook [K, D].

    Cosine codes: cos(x, e_k) / τ. Euclidean codes: −‖x − e_k‖² / (τ·s) with s the (detached) mean
    squared norm of the rows, so τ means the same at any feature scale; `scale` gives s instead
    (e.g. rows scored as another batch's).
    """
    codebook = codebook.detach()
    if cosine:
        return F.normalize(features, dim=-1) @ F.normalize(codebook, dim=-1).t() / temperature
    if scale is None:
        scale = features.detach().pow(2).sum(-1).mean().clamp_min(1e-12)
    return -squared_distances(features, codebook).clamp_min(0.0) / (temperature * scale)


def code_log_probs(features: torch.Tensor, codebook: torch.Tensor, temperature: float, cosine: bool) -> torch.Tensor:
    """log p(k | x): a soft nearest-code assignment of rows [N, D] (`code_logits`, softmax over codes)."""
    return F.log_softmax(code_logits(features, codebook, temperature, cosine), dim=-1)


def segment_code_matching(
    features: dict[str, torch.Tensor], codebook: torch.Tensor, temperature: float = 0.1, cosine: bool = False,
    usage_weight: float = 0.0, match: bool = True, usage_floor: float | None = None,
) -> torch.Tensor:
    """Symmetric cross-entropy between paired audio and video segments' soft code assignments,
    minus `usage_weight` × the entropy of the batch's mean assignment.

    For every (clip, second) position: ½·[H(p_v, p_a) + H(p_a, p_v)] with H(p, q) = −Σ_k p_k log q_k,
    averaged over positions (after Liu et al., ACL 2022, at segment level and without negatives:
    other clips of the same class *should* share codes). It is minimal when both modalities put all
    their mass on one and the same code — also when every position uses the *same* code, so on its
    own it can collapse the codebook. The usage term counters that: with `usage_weight` 1 the total
    is −I(x; code) + ½·[KL(p_v ‖ p_a) + KL(p_a ‖ p_v)] (since H(p, q) = H(p) + KL(p ‖ q)): codes as
    informative about their input as possible, subject to both modalities choosing the same one.
    Gradients reach the features, not the EMA codebook. Without both audio and video: zero.
    `match` False: the usage term alone, per modality, −½·[H(mean p_a) + H(mean p_v)] (what H-DCID's
    level 2 gets, see hdcid/training/step.py).
    `usage_floor` (a number of codes F, with matching): the usage term becomes a floor on the
    batch's code information, `usage_weight` × max(0, log F − I) with I = H(mean p) − mean H(p)
    (exp I: how many codes the positions are told apart by): no push while about F codes are in
    confident use, so matching may then sharpen each pair onto one shared code. A floor on
    H(mean p) alone is met by soft assignments that spread every position thinly (measured: it
    left fewer hard codes in use than the plain term).
    """
    if not all(m in features for m in PAIRED):
        return codebook.new_zeros(())
    width = codebook.shape[1]
    log_a = code_log_probs(features["audio"].reshape(-1, width), codebook, temperature, cosine)
    log_v = code_log_probs(features["video"].reshape(-1, width), codebook, temperature, cosine)
    p_a, p_v = log_a.exp(), log_v.exp()
    loss = 0.5 * (-(p_v * log_a).sum(-1) - (p_a * log_v).sum(-1)).mean() if match else codebook.new_zeros(())
    if usage_weight > 0 and match:
        mean = 0.5 * (p_a.mean(0) + p_v.mean(0))
        negative_entropy = (mean * torch.log(mean.clamp_min(1e-12))).sum()
        if usage_floor is None:
            loss = loss + usage_weight * negative_entropy
        else:
            own_entropy = -0.5 * ((p_a * log_a).sum(-1).mean() + (p_v * log_v).sum(-1).mean())
            information = -negative_entropy - own_entropy
            loss = loss + usage_weight * torch.relu(math.log(usage_floor) - information)
    elif usage_weight > 0:
        # Without matching each modality spreads its own codes: a pooled entropy would let one
        # modality's spread hide the other's collapse.
        for p in (p_a, p_v):
            mean = p.mean(0)
            loss = loss + 0.5 * usage_weight * (mean * torch.log(mean.clamp_min(1e-12))).sum()
    return loss


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
        self.set_sharing_policy()

    def set_reset_policy(self, reset_after: int, active_within: int, *, updates_ema: bool = False) -> None:
        """When the dead-code reset fires: a code unused for more than `reset_after` batches is
        dead, and is reset to a code used within the last `active_within` batches.

        `updates_ema` (a remedy, off in the reference): also set a reset code's EMA weight to
        codeword · count, so the next EMA step keeps the reset instead of undoing it.
        """
        self.reset_after = int(reset_after)
        self.active_within = int(active_within)
        self.reset_updates_ema = bool(updates_ema)

    def set_sharing_policy(
        self, *, cosine: bool = False, reset_source: str = "active", reset_shared_only: bool = False,
        reset_limit: int = 0,
    ) -> None:
        """The code-sharing options (all off in the reference).

        `cosine`: codebook rows kept at unit length and pulled by unit-length features, so the
        nearest code is the most cosine-similar one (the lookup itself is unchanged: with unit
        rows, Euclidean nearest = largest cosine). `reset_source` "paired": a dead code restarts
        at the mean of the audio–video pair (same clip and second) the codebook serves worst, so a
        revived code serves both modalities; "active" (reference): a copy of a random active code
        plus noise. `reset_shared_only`: a code stays alive only while audio and video both use it
        (in one batch, within the patience): a code one modality keeps to itself counts as dead.
        `reset_limit`: at most this many dead codes are revived per call (0: all, as the
        reference); the longest-unused go first, the others stay parked until their turn.
        """
        if reset_source not in RESET_SOURCES:
            raise ModelError(
                f"{{}} must be one of {', '.join(RESET_SOURCES)}, got {literal(repr(reset_source))}",
                settings=("reset_source",),
            )
        self.cosine = bool(cosine)
        self.reset_source = reset_source
        self.reset_shared_only = bool(reset_shared_only)
        self.reset_limit = int(reset_limit)

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
        if self.cosine:
            flat = {m: F.normalize(x, dim=-1) for m, x in flat.items()}
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
        if self.cosine:
            embedding = F.normalize(embedding, dim=-1)
        self._write_level(level, embedding=embedding, ema_count=ema_count, ema_weight=ema_weight)

    def _paired_seeds(self, embedding: torch.Tensor, flat: dict[str, torch.Tensor], n: int) -> torch.Tensor | None:
        """`n` new codewords: the audio–video pair means (same clip and second) farthest from their
        nearest code (ties to the lower position), cycling if there are fewer pairs. None when the
        batch has no such pairs (then the reference policy applies)."""
        if not all(m in flat for m in PAIRED) or flat["audio"].shape != flat["video"].shape:
            return None
        a, v = flat["audio"], flat["video"]
        if self.cosine:
            a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
        means = 0.5 * (a + v)
        if self.cosine:
            means = F.normalize(means, dim=-1)
        error = squared_distances(means, embedding).min(-1).values
        order = torch.sort(error.double(), descending=True, stable=True).indices
        picks = order[torch.arange(n, device=order.device) % len(order)]
        return means[picks]

    def _reset_dead_codes(self, level: int, used: torch.Tensor, flat: dict[str, torch.Tensor] | None = None) -> int:
        embedding, ema_count, ema_weight, unactivated = self._level_buffers(level)
        unactivated = unactivated + 1
        unactivated[used] = 0
        dead_mask = unactivated > self.reset_after
        active_mask = (~dead_mask) & (unactivated >= 0) & (unactivated < self.active_within)
        if self.reset_limit and int(dead_mask.sum()) > self.reset_limit:
            # Longest-unused first (stable: ties to the lower index); the rest wait, still dead.
            waiting = torch.where(dead_mask, unactivated, torch.full_like(unactivated, -1.0))
            order = torch.sort(waiting.double(), descending=True, stable=True).indices[: self.reset_limit]
            dead_mask = torch.zeros_like(dead_mask)
            dead_mask[order] = True
        unactivated = torch.where(dead_mask, torch.zeros_like(unactivated), unactivated)
        dead = torch.nonzero(dead_mask).flatten().tolist()
        active = torch.nonzero(active_mask).flatten().tolist()
        embedding = embedding.clone()
        seeds = None
        if dead and active and self.reset_source == "paired" and flat is not None:
            seeds = self._paired_seeds(embedding, flat, len(dead))
        if dead and active:
            if seeds is not None:
                embedding[dead] = seeds.to(embedding.dtype)
            else:
                snapshot = embedding[active].clone()
                width = embedding.shape[1] if self.reset_noise_width is None else self.reset_noise_width
                # Distributed: every process sees the same dead and active codes; rank 0 draws the
                # replacements and sends its codebook.
                main = self.collective is None or self.collective.is_main
                for index in dead if main else ():
                    source = self.python_random.randint(0, len(active) - 1)
                    noise = torch.empty(width, dtype=embedding.dtype).uniform_(*self.reset_noise_bounds)
                    embedding[index] = snapshot[source] + noise.to(embedding.device)[: embedding.shape[1]]
                if self.cosine:
                    embedding[dead] = F.normalize(embedding[dead], dim=-1)
            if self.collective is not None:
                # Paired seeds come from each process's own shard: rank 0's codebook is the one kept.
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
        if self.reset_shared_only and all(m in indices for m in PAIRED):
            # Distributed: a code counts as shared when some process saw both modalities use it.
            shared = np.intersect1d(indices["audio"].cpu().numpy(), indices["video"].cpu().numpy())
            used = torch.from_numpy(shared).to(embedding.device)
        else:
            used = torch.unique(torch.cat(list(indices.values())))
        if self.collective is not None:
            used = self.collective.used_codes(used, n_codes)
        self._reset_dead_codes(level, used, flat)
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

    def __init__(self, n_embeddings: int = PUBLISHED_SIZES["n_embeddings"], embedding_dim: int = PUBLISHED_SIZES["embedding_dim"], modalities=("audio", "video", "text"), **kwargs):
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

    def __init__(self, n_embeddings: int = PUBLISHED_SIZES["n_embeddings"], embedding_dim: int = PUBLISHED_SIZES["embedding_dim"], levels: int = 2, modalities=("audio", "video", "text"), **kwargs):
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
