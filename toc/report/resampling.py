"""Uncertainty that includes the data: paired bootstrap over evaluation units, exact McNemar,
Wilson intervals, and the rule that calls a winner only when the data separate it.

Every metric value and interval here is in % (0-100), like the rest of the toolkit.

The seed statistics of `toc.report.stats` measure how much a score moves when the head is initialised
differently. They say nothing about the evaluation sample: 45 test clips are a sample, and a
training-free head gives the same score for every seed, so a seed interval has zero width. Here
the *units* (clips or videos) are resampled instead, with the same resampled units for every
variant (paired), and where the head is random the training runs are resampled too.

Metrics are given as additive per-unit *parts* (`UnitMetric`): accuracy is the mean of one 0/1
part per clip; micro-F1 is 2·Σtp / (Σn_pred + Σn_label) over per-unit counts, so a resample
recomputes the metric from resampled sums instead of averaging per-unit F1 values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy import stats as _scipy_stats

from toc.errors import ConfigError, DataError
from toc.vocabulary import DEFAULT_RESAMPLES

CONFIDENCE = 0.95
LEVEL = 0.05  # two-sided level of the paired tests behind a "clear" verdict
# Resamples per block: the [block, units] count matrix stays small (a few MB for 4000 units).
# The draws depend on this constant (the run and cluster draws interleave per block), so it is
# fixed: the same parts and seed give the same replicates; another value gives other draws from
# the same distribution.
_BLOCK_CELLS = 1_000_000
# Two replicates closer than this (relative to the metric's scale) are equal: the same sums
# reach different columns of a matrix product and can round apart by ~1e-14, and a difference of
# two equal variants must be exactly 0 to count as a tie on both sides of 0.
_EQUAL_RELATIVE = 1e-9

SPLIT_VALIDATION = "validation"
SPLIT_EVALUATION = "evaluation"
VERDICT_CLEAR = "clear"
VERDICT_NONE = "no clear winner"
VERDICT_SINGLE = "single variant"
TEST_MCNEMAR = "exact McNemar"
TEST_BOOTSTRAP = "paired bootstrap"
CORRECTIONS = ("holm", "none")


# ---------------------------------------------------------------------------- metrics as parts


@dataclass(frozen=True)
class UnitMetric:
    """How a metric is computed from the sums of its per-unit parts (all results in %).

    kind:
      * "mean": one part per unit; 100 · Σx / n_units (accuracy when x is 0/1 correctness).
      * "ratio_mean": 2m parts (numerator_1, denominator_1, ..., numerator_m, denominator_m);
        100 · mean_j(Σnum_j / Σden_j). m = 1 is a ratio of sums (e.g. a mean over the videos that
        count); m = 3 averages three such ratios (Type@AV). A zero denominator gives NaN.
      * "f1" / "precision" / "recall": parts (tp, n_pred, n_label); micro F1 = 2Σtp/(Σn_pred +
        Σn_label), P = Σtp/Σn_pred, R = Σtp/Σn_label; 0 where the denominator is 0 (the
        convention of `toc.eval.metrics.segment_scores`).
    binary: the parts are 0/1 correctness (McNemar and the Wilson interval apply).
    """

    name: str
    kind: str
    n_parts: int
    binary: bool = False

    def __post_init__(self):
        expected = {"mean": 1, "f1": 3, "precision": 3, "recall": 3}
        if self.kind == "ratio_mean":
            if self.n_parts < 2 or self.n_parts % 2:
                raise ConfigError(f"metric {self.name}: ratio_mean needs an even number of parts")
        elif expected.get(self.kind) != self.n_parts:
            raise ConfigError(f"metric {self.name}: kind {self.kind!r} with {self.n_parts} parts")
        if self.binary and self.kind != "mean":
            raise ConfigError(f"metric {self.name}: only a mean can be binary")

    def from_sums(self, sums: np.ndarray, n_units: int) -> np.ndarray:
        """The metric from part sums `[..., n_parts]` over `n_units` units (resampled or not)."""
        sums = np.asarray(sums, dtype=np.float64)
        if self.kind == "mean":
            return 100.0 * sums[..., 0] / n_units
        if self.kind == "ratio_mean":
            num, den = sums[..., 0::2], sums[..., 1::2]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
            return 100.0 * ratio.mean(axis=-1)
        tp, n_pred, n_label = sums[..., 0], sums[..., 1], sums[..., 2]
        if self.kind == "f1":
            num, den = 2.0 * tp, n_pred + n_label
        elif self.kind == "precision":
            num, den = tp, n_pred
        else:
            num, den = tp, n_label
        return 100.0 * np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


ACCURACY = UnitMetric("accuracy", "mean", 1, binary=True)
MEAN = UnitMetric("mean", "mean", 1)
RATIO = UnitMetric("ratio", "ratio_mean", 2)
# Type@AV: the mean of the audio, visual and audio-visual ratios (toc.eval.llp_metrics parts).
TYPE_AT_AV = UnitMetric("Type@AV", "ratio_mean", 6)
MICRO_F1 = UnitMetric("f1", "f1", 3)
MICRO_PRECISION = UnitMetric("precision", "precision", 3)
MICRO_RECALL = UnitMetric("recall", "recall", 3)


@dataclass(frozen=True)
class UnitParts:
    """Per-unit metric parts of several variants on the same units, for one or more runs.

    parts[v, r, u, k]: part k of unit u for variant v in training run r. Runs are what changes
    the head (head seeds, and pretraining runs × head seeds); every variant has the same run
    labels, and run r of every variant is scored on the same units (one evaluation split).

    clusters: per run, the pretraining run it belongs to (None: every run is its own). Runs of
    one cluster share a pretrained checkpoint and differ only in the head seed, so they are not
    independent draws of the training side; the bootstrap resamples clusters first and runs
    within them second, and the point estimate weighs every cluster equally.
    """

    variants: tuple[str, ...]
    runs: tuple[int, ...]
    parts: np.ndarray  # [V, R, U, K] float64
    metric: UnitMetric
    unit: str = "clip"  # what a unit is, for the text ("clip" or "video")
    clusters: tuple[int, ...] | None = None

    def __post_init__(self):
        # A private copy: the caller's array may change.
        parts = np.array(self.parts, dtype=np.float64)
        if parts.ndim != 4:
            raise DataError(
                "unit parts must be a [variants, runs, units, parts] array",
                expected="4 dimensions",
                actual=parts.ndim,
            )
        v, r, u, k = parts.shape
        if len(self.variants) != v or len(set(self.variants)) != v or v == 0:
            raise DataError(
                "one distinct variant name per row of parts", expected=v, actual=list(self.variants)
            )
        if len(self.runs) != r or len(set(self.runs)) != r or r == 0:
            raise DataError(
                "one distinct run label per run of parts", expected=r, actual=list(self.runs)
            )
        if self.clusters is not None and len(self.clusters) != r:
            raise DataError(
                "one cluster label per run", expected=r, actual=list(self.clusters)
            )
        if u == 0:
            raise DataError("no evaluation units", key="units", expected="at least 1", actual=0)
        if k != self.metric.n_parts:
            raise DataError(
                f"metric {self.metric.name} needs {self.metric.n_parts} parts per unit",
                expected=self.metric.n_parts,
                actual=k,
            )
        if not np.isfinite(parts).all():
            raise DataError("unit parts contain NaN or infinity")
        if self.metric.binary and not np.isin(parts, (0.0, 1.0)).all():
            raise DataError(f"metric {self.metric.name} needs 0/1 parts (correctness per unit)")
        parts.setflags(write=False)
        object.__setattr__(self, "parts", parts)
        if self.clusters is not None:
            object.__setattr__(self, "clusters", tuple(int(c) for c in self.clusters))

    @classmethod
    def from_runs(
        cls,
        by_variant: Mapping[str, Mapping[int, np.ndarray]],
        metric: UnitMetric,
        unit: str = "clip",
        clusters: Mapping[int, int] | None = None,
    ) -> UnitParts:
        """`{variant: {run: [U] or [U, K] parts}}`; every variant must have the same runs.

        `clusters` maps each run to its pretraining run (see the class text)."""
        if not by_variant:
            raise DataError("no variants given")
        variants = tuple(by_variant)
        runs = tuple(sorted(by_variant[variants[0]]))
        for name in variants:
            if tuple(sorted(by_variant[name])) != runs:
                raise DataError(
                    f"variant {name} has other runs than {variants[0]}",
                    key=name,
                    expected=list(runs),
                    actual=sorted(by_variant[name]),
                )
        arrays = []
        for name in variants:
            per_run = []
            for run in runs:
                a = np.asarray(by_variant[name][run], dtype=np.float64)
                per_run.append(a[:, None] if a.ndim == 1 else a)
            shapes = {a.shape for a in per_run}
            if len(shapes) != 1:
                raise DataError(
                    f"variant {name}: runs have different unit counts",
                    key=name,
                    actual=sorted(shapes),
                )
            arrays.append(np.stack(per_run))
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise DataError("variants are not scored on the same units", actual=sorted(shapes))
        labels = None
        if clusters is not None:
            missing = [run for run in runs if run not in clusters]
            if missing:
                raise DataError("runs without a cluster label", expected=list(runs), actual=missing)
            labels = tuple(int(clusters[run]) for run in runs)
        return cls(
            variants=variants, runs=runs, parts=np.stack(arrays), metric=metric, unit=unit,
            clusters=labels,
        )

    @property
    def n_units(self) -> int:
        return int(self.parts.shape[2])

    @property
    def n_clusters(self) -> int:
        """Independent training runs: pretraining runs when clusters are given, else runs."""
        return len(set(self.clusters)) if self.clusters is not None else len(self.runs)

    def index(self, variant: str) -> int:
        try:
            return self.variants.index(variant)
        except ValueError:
            raise ConfigError(
                f"unknown variant {variant!r} (have {', '.join(self.variants)})"
            ) from None

    def distinct_runs(self, variant: str) -> int:
        """How many runs of `variant` differ in any unit: 1 for a deterministic head (n_eff)."""
        rows = self.parts[self.index(variant)]
        return len({np.ascontiguousarray(row).tobytes() for row in rows})

    def run_weights(self) -> np.ndarray:
        """[R] weights of the point estimate: every cluster alike, shared by its runs."""
        labels = self.clusters if self.clusters is not None else tuple(range(len(self.runs)))
        sizes: dict[int, int] = {}
        for label in labels:
            sizes[label] = sizes.get(label, 0) + 1
        return np.array([1.0 / (len(sizes) * sizes[label]) for label in labels])

    def run_values(self) -> np.ndarray:
        """[V, R] the metric of every variant and run on all units."""
        return self.metric.from_sums(self.parts.sum(axis=2), self.n_units)

    def observed(self) -> np.ndarray:
        """[V] the metric on all units, averaged over runs (the point estimate)."""
        return self.run_values() @ self.run_weights()


def as_blocks(parts: UnitParts | Sequence[UnitParts]) -> tuple[UnitParts, ...]:
    """One block per evaluation split; the blocks must agree on variants, metric and unit."""
    blocks = (parts,) if isinstance(parts, UnitParts) else tuple(parts)
    if not blocks:
        raise DataError("no evaluation split given")
    first = blocks[0]
    for block in blocks[1:]:
        if block.variants != first.variants:
            raise DataError(
                "evaluation splits list different variants",
                expected=list(first.variants),
                actual=list(block.variants),
            )
        if block.metric != first.metric or block.unit != first.unit:
            raise DataError(
                "evaluation splits use different metrics or units",
                expected=f"{first.metric.name} per {first.unit}",
                actual=f"{block.metric.name} per {block.unit}",
            )
    return blocks


# ---------------------------------------------------------------------------- intervals and tests


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    confidence: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for a proportion successes / n, in %.

    Unlike the normal (Wald) interval it has non-zero width at 0/n and n/n and stays inside
    [0, 100]: 56 of 60 correct (93.3 %) gives about [84.1, 97.4] at 95 %.
    """
    _check_confidence(confidence)
    if n <= 0 or not 0 <= successes <= n:
        raise ConfigError(
            f"a proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}"
        )
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half), confidence)


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of two paired 0/1 correctness vectors."""

    a_only: int  # units a gets right and b gets wrong
    b_only: int  # units b gets right and a gets wrong
    n_units: int
    p_value: (
        float  # two-sided: min(1, 2 · P[Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)])
    )

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemarResult:
    """Exact (binomial) McNemar test: only the units where a and b disagree carry evidence.

    Under "a and b are equally accurate" each discordant unit is a's with probability 1/2. The
    tail sum is computed in integers, so the p-value is exact up to the final division.
    """
    a = np.asarray(a_correct)
    b = np.asarray(b_correct)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(
            "McNemar needs two equal 1-D correctness vectors", expected=a.shape, actual=b.shape
        )
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise DataError("McNemar needs 0/1 correctness values")
    a, b = a.astype(bool), b.astype(bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    if n == 0:
        p = 1.0
    else:
        k = min(a_only, b_only)
        tail = sum(math.comb(n, i) for i in range(k + 1))
        p = min(1.0, 2.0 * tail / 2**n)
    return McNemarResult(a_only=a_only, b_only=b_only, n_units=int(a.size), p_value=p)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given): reject H_i at α iff adj_i <= α.

    Controls the probability of any false rejection among the m hypotheses at α, whatever their
    dependence.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")


# ---------------------------------------------------------------------------- the bootstrap


def expanded_tail(confidence: float, n_units: int) -> float:
    """The tail probability of each end of an expanded percentile interval on n units.

    A percentile interval of a mean over n units is too narrow for small n: it behaves like
    mean ± z·s/√n with the divide-by-n standard deviation. Expanding it to the t interval with
    the n − 1 standard deviation (Hesterberg 2015, "What teachers should know about the
    bootstrap") gives the tail Φ(−√(n/(n−1)) · t_{n−1}((1+confidence)/2)): 2.08 % instead of
    2.5 % at 45 units, 2.40 % at 200. n < 2 cannot be corrected and keeps (1 − confidence)/2.
    """
    _check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    if n_units < 2:
        return tail
    t = float(_scipy_stats.t.ppf(1.0 - tail, n_units - 1))
    return float(NormalDist().cdf(-math.sqrt(n_units / (n_units - 1)) * t))


@dataclass(frozen=True)
class VariantEstimate:
    """One variant's score on all units with its bootstrap interval."""

    variant: str
    estimate: float  # metric on all units, mean over runs (and splits)
    interval: Interval  # expanded percentile interval over the resamples
    n_units: int  # units per split (the smallest split when there are several)
    n_runs: int
    n_eff_runs: int  # distinct runs (1: deterministic head on one fixed split)
    wilson: Interval | None  # 0/1 metrics with one distinct run: Wilson interval of k / n
    notes: tuple[str, ...]
    n_splits: int = 1

    @property
    def zero_width(self) -> bool:
        return self.interval.width == 0.0


@dataclass(frozen=True)
class PairedEstimate:
    """a − b on the same resampled units (and runs)."""

    a: str
    b: str
    difference: float
    interval: Interval
    p_value: float  # two-sided paired bootstrap p-value for "no difference"
    identical: bool  # a and b score every unit of every run alike: no evidence either way
    notes: tuple[str, ...]


@dataclass(frozen=True)
class BootstrapResult:
    """Resampled metric values `replicates[b, v]` and what they say about each variant."""

    blocks: tuple[UnitParts, ...]  # one per evaluation split
    replicates: np.ndarray  # [B, V]
    observed: np.ndarray  # [V]
    n_resamples: int
    seed: int
    confidence: float
    resample_runs: bool  # runs were resampled in some split (a head with >= 2 distinct runs)
    tail: float  # the quantile level of each end of the intervals (expanded_tail)

    @property
    def parts(self) -> UnitParts:
        """The first (for one split: the only) block."""
        return self.blocks[0]

    @property
    def n_units(self) -> int:
        return min(block.n_units for block in self.blocks)

    @property
    def scheme(self) -> str:
        unit = self.parts.unit
        if len(self.blocks) > 1:
            units = f"{self.n_units}-{max(b.n_units for b in self.blocks)} {unit}s per split"
            what = f"the {len(self.blocks)} evaluation splits, then {units}"
        else:
            what = f"the {_count(self.parts.n_units, unit)}"
        if self.resample_runs:
            clustered = any(
                b.clusters is not None and b.n_clusters < len(b.runs) for b in self.blocks
            )
            runs = (
                "the pretraining runs and the head seeds within each"
                if clustered
                else f"the {max(len(b.runs) for b in self.blocks)} training runs"
            )
            what += f" and {runs}"
        return (
            f"paired bootstrap: {self.n_resamples} resamples (seed {self.seed}) of {what} "
            f"(the same draws for every variant)"
        )

    def _interval(self, values: np.ndarray) -> Interval:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return Interval(math.nan, math.nan, self.confidence)
        # Ends are replicate values rounded outwards, not interpolated between them: metrics of
        # a few dozen clips are discrete, and interpolation there loses coverage (measured in
        # benchmarks/results/resampling_coverage.md).
        low = np.quantile(finite, self.tail, method="lower")
        high = np.quantile(finite, 1.0 - self.tail, method="higher")
        return Interval(float(low), float(high), self.confidence)

    def variant(self, name: str) -> VariantEstimate:
        i = self.parts.index(name)
        interval = self._interval(self.replicates[:, i])
        single = len(self.blocks) == 1
        n_eff = self.parts.distinct_runs(name) if single else max(
            b.distinct_runs(name) for b in self.blocks
        )
        unit = self.parts.unit
        notes = []
        wilson = None
        if single and self.parts.metric.binary and n_eff == 1:
            correct = int(self.parts.parts[i, 0, :, 0].sum())
            wilson = wilson_interval(correct, self.parts.n_units, self.confidence)
        if single and n_eff == 1:
            runs = len(self.parts.runs)
            which = (
                f"all {runs} runs give the same outcome on every {unit}"
                if runs > 1
                else "one training run"
            )
            notes.append(
                f"{name}: {which} (n_eff = 1): the interval covers the evaluation sample only, "
                "not training or split variation"
            )
        undefined = int(np.sum(~np.isfinite(self.replicates[:, i])))
        if undefined:
            notes.append(
                f"{name}: {undefined} of {self.n_resamples} resamples had no counted "
                f"{unit} and were left out of the interval"
            )
        if interval.width == 0.0:
            notes.append(
                f"{name}: the interval has zero width because every {unit} has the "
                "same outcome; that is not certainty"
                + (f" (Wilson interval {_span(wilson)})" if wilson is not None else "")
            )
        return VariantEstimate(
            variant=name,
            estimate=float(self.observed[i]),
            interval=interval,
            n_units=self.n_units,
            n_runs=max(len(b.runs) for b in self.blocks),
            n_eff_runs=n_eff,
            wilson=wilson,
            notes=tuple(notes),
            n_splits=len(self.blocks),
        )

    def difference(self, a: str, b: str) -> PairedEstimate:
        i, j = self.parts.index(a), self.parts.index(b)
        deltas = self.replicates[:, i] - self.replicates[:, j]
        scale = max(1.0, float(np.nanmax(np.abs(self.replicates[:, [i, j]]), initial=0.0)))
        deltas = np.where(np.abs(deltas) <= _EQUAL_RELATIVE * scale, 0.0, deltas)
        identical = all(np.array_equal(blk.parts[i], blk.parts[j]) for blk in self.blocks)
        notes = []
        if identical:
            notes.append(f"{a} and {b} score every {self.parts.unit} alike: no evidence either way")
        return PairedEstimate(
            a=a,
            b=b,
            difference=float(self.observed[i] - self.observed[j]),
            interval=self._interval(deltas),
            p_value=bootstrap_p_value(deltas, n_units=self.n_units),
            identical=identical,
            notes=tuple(notes),
        )


def _span(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"[{interval.low:.2f}, {interval.high:.2f}]"


def bootstrap_p_value(deltas: np.ndarray, n_units: int | None = None) -> float:
    """Two-sided p-value for "no difference" from resampled differences: the smallest level at
    which the printed interval of the differences excludes 0, so that p <= level exactly when the
    (1 − level) interval excludes 0.

    The interval's ends are replicate values rounded outwards (`BootstrapResult._interval`): at a
    tail a its lower end excludes 0 exactly when #{Δ* <= 0} <= a·(B − 1), its upper end when
    #{Δ* >= 0} <= a·(B − 1). So the smallest tail that excludes 0 is q = k / (B − 1), with
    k = min(#{Δ* <= 0}, #{Δ* >= 0}); resamples with Δ* exactly 0 count on both sides (a tie is
    no evidence either way). q is floored at 1 / (B + 1), so p is never 0 (B resamples cannot
    show a smaller tail); with B >= 40 the floor stays below the 2.5 % tail and cannot change a
    verdict at level 0.05. Without `n_units`, p = min(1, 2q) (the plain percentile interval).
    With `n_units`, p is the level whose *expanded* tail (`expanded_tail`) is q:
    p = 2 · (1 − T_{n−1}(z_q / √(n/(n−1)))), z_q = −Φ⁻¹(q).
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    deltas = deltas[np.isfinite(deltas)]
    n = deltas.size
    if n < 2:
        return 1.0
    k = min(int(np.sum(deltas <= 0.0)), int(np.sum(deltas >= 0.0)))
    q = max(k / (n - 1), 1.0 / (n + 1))
    if n_units is None or n_units < 2:
        return min(1.0, 2.0 * q)
    if q >= 0.5:
        return 1.0
    z = -NormalDist().inv_cdf(q)
    t = z / math.sqrt(n_units / (n_units - 1))
    return min(1.0, 2.0 * float(_scipy_stats.t.sf(t, n_units - 1)))


def _run_weights(
    block: UnitParts, b: int, stream: np.random.Generator
) -> np.ndarray:
    """[b, R] resampled run weights (each row sums to 1): clusters, then runs within them."""
    r = len(block.runs)
    labels = block.clusters
    if labels is None or len(set(labels)) == r:
        picks = stream.integers(0, r, size=(b, r))
        counts = np.bincount((picks + (np.arange(b) * r)[:, None]).ravel(), minlength=b * r)
        return counts.reshape(b, r).astype(np.float64) / r
    names = sorted(set(labels))
    members = [np.flatnonzero(np.asarray(labels) == c) for c in names]
    sizes = np.array([m.size for m in members])
    table = np.zeros((len(names), int(sizes.max())), dtype=np.int64)
    for c, m in enumerate(members):
        table[c, : m.size] = m
    weights = np.zeros((b, r), dtype=np.float64)
    rows = np.arange(b)
    n_clusters = len(names)
    for _ in range(n_clusters):
        cluster = stream.integers(0, n_clusters, size=b)
        size = sizes[cluster]
        # Within the drawn cluster, `size` runs with replacement: uniform over its own runs.
        position = np.floor(stream.random((b, table.shape[1])) * size[:, None]).astype(np.int64)
        run = table[cluster[:, None], position]
        keep = np.arange(table.shape[1])[None, :] < size[:, None]
        share = np.where(keep, 1.0 / (n_clusters * size[:, None]), 0.0)
        np.add.at(weights, (np.broadcast_to(rows[:, None], run.shape), run), share)
    return weights


def _block_replicates(
    block: UnitParts,
    n_resamples: int,
    unit_stream: np.random.Generator,
    run_stream: np.random.Generator,
    resample_runs: bool,
) -> np.ndarray:
    """[B, V] replicates of one split: its units (and runs) resampled."""
    v, r, u, k = block.parts.shape
    flat = np.ascontiguousarray(block.parts.transpose(2, 0, 1, 3).reshape(u, v * r * k))
    size = max(1, min(n_resamples, _BLOCK_CELLS // u))
    fixed = block.run_weights()
    out = np.empty((n_resamples, v), dtype=np.float64)
    for start in range(0, n_resamples, size):
        b = min(size, n_resamples - start)
        drawn = unit_stream.integers(0, u, size=(b, u))
        weights = np.bincount((drawn + (np.arange(b) * u)[:, None]).ravel(), minlength=b * u)
        sums = (weights.reshape(b, u).astype(np.float64) @ flat).reshape(b, v, r, k)
        values = block.metric.from_sums(sums, u)  # [b, V, R]
        if resample_runs:
            out[start : start + b] = np.einsum("bvr,br->bv", values, _run_weights(block, b, run_stream))
        else:
            out[start : start + b] = values @ fixed
    return out


def paired_bootstrap(
    parts: UnitParts | Sequence[UnitParts],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    resample_runs: bool | None = None,
    expanded: bool = True,
) -> BootstrapResult:
    """Resample the units (and the runs, and the splits), the same draw for every variant.

    `parts` is one UnitParts per evaluation split (one, without split variation). Scheme, per
    resample b:
      1. with several splits: draw as many split labels with replacement (each split has its
         own units, so it is a unit of its own);
      2. in every split: draw its n_units units with replacement (one count vector shared by
         all variants and runs: the evaluation clips are the same for all of them);
      3. if runs are resampled: draw the runs with replacement, shared by all variants (so a
         variant pair keeps runs that share a label together). With clusters (pretraining
         runs), the clusters are drawn first and the runs of each drawn cluster second;
      4. for every variant: the metric from the weighted sums of its parts per drawn run; the
         replicate is the weighted mean over the drawn runs, then over the drawn splits.
    Runs are resampled by default in a split where some variant has at least 2 distinct runs;
    a deterministic head (all runs alike) is one sample of the training side, and resampling
    identical runs would change nothing.

    Assumptions: units are exchangeable draws from the population the claim is about (clips
    of one video must then be one unit); runs (clusters) are exchangeable draws of the training
    randomness; splits are exchangeable draws of the split. Resampling both units and runs of a
    crossed design counts the unit × run interaction more than once, so the interval is
    slightly wide (conservative); with few runs or splits (2-3) their part is a crude estimate
    and the interval is then, if anything, narrow on that side: add runs to fix it.

    Intervals are expanded percentile intervals (`expanded_tail`; `expanded=False` gives the
    plain percentile interval). Deterministic for the same parts, seed and numpy version.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ConfigError(f"the bootstrap needs at least 1 resample, got {n_resamples}")
    blocks = as_blocks(parts)
    n_blocks = len(blocks)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2 * n_blocks + 1)]
    resampled = []
    per_block = []
    for s, block in enumerate(blocks):
        runs = resample_runs
        if runs is None:
            runs = len(block.runs) > 1 and any(
                block.distinct_runs(name) > 1 for name in block.variants
            )
        resampled.append(bool(runs))
        per_block.append(
            _block_replicates(block, n_resamples, streams[2 * s], streams[2 * s + 1], bool(runs))
        )
    if n_blocks == 1:
        replicates = per_block[0]
    else:
        picks = streams[-1].integers(0, n_blocks, size=(n_resamples, n_blocks))
        counts = np.bincount(
            (picks + (np.arange(n_resamples) * n_blocks)[:, None]).ravel(),
            minlength=n_resamples * n_blocks,
        ).reshape(n_resamples, n_blocks)
        replicates = np.einsum("bs,sbv->bv", counts.astype(np.float64), np.stack(per_block))
        replicates /= n_blocks
    replicates.setflags(write=False)
    n_units = min(block.n_units for block in blocks)
    tail = expanded_tail(confidence, n_units) if expanded else (1.0 - confidence) / 2.0
    return BootstrapResult(
        blocks=blocks,
        replicates=replicates,
        observed=np.mean([block.observed() for block in blocks], axis=0),
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        resample_runs=any(resampled),
        tail=tail,
    )


