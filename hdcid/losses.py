"""Pretraining losses: Cross-CPC over three modalities (and its clip-level stand-in for clips too
short for it), the CLUB MI upper bound, InfoNCE alignment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdcid.vocabulary import MODALITIES

# Ordered (true-future modality, predicting modality) pairs of the reference loss; the
# same-modality pairs are weighted 0.1.
CROSS_PAIRS = (
    ("audio", "video"), ("audio", "text"), ("video", "text"),
    ("video", "audio"), ("text", "audio"), ("text", "video"),
)
SELF_WEIGHT = 0.1
# The clip-level stand-in's InfoNCE temperature (the info-nce-pytorch default the authors point to).
CLIP_NCE_TEMPERATURE = 0.1


@dataclass
class CpcOutput:
    """Cross-CPC loss and its (logging-only) accuracies, keyed 'av', 'at', ... as the reference."""

    nce: torch.Tensor
    accuracy: dict[str, float]


class CrossCPC(nn.Module):
    """`Cross_CPC_AVT`: per-modality LSTM context, linear future prediction, cross-modal InfoNCE.

    Attribute names and registration order give the reference `CPC_parameters` keys.
    """

    def __init__(
        self,
        embedding_dim: int = 256,
        hidden_dim: int = 256,
        context_dim: int = 256,
        num_layers: int = 2,
        n_prediction_steps: int = 1,
        min_start_steps: int = 1,
        *,
        modalities: tuple[str, ...] = MODALITIES,
    ):
        super().__init__()
        self.n_prediction_steps = n_prediction_steps
        self.min_start_steps = min_start_steps
        # FCID's `Cross_CPC` is this module over video and audio only (no text LSTM).
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        registration = [m for m in ("video", "audio", "text") if m in modalities]  # the reference's order
        for name in registration:
            setattr(self, f"{name}_ar_lstm", nn.LSTM(embedding_dim, context_dim, num_layers, batch_first=True))
        steps = range(n_prediction_steps)
        for name in registration:
            setattr(self, f"{name}_predictors", nn.ModuleList(nn.Linear(context_dim, embedding_dim) for _ in steps))

    @property
    def min_steps(self) -> int:
        """Time steps a clip needs: a context of `min_start_steps` + 1, then the predicted steps."""
        return self.min_start_steps + self.n_prediction_steps + 1

    def draw_start(self, steps: int) -> int:
        """The time index a call predicts from: one per call, shared by the batch (reference),
        from the global torch RNG."""
        return int(torch.randint(steps - self.n_prediction_steps - self.min_start_steps, size=(1,))) + self.min_start_steps

    def forward(
        self, audio: torch.Tensor, video: torch.Tensor, text: torch.Tensor | None = None, *, start: int | None = None,
    ) -> CpcOutput:
        """Semantic features [B, T, D] per modality (continuous, not quantized); T >= min_steps.
        Without text (None) only the audio-video pairs enter (a module built without text
        ignores text). `start`: the time index, if already drawn (else `draw_start`)."""
        given = {"audio": audio, "video": video, "text": text}
        features = {m: given[m] for m in self.modalities if given[m] is not None}
        missing = [m for m in ("audio", "video") if m not in features]
        if missing:
            raise ValueError(f"this CPC module needs {', '.join(missing)} features")
        batch, steps = audio.shape[:2]
        k_steps = self.n_prediction_steps
        t = self.draw_start(steps) if start is None else start
        predictions: dict[str, list[torch.Tensor]] = {}
        for name, x in features.items():
            lstm: nn.LSTM = getattr(self, f"{name}_ar_lstm")
            zeros = x.new_zeros(lstm.num_layers, batch, lstm.hidden_size)
            context = lstm(x[:, : t + 1], (zeros, zeros.clone()))[0][:, t]
            predictors = getattr(self, f"{name}_predictors")
            predictions[name] = [predictors[k](context) for k in range(k_steps)]
        total = audio.new_zeros(())
        accuracy: dict[str, float] = {}
        diagonal = torch.arange(batch, device=audio.device)
        pairs = [(x, y, 1.0) for x, y in CROSS_PAIRS if x in features and y in features]
        pairs += [(m, m, SELF_WEIGHT) for m in self.modalities if m in features]
        for k in range(k_steps):
            for x, y, weight in pairs:
                target = features[x][:, t + k + 1]
                logits = target @ predictions[y][k].t()
                total = total + weight * torch.diagonal(F.log_softmax(logits, dim=1)).sum()
                if k == k_steps - 1:
                    # Reference accuracy: argmax over rows of the row-softmax, per column.
                    hits = torch.argmax(F.softmax(logits.detach(), dim=1), dim=0) == diagonal
                    accuracy[x[0] + y[0]] = float(hits.double().mean())
        return CpcOutput(-total / (batch * k_steps), accuracy)


class CLUBSampleGroup(nn.Module):
    """`CLUBSample_group`: a variational q(y|x) whose sampled bound upper-bounds I(x; y).

    Trained by maximising `loglikeli` (own optimizer, detached inputs); `mi_est` is minimised by
    the main model so the codeword x carries little of the specific feature y.
    """

    def __init__(self, x_dim: int = 256, y_dim: int = 256, hidden_size: int = 256):
        super().__init__()
        half = hidden_size // 2

        def mlp() -> list[nn.Module]:
            return [
                nn.Linear(x_dim, half), nn.ReLU(),
                nn.Linear(half, half), nn.ReLU(),
                nn.Linear(half, half), nn.ReLU(),
                nn.Linear(half, y_dim),
            ]

        self.p_mu = nn.Sequential(*mlp())
        self.p_logvar = nn.Sequential(*mlp(), nn.Tanh())

    def get_mu_logvar(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.p_mu(x), self.p_logvar(x)

    def loglikeli(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over (b, t) of Σ_j [−(μ−y)²/σ² − log σ²] / 2; x [B,T,Dx], y [B,T,Dy]."""
        mu, logvar = self.get_mu_logvar(x)
        return ((-((mu - y) ** 2) / logvar.exp() - logvar).sum(dim=-1) / 2.0).mean()

    def mi_est(self, x: torch.Tensor, y: torch.Tensor, permutation: torch.Tensor | None = None) -> torch.Tensor:
        """Sampled CLUB bound with one batch permutation (drawn here unless given); T-means taken
        before dividing (reference)."""
        mu, logvar = self.get_mu_logvar(x)
        if permutation is None:
            permutation = torch.randperm(x.shape[0], device=x.device)
        positive = -((mu - y) ** 2).mean(dim=1)
        negative = -((mu - y[permutation]) ** 2).mean(dim=1)
        variance = logvar.mean(dim=1).exp()
        return ((positive - negative) / variance).sum(dim=-1).mean() / 2.0

    def learning_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.loglikeli(x, y)


