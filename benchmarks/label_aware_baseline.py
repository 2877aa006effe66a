"""Label-aware discrete baselines for issue 12: do paired audio and video land on the same code ids?

DCID / H-DCID are weakly label-supervised: their text input is the category prompt of the clip,
the same for every clip of a category. A fair baseline for "audio and video share code ids" must
therefore see the same information — the category of every *pretraining* clip — and nothing
else. For each already-built corpus root given on the command line this script fits, on the
pretraining clips only (per second: audio [128], video = spatial mean of [7,7,512] → [512]):

* **unlabelled CCA** — `benchmarks/cca_baseline.py`'s linear CCA (32 components, ridge 0.1) on
  the audio–video second pairs; no labels;
* **class-space CCA** — per modality, ridge CCA between its seconds and the one-hot category of
  the second's clip (all C−1 canonical pairs), i.e. reduced-rank regression onto the label view.
  Each modality's canonical directions are expressed in the coordinates of the *label* view
  (whitened one-hot, identical for both modalities), so the two class spaces are one space;
* **category classifier** — per modality, a multinomial logistic regression of the category on
  its seconds; the code id of a second is the predicted pretraining category, so both modalities
  share an id exactly when both classifiers agree.

The two CCA spaces get code ids from k-means (k = the number of pretraining categories, fitted on
the union of both modalities' projected pretraining seconds; several fixed seeds, mean ± std).

Measured on the AVE task set of the same corpus (`toc.eval.tasks.load_task("ave")`): the
sharing measures of `hdcid.diagnostics.pair_measures` on the test split's event seconds (audio
and video of the same clip and second); the code-id head (`toc.eval.code_head`) fitted on one
modality's AVE train clips (ids of all 10 seconds, clip labels) and tested on the other
modality's AVE test clips (v2a: fit on video, test on audio; a2v the reverse); for the CCA spaces
also the prototype head of `cca_baseline.py` (cosine to class means of clip-mean projections).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_aware_baseline.py ROOT [ROOT ...] \
        [--kmeans-seeds 0 1 2] [-o benchmarks/results/label_aware_baseline.md]

Writes markdown to stdout, or atomically to `-o FILE`; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import provenance  # noqa: E402
from cca_baseline import N_COMPONENTS, RIDGE, _inverse_sqrt, fit_cca, prototype_accuracy  # noqa: E402

from cmg_base.files import write_text_atomic  # noqa: E402
from hdcid.diagnostics import pair_measures  # noqa: E402
from toc.corpora.spoken_digits import MARKER_FILE as SPOKEN_DIGITS_MARKER  # noqa: E402
from toc.data.layout import resolve_paths  # noqa: E402
from toc.data.vggsound import load_pretrain  # noqa: E402
from toc.errors import TocError  # noqa: E402
from toc.eval.code_head import fit_code_head  # noqa: E402
from toc.eval.tasks import load_task  # noqa: E402

DEFAULT_KMEANS_SEEDS = (0, 1, 2)
KMEANS_RESTARTS = 10  # k-means++ restarts per seed (sklearn's n_init)
CLASSIFIER_SEED = 0  # lbfgs is deterministic; the seed only pins sklearn's bookkeeping
READ_BATCH = 50  # clips per read: a batch of pretraining video is 50·10·7·7·512 float64 = 100 MB

UNLABELLED_CCA = "unlabelled CCA-32 + k-means"
CLASS_SPACE_CCA = "class-space CCA + k-means"
CATEGORY_CLASSIFIER = "category classifier (predicted class)"
BASELINES = (UNLABELLED_CCA, CLASS_SPACE_CCA, CATEGORY_CLASSIFIER)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class SecondsCorpus:
    """Per-second features of one corpus: the pretraining clips and the AVE task set."""

    name: str
    pretrain_audio: np.ndarray  # float [N, T, 128]
    pretrain_video: np.ndarray  # float [N, T, 512] (spatial mean of the pool5 grid)
    pretrain_labels: np.ndarray  # int64 [N]: the clip's category index (the csv's category)
    n_categories: int  # categories of the pretraining set (its text features' rows)
    ave_audio: np.ndarray  # float [M, T, 128]
    ave_video: np.ndarray  # float [M, T, 512]
    ave_labels: np.ndarray  # int64 [M]: AVE clip class
    n_ave_classes: int  # the label range of the AVE task (28 for the AVE layout)
    event_mask: np.ndarray  # bool [M, T]: the AVE event seconds
    train: np.ndarray  # AVE train rows
    test: np.ndarray  # AVE test rows
    spoken_digits: bool = False  # built by the spoken-digits builder (for the summary table)

    @property
    def classes_present(self) -> int:
        """AVE classes that occur in the labels: a uniform guess's accuracy is 100 / this."""
        return len(np.unique(self.ave_labels))


