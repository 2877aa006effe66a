"""Own data with every default: `toc synth --layout paired` (768-d audio, 512-d clip-level video,
no time axis, no text, 10 classes, 400 clips), then exactly `toc train --data-root D -o R` and
`toc eval paired --checkpoint R/last.pt --data-root D`, as a user would type them.

Per corpus seed: the training wall time, the last epoch's diagnostics, the default evaluation
(linear head, head seed 0) and — for the spread a single head seed hides — both heads over head
seeds 0, 1, 2; next to a linear CCA (32 components, fitted on the same unlabelled pretraining
pairs: every clip outside the test split) with the same prototype / logistic heads trained on
the train split of one modality and tested on the test split of the other. Writes
benchmarks/results/own_data.md (mean ± sample std over corpus seeds; its header names the
command, seeds, machine and date) and each corpus seed's numbers, one JSON object a line, to
benchmarks/results/own_data.jsonl.

    .venv/bin/python benchmarks/own_data.py [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.cca_baseline import fit_cca, linear_accuracy, prototype_accuracy  # noqa: E402
from benchmarks.provenance import header, python_argv  # noqa: E402
from cmg_base.files import write_text_atomic  # noqa: E402
from hdcid.recipes import DEFAULT_RECIPE  # noqa: E402
from toc.data.paired import load_paired  # noqa: E402

DIRECTIONS = ("v2a", "a2v")


def toc(args: list[str], threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, check=True, env=env, cwd=REPO)


def results(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def cca_scores(data: Path) -> dict[str, float]:
    corpus = load_paired(data / "paired.h5")
    audio = corpus.read_modality("audio", np.arange(len(corpus))).mean(axis=1)
    video = corpus.read_modality("video", np.arange(len(corpus))).mean(axis=1)
    pretrain, splits = corpus.pretraining_rows(), corpus.split_rows()
    cca = fit_cca(audio[pretrain], video[pretrain])
    a, v, y = cca.project_x(audio), cca.project_y(video), corpus.labels
    train, test = splits["train"], splits["test"]
    out = {}
    for direction, (source, target) in (("v2a", (v, a)), ("a2v", (a, v))):
        out[f"cca prototype {direction}"] = prototype_accuracy(source[train], y[train], target[test], y[test])
        out[f"cca linear {direction}"] = linear_accuracy(source[train], y[train], target[test], y[test], seed=0)
    return out


def one_corpus(seed: int, threads: int, folder: Path) -> dict:
    data, run = folder / f"data-{seed}", folder / f"run-{seed}"
    toc(["synth", str(data), "--layout", "paired", "--seed", str(seed)], threads)
    start = time.perf_counter()
    trained = toc(["train", "--data-root", str(data), "-o", str(run)], threads)
    train_seconds = time.perf_counter() - start
    for path in run.glob("epoch-*.pt"):
        path.unlink()  # 19 epochs x ~170 MB
    summary = json.loads(trained.stdout)
    last_epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"kind": "epoch"' in line][-1]
    default = results(toc(["eval", "paired", "--checkpoint", str(run / "last.pt"), "--data-root", str(data)], threads).stdout)
    spread = results(toc([
        "eval", "paired", "--checkpoint", str(run / "last.pt"), "--data-root", str(data),
        "--head", "linear,prototype", "--seeds", "0,1,2",
    ], threads).stdout)
    scores = {f"default (linear, head seed 0) {r['direction']}": r["metrics"]["accuracy"] for r in default}
    for head in ("linear", "prototype"):
        for direction in DIRECTIONS:
            values = [r["metrics"]["accuracy"] for r in spread if r["head"] == head and r["direction"] == direction]
            scores[f"{head}, mean of head seeds 0-2, {direction}"] = statistics.mean(values)
            scores[f"{head}, head-seed std, {direction}"] = statistics.stdev(values)
    scores.update(cca_scores(data))
    diagnostics = {
        f"level {d['level'] + 1} codes used (audio / video)": f"{d['codes_used']['audio']} / {d['codes_used']['video']}"
        for d in last_epoch["diagnostics"]
    }
    diagnostics.update({
        f"level {d['level'] + 1} audio-video agreement (%)": f"{100 * d['pairs']['audio-video']['agreement']:.1f}"
        for d in last_epoch["diagnostics"]
    })
    return {
        "scores": scores, "diagnostics": diagnostics, "train_seconds": train_seconds,
        "steps": summary["total_step"], "epochs": summary["epochs"],
    }


# The files whose behaviour the numbers measure (named in the header when changed, uncommitted).
CODE = ("benchmarks/own_data.py", "benchmarks/cca_baseline.py", "hdcid", "toc", "cmg_base", "cli")


def render(per_seed: dict[int, dict], args: argparse.Namespace, seconds: float, provenance: list[str]) -> str:
    seeds = sorted(per_seed)
    head = "| measure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |"
    lines = [
        "# Own data with every default (paired layout, T = 1, no grid, no text)",
        "",
        "Generated by `benchmarks/own_data.py`; do not edit by hand. Raw numbers per corpus seed: "
        "[own_data.jsonl](own_data.jsonl).",
        "",
        *provenance,
        "",
        "Per corpus seed: `toc synth D --layout paired --seed S` (400 clips, 10 classes: chance 10%; 768-d audio, "
        "512-d clip-level video, stored without a time axis; splits 280 / 60 / 60), then exactly "
        f"`toc train --data-root D -o R` (the {DEFAULT_RECIPE} recipe: H-DCID, 400 codes; pretraining on the 340 clips "
        "outside the test split) and `toc eval paired --checkpoint R/last.pt --data-root D` (linear head, head seed 0, "
        "strict protocol on the file's splits: heads train on the train split, the other modality's test split is "
        "evaluated). The spread rows re-evaluate the same checkpoint with both heads over head seeds 0-2. CCA: "
        "`benchmarks/cca_baseline.py`'s linear CCA (32 components, ridge 0.1) fitted on the same unlabelled "
        "pretraining pairs, with a cosine-prototype and a logistic-regression head. Accuracy in %.",
        "",
        head,
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for name in per_seed[seeds[0]]["scores"]:
        values = [per_seed[s]["scores"][name] for s in seeds]
        spread = f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {spread} |")
    for name in per_seed[seeds[0]]["diagnostics"]:
        lines.append(f"| last epoch: {name} | " + " | ".join(per_seed[s]["diagnostics"][name] for s in seeds) + " | |")
    times = [per_seed[s]["train_seconds"] / 60 for s in seeds]
    lines.append("| `toc train` wall time (min) | " + " | ".join(f"{t:.1f}" for t in times) + f" | {statistics.mean(times):.1f} |")
    lines.append("| optimizer steps / epochs | " + " | ".join(f"{per_seed[s]['steps']} / {per_seed[s]['epochs']}" for s in seeds) + " | |")
    lines += [
        "",
        f"{args.threads} torch thread(s) per command (OMP_NUM_THREADS); total wall time {seconds / 60:.0f} min.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "own_data.md")
    parser.add_argument("--raw", type=Path, default=REPO / "benchmarks" / "results" / "own_data.jsonl",
                        help="each corpus seed's numbers, one JSON object a line")
    args = parser.parse_args()
    provenance = header("benchmarks/own_data.py", python_argv(), " ".join(map(str, args.seeds))
                        + " (corpus seeds; training seed 43, head seeds 0-2: the defaults)", CODE)
    start = time.perf_counter()
    per_seed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            per_seed[seed] = one_corpus(seed, args.threads, Path(tmp))
            print(json.dumps({"seed": seed, **per_seed[seed]}, sort_keys=True), flush=True)
    text = render(per_seed, args, time.perf_counter() - start, provenance)
    write_text_atomic(args.raw, "".join(json.dumps({"seed": s, **per_seed[s]}, sort_keys=True) + "\n"
                                        for s in sorted(per_seed)))
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