def info_nce(
    x: torch.Tensor,
    y: torch.Tensor,
    temperature: float = 0.1,
    positives: torch.Tensor | None = None,
    distance: str = "cosine",
) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of x [N, D] and y [N, D].

    `distance` "cosine": logits = cos / temperature. "euclidean": logits = −‖x − y‖² / (2·τ·s²)
    with s² the (detached) mean squared norm of the rows — the same as cosine for unit vectors,
    but it also pulls paired rows to the same *point*, which is what a nearest-code quantizer
    needs for two modalities to pick one code. `positives` [N, N] (bool) marks extra pairs that
    must not count as negatives (e.g. clips of one category sharing the same text); by default
    only the diagonal is positive.
    """
    if distance == "euclidean":
        scale = 0.5 * (x.pow(2).sum(-1).mean() + y.pow(2).sum(-1).mean()).detach().clamp_min(1e-12)
        logits = -torch.cdist(x, y).pow(2) / (2 * temperature * scale)
    else:
        logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).t() / temperature
    if positives is None:
        target = torch.arange(x.shape[0], device=x.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    # Other positives are removed from the denominator; the diagonal stays the target.
    masked = logits.masked_fill(positives & ~eye, float("-inf"))
    target = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(masked, target) + F.cross_entropy(masked.t(), target))


def clip_contrastive(
    semantic: dict[str, torch.Tensor], temperature: float = CLIP_NCE_TEMPERATURE,
    same_text: torch.Tensor | None = None,
) -> CpcOutput:
    """The clip-level stand-in for Cross-CPC when clips are too short to predict a future step
    (e.g. T = 1: features without a time axis): symmetric InfoNCE (cosine, `temperature`)
    between the clip-level (mean over T) semantic features of every modality pair — the
    authors' advice for data without a time axis. Clips with identical text (`same_text`) are
    not each other's negatives in the pairs with text. `accuracy` per pair ('av', 'at', 'vt'):
    how often a clip's partner is its nearest match, both ways (logging only).
    """
    names = [m for m in MODALITIES if m in semantic]
    clips = {m: semantic[m].mean(dim=1) for m in names}
    terms, accuracy = [], {}
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            positives = same_text if "text" in (x, y) else None
            terms.append(info_nce(clips[x], clips[y], temperature, positives))
            with torch.no_grad():
                similarity = F.normalize(clips[x], dim=-1) @ F.normalize(clips[y], dim=-1).t()
                target = torch.arange(similarity.shape[0], device=similarity.device)
                hits = (similarity.argmax(dim=1) == target).double().mean() + (similarity.argmax(dim=0) == target).double().mean()
            accuracy[x[0] + y[0]] = float(hits / 2)
    if not terms:
        return CpcOutput(next(iter(semantic.values())).new_zeros(()), accuracy)
    return CpcOutput(torch.stack(terms).mean(), accuracy)


def identical_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: which batch items have exactly the same input (e.g. one category's text)."""
    flat = x.reshape(x.shape[0], -1)
    return (flat.unsqueeze(1) == flat.unsqueeze(0)).all(dim=-1)