# ----------------------------------------------------------------------- the recommendation rule


@dataclass(frozen=True)
class Comparison:
    """The best variant against one other on the ranking split."""

    other: str
    difference: float  # best − other, on the ranking split
    interval: Interval  # paired bootstrap interval of the difference
    test: str  # TEST_MCNEMAR or TEST_BOOTSTRAP
    p_value: float
    adjusted_p: float  # after the multiple-comparison correction
    separated: bool  # adjusted_p <= level and difference > 0
    mcnemar: McNemarResult | None


@dataclass(frozen=True)
class Verdict:
    """Which variant to use, how that was decided, and the sentences a report must print."""

    verdict: str  # VERDICT_CLEAR, VERDICT_NONE or VERDICT_SINGLE
    winner: str | None  # the recommended variant; None without a clear winner
    best: str  # first in the ranking
    ranking: tuple[str, ...]  # best first
    means: dict[str, float]  # ranking-split metric per variant
    split: str  # SPLIT_VALIDATION or SPLIT_EVALUATION
    comparisons: tuple[Comparison, ...]  # best vs every other, in ranking order
    tied: tuple[str, ...]  # best plus every variant it is not separated from
    level: float
    correction: str
    facts: tuple[str, ...]  # what was done, in sentences, for the report header / group text
    warnings: tuple[str, ...]  # what makes the choice weaker than it looks
    bootstrap: BootstrapResult | None = field(default=None, repr=False)


