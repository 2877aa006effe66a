"""Linear CCA baseline for cross-modal transfer on the spoken-digits corpus (issue 6, item 4).

For each seed: build the spoken-digits corpus (toc.corpora.spoken_digits), fit a linear CCA (32
components) on the *unlabelled* audio–video segment pairs of its pretraining clips, then on the
AVE-layout task set train a head on one modality's train-split clips and test it on the other
modality's test-split clips (v2a: train on video, test on audio; a2v: the reverse). Heads:

* prototype — class prototypes = mean CCA-projected clip features; predict by cosine;
* linear — multinomial logistic regression on the CCA-projected clip features.

A clip's feature is the mean over its 10 segments (audio [128]; video: the spatial mean of the
[7,7,512] map, [512]). Also reported, so one can tell the corpus is learnable at all: the
within-modality linear-probe accuracy of the raw clip features (trained on AVE train, tested on
AVE test, and trained on the pretraining clips' categories, tested on AVE test: unseen speakers
and images). Writes benchmarks/results/cca_baseline.md (mean ± sample std over seeds).

    .venv/bin/python benchmarks/cca_baseline.py [--seeds 0 1 2] [--clips 500] [--ave-clips 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cmg_base.files import write_text_atomic  # noqa: E402
from toc.corpora import spoken_digits as sd  # noqa: E402
from toc.data.layout import resolve_paths  # noqa: E402
from toc.data.vggsound import load_pretrain  # noqa: E402
from toc.eval.tasks import load_task  # noqa: E402

N_COMPONENTS = 32
# Added to the diagonals of the z-scored covariances. 1e-3 overfits the few hundred clips'
# nuisance directions; 0.1 was chosen on the AVE *val* split of the seed-0 corpus (0.1–1.0 alike).
RIDGE = 0.1


@dataclass
class Corpus:
    """Clip-mean features of one built corpus: pretraining (unlabelled pairs) and AVE splits."""

    pretrain_audio_segments: np.ndarray  # [N*10,128]
    pretrain_video_segments: np.ndarray  # [N*10,512]
    pretrain_audio: np.ndarray  # [N,128] clip means
    pretrain_video: np.ndarray  # [N,512]
    pretrain_labels: np.ndarray  # [N] from the csv's category (only for the raw probe)
    ave_audio: np.ndarray  # [M,128]
    ave_video: np.ndarray  # [M,512]
    ave_labels: np.ndarray  # [M] AVE video-level target
    splits: dict[str, np.ndarray]


def _read_batched(read, n: int, reduce, batch: int = 50) -> np.ndarray:
    return np.concatenate([reduce(read(np.arange(i, min(i + batch, n)))) for i in range(0, n, batch)])


def load_corpus(root: Path) -> Corpus:
    """Read a built corpus through the toolkit's own loaders (the real-layout readers)."""
    pretrain = load_pretrain(resolve_paths("pretrain", data_root=root))
    n = len(pretrain)
    audio_parts, video_parts = [], []
    for start in range(0, n, 50):
        batch = pretrain.read(np.arange(start, min(start + 50, n)))
        audio_parts.append(batch["audio"])
        video_parts.append(batch["video"].mean(axis=(2, 3)))  # spatial mean → [b,10,512]
    audio, video = np.concatenate(audio_parts), np.concatenate(video_parts)
    ave = load_task("ave", data_root=root)
    ave_audio, ave_video = ave.sets["ave/audio"], ave.sets["ave/video"]
    assert list(ave_audio.ids) == list(ave_video.ids)
    return Corpus(
        pretrain_audio_segments=audio.reshape(-1, audio.shape[-1]),
        pretrain_video_segments=video.reshape(-1, video.shape[-1]),
        pretrain_audio=audio.mean(axis=1), pretrain_video=video.mean(axis=1), pretrain_labels=pretrain.labels,
        ave_audio=_read_batched(ave_audio.read, len(ave_audio), lambda a: a.mean(axis=1)),
        ave_video=_read_batched(ave_video.read, len(ave_video), lambda v: v.mean(axis=(1, 2, 3))),
        ave_labels=ave_audio.labels, splits=ave.predefined_splits["ave/audio"],
    )  # fmt: skip


@dataclass
class LinearCCA:
    """x ↦ (x − μx)/σx · Wx and y ↦ (y − μy)/σy · Wy, the top canonical directions."""

    mean_x: np.ndarray
    scale_x: np.ndarray
    weights_x: np.ndarray
    mean_y: np.ndarray
    scale_y: np.ndarray
    weights_y: np.ndarray
    correlations: np.ndarray

    def project_x(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_x) / self.scale_x) @ self.weights_x

    def project_y(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.mean_y) / self.scale_y) @ self.weights_y


def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def fit_cca(x: np.ndarray, y: np.ndarray, n_components: int = N_COMPONENTS, ridge: float = RIDGE) -> LinearCCA:
    """Regularised linear CCA by whitening and SVD of the cross-covariance (no labels used)."""
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    scale_x, scale_y = x.std(axis=0) + 1e-8, y.std(axis=0) + 1e-8
    zx, zy = (x - mean_x) / scale_x, (y - mean_y) / scale_y
    n = len(x)
    cxx = zx.T @ zx / n + ridge * np.eye(zx.shape[1])
    cyy = zy.T @ zy / n + ridge * np.eye(zy.shape[1])
    cxy = zx.T @ zy / n
    wx, wy = _inverse_sqrt(cxx), _inverse_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy, full_matrices=False)
    k = min(n_components, len(s))
    return LinearCCA(mean_x, scale_x, wx @ u[:, :k], mean_y, scale_y, wy @ vt[:k].T, s[:k])


