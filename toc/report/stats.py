"""Seed statistics: mean, sample std, t-based confidence intervals and seed-paired differences.

They describe how scores spread over training runs (head seeds, pretraining runs, splits). They
say nothing about the evaluated sample; the report's intervals come from the bootstrap over
clips and runs (toc.report.resampling) wherever the results carry per-clip outcomes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as _scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class SampleSummary:
    """Mean over seeds with its sample std and two-sided t interval (None where n < 2)."""

    n: int
    mean: float
    std: float | None  # sample std (divides by n − 1)
    ci_low: float | None
    ci_high: float | None
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2.0


@dataclass(frozen=True)
class PairedDifference:
    """Summary of a − b over the seeds both sides have; seeds only one side has are listed."""

    seeds: tuple[int, ...]  # seeds present in both, ascending
    only_a: tuple[int, ...]  # seeds with a result for a but not for b
    only_b: tuple[int, ...]
    summary: SampleSummary | None  # None when no seed is shared

    @property
    def n(self) -> int:
        return len(self.seeds)

    def above_zero(self) -> bool:
        """True when the whole interval lies strictly above 0 (undefined intervals never do)."""
        return self.summary is not None and self.summary.ci_low is not None and self.summary.ci_low > 0.0

    def below_zero(self) -> bool:
        return self.summary is not None and self.summary.ci_high is not None and self.summary.ci_high < 0.0


def t_critical(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t quantile t_{(1+confidence)/2, n−1} for a sample of n values (n ≥ 2)."""
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, n - 1))


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> SampleSummary:
    """mean ± t·s/√n; std and interval are None for a single value; an empty sample is an error."""
    data = [float(v) for v in values]
    n = len(data)
    if n == 0:
        raise ValueError("cannot summarise an empty sample")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("cannot summarise non-finite values")
    # fsum: exactly rounded sums, so the result does not depend on the platform's summation order.
    mean = math.fsum(data) / n
    if n < 2:
        return SampleSummary(n=n, mean=mean, std=None, ci_low=None, ci_high=None, confidence=confidence)
    if all(v == data[0] for v in data):
        # Exactly 0, not the ~1e-15 that rounding of the mean can leave (100·5/45 three times):
        # a zero-width interval must be recognisable as one.
        return SampleSummary(n=n, mean=data[0], std=0.0, ci_low=data[0], ci_high=data[0], confidence=confidence)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1))
    half = t_critical(n, confidence) * std / math.sqrt(n)
    return SampleSummary(n=n, mean=mean, std=std, ci_low=mean - half, ci_high=mean + half, confidence=confidence)


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE
) -> PairedDifference:
    """Differences a[s] − b[s] over the seeds s in both mappings, summarised like `summarize`.

    Pairing by seed removes the between-seed variation the two variants share (the same data
    split and head initialisation), so the interval is the one that answers "is a better than b".
    """
    shared = sorted(set(a) & set(b))
    only_a = tuple(sorted(set(a) - set(b)))
    only_b = tuple(sorted(set(b) - set(a)))
    summary = summarize([a[s] - b[s] for s in shared], confidence) if shared else None
    return PairedDifference(seeds=tuple(shared), only_a=only_a, only_b=only_b, summary=summary)
