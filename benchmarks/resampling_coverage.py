"""Simulation: do the bootstrap intervals cover, and does the rule call false winners?

Run: .venv/bin/python benchmarks/resampling_coverage.py [--sims 1000] [--null-sims 1000]
Writes benchmarks/results/resampling_coverage.md and, beside it, resampling_coverage.jsonl (one
object per row: its settings, counts and rates, so the table can be checked).

It measures the method of toc/report/resampling.py as the report uses it: expanded percentile
intervals with their ends rounded outwards (`paired_bootstrap`'s defaults), pretraining runs
resampled as clusters, several evaluation splits as blocks, and the rule of
`recommend_variant` (paired tests, Holm, the bootstrap p-value that matches the expanded
interval). Every target is computed independently of toc.report.resampling (closed form or a
Monte Carlo of the generating model). The section on the linear head's epoch choice simulates
heads whose outcomes move from epoch to epoch and chooses the epoch the way docs/evaluation.md
says each protocol does: on the validation rows (strict) or on the evaluated rows themselves
(reference); the ranking rows are the rows that chose the epoch (docs/report.md).

All seeds are fixed: simulated data set i of a row draws from numpy.random.default_rng(base + i)
(base per section, in the header) and its bootstrap uses seed i. A rate c over S data sets has
the binomial standard error sqrt(c(1 − c)/S); a rate of 0 has none by that formula (read it as
below about 3/S).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import header, python_argv, write_results  # noqa: E402
from toc.eval.metrics import segment_count_parts  # noqa: E402
from toc.report.resampling import (  # noqa: E402
    ACCURACY,
    LEVEL,
    MICRO_F1,
    UnitParts,
    paired_bootstrap,
    recommend_variant,
    wilson_interval,
)

VARIANTS = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")
SCRIPT = "benchmarks/resampling_coverage.py"
CODE = ("toc/report/resampling.py", "toc/eval/metrics.py", SCRIPT)

# Seed bases: data set i of a row uses default_rng(base + i).
COVERAGE_BASE = 10_000
NULL_BASE = 0
EPOCH_BASE = 20_000
TARGET_SEED = 99  # the Monte Carlo targets


def _plain(value):
    """numpy scalars as Python numbers in the jsonl."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def se(rate: float, n: int) -> float:
    return 100 * math.sqrt(max(rate * (1 - rate), 0.0) / n)


def rate_text(count: int, n: int) -> str:
    rate = count / n
    return f"{100 * rate:.1f} % ± {se(rate, n):.1f}"


