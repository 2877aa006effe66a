"""How hard are the real-signal corpora? Build time, and within- and cross-modal baselines per kind.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/corpus_difficulty.py [--kinds ...] [--seeds 0 1 2]
Writes benchmarks/results/corpus_difficulty.md and corpus_difficulty.jsonl (one line per corpus).

Each corpus (`toc synth-real --kind K --seed S`, default size: 500 pretraining + 300 AVE clips)
is built and timed, then measured with benchmarks/cca_baseline.py's functions on clip-mean
features: an unlabelled 32-component CCA with a prototype head (fitted on one modality's AVE
train clips, tested on the other's test clips), within-modality z-scored logistic probes (AVE
train → test), nearest-centroid heads, and probes from the pretraining clips to all 300 AVE
clips (whose voices, fonts, timbres and images are held out from pretraining). The classes
should be learnable in each modality (probes well above chance, 10%) without being trivial.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cca_baseline as cca  # noqa: E402
import provenance  # noqa: E402

from toc.corpora.kinds import KINDS, corpus_for  # noqa: E402
from toc.corpora.real_signals import RealCorpusConfig, build_real_corpus, default_ave_clips  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ROWS = (
    ("CCA-32 + prototype v2a", "cca_proto_v2a"),
    ("CCA-32 + prototype a2v", "cca_proto_a2v"),
    ("audio linear probe, AVE train → test", "probe_audio_ave"),
    ("video linear probe, AVE train → test", "probe_video_ave"),
    ("audio nearest centroid, AVE train → test", "centroid_audio_ave"),
    ("video nearest centroid, AVE train → test", "centroid_video_ave"),
    ("audio probe, pretraining → all AVE clips (held-out sources)", "probe_audio_unseen_all"),
    ("video probe, pretraining → all AVE clips (held-out images)", "probe_video_unseen_all"),
)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-8
    return [(x - mean) / std for x in (train, *others)]


def nearest_centroid(train_x, train_y, test_x, test_y) -> float:
    train_x, test_x = _standardise(train_x, test_x)
    classes = np.unique(train_y)
    centroids = np.stack([train_x[train_y == k].mean(0) for k in classes])
    predicted = classes[((test_x[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
    return 100.0 * float((predicted == test_y).mean())


def measure(kind: str, seed: int, clips: int, work: Path) -> dict:
    root = work / f"{kind}-{seed}-{clips}"
    wall, cpu = time.perf_counter(), time.process_time()
    config = RealCorpusConfig(pretrain_clips=clips, ave_clips=default_ave_clips(clips), seed=seed)
    build_real_corpus(corpus_for(kind), root, config, force=True)
    out = {"kind": kind, "seed": seed, "clips": clips,
           "build_wall_s": time.perf_counter() - wall, "build_cpu_s": time.process_time() - cpu}
    corpus = cca.load_corpus(root)
    out.update(cca.evaluate(corpus, seed))
    train, test, labels = corpus.splits["train"], corpus.splits["test"], corpus.ave_labels
    for modality, ave, pretrain in (("audio", corpus.ave_audio, corpus.pretrain_audio),
                                    ("video", corpus.ave_video, corpus.pretrain_video)):
        out[f"centroid_{modality}_ave"] = nearest_centroid(ave[train], labels[train], ave[test], labels[test])
        out[f"probe_{modality}_unseen_all"] = cca.linear_accuracy(pretrain, corpus.pretrain_labels, ave, labels, seed)
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def cell(values: list[float]) -> str:
    per_seed = ",".join(f"{v:.0f}" for v in values)
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} ({per_seed})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-corpus-difficulty"))
    parser.add_argument("--output", type=Path, default=RESULTS / "corpus_difficulty.md")
    args = parser.parse_args()
    header = provenance.header(
        "benchmarks/corpus_difficulty.py", provenance.python_argv(),
        f"corpus seeds {args.seeds} (also the probes' and CCA's seeds)", ["toc/corpora", "benchmarks/cca_baseline.py"],
    )
    records = [measure(kind, seed, args.clips, args.work) for kind in args.kinds for seed in args.seeds]
    by_kind = {kind: [r for r in records if r["kind"] == kind] for kind in args.kinds}
    lines = [
        "# How hard are the real-signal corpora?",
        "",
        *header,
        "",
        f"Accuracy %, mean ± sample standard deviation over corpus seeds (per seed in brackets); {args.clips} "
        "pretraining clips, AVE test split 20% of the AVE clips; chance 10%.",
        "",
        "| measure | " + " | ".join(args.kinds) + " |",
        "|---|" + "---|" * len(args.kinds),
        *(f"| {label} | " + " | ".join(cell([r[key] for r in by_kind[k]]) for k in args.kinds) + " |" for label, key in ROWS),
        "| build time, wall / CPU s | " + " | ".join(
            f"{statistics.mean(r['build_wall_s'] for r in by_kind[k]):.1f} / "
            f"{statistics.mean(r['build_cpu_s'] for r in by_kind[k]):.1f}" for k in args.kinds) + " |",
    ]
    provenance.write_results(args.output, lines, records)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
