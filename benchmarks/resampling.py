"""Benchmark: the block-vectorised paired bootstrap vs the straightforward per-resample loop.

Run: .venv/bin/python benchmarks/resampling.py [--resamples 5000] [--units 4000] [--repeats 3]
Writes benchmarks/results/resampling.md. The loop draws from the same two random streams in
the same order (one resample's units, then its runs), so its replicates must equal ours; the
table says whether they do. Timings are medians of interleaved runs (loop, ours, loop, ...).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toc.report.resampling import ACCURACY, MICRO_F1, UnitParts, paired_bootstrap  # noqa: E402

VARIANTS = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")


def loop_bootstrap(
    parts: UnitParts, n_resamples: int, seed: int, resample_runs: bool
) -> np.ndarray:
    """One resample at a time: index the units, sum, compute the metric, pick runs."""
    v, r, u, _ = parts.parts.shape
    unit_stream, run_stream = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )
    out = np.empty((n_resamples, v))
    for b in range(n_resamples):
        drawn = unit_stream.integers(0, u, size=u)
        values = parts.metric.from_sums(parts.parts[:, :, drawn, :].sum(axis=2), u)  # [V, R]
        if resample_runs:
            out[b] = values[:, run_stream.integers(0, r, size=r)].mean(axis=1)
        else:
            out[b] = values.mean(axis=1)
    return out


def make_parts(kind: str, units: int, runs: int, seed: int = 0) -> UnitParts:
    rng = np.random.default_rng(seed)
    if kind == "accuracy":
        table = {
            v: {r: (rng.random(units) < 0.7).astype(float) for r in range(runs)} for v in VARIANTS
        }
        return UnitParts.from_runs(table, ACCURACY)
    table = {}
    for v in VARIANTS:
        table[v] = {}
        for r in range(runs):
            tp = rng.integers(0, 5, units)
            table[v][r] = np.stack(
                [tp, tp + rng.integers(0, 3, units), tp + rng.integers(0, 3, units)], axis=1
            )
    return UnitParts.from_runs(table, MICRO_F1, unit="video")


def machine_info() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"- CPU: {cpu}; logical CPUs visible: {os.cpu_count()}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.system()} {platform.release()}",
        f"- Load average at start (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        " (the machine is shared; timings are medians of interleaved runs)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=5000)
    parser.add_argument("--units", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "resampling.md"
    )
    args = parser.parse_args()
    lines = [
        "# Paired bootstrap benchmark",
        "",
        "Produced by `benchmarks/resampling.py`.",
        "",
        "## Machine",
        "",
        *machine_info(),
        "",
        f"## {args.resamples} resamples x {args.units} units x {len(VARIANTS)} variants",
        "",
        "| metric | runs | loop (median) | ours (median) | speed-up | max abs difference "
        "| repeats |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, runs in (("accuracy", 1), ("accuracy", 3), ("micro-F1", 1), ("micro-F1", 3)):
        parts = make_parts("accuracy" if kind == "accuracy" else "f1", args.units, runs)
        resample_runs = runs > 1
        loop_times, our_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            reference = loop_bootstrap(parts, args.resamples, 0, resample_runs)
            loop_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            ours = paired_bootstrap(
                parts, n_resamples=args.resamples, seed=0, resample_runs=resample_runs
            )
            our_times.append(time.perf_counter() - start)
        loop_t, our_t = statistics.median(loop_times), statistics.median(our_times)
        diff = float(np.max(np.abs(reference - ours.replicates)))
        lines.append(
            f"| {kind} | {runs} | {loop_t:.2f} s | {our_t:.2f} s | {loop_t / our_t:.1f}x "
            f"| {diff:.1e} | {args.repeats} |"
        )
        print(lines[-1], file=sys.stderr)
    lines += [
        "",
        "Same replicates as the loop up to float rounding of the mean over the drawn runs (exactly",
        "the same with one run: the parts are integers, so their sums are exact).",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
