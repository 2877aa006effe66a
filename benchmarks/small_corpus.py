"""Small-corpus ablation (issue 6): the published recipe, each remedy alone, all remedies, and a
linear CCA baseline, on the spoken-digits and the synthetic corpus.

Every run is `toc train` (DCID, `--levels 1`) under one fixed budget — the same model sizes,
batch and epochs for every recipe, so only the remedies differ — followed by `toc eval ave`
(strict protocol, prototype and linear heads, both directions). Codebook health comes from the
trainer's own last-epoch diagnostics (metrics.jsonl). Runs are independent processes, `--jobs`
at a time with one torch thread each; finished runs are kept under --work and skipped when the
script is run again, so an interrupted ablation continues where it stopped.

    .venv/bin/python benchmarks/small_corpus.py [--seeds 0 1 2] [--epochs 6] [--jobs 2]

Needs espeak-ng and scikit-learn for the spoken-digits corpus and the CCA baseline
(`pip install -e '.[corpus]'`). Writes benchmarks/results/small_corpus.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TOC = [sys.executable, "-m", "cli"]


@dataclass(frozen=True)
class Recipe:
    name: str
    flags: tuple[str, ...]


RECIPES = (
    Recipe("published (`--recipe reference`)", ("--recipe", "reference")),
    Recipe("+ standardised inputs", ("--recipe", "reference", "--standardize-inputs")),
    Recipe("+ k-means codebook init", ("--recipe", "reference", "--codebook-init", "kmeans")),
    Recipe("+ reset patience one epoch", ("--recipe", "reference", "--reset-patience", "auto")),
    Recipe("+ consistent EMA counts", ("--recipe", "reference", "--ema-consistent")),
    Recipe("+ InfoNCE alignment", ("--recipe", "reference", "--align-weight", "1.0")),
    Recipe("+ CLUB/commitment warm-up", ("--recipe", "reference", "--warmup-steps", "100")),
    Recipe("all remedies (`--recipe small-corpus`, the default)", ("--recipe", "small-corpus")),
)

# "All but X": the default with one remedy switched off — which remedies the combination needs.
LEAVE_ONE_OUT = (
    Recipe("all but standardised inputs", ("--recipe", "small-corpus", "--no-standardize-inputs")),
    Recipe("all but k-means init", ("--recipe", "small-corpus", "--codebook-init", "uniform")),
    Recipe("all but reset patience", ("--recipe", "small-corpus", "--reset-patience", "reference")),
    Recipe("all but consistent EMA", ("--recipe", "small-corpus", "--no-ema-consistent")),
    Recipe("all but InfoNCE alignment", ("--recipe", "small-corpus", "--align-weight", "0")),
    Recipe("all but warm-up", ("--recipe", "small-corpus", "--warmup-steps", "0")),
)

CORPORA = {
    # name: (build command after DIR, AVE chance in %)
    "spoken-digits": (["synth-spoken-digits"], ["--seed", "0"], 10.0),
    "synthetic": (["synth"], ["--seed", "0", "--scale", "1.0"], 100.0 / 28),
}


def _slug(recipe: Recipe) -> str:
    flags = [f for f in recipe.flags if f not in ("--recipe",)]
    return "-".join(f.lstrip("-").replace(".", "") for f in flags)


def _run(command: list[str], log: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "w") as err:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, env=env, cwd=REPO, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed; see {log}")
    return done.stdout


def build_corpus(work: Path, name: str) -> Path:
    root = work / name
    if (root / ".built").exists():
        return root
    command, options, _ = CORPORA[name]
    out = _run([*TOC, *command, str(root), *options, "--force"], work / f"{name}.build.log", 2)
    (root / ".built").write_text(out)
    return root


def run_one(work: Path, corpus: str, root: Path, recipe: Recipe, seed: int, args) -> dict:
    run = work / "runs" / f"{corpus}-{_slug(recipe)}-{seed}"
    result_file = run.with_suffix(".json")
    if result_file.exists():
        return json.loads(result_file.read_text())
    run.parent.mkdir(parents=True, exist_ok=True)
    sizes = [
        "--levels", "1", "--epochs", str(args.epochs), "--batch-size", "16", "--n-embeddings", "400",
        "--audio-output-dim", "64", "--video-output-dim", "64", "--text-output-dim", "64",
        "--diagnostics-clips", "512",
    ]
    start = time.perf_counter()
    _run([*TOC, "train", "--data-root", str(root), *sizes, *recipe.flags, "--seed", str(seed),
          "-o", str(run), "--force"], run.with_suffix(".train.log"), args.threads)  # fmt: skip
    train_seconds = time.perf_counter() - start
    out = _run([*TOC, "eval", "ave", "--checkpoint", str(run / "last.pt"), "--data-root", str(root),
                "--variant", "dcid", "--head", "prototype,linear", "--direction", "both", "--seeds", "0",
                "--head-threads", "1"], run.with_suffix(".eval.log"), args.threads)  # fmt: skip
    metrics = {}
    for line in out.splitlines():
        record = json.loads(line)
        metrics[f"{record['direction']}_{record['head']}"] = record["metrics"]["accuracy"]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [e for e in epochs if e.get("kind") == "epoch"][-1]["diagnostics"][0]
    result = {
        "corpus": corpus, "recipe": recipe.name, "flags": list(recipe.flags), "seed": seed,
        "train_seconds": train_seconds, "transfer": metrics,
        "codes_used": last["codes_used"], "codes_used_common": last["pairs"]["audio-video"]["codes_shared"],
        "perplexity_all": last["perplexity_all"],
        "agreement": {pair: m["agreement"] for pair, m in last["pairs"].items() if m["agreement"] is not None},
        "agreement_mean": last["pairs"]["audio-video"]["agreement"],  # audio-video only (never text)
        "kappa": last["pairs"]["audio-video"]["kappa"], "centroid_gap": last["centroid_gap"],
        "probe_accuracy": last["probe_accuracy"], "probe_chance": last["probe_chance"],
    }
    result_file.write_text(json.dumps(result, indent=1, sort_keys=True))
    for heavy in run.glob("epoch-*.pt"):  # keep last.pt only
        heavy.unlink()
    return result


def cca_rows(root: Path) -> dict[str, float]:
    import cca_baseline

    return cca_baseline.evaluate(cca_baseline.load_corpus(root), seed=0)


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def render(results: list[dict], cca: dict[str, dict], args, seconds: float) -> str:
    lines = [
        "# Small-corpus ablation: published recipe, each remedy alone, all but one, all, linear CCA",
        "",
        "Generated by `benchmarks/small_corpus.py "
        f"--seeds {' '.join(map(str, args.seeds))} --epochs {args.epochs} --jobs {args.jobs}"
        + (f" --leave-one-out {' '.join(args.leave_one_out)}" if args.leave_one_out else "")
        + "`; do not edit by hand. "
        f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads per run {args.threads}; "
        f"{len(results)} runs, {sum(r['train_seconds'] for r in results) / 60:.0f} min of training in total "
        f"({args.jobs} at a time, so the per-run times below include contention).",
        "",
        "**Fixed budget for every recipe**: DCID (`toc train --levels 1`), 400 codes × 256 channels, "
        f"specific widths 64, batch 16, {args.epochs} epochs, diagnostics on 512 clips; only the remedies differ. "
        "Rows \"+ X\" are the published recipe with that one remedy on; rows \"all but X\" are the "
        "default with that one remedy off. "
        "Evaluation: `toc eval ave --variant dcid`, strict protocol (test split; epoch selection of the "
        "linear head on val), head seed 0, 50 linear-head epochs. v2a = train on video codes, test on audio. "
        "Spread (mean ± sample std) is over training seeds " + ", ".join(map(str, args.seeds)) +
        "; one corpus per kind (seed 0). Accuracy in %. Codes used, agreement and probe are the "
        "trainer's last-epoch diagnostics (probe: ridge classifier on clip-averaged continuous "
        "semantic features, held-out 30% of the diagnostic clips).",
        "",
    ]
    for corpus in CORPORA:
        rows = [r for r in results if r["corpus"] == corpus]
        if not rows:
            continue
        chance = CORPORA[corpus][2]
        lines += [
            f"## {corpus} corpus (AVE chance {chance:.1f}%)",
            "",
            "| recipe | v2a prototype | v2a linear | a2v prototype | a2v linear | codes used audio / video | "
            "in common | a–v agreement | probe audio / video | train s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for recipe in (*RECIPES, *LEAVE_ONE_OUT):
            rs = [r for r in rows if r["recipe"] == recipe.name]
            if not rs:
                continue

            def col(key: str, rs=rs) -> str:
                return _ms([r["transfer"][key] for r in rs])

            used = f"{_ms([r['codes_used']['audio'] for r in rs])} / {_ms([r['codes_used']['video'] for r in rs])}"
            common = _ms([r["codes_used_common"] for r in rs])
            agree = _ms([100 * r["agreement"]["audio-video"] for r in rs])
            probe = " / ".join(
                _ms([100 * r["probe_accuracy"].get(m, float("nan")) for r in rs]) for m in ("audio", "video")
            )
            seconds_ = _ms([r["train_seconds"] for r in rs])
            lines.append(
                f"| {recipe.name} | {col('v2a_prototype')} | {col('v2a_linear')} | {col('a2v_prototype')} | "
                f"{col('a2v_linear')} | {used} | {common} | {agree}% | {probe}% | {seconds_} |"
            )
        if corpus in cca:
            c = cca[corpus]
            lines.append(
                f"| linear CCA-32 on the same unlabelled pairs (continuous, for reference) | "
                f"{c['cca_proto_v2a']:.1f} | {c['cca_linear_v2a']:.1f} | {c['cca_proto_a2v']:.1f} | "
                f"{c['cca_linear_a2v']:.1f} | – | – | – | raw {c['probe_audio_ave']:.1f} / {c['probe_video_ave']:.1f}% | – |"
            )
        lines.append("")
    lines += [
        "CCA: `benchmarks/cca_baseline.py`'s estimator (32 components, ridge 0.1, fitted on the "
        "pretraining clips' audio–video segment pairs without labels), then the same two heads "
        "(prototype; logistic regression) on clip means; deterministic, so no spread. Its \"probe\" "
        "column is the raw features' linear probe on the AVE splits.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run [default: 1 if jobs > 1]")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--leave-one-out", nargs="*", default=[], choices=list(CORPORA), metavar="CORPUS",
                        help="also run 'all but X' for every remedy on these corpora")
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-small-corpus-ablation"))
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "small_corpus.md")
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    roots = {name: build_corpus(args.work, name) for name in args.corpora}
    jobs = [(c, roots[c], r, s) for c in args.corpora for s in args.seeds for r in RECIPES]
    jobs += [(c, roots[c], r, s) for c in args.leave_one_out if c in roots for s in args.seeds for r in LEAVE_ONE_OUT]
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, args.work, c, root, r, s, args) for c, root, r, s in jobs]
        for future in futures:
            result = future.result()
            results.append(result)
            t = result["transfer"]
            print(f"{result['corpus']} {result['recipe'][:30]:30s} seed {result['seed']}: "
                  f"v2a {t['v2a_prototype']:.1f}/{t['v2a_linear']:.1f} a2v {t['a2v_prototype']:.1f}/{t['a2v_linear']:.1f} "
                  f"codes {result['codes_used']} agree {result['agreement_mean']:.1%}", file=sys.stderr, flush=True)  # fmt: skip
    cca = {name: cca_rows(roots[name]) for name in args.corpora}
    args.output.write_text(render(results, cca, args, time.perf_counter() - start))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