class Table:
    """Rows of the markdown table and the jsonl records behind them."""

    def __init__(self, lines: list[str], records: list[dict]):
        self.lines = lines
        self.records = records

    def add(self, cells: list[str], record: dict) -> None:
        self.lines.append("| " + " | ".join(cells) + " |")
        self.records.append(record)
        print(self.lines[-1], file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- coverage


def coverage(draw, target, sims, resamples, interpolated=False, **kwargs) -> dict:
    """`interpolated`: instead of the library's ends (replicate values rounded outwards), take
    numpy's linearly interpolated quantiles of the same replicates at the same levels."""
    hits, widths, estimates = 0, [], []
    for sim in range(sims):
        parts = draw(np.random.default_rng(COVERAGE_BASE + sim))
        first = parts if isinstance(parts, UnitParts) else parts[0]
        result = paired_bootstrap(parts, n_resamples=resamples, seed=sim, **kwargs)
        estimate = result.variant(first.variants[0])
        low, high = estimate.interval.low, estimate.interval.high
        if interpolated:
            values = result.replicates[:, 0]
            low, high = np.quantile(values, [result.tail, 1.0 - result.tail])
        hits += low <= target <= high
        widths.append(high - low)
        estimates.append(estimate.estimate)
    return {
        "hits": int(hits),
        "data_sets": sims,
        "coverage": hits / sims,
        "mean_width": float(np.mean(widths)),
        "mean_estimate_minus_target": float(np.mean(estimates) - target),
    }


def interval_kind(expanded: bool, interpolated: bool) -> str:
    """A row label's suffix for an interval other than the library's default."""
    return ("" if expanded else ", plain percentile") + (
        ", ends interpolated (not the library's)" if interpolated else ""
    )


def coverage_row(table: Table, name: str, settings: dict, target: float, result: dict) -> None:
    table.add(
        [
            name,
            f"{target:.2f}",
            rate_text(result["hits"], result["data_sets"]),
            f"{result['mean_width']:.2f}",
            str(result["data_sets"]),
        ],
        {"section": "coverage", "setting": name, **settings, "target": target, **result},
    )


# ------------------------------------------------------------------ the linear head's epochs


@dataclass(frozen=True)
class EpochNoise:
    """A linear head's per-clip outcomes over its epochs (one head = one seed of one variant).

    Clip u has a difficulty z_u ~ N(0, 1), the same for every variant and head (the clips are
    the same). Head r of a variant has a quality a_r ~ N(0, seed_sd²) and, at epoch e, a shift
    b_re ~ N(0, epoch_sd²) (some epochs are truly better: the population accuracy moves); its
    own noise on clip u is clip_sd · (√persist · η_ru + √(1 − persist) · ξ_reu), η and ξ
    standard normal: a part that stays with the head and a part that changes every epoch, so a
    few clips flip between epochs. Clip u is right at epoch e iff
    z_u + noise < base + shift + a_r + b_re, and the head's population accuracy at epoch e is
    Φ((base + shift + a_r + b_re) / √(1 + clip_sd²)). The epochs model the plateau after the
    learning rate has settled, where no epoch is better by design and choosing among them is
    mostly choosing noise.
    """

    name: str
    persist: float
    epoch_sd: float
    epochs: int = 20
    clip_sd: float = 0.6
    seed_sd: float = 0.1
    accuracy: float = 0.65  # Φ(base / √(1 + clip_sd²)): the population accuracy without shifts

    @property
    def scale(self) -> float:
        return math.sqrt(1.0 + self.clip_sd**2)

    @property
    def base(self) -> float:
        return float(ndtri(self.accuracy)) * self.scale

    def shift_for(self, points: float) -> float:
        """The shift that raises the accuracy without head noise by `points` (in %)."""
        return float(ndtri(self.accuracy + points / 100.0)) * self.scale - self.base

    def describe(self) -> str:
        return (
            f"{self.epochs} epochs, persist {self.persist}, epoch sd {self.epoch_sd}, "
            f"clip sd {self.clip_sd}, seed sd {self.seed_sd}, accuracy {self.accuracy}"
        )


CALM = EpochNoise("calm", persist=0.95, epoch_sd=0.02)
NOISY = EpochNoise("noisy", persist=0.5, epoch_sd=0.08)


def linear_heads(
    rng: np.random.Generator, row_sets: list[np.ndarray], runs: int, noise: EpochNoise,
    shift: float = 0.0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per row set the correctness [runs, epochs, units]; the population accuracy [runs, epochs]."""
    level = (
        noise.base + shift
        + rng.normal(0.0, noise.seed_sd, size=(runs, 1))
        + rng.normal(0.0, noise.epoch_sd, size=(runs, noise.epochs))
    )
    outcomes = []
    for z in row_sets:
        units = z.shape[-1]
        persistent = rng.standard_normal((runs, 1, units))
        fresh = rng.standard_normal((runs, noise.epochs, units))
        own = noise.clip_sd * (math.sqrt(noise.persist) * persistent
                               + math.sqrt(1.0 - noise.persist) * fresh)
        # z: [units] (the same clips for every head) or [runs, units] (each head its own).
        shared = z[None, None, :] if z.ndim == 1 else z[:, None, :]
        outcomes.append((shared + own < level[:, :, None]).astype(np.float64))
    return outcomes, ndtr(level / noise.scale)


def chosen_epochs(correct: np.ndarray) -> np.ndarray:
    """[runs] the first best epoch by accuracy on these rows (the loop's rule)."""
    return np.argmax(correct.sum(axis=2), axis=1)


def at_epochs(correct: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """[runs, units] each run's outcomes at its epoch."""
    return correct[np.arange(correct.shape[0]), epochs]


def epoch_targets(noise: EpochNoise, n_select: int, heads: int, seed: int) -> dict:
    """Monte Carlo over heads, without toc: the population accuracy of a head whose epoch was
    chosen on n_select fresh clips, of the last epoch, and the flip rate between epochs."""
    rng = np.random.default_rng(seed)
    chosen, last, flips, optimism = [], [], [], []
    chunk = 2000
    for start in range(0, heads, chunk):
        n = min(chunk, heads - start)
        z = rng.standard_normal((n, n_select))
        [correct], population = linear_heads(rng, [z], n, noise)
        best = chosen_epochs(correct)
        chosen.append(population[np.arange(n), best])
        last.append(population[:, -1])
        flips.append(np.mean(correct[:, 1:] != correct[:, :-1]))
        optimism.append(at_epochs(correct, best).mean(axis=1) - population[np.arange(n), best])
    return {
        "chosen": 100 * float(np.mean(np.concatenate(chosen))),
        "last": 100 * float(np.mean(np.concatenate(last))),
        "flip_rate": float(np.mean(flips)),
        "optimism": 100 * float(np.mean(np.concatenate(optimism))),
    }


EPOCH_MODES = {
    "last": "last epoch, no choice",
    "same": "epoch chosen on the ranking rows",
    "separate": "epoch chosen on other validation rows",
}


def epoch_parts(
    rng: np.random.Generator, mode: str, n_rank: int, n_select: int, runs: int,
    noise: EpochNoise, variants: tuple[str, ...], shifts: dict[str, float] | None = None,
) -> tuple[UnitParts, dict[str, np.ndarray]]:
    """The ranking rows' parts of every variant at its chosen epochs, and their population
    accuracies [runs] (the truth for that data set)."""
    z_rank = rng.standard_normal(n_rank)
    z_select = rng.standard_normal(n_select) if mode == "separate" else None
    table, truth = {}, {}
    for name in variants:
        row_sets = [z_rank] if z_select is None else [z_rank, z_select]
        outcomes, population = linear_heads(rng, row_sets, runs, noise, (shifts or {}).get(name, 0.0))
        ranking = outcomes[0]
        if mode == "last":
            epochs = np.full(runs, noise.epochs - 1)
        elif mode == "same":
            epochs = chosen_epochs(ranking)
        else:
            epochs = chosen_epochs(outcomes[1])
        chosen = at_epochs(ranking, epochs)
        table[name] = {r: chosen[r] for r in range(runs)}
        truth[name] = population[np.arange(runs), epochs]
    return UnitParts.from_runs(table, ACCURACY), truth


# ---------------------------------------------------------------------------- the rule


def verdicts(make, sims: int, resamples: int, correction: str, base: int, **kwargs) -> dict:
    """Run the rule on `sims` data sets; count verdicts and p-value / interval agreement."""
    clear = right = comparisons = agree = 0
    for sim in range(sims):
        ranking, winner = make(np.random.default_rng(base + sim))
        verdict = recommend_variant(
            ranking, split="validation", correction=correction, n_resamples=resamples,
            seed=sim, **kwargs,
        )
        clear += verdict.verdict == "clear"
        right += winner is not None and verdict.winner == winner
        for c in verdict.comparisons:
            if c.test == "paired bootstrap":
                comparisons += 1
                agree += (c.p_value <= LEVEL) == c.interval.excludes_zero()
    return {
        "clear": clear, "right": right, "data_sets": sims,
        "bootstrap_comparisons": comparisons, "p_matches_interval": agree,
    }


def agreement_text(result: dict) -> str:
    n = result["bootstrap_comparisons"]
    return "— (McNemar)" if n == 0 else f"{result['p_matches_interval']} / {n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="data sets per coverage row")
    parser.add_argument("--null-sims", type=int, default=1000, help="data sets per verdict row")
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--target-heads", type=int, default=50_000,
                        help="Monte Carlo heads per epoch-choice target")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "resampling_coverage.md"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    s, b, n = args.sims, args.resamples, args.null_sims
    lines = [
        "# Bootstrap coverage and false-winner rates (simulation)",
        "",
        *header(
            SCRIPT,
            python_argv(),
            f"data set i of a row: numpy default_rng({COVERAGE_BASE} + i) in the coverage rows, "
            f"default_rng({NULL_BASE} + i) in the verdict rows, default_rng({EPOCH_BASE} + i) in the "
            f"epoch-choice rows; bootstrap seed i; Monte Carlo targets default_rng({TARGET_SEED}) "
            "(epoch-choice targets: one stream per setting, listed in the jsonl)",
            CODE,
        ),
        f"- Raw rows: [{args.output.with_suffix('.jsonl').name}]"
        f"({args.output.with_suffix('.jsonl').name})",
        "",
        f"{s} simulated data sets per coverage row, {n} per verdict row, {b} resamples each, 95 % "
        "intervals: expanded percentile with ends rounded outwards to replicate values (the "
        "default of `paired_bootstrap`) unless a row says plain or interpolated (numpy's linear "
        "quantiles of the same replicates at the same levels, for comparison); ± is one binomial "
        "standard error.",
        "",
        "## Coverage of the true value",
        "",
        "| setting | target | coverage | mean width | data sets |",
        "|---|---|---|---|---|",
    ]
    records: list[dict] = []
    table = Table(lines, records)
    accuracy_coverage(table, s, b)
    micro_f1_coverage(table, s, b)
    run_coverage(table, s, b)
    false_clear_section(table, n, b)
    power_section(table, n, b)
    targets = epoch_target_section(table, args.target_heads)
    epoch_coverage_section(table, targets, s, b)
    epoch_verdict_section(table, n, b)

    minutes = (time.perf_counter() - started) / 60
    lines += [
        "",
        f"Run time: {minutes:.1f} min (wall) on the machine above.",
        "",
        "The rule is allowed 5 %. A rate of 0 has a standard error of 0 by the formula; read it "
        "as below about 3/S.",
        "",
    ]
    write_results(args.output, lines, records, default=_plain)
    print(f"wrote {args.output} and {args.output.with_suffix('.jsonl')} ({minutes:.1f} min)", file=sys.stderr)


# ------------------------------------------------------------------ coverage rows


def accuracy_coverage(table: Table, s: int, b: int) -> None:
    """Deterministic heads on 0/1 clips: the library's interval, its variants, and Wilson's."""
    for units in (45, 120, 500):
        for expanded, interpolated in ((True, False), (True, True), (False, False)):
            coverage_row(
                table,
                f"accuracy, p = 0.7, {units} clips, deterministic head"
                + interval_kind(expanded, interpolated),
                {"units": units, "expanded": expanded, "interpolated_ends": interpolated},
                70.0,
                coverage(
                    lambda rng, u=units: UnitParts.from_runs(
                        {"a": {0: (rng.random(u) < 0.7).astype(float)}}, ACCURACY
                    ),
                    70.0, s, b, interpolated=interpolated, expanded=expanded,
                ),
            )
    for units in (45, 120):
        hits = 0
        for sim in range(s):
            rng = np.random.default_rng(COVERAGE_BASE + sim)  # the data sets of the rows above
            k = int(np.sum(rng.random(units) < 0.7))
            interval = wilson_interval(k, units)
            hits += interval.low <= 70.0 <= interval.high
        table.add(
            [f"accuracy, p = 0.7, {units} clips: Wilson interval (closed form)", "70.00",
             rate_text(hits, s), "—", str(s)],
            {"section": "coverage", "setting": f"wilson {units}", "units": units, "target": 70.0,
             "hits": hits, "data_sets": s, "coverage": hits / s},
        )


def micro_f1_coverage(table: Table, s: int, b: int) -> None:
    """Micro-F1 from per-video counts: 20 cells per video, labelled w.p. 0.3, predicted w.p. 0.8
    when labelled and 0.1 otherwise."""
    f1_target = 100 * 2 * 0.24 / (0.31 + 0.3)
    for videos in (40, 200):

        def draw_f1(rng, n_videos=videos):
            labels = rng.random((n_videos, 4, 5)) < 0.3
            pred = np.where(labels, rng.random(labels.shape) < 0.8, rng.random(labels.shape) < 0.1)
            return UnitParts.from_runs(
                {"a": {0: segment_count_parts(pred, labels, 5)}}, MICRO_F1, unit="video"
            )

        for expanded, interpolated in ((True, False), (True, True), (False, False)):
            coverage_row(
                table,
                f"micro-F1 (ratio of sums), {videos} videos"
                + interval_kind(expanded, interpolated),
                {"videos": videos, "expanded": expanded, "interpolated_ends": interpolated},
                f1_target,
                coverage(draw_f1, f1_target, s, b, interpolated=interpolated, expanded=expanded),
            )


def run_coverage(table: Table, s: int, b: int) -> None:
    """Random heads, whose runs differ: several runs, pretraining runs as clusters, split seeds."""
    # Clip difficulty q ~ Beta(3, 1.5), run shift ~ U(−0.15, 0.15) shared by the clips of a run;
    # P(correct) = clip(q + shift). Target: E over clips and runs.
    big = np.random.default_rng(TARGET_SEED)
    run_target = 100 * float(
        np.clip(big.beta(3, 1.5, 2_000_000) + big.uniform(-0.15, 0.15, 2_000_000), 0, 1).mean()
    )
    for runs in (3, 5, 8):

        def draw_runs(rng, r=runs):
            q = rng.beta(3, 1.5, size=100)
            shift = rng.uniform(-0.15, 0.15, size=r)
            x = (rng.random((r, 100)) < np.clip(q[None] + shift[:, None], 0, 1)).astype(float)
            return UnitParts.from_runs({"a": {i: x[i] for i in range(r)}}, ACCURACY)

        for resample_runs in (None, False):
            coverage_row(
                table,
                f"random head, {runs} runs, 100 clips, "
                + ("clips and runs resampled" if resample_runs is None else "clips only"),
                {"runs": runs, "units": 100, "resample_runs": resample_runs is None},
                run_target,
                coverage(draw_runs, run_target, s, b, resample_runs=resample_runs),
            )
    # Pretraining runs × head seeds: a pretraining shift u ~ U(−0.15, 0.15) shared by every clip
    # and head seed of a checkpoint, a small head-seed shift v ~ U(−0.02, 0.02). Clusters
    # resampled first (the report's scheme) against the runs treated as independent.
    nested_target = 100 * float(
        np.clip(
            big.beta(3, 1.5, 2_000_000) + big.uniform(-0.15, 0.15, 2_000_000)
            + big.uniform(-0.02, 0.02, 2_000_000), 0, 1,
        ).mean()
    )
    for pretraining in (2, 3, 5):

        def draw_nested(rng, p=pretraining, clustered=True):
            q = rng.beta(3, 1.5, size=100)
            runs, clusters = {}, {}
            for i, u in enumerate(rng.uniform(-0.15, 0.15, size=p)):
                for h, v in enumerate(rng.uniform(-0.02, 0.02, size=3)):
                    runs[3 * i + h] = (rng.random(100) < np.clip(q + u + v, 0, 1)).astype(float)
                    clusters[3 * i + h] = i
            return UnitParts.from_runs({"a": runs}, ACCURACY, clusters=clusters if clustered else None)

        for clustered in (True, False):
            coverage_row(
                table,
                f"{pretraining} pretraining runs × 3 head seeds, 100 clips, "
                + ("clusters resampled" if clustered else "runs as independent"),
                {"pretraining_runs": pretraining, "head_seeds": 3, "units": 100,
                 "clustered": clustered},
                nested_target,
                coverage(lambda rng, p=pretraining, c=clustered: draw_nested(rng, p, c),
                         nested_target, s, b),
            )
    # Split seeds: each split evaluates its own 60 clips and has a shift w ~ U(−0.1, 0.1).
    split_target = 100 * float(
        np.clip(big.beta(3, 1.5, 2_000_000) + big.uniform(-0.1, 0.1, 2_000_000), 0, 1).mean()
    )
    for splits in (3, 5):

        def draw_splits(rng, n_splits=splits):
            blocks = []
            for k, w in enumerate(rng.uniform(-0.1, 0.1, size=n_splits)):
                q = rng.beta(3, 1.5, size=60)
                x = (rng.random(60) < np.clip(q + w, 0, 1)).astype(float)
                blocks.append(UnitParts.from_runs({"a": {k: x}}, ACCURACY))
            return blocks

        coverage_row(
            table,
            f"{splits} split seeds of 60 clips each, splits and clips resampled",
            {"splits": splits, "units_per_split": 60},
            split_target,
            coverage(draw_splits, split_target, s, b),
        )


# ------------------------------------------------------------------ the rule's verdicts


def random_heads(rng, units=60, runs=3, better=None, advantage=0.0):
    """Every variant: `runs` heads on the same clips, each with a run shift; `better` (if any)
    has P(correct) raised by `advantage`."""
    q = rng.beta(3, 2, size=units)
    correct = {
        name: {
            r: (rng.random(units) < np.clip(
                q + rng.uniform(-0.1, 0.1) + (advantage if name == better else 0.0), 0, 1
            )).astype(float)
            for r in range(runs)
        }
        for name in VARIANTS
    }
    return UnitParts.from_runs(correct, ACCURACY), better


def clustered_heads(rng, pretraining, units=60, better=None, advantage=0.0):
    """A pretraining shift per checkpoint (dcid and dcid+toc share theirs, as do hdcid and
    hdcid+toc), a head-seed shift per variant and seed; the runs of a checkpoint a cluster."""
    q = rng.beta(3, 2, size=units)
    checkpoint_shifts = {c: rng.uniform(-0.15, 0.15, size=pretraining) for c in ("dcid", "hdcid")}
    correct, clusters = {name: {} for name in VARIANTS}, {}
    for name in VARIANTS:
        shifts = checkpoint_shifts[name.split("+")[0]]
        for k in range(pretraining):
            for h in range(3):
                p = q + shifts[k] + rng.uniform(-0.05, 0.05)
                p = p + (advantage if name == better else 0.0)
                correct[name][3 * k + h] = (rng.random(units) < np.clip(p, 0, 1)).astype(float)
                clusters[3 * k + h] = k
    return UnitParts.from_runs(correct, ACCURACY, clusters=clusters), better


def split_heads(rng, splits=3, units=60):
    """Random heads on `splits` evaluation splits of their own clips (blocks)."""
    blocks = []
    for _ in range(splits):
        blocks.append(random_heads(rng, units)[0])
    return blocks, None


def verdict_row(table: Table, name, correction, variants, result, settings) -> None:
    table.add(
        [name, correction, str(variants), rate_text(result["clear"], result["data_sets"]),
         agreement_text(result), str(result["data_sets"])],
        {"section": "false_clear", "setting": name, "correction": correction,
         "variants": variants, **settings, **result,
         "false_clear_rate": result["clear"] / result["data_sets"]},
    )


def false_clear_section(table: Table, n: int, b: int) -> None:
    table.lines += [
        "",
        '## False "clear" verdicts when every variant is equally good',
        "",
        "The rule (`recommend_variant`, ranked on the validation split, level 0.05). *p vs "
        "interval*: for the paired-bootstrap comparisons, in how many the unadjusted p ≤ 0.05 "
        "exactly when the printed 95 % interval of the difference excludes 0.",
        "",
        "| setting | correction | variants | false clear rate | p vs interval | data sets |",
        "|---|---|---|---|---|---|",
    ]
    for correction in ("holm", "none"):
        for v in (2, 3, 4):

            def deterministic(rng, v=v):
                correct = {name: {0: (rng.random(60) < 0.6).astype(float)} for name in VARIANTS[:v]}
                return UnitParts.from_runs(correct, ACCURACY), None

            verdict_row(
                table, "60 clips, accuracy 0.6, deterministic (exact McNemar)", correction, v,
                verdicts(deterministic, n, 200, correction, NULL_BASE),
                {"units": 60, "resamples": 200},
            )
    for correction in ("holm", "none"):
        verdict_row(table, "60 clips, random heads, 3 runs (paired bootstrap)", correction, 4,
                    verdicts(random_heads, n, b, correction, NULL_BASE),
                    {"units": 60, "runs": 3, "resamples": b})
    for pretraining in (2, 3):
        verdict_row(
            table, f"60 clips, {pretraining} pretraining runs × 3 head seeds, clusters resampled",
            "holm", 4,
            verdicts(lambda rng, p=pretraining: clustered_heads(rng, p), n, b, "holm", NULL_BASE),
            {"units": 60, "pretraining_runs": pretraining, "head_seeds": 3, "resamples": b},
        )
    verdict_row(table, "3 split seeds of 60 clips, random heads, 3 runs (splits as blocks)",
                "holm", 4, verdicts(split_heads, n, b, "holm", NULL_BASE),
                {"splits": 3, "units_per_split": 60, "runs": 3, "resamples": b})


def power_row(table: Table, name, advantage, correction, result, settings) -> None:
    table.add(
        [name, f"+{advantage:.0f} points", correction,
         rate_text(result["right"], result["data_sets"]), str(result["data_sets"])],
        {"section": "power", "setting": name, "advantage_points": advantage,
         "correction": correction, **settings, **result,
         "power": result["right"] / result["data_sets"]},
    )


def power_section(table: Table, n: int, b: int) -> None:
    table.lines += [
        "",
        "## Power: one variant truly better",
        "",
        "| setting | advantage | correction | clear and right | data sets |",
        "|---|---|---|---|---|",
    ]
    for (units, better), correction in itertools.product(
        [(60, 0.75), (60, 0.85), (200, 0.7)], ("holm", "none")
    ):

        def one_better(rng, units=units, better=better):
            correct = {name: {0: (rng.random(units) < 0.6).astype(float)} for name in VARIANTS[:3]}
            correct["hdcid+toc"] = {0: (rng.random(units) < better).astype(float)}
            return UnitParts.from_runs(correct, ACCURACY), "hdcid+toc"

        power_row(
            table, f"{units} clips, 4 deterministic variants at 0.6 but one at {better}",
            100 * (better - 0.6), correction,
            verdicts(one_better, n, 200, correction, NULL_BASE), {"units": units, "resamples": 200},
        )
    for units, advantage in ((60, 0.15), (200, 0.10)):
        power_row(
            table,
            f"{units} clips, random heads, 3 runs, one variant's P(correct) +{100 * advantage:.0f}",
            100 * advantage, "holm",
            verdicts(lambda rng, u=units, a=advantage: random_heads(rng, u, 3, "hdcid+toc", a),
                     n, b, "holm", NULL_BASE),
            {"units": units, "runs": 3, "resamples": b},
        )
    power_row(
        table, "200 clips, 2 pretraining runs × 3 head seeds, one variant's P(correct) +10",
        10.0, "holm",
        verdicts(lambda rng: clustered_heads(rng, 2, 200, "hdcid+toc", 0.10), n, b, "holm",
                 NULL_BASE),
        {"units": 200, "pretraining_runs": 2, "head_seeds": 3, "resamples": b},
    )


# ------------------------------------------------------------------ epoch choice


def epoch_target_section(table: Table, target_heads: int) -> dict[tuple[str, int], dict]:
    """The section's text and the Monte Carlo targets per (noise, clips) of its rows."""
    table.lines += [
        "",
        "## The linear head's epoch choice and the ranking rows",
        "",
        "The linear head keeps its first best epoch. Under `strict` it is chosen on the "
        "validation rows of the training modality, and the report ranks the variants on those "
        "same rows at that epoch (`val_parts`); under `reference` both are the evaluation rows. "
        "Either way the rows that rank are the rows that chose the epoch (*epoch chosen on the "
        "ranking rows* below, one simulation for both protocols). Controls: the last epoch (no "
        "choice), and the epoch chosen on other validation rows of the same size with the "
        "interval or ranking on held-out rows (what `strict`'s evaluation split is to its "
        "validation split).",
        "",
        "Simulated heads (`EpochNoise` in the script): clip difficulty shared by every variant "
        "and head; per head a quality, per epoch a small true shift, and per clip a noise of "
        "which a part changes every epoch, so some clips flip between epochs. Two settings:",
        "",
    ]
    targets: dict[tuple[str, int], dict] = {}
    for i, noise in enumerate((CALM, NOISY)):
        for j, units in enumerate((60, 200)):
            seed = TARGET_SEED * 1000 + 10 * i + j
            targets[noise.name, units] = {
                **epoch_targets(noise, units, target_heads, seed), "seed": seed,
            }
        t60 = targets[noise.name, 60]
        table.lines.append(
            f"- *{noise.name}*: {noise.describe()}. {100 * t60['flip_rate']:.1f} % of a head's "
            f"clip outcomes change between consecutive epochs; the population accuracy of the "
            f"chosen epoch is {t60['chosen']:.2f} % (chosen on 60 clips) and "
            f"{targets[noise.name, 200]['chosen']:.2f} % (200 clips) against {t60['last']:.2f} % "
            f"for the last epoch; the chosen epoch's score on the rows that chose it is "
            f"{t60['optimism']:+.2f} points above its population accuracy on 60 clips "
            f"({targets[noise.name, 200]['optimism']:+.2f} on 200). Monte Carlo over "
            f"{target_heads} heads per size (seeds in the jsonl)."
        )
        table.records.append({"section": "epoch_targets", "noise": noise.describe(),
                              "heads": target_heads,
                              **{f"{k}_{u}": v for u in (60, 200)
                                 for k, v in targets[noise.name, u].items()}})
    return targets


def epoch_coverage_section(table: Table, targets: dict[tuple[str, int], dict], s: int,
                           b: int) -> None:
    """Coverage of one variant's score with its epoch chosen each way, and of the difference of
    two equal variants."""
    table.lines += [
        "",
        "### Coverage of one variant's score (3 head seeds, clips and runs resampled)",
        "",
        "Target: the population accuracy of a head whose epoch was chosen the row's way, "
        "averaged over heads (Monte Carlo above); *bias*: mean score − target.",
        "",
        "| setting | noise | target | coverage | bias (points) | mean width | data sets |",
        "|---|---|---|---|---|---|---|",
    ]
    for noise, units in ((CALM, 60), (NOISY, 60), (NOISY, 200)):
        for mode in ("last", "same", "separate"):
            target = targets[noise.name, units]["last" if mode == "last" else "chosen"]

            def draw(rng, mode=mode, units=units, noise=noise):
                return epoch_parts(rng, mode, units, units, 3, noise, ("a",))[0]

            estimates, hits, widths = [], 0, []
            for sim in range(s):
                parts = draw(np.random.default_rng(EPOCH_BASE + sim))
                est = paired_bootstrap(parts, n_resamples=b, seed=sim).variant("a")
                hits += est.interval.low <= target <= est.interval.high
                widths.append(est.interval.width)
                estimates.append(est.estimate)
            where = {
                "last": f"last epoch; interval on {units} clips",
                "same": f"epoch chosen on the {units} clips the interval uses "
                        "(strict ranking rows; reference evaluation split)",
                "separate": f"epoch chosen on {units} validation clips; interval on {units} "
                            "other clips (strict evaluation split)",
            }[mode]
            bias = float(np.mean(estimates) - target)
            epoch_coverage_row(table, where, mode, noise, units, target, hits, s, widths, bias)
    # The Δ column: two variants named in advance, both equally good (true difference 0).
    for noise, units in ((NOISY, 60), (NOISY, 200)):
        for mode in ("last", "same"):
            hits, widths = 0, []
            for sim in range(s):
                parts, _ = epoch_parts(np.random.default_rng(EPOCH_BASE + sim), mode, units,
                                       units, 3, noise, ("dcid", "dcid+toc"))
                diff = paired_bootstrap(parts, n_resamples=b, seed=sim).difference(
                    "dcid+toc", "dcid")
                hits += diff.interval.low <= 0.0 <= diff.interval.high
                widths.append(diff.interval.width)
            where = (f"Δ dcid+toc − dcid (equal), {EPOCH_MODES[mode]}, {units} clips")
            epoch_coverage_row(table, where, mode, noise, units, 0.0, hits, s, widths)


def epoch_coverage_row(table: Table, where: str, mode: str, noise: EpochNoise, units: int,
                       target: float, hits: int, s: int, widths: list[float],
                       bias: float | None = None) -> None:
    """A row of the epoch-choice coverage table (3 head seeds); `bias` only for a score."""
    table.add(
        [where, noise.name, f"{target:.2f}", rate_text(hits, s),
         "—" if bias is None else f"{bias:+.2f}", f"{np.mean(widths):.2f}", str(s)],
        {"section": "epoch_coverage", "setting": where, "mode": mode,
         "noise": noise.name, "units": units, "head_seeds": 3, "target": target,
         "hits": hits, "data_sets": s, "coverage": hits / s,
         **({} if bias is None else {"bias": bias}),
         "mean_width": float(np.mean(widths))},
    )


def epoch_verdict_section(table: Table, n: int, b: int) -> None:
    table.lines += [
        "",
        "### False winners and power with the epoch chosen (Holm, level 0.05)",
        "",
        "With one head seed every head is deterministic on its rows and the rule uses exact "
        "McNemar; with 3 the paired bootstrap over clips and seeds. *advantage*: the last "
        "variant's accuracy raised by that many points (before head noise).",
        "",
        "| setting | noise | variants | head seeds | clips | advantage | clear "
        "| clear and right | p vs interval | data sets |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    epoch_rows = [
        (mode, noise, 4, seeds, units, 0.0)
        for noise, units in ((CALM, 60), (NOISY, 60), (NOISY, 200))
        for mode in ("last", "same", "separate")
        for seeds in (3,)
    ] + [
        (mode, NOISY, variants, seeds, 60, 0.0)
        for variants, seeds in ((4, 1), (2, 1), (2, 3))
        for mode in ("last", "same")
    ] + [
        (mode, NOISY, 4, 3, 200, 10.0) for mode in ("last", "same", "separate")
    ]
    for mode, noise, n_variants, seeds, units, advantage in epoch_rows:
        names = VARIANTS[:n_variants]
        shifts = {names[-1]: noise.shift_for(advantage)} if advantage else None

        def make(rng, mode=mode, noise=noise, seeds=seeds, units=units, shifts=shifts,
                 names=names):
            parts, _ = epoch_parts(rng, mode, units, units, seeds, noise, names, shifts)
            return parts, (names[-1] if shifts else None)

        result = verdicts(make, n, b, "holm", EPOCH_BASE, epoch_selected=mode == "same")
        table.add(
            [EPOCH_MODES[mode], noise.name, str(n_variants), str(seeds), str(units),
             f"+{advantage:.0f} points" if advantage else "none (all equal)",
             rate_text(result["clear"], n),
             rate_text(result["right"], n) if advantage else "—",
             agreement_text(result), str(n)],
            {"section": "epoch_verdicts", "setting": EPOCH_MODES[mode], "mode": mode,
             "noise": noise.name, "variants": n_variants, "head_seeds": seeds, "units": units,
             "advantage_points": advantage, "resamples": b, **result,
             "clear_rate": result["clear"] / n, "power": result["right"] / n},
        )


if __name__ == "__main__":
    main()