def _use_mcnemar(blocks: Sequence[UnitParts], a: str, b: str, test: str) -> bool:
    parts = blocks[0]
    exact_possible = (
        len(blocks) == 1
        and parts.metric.binary
        and parts.distinct_runs(a) == 1
        and parts.distinct_runs(b) == 1
    )
    if test == TEST_MCNEMAR and not exact_possible:
        raise ConfigError(
            f"exact McNemar needs 0/1 correctness, one evaluation split and one distinct run "
            f"per variant ({a}, {b}); use the paired bootstrap"
        )
    return exact_possible if test == "auto" else test == TEST_MCNEMAR


def recommend_variant(
    ranking: UnitParts | Sequence[UnitParts],
    *,
    split: str,
    protocol: str = "strict",
    level: float = LEVEL,
    correction: str = "holm",
    test: str = "auto",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    tie_order: Sequence[str] = (),
    same_modality_validation: bool = False,
    epoch_selected: bool = False,
) -> Verdict:
    """Rank on `ranking` (the split the choice may use); call a winner only if the data separate it.

    1. Variants are ranked by their metric on the ranking split (mean over runs); equal means
       follow `tie_order`, then the name.
    2. The best is compared with EVERY other variant by a two-sided paired test over the units:
       exact McNemar for 0/1 correctness when both heads are deterministic (one distinct run),
       the paired bootstrap p-value otherwise (`test` forces one).
    3. Multiple comparisons: with `correction="holm"` (default) the m = V − 1 p-values are
       Holm-adjusted, so every "separated" statement in the table holds jointly at `level`.
       The winner claim ("better than every other") needs all m rejections. For a variant
       named in advance that is an intersection-union test, at `level` without correction;
       here the candidate is the one the same data ranked first, which that argument does not
       cover, so Holm is the default margin. `correction="none"` gives the plain test. (With
       equal variants, tests/test_resampling.py measures the rate of false "clear" verdicts.)
    4. Clear winner only when every comparison is separated (adjusted p <= level, best ahead);
       otherwise "no clear winner" and `tied` lists the best and every variant not separated
       from it. One variant: "single variant".

    `ranking` is one UnitParts per evaluation split (several with split variation). `split`
    names the ranking split; the reference protocol ranks on the evaluation split and may not
    be called validation.
    """
    _check_rule_settings(split, protocol, correction, test, level)
    blocks = as_blocks(ranking)
    means, ranked = _rank(blocks, tie_order)
    best = ranked[0]
    facts, warnings = _ranking_facts(
        blocks, split, protocol, same_modality_validation, epoch_selected
    )
    if len(ranked) == 1:
        return Verdict(
            verdict=VERDICT_SINGLE,
            winner=best,
            best=best,
            ranking=ranked,
            means=means,
            split=split,
            comparisons=(),
            tied=(best,),
            level=level,
            correction=correction,
            facts=tuple(facts) + (f"{best} is the only variant evaluated here.",),
            warnings=tuple(warnings),
        )
    boot = paired_bootstrap(blocks, n_resamples=n_resamples, seed=seed, confidence=1.0 - level)
    comparisons = _compare_best(blocks, boot, ranked, test=test, correction=correction, level=level)
    tied = (best,) + tuple(c.other for c in comparisons if not c.separated)
    clear = len(tied) == 1
    facts += _test_facts(blocks, boot, comparisons, level, correction)
    adjusted = correction == "holm" and len(comparisons) > 1
    facts.append(_verdict_sentence(best, clear, adjusted, comparisons, tied, level, split))
    return Verdict(
        verdict=VERDICT_CLEAR if clear else VERDICT_NONE,
        winner=best if clear else None,
        best=best,
        ranking=ranked,
        means=means,
        split=split,
        comparisons=comparisons,
        tied=tied,
        level=level,
        correction=correction,
        facts=tuple(facts),
        warnings=tuple(warnings),
        bootstrap=boot,
    )


