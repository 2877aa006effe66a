"""benchmarks/label_aware_baseline.py's baselines on small planted corpora built in memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the baselines use scikit-learn (the corpus extra)")

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("label_aware_baseline", ROOT / "benchmarks" / "label_aware_baseline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lab = _load_benchmark()
T = 10


def planted_corpus(seed: int = 0, *, classes: int = 4, categories: int | None = None, paired: bool = True,
                   noise: float = 0.05, pretrain_clips: int = 60, ave_clips: int = 48,
                   ave_class_of_category=None) -> lab.SecondsCorpus:  # fmt: skip
    """Clips whose seconds are their class's planted prototype plus noise (audio 8-d, video 12-d).

    `paired=False` draws the pretraining video clips' classes independently of the audio's, so
    the pretraining pairs carry no cross-modal correlation (the AVE pairs always match).
    `ave_class_of_category` maps a pretraining category to the AVE class index it is called by.
    """
    categories = categories or classes
    rng = np.random.default_rng(seed)
    proto_a = 3.0 * rng.normal(size=(categories, 8))
    proto_v = 3.0 * rng.normal(size=(categories, 12))

    def seconds(prototypes, labels):
        return prototypes[labels][:, None, :] + noise * rng.normal(size=(len(labels), T, prototypes.shape[1]))

    pretrain_labels = np.arange(pretrain_clips) % categories
    video_classes = pretrain_labels if paired else rng.integers(0, categories, size=pretrain_clips)
    ave_categories = np.arange(ave_clips) % classes
    mapping = np.arange(categories) if ave_class_of_category is None else np.asarray(ave_class_of_category)
    rows = rng.permutation(ave_clips)
    n_train = 2 * ave_clips // 3
    return lab.SecondsCorpus(
        name=f"planted-{seed}", pretrain_audio=seconds(proto_a, pretrain_labels),
        pretrain_video=seconds(proto_v, video_classes), pretrain_labels=pretrain_labels.astype(np.int64),
        n_categories=categories, ave_audio=seconds(proto_a, ave_categories), ave_video=seconds(proto_v, ave_categories),
        ave_labels=mapping[ave_categories].astype(np.int64), n_ave_classes=max(classes, int(mapping.max()) + 1),
        event_mask=np.ones((ave_clips, T), dtype=bool), train=np.sort(rows[:n_train]), test=np.sort(rows[n_train:]),
    )  # fmt: skip


def test_separable_data_gives_shared_ids_for_every_label_aware_baseline():
    result = lab.evaluate_corpus(planted_corpus(0), kmeans_seeds=[0])
    for baseline in (lab.CLASS_SPACE_CCA, lab.CATEGORY_CLASSIFIER):
        m = result.baselines[baseline][0]
        assert m.kappa == pytest.approx(1.0) and m.agreement == pytest.approx(1.0), baseline
        assert m.nmi == pytest.approx(1.0) and m.nmi_shuffled < 0.2, baseline
        assert (m.codes_audio, m.codes_video, m.codes_shared) == (4, 4, 4), baseline
        assert (m.code_v2a, m.code_a2v) == (100.0, 100.0), baseline
    space = result.baselines[lab.CLASS_SPACE_CCA][0]
    assert (space.proto_v2a, space.proto_a2v) == (100.0, 100.0)
    assert result.baselines[lab.CATEGORY_CLASSIFIER][0].proto_v2a is None  # no continuous space


def test_predicted_category_ids_transfer_when_ave_classes_are_named_differently():
    # 6 pretraining categories; the AVE set uses 3 of them under other class indices.
    corpus = planted_corpus(1, classes=3, categories=6, ave_class_of_category=[2, 0, 1, 5, 4, 3])
    m = lab.evaluate_corpus(corpus, kmeans_seeds=[0]).baselines[lab.CATEGORY_CLASSIFIER][0]
    assert m.kappa == pytest.approx(1.0)
    assert (m.code_v2a, m.code_a2v) == (100.0, 100.0)
    assert corpus.classes_present == 3


def test_unlabelled_cca_transfers_only_when_the_pretraining_pairs_correlate():
    # Without correlated pairs, CCA's directions (and so the k-means ids) align audio class c with
    # an arbitrary video class: per corpus, transfer is the share of a random relabelling's fixed
    # points (anything from 0 to 100%), on average chance. So average over corpora.
    classes, corpora = 8, range(10)
    chance = 100.0 / classes
    transfer = {}
    for paired in (True, False):
        runs = [
            lab.unlabelled_cca_measures(planted_corpus(s, classes=classes, paired=paired, pretrain_clips=160,
                                                       ave_clips=96), kmeans_seeds=[0])[0]
            for s in corpora
        ]  # fmt: skip
        transfer[paired] = [r.code_v2a for r in runs] + [r.code_a2v for r in runs]
        kappas = [r.kappa for r in runs]
        if paired:
            assert min(kappas) > 0.9
        else:
            assert abs(float(np.mean(kappas))) < 0.15
    assert min(transfer[True]) > 90.0
    assert float(np.mean(transfer[False])) < chance + 15.0


def test_class_space_is_the_ridge_cca_with_the_one_hot_category_in_label_coordinates():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=400)
    x = rng.normal(size=(400, 7)) + 2.0 * rng.normal(size=(5, 7))[labels]
    space = lab.fit_class_space(x, labels, n_categories=6)  # category 5 never occurs
    y = lab.one_hot(labels, 6)[:, :5]
    cca = lab.fit_cca(x, y, n_components=4)  # the C − 1 canonical pairs of 5 present categories
    zy = (y - y.mean(axis=0)) / (y.std(axis=0) + 1e-8)
    values, vectors = np.linalg.eigh(zy.T @ zy / len(y) + lab.RIDGE * np.eye(5))
    sqrt_cyy = (vectors * np.sqrt(values)) @ vectors.T
    # Each X-side variate scaled by its correlation, mapped onto its label-side direction V.
    expected = (cca.project_x(x) * cca.correlations) @ (sqrt_cyy @ cca.weights_y).T
    projected = space.project(x)
    np.testing.assert_allclose(projected, expected, atol=1e-8)
    assert np.linalg.matrix_rank(projected - projected.mean(axis=0), tol=1e-6) == 4


def test_report_has_one_row_per_corpus_and_baseline():
    results = [lab.evaluate_corpus(planted_corpus(s), kmeans_seeds=[0, 1]) for s in (0, 4)]
    text = lab.render(results, "benchmarks/label_aware_baseline.py x", [0, 1], 1.0)
    rows = [line for line in text.splitlines() if line.startswith("| planted-")]
    assert len(rows) == 6
    columns = lab.HEADER.count("|") - 1
    assert all(row.count("|") - 1 == columns for row in rows)
    assert " ± " in rows[0] and "—" in rows[2]  # k-means seeds spread; no prototype for codes


def test_bad_root_is_one_line_and_a_nonzero_exit(tmp_path, capsys):
    assert lab.main([str(tmp_path / "missing")]) == 1
    assert lab.main([str(tmp_path)]) == 1  # a directory with no corpus in it
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 2 and "missing" in errors[0] and str(tmp_path) in errors[1]
