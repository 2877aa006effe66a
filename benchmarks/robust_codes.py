"""Shared code ids beyond the tuning corpus (issue 27): recipes × real-signal corpora of several
kinds × training seeds, with and without text, beside baselines that see the same information.

Run (each corpus is built once under --work; finished runs are reused):

    .venv/bin/python benchmarks/robust_codes.py --corpus words:31 instruments:31 \
        --rows default small-corpus swapped --train-seeds 43 --jobs 2 \
        --confirm vowels:71 --confirm-rows default small-corpus default+swapped-centring \
        --confirm-seeds 43 44 45 --compare default+swapped-centring:default \
        -o benchmarks/results/robust_codes.md

`--corpus` names the corpora the settings are chosen on (every row, --train-seeds); `--confirm`
a corpus built after the choice (its rows, --confirm-seeds), reported in its own section with
the uncertainty over its test clips (unified_codes.clip_tables: a Wilson interval per run, a
paired bootstrap over clips and training runs per row, and the `--compare` differences).

Writes the markdown table (with its provenance header) to -o and the raw rows beside it
(.jsonl). Every run is `toc train` with every default plus the row's flags (benchmarks/
unified_codes.py's ROWS, one torch thread), then `toc eval ave --variant hdcid,dcid --head
codes,prototype,linear` and `toc health last.pt --task ave` on the corpus' held-out AVE split.
A row whose name starts with `av-only` trains on the same pretraining pairs without their
category prompts. Baselines, fitted on the same pretraining seconds
(benchmarks/label_aware_baseline.py): an unlabelled linear CCA with k-means ids (sees what the
no-text rows see), and a category classifier per modality used as code ids (sees the prompts'
labels, what the text rows see).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import label_aware_baseline as baselines  # noqa: E402
import provenance  # noqa: E402
import unified_codes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def baseline_rows(spec: str, root: Path, kmeans_seeds: list[int]) -> list[dict]:
    """The unlabelled CCA + k-means and the category classifier on one corpus, as raw rows."""
    corpus = baselines.load_seconds_corpus(root)
    rows = []
    for name, runs in (
        ("unlabelled CCA + k-means (no labels)", baselines.unlabelled_cca_measures(corpus, kmeans_seeds)),
        ("category classifier as codes (the prompts' labels)", baselines.classifier_measures(corpus)),
    ):
        for seed, m in zip(kmeans_seeds if len(runs) > 1 else [None], runs, strict=True):
            rows.append({"corpus": spec, "baseline": name, "kmeans_seed": seed, **vars(m)})
    return rows


def baseline_table(rows: list[dict]) -> list[str]:
    lines = ["| corpus | baseline | κ | NMI | codes a / v / shared | code-id v2a / a2v | prototype v2a / a2v |",
             "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["corpus"], r["baseline"]), []).append(r)
    cell = unified_codes._cell
    for (spec, name), runs in groups.items():
        def col(key, digits=1, scale=1.0, runs=runs):
            values = [None if r[key] is None else r[key] * scale for r in runs]
            return cell(values, digits)
        lines.append(
            f"| {spec} | {name} | {col('kappa', 2)} | {col('nmi', 2)} | "
            f"{col('codes_audio', 0)} / {col('codes_video', 0)} / {col('codes_shared', 0)} | "
            f"{col('code_v2a')} / {col('code_a2v')} | {col('proto_v2a')} / {col('proto_a2v')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", required=True, help="KIND:SEED[:CLIPS], KIND one of " + ", ".join(unified_codes.CORPUS_KINDS))
    parser.add_argument("--rows", nargs="+", choices=sorted(unified_codes.ROWS), default=["default", "small-corpus"])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[43, 44, 45])
    parser.add_argument("--confirm", nargs="+", default=[], help="corpora built after the choice, KIND:SEED[:CLIPS]")
    parser.add_argument("--confirm-rows", nargs="+", choices=sorted(unified_codes.ROWS), default=[])
    parser.add_argument("--confirm-seeds", type=int, nargs="+", default=[43, 44, 45])
    parser.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                        help="on the confirmation corpora: the difference of row A and row B on the same clips")
    parser.add_argument("--kmeans-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each one torch thread)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-robust-codes"))
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "robust_codes.md")
    args = parser.parse_args()
    started = time.monotonic()
    header = provenance.header(
        "benchmarks/robust_codes.py", provenance.python_argv(),
        f"corpus seeds {', '.join(args.corpus)} (choice), {', '.join(args.confirm) or 'none'} (confirmation); training "
        f"seeds {args.train_seeds} (choice), {args.confirm_seeds} (confirmation); head seed 0; k-means seeds {args.kmeans_seeds}",
        ["hdcid", "toc/corpora", "benchmarks/unified_codes.py", "benchmarks/robust_codes.py"],
    )
    compare = []
    for pair in args.compare:
        a, sep, b = pair.partition(":")
        if not sep or a not in args.confirm_rows or b not in args.confirm_rows:
            parser.error(f"--compare {pair}: expected ROW_A:ROW_B with rows from --confirm-rows")
        compare.append((a, b))
    specs = [*args.corpus, *args.confirm]
    roots = {spec: unified_codes.corpus(args.work, spec) for spec in specs}  # built before any training
    jobs = [(spec, row, seed) for spec in args.corpus for row in args.rows for seed in args.train_seeds]
    confirm_jobs = [(spec, row, seed) for spec in args.confirm for row in args.confirm_rows for seed in args.confirm_seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: unified_codes.one(args.work, *job), [*jobs, *confirm_jobs]))
    chosen_on, confirmed = results[: len(jobs)], results[len(jobs) :]
    base = [row for spec, root in roots.items() for row in baseline_rows(spec, root, args.kmeans_seeds)]
    minutes = (time.monotonic() - started) / 60
    lines = [
        "# Shared code ids beyond the tuning corpus: recipes on real-signal corpora of several kinds",
        "",
        *header,
        "",
        f"{len(jobs) + len(confirm_jobs)} runs; this invocation took "
        f"{minutes:.0f} minutes wall (runs already finished under --work are reused: each row's training time is "
        "its own). The training runs used the code of the header's commit or, for runs reused from before it, "
        "code that trains identically with the term off. "
        "Cells: mean ± standard deviation over training seeds (one value: one seed). κ, NMI and codes on the AVE "
        "test split's event seconds (level 1); transfer = clip accuracy % on the AVE test split, heads fitted on "
        "the other modality's train split (v2a: fit on video, test on audio); chance 10%.",
        "",
        f"## The corpora the settings were chosen on ({', '.join(args.corpus)}; training seeds {args.train_seeds})",
        "",
        *unified_codes.markdown(chosen_on),
        "",
        *([f"## Confirmation on corpora built after the choice ({', '.join(args.confirm)}; training seeds "
           f"{args.confirm_seeds})", "",
           *unified_codes.markdown(confirmed), "", *unified_codes.clip_tables(confirmed, compare), ""]
          if confirmed else []),
        "## Baselines",
        "",
        "Baselines fitted on the same pretraining seconds (code ids per second; k-means seeds "
        f"{args.kmeans_seeds}):",
        "",
        *baseline_table(base),
    ]
    provenance.write_results(args.output, lines, [*({"kind": "run", "role": "chosen on", **r} for r in chosen_on),
                                                  *({"kind": "run", "role": "confirmation", **r} for r in confirmed),
                                                  *({"kind": "baseline", **b} for b in base)])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