def _check_rule_settings(split: str, protocol: str, correction: str, test: str,
                         level: float) -> None:
    if split not in (SPLIT_VALIDATION, SPLIT_EVALUATION):
        raise ConfigError(
            f"split must be {SPLIT_VALIDATION!r} or {SPLIT_EVALUATION!r}, got {split!r}"
        )
    if protocol == "reference" and split == SPLIT_VALIDATION:
        raise ConfigError(
            "the reference protocol selects on the evaluation split; it has no validation split"
        )
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if test not in ("auto", TEST_MCNEMAR, TEST_BOOTSTRAP):
        raise ConfigError(
            f"test must be 'auto', {TEST_MCNEMAR!r} or {TEST_BOOTSTRAP!r}, got {test!r}"
        )
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), got {level}")


def _rank(blocks: Sequence[UnitParts],
          tie_order: Sequence[str]) -> tuple[dict[str, float], tuple[str, ...]]:
    """Each variant's ranking-split metric (mean over the splits) and the variants best first;
    equal means follow `tie_order`, then the name."""
    first = blocks[0]
    observed = np.mean([block.observed() for block in blocks], axis=0)
    if not np.isfinite(observed).all():
        raise DataError("a variant's ranking metric is undefined (no counted unit)")
    means = {name: float(observed[i]) for i, name in enumerate(first.variants)}
    order = {name: i for i, name in enumerate(tie_order)}
    ranked = tuple(sorted(first.variants, key=lambda n: (-means[n], order.get(n, len(order)), n)))
    return means, ranked