def _read_seconds(read: Callable[[np.ndarray], np.ndarray], n: int, reduce) -> np.ndarray:
    parts = [reduce(read(np.arange(i, min(i + READ_BATCH, n)))) for i in range(0, n, READ_BATCH)]
    return np.concatenate(parts)


def load_seconds_corpus(root: Path) -> SecondsCorpus:
    """Read a built corpus through the toolkit's loaders (pretraining layout and AVE layout)."""
    pretrain = load_pretrain(resolve_paths("pretrain", data_root=root))
    n = len(pretrain)
    audio, video = [], []
    for start in range(0, n, READ_BATCH):
        batch = pretrain.read(np.arange(start, min(start + READ_BATCH, n)))
        audio.append(batch["audio"])
        video.append(batch["video"].mean(axis=(2, 3)))
    ave = load_task("ave", data_root=root)
    audio_set, video_set = ave.sets["ave/audio"], ave.sets["ave/video"]
    if list(audio_set.ids) != list(video_set.ids):
        raise TocError(f"{root}: the AVE audio and video sets list different clips")
    splits = ave.predefined_splits["ave/audio"]
    mask = np.asarray(audio_set.event_mask, dtype=bool) | np.asarray(video_set.event_mask, dtype=bool)
    return SecondsCorpus(
        name=str(root),
        pretrain_audio=np.concatenate(audio), pretrain_video=np.concatenate(video),
        pretrain_labels=np.asarray(pretrain.labels, dtype=np.int64), n_categories=len(pretrain.category_names),
        ave_audio=_read_seconds(audio_set.read, len(audio_set), lambda a: a),
        ave_video=_read_seconds(video_set.read, len(video_set), lambda v: v.mean(axis=(2, 3))),
        ave_labels=np.asarray(audio_set.labels, dtype=np.int64), n_ave_classes=ave.n_classes,
        event_mask=mask, train=np.asarray(splits["train"]), test=np.asarray(splits["test"]),
        spoken_digits=(Path(root) / SPOKEN_DIGITS_MARKER).is_file(),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# The fitted spaces and code assigners.


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    return (np.asarray(labels)[:, None] == np.arange(n)[None, :]).astype(np.float64)


@dataclass
class ClassSpace:
    """x ↦ ((x − μ)/σ) · B: one modality's ridge-CCA with the one-hot category, in label-view
    coordinates. B = Cxx⁻¹ Cxy Cyy^(−1/2) (ridge on both diagonals) = Wx · U · diag(ρ) · Vᵀ for
    the CCA's whitened cross-covariance Cxx^(−1/2) Cxy Cyy^(−1/2) = U diag(ρ) Vᵀ: every canonical
    pair, each X-side variate scaled by its correlation and mapped onto its label-side direction —
    the least-squares prediction of the whitened label view. The label view is the same for both
    modalities, so their class spaces share coordinates; its rank is (categories present) − 1."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # [D, categories present]

    def project(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights


def fit_class_space(x: np.ndarray, labels: np.ndarray, n_categories: int, ridge: float = RIDGE) -> ClassSpace:
    """The class space of seconds `x` [S, D] labelled with their clip's category [S]."""
    present = np.unique(labels)
    y = one_hot(labels, n_categories)[:, present]  # absent categories have no variance
    mean_x, scale_x = x.mean(axis=0), x.std(axis=0) + 1e-8
    zx = (x - mean_x) / scale_x
    zy = (y - y.mean(axis=0)) / (y.std(axis=0) + 1e-8)
    n = len(x)
    cxx = zx.T @ zx / n + ridge * np.eye(zx.shape[1])
    cyy = zy.T @ zy / n + ridge * np.eye(zy.shape[1])
    cxy = zx.T @ zy / n
    return ClassSpace(mean_x, scale_x, np.linalg.solve(cxx, cxy) @ _inverse_sqrt(cyy))


def fit_category_classifier(x: np.ndarray, labels: np.ndarray):
    """Multinomial logistic regression (z-scored inputs, L2, C = 1) of the category on seconds."""
    from sklearn.linear_model import LogisticRegression  # optional dependency (the corpus extra)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=CLASSIFIER_SEED))
    return model.fit(x, labels)


def fit_kmeans(audio: np.ndarray, video: np.ndarray, k: int, seed: int):
    """k-means on the union of both modalities' projected pretraining seconds."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=KMEANS_RESTARTS, random_state=seed).fit(np.concatenate([audio, video]))


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


def _per_second(function, x: np.ndarray) -> np.ndarray:
    """Apply a per-row function to [N, T, D] seconds and restore [N, T, ...]."""
    out = np.asarray(function(_flat(x)))
    return out.reshape(*x.shape[:2], *out.shape[1:])


# ------------------------------------------------------------------------------------------
# Measures.


@dataclass
class Measures:
    """One baseline (one k-means seed) on one corpus."""

    kappa: float
    nmi: float
    nmi_shuffled: float
    agreement: float
    positions: int
    codes_audio: int
    codes_video: int
    codes_shared: int
    code_v2a: float  # % clip accuracy of the code-id head, fit on video, tested on audio
    code_a2v: float
    proto_v2a: float | None = None  # % prototype head in the continuous space (None: no space)
    proto_a2v: float | None = None


def code_id_transfer(source: np.ndarray, target: np.ndarray, corpus: SecondsCorpus, n_codes: int) -> float:
    """% AVE test clips of the target modality classified right by a code-id head fitted on the
    source modality's AVE train clips (ids [clips, 10], clip labels)."""
    y = corpus.ave_labels
    head = fit_code_head("clip", source[corpus.train], y[corpus.train], corpus.n_ave_classes, [n_codes])
    return 100.0 * float((head.predict(target[corpus.test]) == y[corpus.test]).mean())


def measure(corpus: SecondsCorpus, audio_codes: np.ndarray, video_codes: np.ndarray, n_codes: int,
            audio_space: np.ndarray | None = None, video_space: np.ndarray | None = None) -> Measures:  # fmt: skip
    """Sharing on the AVE test event seconds, code-id head and (with spaces) prototype transfer."""
    test, train, y = corpus.test, corpus.train, corpus.ave_labels
    pair = pair_measures(audio_codes[test], video_codes[test], labels=y[test], mask=corpus.event_mask[test])
    result = Measures(
        kappa=pair.kappa, nmi=pair.nmi, nmi_shuffled=pair.nmi_shuffled, agreement=pair.agreement,
        positions=pair.positions, codes_audio=pair.codes_used["audio"], codes_video=pair.codes_used["video"],
        codes_shared=pair.codes_shared,
        code_v2a=code_id_transfer(video_codes, audio_codes, corpus, n_codes),
        code_a2v=code_id_transfer(audio_codes, video_codes, corpus, n_codes),
    )  # fmt: skip
    if audio_space is not None and video_space is not None:
        a, v = audio_space.mean(axis=1), video_space.mean(axis=1)  # clip means, as cca_baseline.py
        result.proto_v2a = prototype_accuracy(v[train], y[train], a[test], y[test])
        result.proto_a2v = prototype_accuracy(a[train], y[train], v[test], y[test])
    return result


@dataclass
class CorpusResult:
    corpus: SecondsCorpus
    baselines: dict[str, list[Measures]] = field(default_factory=dict)  # one entry per k-means seed
    notes: list[str] = field(default_factory=list)


def _kmeans_measures(corpus: SecondsCorpus, pretrain_a: np.ndarray, pretrain_v: np.ndarray,
                     ave_a: np.ndarray, ave_v: np.ndarray, seeds: Sequence[int]) -> list[Measures]:  # fmt: skip
    out = []
    for seed in seeds:
        kmeans = fit_kmeans(_flat(pretrain_a), _flat(pretrain_v), corpus.n_categories, seed)
        codes_a = _per_second(kmeans.predict, ave_a).astype(np.int64)
        codes_v = _per_second(kmeans.predict, ave_v).astype(np.int64)
        out.append(measure(corpus, codes_a, codes_v, corpus.n_categories, ave_a, ave_v))
    return out


def _seconds_labels(corpus: SecondsCorpus) -> np.ndarray:
    """Each pretraining second labelled with its clip's category."""
    return np.repeat(corpus.pretrain_labels, corpus.pretrain_audio.shape[1])


def unlabelled_cca_measures(corpus: SecondsCorpus, kmeans_seeds: Sequence[int]) -> list[Measures]:
    """cca_baseline.py's CCA on the pretraining second pairs (no labels), k-means codes."""
    audio, video = _flat(corpus.pretrain_audio), _flat(corpus.pretrain_video)
    _log(f"{corpus.name}: unlabelled CCA on {len(audio)} second pairs")
    cca = fit_cca(audio, video)
    return _kmeans_measures(
        corpus, _per_second(cca.project_x, corpus.pretrain_audio), _per_second(cca.project_y, corpus.pretrain_video),
        _per_second(cca.project_x, corpus.ave_audio), _per_second(cca.project_y, corpus.ave_video), kmeans_seeds,
    )  # fmt: skip


def class_space_measures(corpus: SecondsCorpus, kmeans_seeds: Sequence[int]) -> list[Measures]:
    """Per modality, ridge CCA with the one-hot category (no pairing), k-means codes."""
    _log(f"{corpus.name}: class-space CCA ({corpus.n_categories} categories)")
    labels = _seconds_labels(corpus)
    space_a = fit_class_space(_flat(corpus.pretrain_audio), labels, corpus.n_categories)
    space_v = fit_class_space(_flat(corpus.pretrain_video), labels, corpus.n_categories)
    return _kmeans_measures(
        corpus, _per_second(space_a.project, corpus.pretrain_audio), _per_second(space_v.project, corpus.pretrain_video),
        _per_second(space_a.project, corpus.ave_audio), _per_second(space_v.project, corpus.ave_video), kmeans_seeds,
    )  # fmt: skip


def classifier_measures(corpus: SecondsCorpus) -> list[Measures]:
    """Per modality, the predicted pretraining category of each second is its code id."""
    _log(f"{corpus.name}: category classifiers")
    labels = _seconds_labels(corpus)
    classifier_a = fit_category_classifier(_flat(corpus.pretrain_audio), labels)
    classifier_v = fit_category_classifier(_flat(corpus.pretrain_video), labels)
    codes_a = _per_second(classifier_a.predict, corpus.ave_audio).astype(np.int64)
    codes_v = _per_second(classifier_v.predict, corpus.ave_video).astype(np.int64)
    return [measure(corpus, codes_a, codes_v, corpus.n_categories)]


def evaluate_corpus(corpus: SecondsCorpus, kmeans_seeds: Sequence[int] = DEFAULT_KMEANS_SEEDS) -> CorpusResult:
    """All three baselines on one corpus, fitted on its pretraining seconds only."""
    result = CorpusResult(corpus)
    result.baselines[UNLABELLED_CCA] = unlabelled_cca_measures(corpus, kmeans_seeds)
    result.baselines[CLASS_SPACE_CCA] = class_space_measures(corpus, kmeans_seeds)
    result.baselines[CATEGORY_CLASSIFIER] = classifier_measures(corpus)
    if corpus.n_categories != corpus.n_ave_classes or corpus.classes_present != corpus.n_categories:
        result.notes.append(
            f"{corpus.n_categories} pretraining categories, {corpus.classes_present} AVE classes in use "
            f"(of the layout's {corpus.n_ave_classes}): a predicted-category code is an id like any other "
            "and the code-id head learns which AVE class each id stands for from the AVE train split; no "
            "name mapping between categories and AVE classes is used"
        )
    return result


# ------------------------------------------------------------------------------------------
# Report.


def _stat(values: Sequence[float], digits: int, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _row(label: str, baseline: str, runs: list[Measures], chance: str) -> str:
    def get(name):
        return [getattr(m, name) for m in runs]

    codes = "/".join(_stat(get(n), 0 if len(runs) == 1 else 1) for n in ("codes_audio", "codes_video", "codes_shared"))
    proto = [get("proto_v2a"), get("proto_a2v")]
    proto_cells = ["—" if None in p else _stat(p, 1) for p in proto]
    cells = [
        label, baseline, _stat(get("kappa"), 2), _stat(get("nmi"), 2), _stat(get("agreement"), 1, 100.0), codes,
        _stat(get("code_v2a"), 1), _stat(get("code_a2v"), 1), *proto_cells,
        _stat(get("nmi_shuffled"), 2), f"{np.mean(get('positions')):.0f}", chance,
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| corpus | baseline | κ | NMI | agreement % | codes a/v/shared | code-id v2a | code-id a2v "
    "| prototype v2a | prototype a2v | NMI shuffled | event seconds | chance |"
)


def render(results: list[CorpusResult], command: str, seeds: Sequence[int], seconds: float) -> str:
    lines = [
        "# Label-aware discrete baselines: do audio and video share code ids? (issue 12)",
        "",
        f"Generated by `{command}`; do not edit by hand.",
        "",
        *provenance.header(
            "benchmarks/label_aware_baseline.py", provenance.python_argv(),
            f"k-means seeds {', '.join(map(str, seeds))} (the corpora's own build seeds are in their folder names)",
            ["benchmarks/label_aware_baseline.py", "benchmarks/cca_baseline.py", "hdcid/diagnostics.py",
             "toc/eval/code_head.py"],
        ),
        "",
        "**What each baseline sees.** Every baseline is fitted on the *pretraining* clips only (per "
        "second: audio [128]; video = spatial mean of the [7,7,512] map, [512]). *Unlabelled CCA* "
        f"(`benchmarks/cca_baseline.py`'s estimator: {N_COMPONENTS} components, ridge {RIDGE}) sees the "
        "audio–video second pairs and no labels. The two *label-aware* baselines see, per modality "
        "separately, its seconds and the category of each second's pretraining clip (from the "
        "pretraining csv) — the information DCID-AVT's text view gives, since its text is the "
        "category prompt — and never the audio–video pairing: *class-space CCA* is a ridge CCA "
        f"(ridge {RIDGE}) of each modality with the one-hot category (all C−1 canonical pairs), i.e. "
        "reduced-rank regression onto the label view, expressed in the whitened label view's "
        "coordinates so that both modalities share one class space; *category classifier* is a "
        "multinomial logistic regression per modality (z-scored seconds, L2, C = 1) whose predicted "
        "pretraining category *is* the code id (shared ids by construction where both are right). "
        "The two CCA spaces get code ids from k-means with k = number of pretraining categories, "
        "fitted on the union of both modalities' projected pretraining seconds "
        f"({KMEANS_RESTARTS} k-means++ restarts; seeds {', '.join(map(str, seeds))}: k-means rows "
        "are mean ± sample std over the seeds; the classifier has no seed). No baseline sees a "
        "downstream label beyond what every head sees: the heads are fitted on the AVE *train* "
        "split's clip labels.",
        "",
        "**What is measured.** κ (Cohen), NMI and exact agreement of the audio and video code ids "
        "(`hdcid.diagnostics.pair_measures`) on the AVE *test* split's event seconds (audio and video "
        "of the same clip and second); codes used by audio / video / both on those seconds; the "
        "code-id head (`toc.eval.code_head`, naive-Bayes over id→class tables) fitted on one "
        "modality's AVE train clips (ids of all 10 seconds) and tested on the other modality's AVE "
        "test clips — v2a: fit on video, test on audio; a2v the reverse; clip accuracy %; and, for "
        "the continuous CCA spaces, the prototype head (cosine to class means of clip-mean "
        "projections, as `cca_baseline.py`) in both directions. *NMI shuffled* is pair_measures' "
        "floor: NMI after random re-pairings of the same codes. Chance = 100 / AVE classes present.",
        "",
        HEADER,
        "|---|---|" + "---|" * 11,
    ]
    for result in results:
        corpus = result.corpus
        chance = f"{100.0 / corpus.classes_present:.1f}"
        for baseline in BASELINES:
            lines.append(_row(corpus.name, baseline, result.baselines[baseline], chance))
    spoken = [r for r in results if r.corpus.spoken_digits]
    if len(spoken) >= 2:
        lines += [
            "",
            f"**Spoken-digits corpora ({len(spoken)}: {', '.join(r.corpus.name for r in spoken)}):** "
            "mean ± sample std over the corpora of each corpus's value (k-means rows: its seed mean).",
            "",
            HEADER,
            "|---|---|" + "---|" * 11,
        ]
        for baseline in BASELINES:
            pooled = [_mean_measures(r.baselines[baseline]) for r in spoken]
            chance = f"{100.0 / spoken[0].corpus.classes_present:.1f}"
            lines.append(_row("spoken digits", baseline, pooled, chance))
    notes = [f"- `{r.corpus.name}`: {note}." for r in results for note in r.notes]
    sizes = [
        f"- `{r.corpus.name}`: {len(r.corpus.pretrain_labels)} pretraining clips "
        f"({r.corpus.n_categories} categories), AVE {len(r.corpus.train)} train / {len(r.corpus.test)} test "
        f"clips, {r.corpus.classes_present} classes"
        for r in results
    ]
    lines += ["", "Corpora:", "", *sizes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += [
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"{_sklearn_version()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, niceness "
        f"{os.nice(0)}; wall time {seconds:.0f} s on a shared machine.",
        "",
    ]
    return "\n".join(lines)


def _mean_measures(runs: list[Measures]) -> Measures:
    def mean(name):
        values = [getattr(m, name) for m in runs]
        return None if None in values else float(np.mean(values))

    return Measures(**{name: mean(name) for name in Measures.__dataclass_fields__})


def _sklearn_version() -> str:
    import sklearn

    return f"scikit-learn {sklearn.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="built corpus roots (pretraining + AVE layout)")
    parser.add_argument("--kmeans-seeds", type=int, nargs="+", default=list(DEFAULT_KMEANS_SEEDS))
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the markdown here (default: stdout)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = []
    for root in args.roots:
        if not root.is_dir():
            print(f"error: corpus root {root} is not a directory", file=sys.stderr)
            return 1
        try:
            _log(f"{root}: reading")
            corpus = load_seconds_corpus(root)
            results.append(evaluate_corpus(corpus, args.kmeans_seeds))
        except TocError as error:
            print(f"error: {root}: {error}", file=sys.stderr)
            return 1
    argv_text = sys.argv[1:] if argv is None else argv
    command = "benchmarks/label_aware_baseline.py " + " ".join(shlex.quote(str(a)) for a in argv_text)
    text = render(results, command, args.kmeans_seeds, time.perf_counter() - started)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.output, text)
        _log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