def alignment_loss(
    semantic: dict[str, torch.Tensor],
    temperature: float = 0.1,
    same_text: torch.Tensor | None = None,
    distance: str = "cosine",
) -> torch.Tensor:
    """InfoNCE alignment between modalities' semantic features [B, T, D] (`distance`: see info_nce).

    Audio–video: segment level (each second against every other second of the batch), since the
    seconds are paired. Pairs with text: clip level (mean over T), because text slots are words,
    not seconds; clips with identical text (`same_text` [B, B], from the raw text input) are not
    used as each other's negatives.
    """
    terms = []
    if "audio" in semantic and "video" in semantic:
        a = semantic["audio"].reshape(-1, semantic["audio"].shape[-1])
        v = semantic["video"].reshape(-1, semantic["video"].shape[-1])
        terms.append(info_nce(a, v, temperature, distance=distance))
    if "text" in semantic:
        text = semantic["text"]
        for other in ("audio", "video"):
            if other in semantic:
                terms.append(info_nce(semantic[other].mean(dim=1), text.mean(dim=1), temperature, same_text, distance))
    if not terms:
        return next(iter(semantic.values())).new_zeros(())
    return torch.stack(terms).mean()


def modality_gap_loss(semantic: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared distance between the batch centroids of every modality pair's semantic features
    [B, T, D], relative to their mean squared norm (detached): the diagnostics' centroid gap, squared.

    InfoNCE is nearly blind to a constant offset between two modalities (it cancels in the
    softmax), yet a nearest-code quantizer sends offset modalities to disjoint codes.
    """
    names = [m for m in ("audio", "video", "text") if m in semantic]
    flat = {m: semantic[m].reshape(-1, semantic[m].shape[-1]) for m in names}
    terms = []
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            scale = 0.5 * (flat[x].pow(2).sum(-1).mean() + flat[y].pow(2).sum(-1).mean()).detach().clamp_min(1e-12)
            terms.append((flat[x].mean(0) - flat[y].mean(0)).pow(2).sum() / scale)
    if not terms:
        return next(iter(semantic.values())).new_zeros(())
    return torch.stack(terms).mean()