def _compare_best(blocks: Sequence[UnitParts], boot: BootstrapResult, ranked: Sequence[str], *,
                  test: str, correction: str, level: float) -> tuple[Comparison, ...]:
    """The best (ranked[0]) against every other variant: a paired test each, the p-values
    adjusted together, so that "separated" holds jointly at `level`."""
    first = blocks[0]
    best = ranked[0]
    raw = []
    for other in ranked[1:]:
        paired = boot.difference(best, other)
        if _use_mcnemar(blocks, best, other, test):
            i, j = first.index(best), first.index(other)
            exact = mcnemar_exact(first.parts[i, 0, :, 0], first.parts[j, 0, :, 0])
            raw.append((other, paired, TEST_MCNEMAR, exact.p_value, exact))
        else:
            raw.append((other, paired, TEST_BOOTSTRAP, paired.p_value, None))
    p_values = [p for _, _, _, p, _ in raw]
    adjusted = holm_adjust(p_values) if correction == "holm" else list(p_values)
    return tuple(
        Comparison(
            other=other,
            difference=paired.difference,
            interval=paired.interval,
            test=kind,
            p_value=p,
            adjusted_p=adj,
            separated=adj <= level and paired.difference > 0.0,
            mcnemar=exact,
        )
        for (other, paired, kind, p, exact), adj in zip(raw, adjusted, strict=True)
    )


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _units_text(blocks: Sequence[UnitParts]) -> str:
    unit = blocks[0].unit
    if len(blocks) == 1:
        return _count(blocks[0].n_units, unit)
    sizes = sorted(block.n_units for block in blocks)
    span = f"{sizes[0]}" if sizes[0] == sizes[-1] else f"{sizes[0]}-{sizes[-1]}"
    return f"{len(blocks)} splits of {span} {unit}s"


