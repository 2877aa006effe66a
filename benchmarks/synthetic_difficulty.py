"""How hard is the synthetic corpus, and what does building it cost? (docs/synthetic-data.md)

Run: .venv/bin/python benchmarks/synthetic_difficulty.py [--seed 0]
Writes benchmarks/results/synthetic_difficulty.md and synthetic_difficulty.jsonl beside it.

1. Cost: `toc.corpora.synthetic.synthesize` at scale 1.0 and 0.1 (files, bytes — the retrieval
   set's share named —, process CPU time and wall time) in a temporary folder.
2. Difficulty, on the scale-1.0 corpus: clip features are the mean over the clip's annotated
   event seconds (AVE's event mask), video also averaged over the 7×7 grid. Heads are trained on
   the AVE train rows and tested on the val + test rows (chance 1/28):
   * a within-modality linear probe per modality (ridge classifier: z-scored inputs with the
     training rows' statistics, one-hot targets, ridge 1.0, argmax);
   * the audio probe applied directly to video (its first 128 pooled channels, z-scored with the
     video training rows' own statistics): does anything transfer without learning pairs?
   * a linear CCA (32 components, ridge 0.1: `benchmarks/cca_baseline.py`'s estimator) fitted on
     the unlabelled audio–video second pairs of the pretraining clips, then a ridge head or the
     prototype head on one modality's projections, tested on the other's (V→A, A→V).
3. The video values docs/synthetic-data.md describes: over every element of the AVE video
   features (all clips, seconds, grid cells, channels), the share that is exactly 0, the mean of
   the positive ones and the maximum.
Deterministic for a seed: the corpus is, and nothing else draws random numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cca_baseline import fit_cca, prototype_accuracy  # noqa: E402
from benchmarks.provenance import header, python_argv, write_results  # noqa: E402
from toc.corpora.synthetic import RETRIEVAL_PAIRS, VALOR_ANNOTATIONS, synthesize  # noqa: E402
from toc.data.layout import resolve_paths  # noqa: E402
from toc.data.vggsound import load_pretrain  # noqa: E402
from toc.eval.tasks import load_task  # noqa: E402

SCRIPT = "benchmarks/synthetic_difficulty.py"
CODE = ("toc/corpora/synthetic.py", "benchmarks/cca_baseline.py", SCRIPT)
PROBE_RIDGE = 1.0
AUDIO_CHANNELS = 128


def build(root: Path, scale: float, seed: int) -> dict:
    """Write the corpus; count its files and bytes (the retrieval set's apart) and its cost."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = synthesize(root, scale=scale, seed=seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    retrieval_tops = {PurePosixPath(RETRIEVAL_PAIRS).parts[0], PurePosixPath(VALOR_ANNOTATIONS).parts[0]}
    files = bytes_ = retrieval_files = retrieval_bytes = 0
    for folder, _, names in os.walk(root):
        top = Path(folder).relative_to(root).parts[:1]
        for name in names:
            size = (Path(folder) / name).stat().st_size
            files, bytes_ = files + 1, bytes_ + size
            if top and top[0] in retrieval_tops:
                retrieval_files, retrieval_bytes = retrieval_files + 1, retrieval_bytes + size
    return {
        "scale": scale, "seed": seed, "files": files, "bytes": bytes_,
        "retrieval_files": retrieval_files, "retrieval_bytes": retrieval_bytes,
        "summary_files": summary.n_files, "summary_bytes": summary.n_bytes,
        "cpu_seconds": cpu, "wall_seconds": wall,
    }


def event_means(feature_set, reduce) -> np.ndarray:
    """[N, D] per clip: the mean of `reduce`d features over its event seconds."""
    rows = []
    for start in range(0, len(feature_set), 50):
        index = np.arange(start, min(start + 50, len(feature_set)))
        features = reduce(feature_set.read(index))  # [b, T, D]
        mask = feature_set.event_mask[index].astype(np.float64)  # [b, T]
        rows.append((features * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True))
    return np.concatenate(rows)


class RidgeProbe:
    """z-scored inputs, ridge regression on one-hot targets, argmax."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: int):
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-8
        z = (x - self.mean) / self.scale
        targets = np.eye(classes)[y]
        self.weights = np.linalg.solve(z.T @ z + PROBE_RIDGE * np.eye(z.shape[1]), z.T @ targets)
        self.bias = targets.mean(axis=0) - z.mean(axis=0) @ self.weights

    def accuracy(self, x: np.ndarray, y: np.ndarray, mean=None, scale=None) -> float:
        """% right; `mean` / `scale` z-score x with other statistics than the training rows'."""
        mean = self.mean if mean is None else mean
        scale = self.scale if scale is None else scale
        predicted = (((x - mean) / scale) @ self.weights + self.bias).argmax(axis=1)
        return 100.0 * float(np.mean(predicted == y))


def video_values(video_set) -> dict:
    """Share of exact zeros, mean of the positive values and the maximum over the whole set."""
    zeros = elements = positives = 0
    positive_sum, largest = 0.0, -np.inf
    for start in range(0, len(video_set), 50):
        values = video_set.read(np.arange(start, min(start + 50, len(video_set))))
        zeros += int(np.count_nonzero(values == 0.0))
        elements += values.size
        positive = values[values > 0.0]
        positives += positive.size
        positive_sum += float(positive.sum())
        largest = max(largest, float(values.max()))
    return {
        "video_zero_share": zeros / elements, "video_positive_mean": positive_sum / positives,
        "video_max": largest, "video_elements": elements,
    }


def difficulty(root: Path) -> dict:
    ave = load_task("ave", data_root=root)
    audio_set, video_set = ave.sets["ave/audio"], ave.sets["ave/video"]
    audio = event_means(audio_set, lambda a: a)
    video = event_means(video_set, lambda v: v.mean(axis=(2, 3)))
    labels = audio_set.labels
    splits = ave.predefined_splits["ave/audio"]
    train = splits["train"]
    test = np.concatenate([splits["val"], splits["test"]])
    classes = len(ave.class_names)

    pretrain = load_pretrain(resolve_paths("pretrain", data_root=root))
    audio_seconds, video_seconds = [], []
    for start in range(0, len(pretrain), 50):
        batch = pretrain.read(np.arange(start, min(start + 50, len(pretrain))))
        audio_seconds.append(batch["audio"].reshape(-1, batch["audio"].shape[-1]))
        pooled = batch["video"].mean(axis=(2, 3))
        video_seconds.append(pooled.reshape(-1, pooled.shape[-1]))
    cca = fit_cca(np.concatenate(audio_seconds), np.concatenate(video_seconds))
    audio_cca, video_cca = cca.project_x(audio), cca.project_y(video)

    audio_probe = RidgeProbe(audio[train], labels[train], classes)
    video_probe = RidgeProbe(video[train], labels[train], classes)
    video_head = video[:, :AUDIO_CHANNELS]
    direct = audio_probe.accuracy(
        video_head[test], labels[test],
        mean=video_head[train].mean(axis=0), scale=video_head[train].std(axis=0) + 1e-8,
    )
    return {
        "train_rows": int(train.size), "test_rows": int(test.size), "classes": classes,
        "chance": 100.0 / classes,
        "probe_audio": audio_probe.accuracy(audio[test], labels[test]),
        "probe_video": video_probe.accuracy(video[test], labels[test]),
        "direct_audio_probe_on_video": direct,
        "cca_ridge_v2a": RidgeProbe(video_cca[train], labels[train], classes).accuracy(
            audio_cca[test], labels[test]),
        "cca_ridge_a2v": RidgeProbe(audio_cca[train], labels[train], classes).accuracy(
            video_cca[test], labels[test]),
        "cca_prototype_v2a": prototype_accuracy(video_cca[train], labels[train], audio_cca[test],
                                                labels[test]),
        "cca_prototype_a2v": prototype_accuracy(audio_cca[train], labels[train], video_cca[test],
                                                labels[test]),
        "cca_top_correlation": float(cca.correlations[0]),
        "pretrain_seconds": int(sum(len(a) for a in audio_seconds)),
        **video_values(video_set),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "synthetic_difficulty.md"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    raw = args.output.with_suffix(".jsonl")
    lines = [
        "# The synthetic corpus: what building it costs and how hard it is",
        "",
        *header(SCRIPT, python_argv(), f"corpus seed {args.seed} (nothing else is random)", CODE),
        f"- Raw rows: [{raw.name}]({raw.name})",
        "",
    ]
    records = []
    with tempfile.TemporaryDirectory(prefix="toc-synth-") as work:
        costs = {}
        for scale in (1.0, 0.1):
            costs[scale] = build(Path(work) / f"scale-{scale}", scale, args.seed)
            records.append({"kind": "build", **costs[scale]})
            print(costs[scale], file=sys.stderr, flush=True)
        result = difficulty(Path(work) / "scale-1.0")
    records.append({"kind": "difficulty", "scale": 1.0, "seed": args.seed, **result})
    lines += [
        "## Building it (`toc synth`, in a temporary folder)",
        "",
        "| scale | files | MB | of which the retrieval set | CPU s | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for scale, cost in costs.items():
        lines.append(
            f"| {scale:g} | {cost['files']:,} | {cost['bytes'] / 1e6:.0f} "
            f"| {cost['retrieval_files']} files, {cost['retrieval_bytes'] / 1e6:.1f} MB "
            f"| {cost['cpu_seconds']:.1f} | {cost['wall_seconds']:.1f} |"
        )
    lines += [
        "",
        "CPU time is the process's (all threads: the writer deflates on 2 threads); wall time "
        "depends on what else the machine ran.",
        "",
        f"## How hard is it? (scale 1.0, seed {args.seed})",
        "",
        f"Clip features: the mean over the annotated event seconds, video also over the 7×7 grid. "
        f"Trained on the {result['train_rows']} AVE train rows, tested on the "
        f"{result['test_rows']} val + test rows; {result['classes']} classes, chance "
        f"{result['chance']:.1f}%.",
        "",
        "| measurement | accuracy |",
        "|---|---|",
        f"| audio → audio, linear (ridge) probe | {result['probe_audio']:.1f}% |",
        f"| video → video, linear (ridge) probe | {result['probe_video']:.1f}% |",
        f"| the audio probe applied directly to video (first {AUDIO_CHANNELS} pooled channels) "
        f"| {result['direct_audio_probe_on_video']:.1f}% |",
        "| linear CCA (32 dims) fitted on the *unlabelled* pretraining audio–video second pairs "
        f"({result['pretrain_seconds']:,}), then V→A / A→V, ridge head "
        f"| {result['cca_ridge_v2a']:.1f}% / {result['cca_ridge_a2v']:.1f}% |",
        "| the same CCA, prototype head, V→A / A→V "
        f"| {result['cca_prototype_v2a']:.1f}% / {result['cca_prototype_a2v']:.1f}% |",
        "",
        f"Top canonical correlation: {result['cca_top_correlation']:.3f}. Ridge probes: ridge "
        f"{PROBE_RIDGE}; the CCA: 32 components, ridge 0.1.",
        "",
        "## The video values (AVE video, every element)",
        "",
        f"{result['video_elements']:,} values: {100 * result['video_zero_share']:.1f}% exactly 0; "
        f"the positive ones have mean {result['video_positive_mean']:.2f}; the maximum is "
        f"{result['video_max']:.2f}.",
        "",
        f"Run time: {time.perf_counter() - started:.0f} s (wall).",
        "",
    ]
    write_results(args.output, lines, records)
    print(f"wrote {args.output} and {raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