def prototype_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    classes = np.unique(train_y)
    prototypes = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True) + 1e-12
    queries = test_x / (np.linalg.norm(test_x, axis=1, keepdims=True) + 1e-12)
    predicted = classes[(queries @ prototypes.T).argmax(axis=1)]
    return 100.0 * float((predicted == test_y).mean())


def linear_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                    seed: int) -> float:  # fmt: skip
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=seed))
    model.fit(train_x, train_y)
    return 100.0 * float(model.score(test_x, test_y))


def evaluate(corpus: Corpus, seed: int) -> dict[str, float]:
    cca = fit_cca(corpus.pretrain_audio_segments, corpus.pretrain_video_segments)
    a = cca.project_x(corpus.ave_audio)
    v = cca.project_y(corpus.ave_video)
    tr, te = corpus.splits["train"], corpus.splits["test"]
    y = corpus.ave_labels
    return {
        "cca_proto_v2a": prototype_accuracy(v[tr], y[tr], a[te], y[te]),
        "cca_proto_a2v": prototype_accuracy(a[tr], y[tr], v[te], y[te]),
        "cca_linear_v2a": linear_accuracy(v[tr], y[tr], a[te], y[te], seed),
        "cca_linear_a2v": linear_accuracy(a[tr], y[tr], v[te], y[te], seed),
        "cca_top_correlation": float(cca.correlations[0]),
        "cca_mean_correlation": float(cca.correlations.mean()),
        "probe_audio_ave": linear_accuracy(corpus.ave_audio[tr], y[tr], corpus.ave_audio[te], y[te], seed),
        "probe_video_ave": linear_accuracy(corpus.ave_video[tr], y[tr], corpus.ave_video[te], y[te], seed),
        "probe_audio_unseen": linear_accuracy(corpus.pretrain_audio, corpus.pretrain_labels,
                                              corpus.ave_audio[te], y[te], seed),  # fmt: skip
        "probe_video_unseen": linear_accuracy(corpus.pretrain_video, corpus.pretrain_labels,
                                              corpus.ave_video[te], y[te], seed),  # fmt: skip
    }


ROWS = [
    ("CCA-32 + prototype, v2a (train video → test audio)", "cca_proto_v2a"),
    ("CCA-32 + prototype, a2v (train audio → test video)", "cca_proto_a2v"),
    ("CCA-32 + linear, v2a", "cca_linear_v2a"),
    ("CCA-32 + linear, a2v", "cca_linear_a2v"),
    ("Raw audio, linear probe (AVE train → AVE test)", "probe_audio_ave"),
    ("Raw video, linear probe (AVE train → AVE test)", "probe_video_ave"),
    ("Raw audio, linear probe (pretraining clips → AVE test: unseen speakers)", "probe_audio_unseen"),
    ("Raw video, linear probe (pretraining clips → AVE test: unseen images)", "probe_video_unseen"),
]


def render(results: dict[int, dict[str, float]], args: argparse.Namespace, seconds: float,
           summaries: dict[int, dict]) -> str:  # fmt: skip
    seeds = sorted(results)
    first = summaries[seeds[0]]
    lines = [
        "# Linear CCA baseline on the spoken-digits corpus",
        "",
        "Generated by `benchmarks/cca_baseline.py` "
        f"(`--seeds {' '.join(map(str, seeds))} --clips {args.clips} --ave-clips {args.ave_clips}`); "
        "do not edit by hand.",
        "",
        f"Corpus: `toc synth-spoken-digits` with {args.clips} pretraining clips and {args.ave_clips} AVE clips "
        f"(AVE splits {first['ave_split_sizes']}), one corpus per seed; {first['espeak_version']}. "
        "10 classes: chance is 10%.",
        "CCA: 32 components, fitted on the unlabelled audio–video *segment* pairs of the pretraining clips "
        f"(features z-scored, ridge {RIDGE}); audio = [128] per segment, video = spatial mean of [7,7,512]. "
        "Heads are trained on the AVE train split of one modality and tested on the AVE test split "
        "(clip = mean of its 10 segments) of the other. Accuracy in %, mean ± sample std over seeds.",
        "",
        "| Measure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for title, key in ROWS:
        values = np.array([results[s][key] for s in seeds])
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        cells = " | ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {title} | {cells} | {values.mean():.1f} ± {std:.1f} |")
    correlations = ", ".join(f"{results[s]['cca_top_correlation']:.3f}" for s in seeds)
    lines += [
        "",
        f"Top canonical correlation per seed: {correlations}.",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"total wall time {seconds:.0f} s (corpus builds included).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clips", type=int, default=500, help="pretraining clips per corpus")
    parser.add_argument("--ave-clips", type=int, default=300, help="AVE clips per corpus")
    parser.add_argument("--work", type=Path, default=None, help="keep the corpora here (default: a temp dir)")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks/results/cca_baseline.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results, summaries = {}, {}
    with tempfile.TemporaryDirectory(prefix="cca-baseline-") as scratch:
        work = args.work or Path(scratch)
        for seed in args.seeds:
            root = work / f"spoken-digits-seed{seed}"
            config = sd.SpokenDigitsConfig(pretrain_clips=args.clips, ave_clips=args.ave_clips, seed=seed)
            marker = root / sd.MARKER_FILE
            reuse = marker.is_file() and (
                lambda m: (m["seed"], m["pretrain_clips"], m["ave_clips"]) == (seed, args.clips, args.ave_clips)
            )(json.loads(marker.read_text()))
            summary = json.loads(marker.read_text()) if reuse else sd.build_spoken_digits(root, config, force=True).to_dict()
            summaries[seed] = summary
            results[seed] = evaluate(load_corpus(root), seed)
            print(f"seed {seed}: " + json.dumps({k: round(v, 2) for k, v in results[seed].items()}), file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, render(results, args, time.perf_counter() - started, summaries))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
