"""Codebook-health and cross-modal alignment diagnostics (code usage, agreement, modality gap, probe)."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch

LOW_USAGE_FRACTION = 0.10  # warn when fewer than this fraction of the codes are in use
LOW_AGREEMENT = 0.01  # warn when cross-modal agreement at the same time step stays below this


@dataclass
class LevelDiagnostics:
    """Diagnostics of one codebook level over a set of clips."""

    level: int  # 0-based (level 1 = index 0)
    n_codes: int
    codes_used: dict[str, int]  # per modality
    codes_used_common: int  # used by every modality
    codes_used_any: int
    perplexity: dict[str, float]  # exp(entropy) of each modality's code usage
    perplexity_all: float  # pooled over modalities
    agreement: dict[str, float]  # pair "audio-video" → fraction of (clip, t) with the same code
    agreement_mean: float
    centroid_gap: dict[str, float]  # pair → ‖μ_x − μ_y‖ / mean RMS norm of x and y features
    probe_accuracy: dict[str, float] = field(default_factory=dict)  # modality → held-out accuracy
    probe_chance: float | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def usage_perplexity(indices: torch.Tensor, n_codes: int) -> float:
    """exp(entropy) of the empirical code distribution: 1 = one code, n_codes = uniform use."""
    counts = torch.bincount(indices.flatten().long(), minlength=n_codes).double()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs + 1e-12)).sum()
    return float(torch.exp(entropy))


def code_agreement(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of aligned positions (same clip, same time step) where two modalities chose one code."""
    return float((x.flatten() == y.flatten()).double().mean())


def centroid_gap(x: torch.Tensor, y: torch.Tensor) -> float:
    """Distance between the two feature centroids relative to the features' RMS norm.

    ≈0: the modalities occupy the same region; ≥1: their centroids are further apart than a
    typical feature is long, so a shared codebook cannot serve both.
    """
    x = x.reshape(-1, x.shape[-1]).double()
    y = y.reshape(-1, y.shape[-1]).double()
    scale = 0.5 * (x.pow(2).sum(-1).mean().sqrt() + y.pow(2).sum(-1).mean().sqrt())
    return float((x.mean(0) - y.mean(0)).norm() / scale.clamp_min(1e-12))


def linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    held_out: float = 0.3,
    ridge: float = 1e-2,
    seed: int = 0,
) -> float | None:
    """Held-out accuracy of a closed-form ridge one-vs-rest classifier on clip features [N, D].

    Returns None when there are too few clips or classes to split.
    """
    labels = labels.long().flatten()
    n = features.shape[0]
    classes = torch.unique(labels)
    if n < 4 or len(classes) < 2:
        return None
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    n_test = max(1, int(round(n * held_out)))
    test, train = order[:n_test], order[n_test:]
    x = features.double()
    mean, std = x[train].mean(0), x[train].std(0, unbiased=False).clamp_min(1e-8)
    x = (x - mean) / std
    x = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    targets = (labels[train].unsqueeze(1) == classes.unsqueeze(0)).double()
    gram = x[train].t() @ x[train] + ridge * len(train) * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(gram, x[train].t() @ targets)
    predicted = classes[torch.argmax(x[test] @ weights, dim=1)]
    return float((predicted == labels[test]).double().mean())


def level_diagnostics(
    level: int,
    n_codes: int,
    indices: dict[str, torch.Tensor],
    semantic: dict[str, torch.Tensor],
    labels: torch.Tensor | None = None,
) -> LevelDiagnostics:
    """Diagnostics from per-modality code indices [N_clips, T] and semantic features [N_clips, T, D]."""
    names = list(indices)
    used_sets = {m: set(torch.unique(indices[m]).tolist()) for m in names}
    common = set.intersection(*used_sets.values()) if used_sets else set()
    union = set.union(*used_sets.values()) if used_sets else set()
    pairs = list(itertools.combinations(names, 2))
    agreement = {f"{x}-{y}": code_agreement(indices[x], indices[y]) for x, y in pairs}
    gaps = {f"{x}-{y}": centroid_gap(semantic[x], semantic[y]) for x, y in pairs if x in semantic and y in semantic}
    result = LevelDiagnostics(
        level=level,
        n_codes=n_codes,
        codes_used={m: len(s) for m, s in used_sets.items()},
        codes_used_common=len(common),
        codes_used_any=len(union),
        perplexity={m: usage_perplexity(indices[m], n_codes) for m in names},
        perplexity_all=usage_perplexity(torch.cat([indices[m].flatten() for m in names]), n_codes),
        agreement=agreement,
        agreement_mean=sum(agreement.values()) / len(agreement) if agreement else math.nan,
        centroid_gap=gaps,
    )
    if labels is not None:
        for name, x in semantic.items():
            accuracy = linear_probe(x.mean(dim=1), labels)
            if accuracy is not None:
                result.probe_accuracy[name] = accuracy
        counts = torch.bincount(labels.long().flatten())
        result.probe_chance = float(counts.max() / counts.sum())
    result.warnings = health_warnings(result)
    return result


def health_warnings(d: LevelDiagnostics) -> list[str]:
    """The conditions under which the published recipe is known to fail silently."""
    out = []
    for name, used in d.codes_used.items():
        if used < LOW_USAGE_FRACTION * d.n_codes:
            out.append(
                f"level {d.level + 1}: {name} uses {used}/{d.n_codes} codes (<{LOW_USAGE_FRACTION:.0%}): "
                "codebook collapse"
            )
    if d.agreement and d.agreement_mean < LOW_AGREEMENT:
        out.append(
            f"level {d.level + 1}: cross-modal code agreement {d.agreement_mean:.1%} is near zero: "
            "modalities do not share codes"
        )
    return out


def format_summary(levels: list[LevelDiagnostics]) -> str:
    """One line per run epoch: usage, perplexity, agreement, gap, probe for every level."""
    parts = []
    for d in levels:
        used = "/".join(f"{m[0]}{n}" for m, n in d.codes_used.items())
        text = (
            f"L{d.level + 1} codes {used} common {d.codes_used_common}/{d.n_codes} "
            f"ppl {d.perplexity_all:.1f} agree {d.agreement_mean:.1%}"
        )
        if d.centroid_gap:
            text += f" gap {sum(d.centroid_gap.values()) / len(d.centroid_gap):.2f}"
        if d.probe_accuracy:
            probe = "/".join(f"{m[0]}{v:.0%}" for m, v in d.probe_accuracy.items())
            text += f" probe {probe}"
        parts.append(text)
    return " | ".join(parts)