def _ranking_facts(
    blocks: Sequence[UnitParts], split: str, protocol: str, same_modality: bool,
    epoch_selected: bool,
) -> tuple[list[str], list[str]]:
    metric = blocks[0].metric.name
    units = _units_text(blocks)
    facts, warnings = [], []
    if split == SPLIT_VALIDATION:
        facts.append(
            f"Ranked on the validation split ({units}) by {metric}; "
            "the evaluation split was not used to choose."
        )
    else:
        where = " (published protocol)" if protocol == "reference" else ""
        facts.append(f"Ranked on the evaluation split{where}: {units}, by {metric}.")
        warnings.append(
            "The same clips choose the variant and score it, so the winner's score is optimistic"
            + (" (the published protocol does this)." if protocol == "reference" else ".")
        )
    if same_modality and split == SPLIT_VALIDATION:
        facts.append(
            "The validation rows are of the training modality (same-modality), not cross-modal: "
            "the ranking says which variant fits the training modality best."
        )
    if epoch_selected:
        warnings.append(
            "For the linear head the ranking score is the best over epochs on the rows that chose "
            "the epoch, so it is optimistic."
        )
    return facts, warnings


def _test_facts(
    blocks: Sequence[UnitParts],
    boot: BootstrapResult,
    comparisons: Sequence[Comparison],
    level: float,
    correction: str,
) -> list[str]:
    first = blocks[0]
    kinds = sorted({c.test for c in comparisons})
    tests = " and ".join(kinds)
    m = len(comparisons)
    if m == 1:
        fix = "one comparison"
    elif correction == "holm":
        fix = f"Holm-adjusted over the {m} comparisons with the best"
    else:
        fix = f"unadjusted: the winner must pass all {m}, an intersection-union test at this level"
    facts = [
        f"A winner must be separated from every other variant by a two-sided paired test over "
        f"{first.unit}s ({tests}) at level {level:g} ({fix}).",
        f"The differences on the ranking split: {boot.scheme}; {100 * boot.confidence:g}% "
        "expanded percentile intervals.",
    ]
    runs = max(len(block.runs) for block in blocks)
    deterministic = [
        name for name in first.variants if all(b.distinct_runs(name) == 1 for b in blocks)
    ]
    fixed = "one fixed split" if len(blocks) == 1 else f"each of the {len(blocks)} splits"
    if len(deterministic) == len(first.variants):
        seeds = "" if runs < 2 else ", both seeds alike" if runs == 2 else f", all {runs} seeds alike"
        facts.append(
            f"Every head is deterministic on {fixed} (n_eff = 1 training run{seeds}): "
            + (
                "the uncertainty shown is the evaluation sample's only."
                if len(blocks) == 1
                else "the uncertainty shown is the evaluation samples' and the splits'."
            )
        )
    elif deterministic:
        facts.append(
            f"Deterministic (n_eff = 1 training run): {', '.join(deterministic)}; the other "
            f"variants' intervals include the spread of their {runs} runs."
        )
    else:
        clusters = max(block.n_clusters for block in blocks)
        spread = (
            f"{clusters} pretraining runs × head seeds" if clusters < runs else f"{runs} training runs"
        )
        facts.append(f"Intervals include the spread of {spread} per variant.")
    return facts


def _verdict_sentence(
    best: str,
    clear: bool,
    adjusted: bool,
    comparisons: Sequence[Comparison],
    tied: Sequence[str],
    level: float,
    split: str,
) -> str:
    p_name = "Holm-adjusted p" if adjusted else "p"

    def one(c: Comparison) -> str:
        return (
            f"{best} − {c.other} = {c.difference:+.2f} "
            f"[{c.interval.low:+.2f}, {c.interval.high:+.2f}], {p_name} = {c.adjusted_p:.3g}"
        )

    details = "; ".join(one(c) for c in comparisons)
    if clear:
        return f"Clear winner on the {split} split: {best} ({details})."
    return (
        f"No clear winner on the {split} split at level {level:g}: {', '.join(tied)} are not "
        f"separated ({details})."
    )
