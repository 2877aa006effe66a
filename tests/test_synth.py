"""The synthetic corpus: real layouts, determinism, label consistency, loaders, learnability."""

from __future__ import annotations

import csv
import json
import os
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from toc.corpora import synthetic as synth
from toc.data import layout, vggsound
from toc.errors import ConfigError, OutputExistsError
from toc.eval import tasks as registry

TINY = 0.01  # every set at its floor (synth.MIN_COUNTS): ~50 clips, ~1 s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, synth.SynthSummary]:
    root = tmp_path_factory.mktemp("synth") / "data"
    return root, synth.synthesize(root, scale=TINY, seed=7)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _zip_array(path: Path) -> tuple[list[str], np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        return names, pickle.loads(archive.read(names[-1]))


def _read_tsv(path: Path, delimiter: str = "\t") -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=delimiter))
    return rows[0], rows[1:]


def _h5(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return handle[key][()]


def test_same_seed_gives_identical_bytes_and_another_seed_differs(corpus, tmp_path):
    root, _ = corpus
    again = synth.synthesize(tmp_path / "again", scale=TINY, seed=7)
    first, second = _files(root), _files(Path(again.root))
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = _files(Path(synth.synthesize(tmp_path / "other", scale=TINY, seed=8).root))
    for name in ("AVE-ECCV18-master/data/audio_feature.h5",
                 "AVE-ECCV18-master/data/visual_feature.h5",
                 "feature_extractor/feature_extractor/vggsound-avel40k.csv",
                 "AVVP/data/AVVP_eval_audio_checked_combined.csv",
                 synth.TEXT_FEATURES):
        assert other[name] != first[name], name


def test_ave_files_have_reference_keys_shapes_and_dtypes(corpus):
    root, summary = corpus
    n = summary.counts["ave"]
    ave = root / synth.AVE_DIR
    with h5py.File(ave / "visual_feature.h5") as f:
        assert list(f) == ["avadataset"]
        assert f["avadataset"].shape == (n, 10, 7, 7, 512) and f["avadataset"].dtype == np.float64
        video = f["avadataset"][:4]
    with h5py.File(ave / "audio_feature.h5") as f:
        assert f["avadataset"].shape == (n, 10, 128) and f["avadataset"].dtype == np.float64
        audio = f["avadataset"][()]
    labels = _h5(ave / "labels.h5", "avadataset")
    assert labels.shape == (n, 10, 29) and labels.dtype == np.float64
    assert np.array_equal(labels.sum(-1), np.ones((n, 10)))  # one-hot, background last
    orders = [_h5(ave / f"{s}_order.h5", "order") for s in ("train", "val", "test")]
    assert all(o.dtype == np.int64 for o in orders)
    assert [len(o) for o in orders] == [summary.counts[f"ave_{s}"] for s in ("train", "val", "test")]
    assert np.array_equal(np.sort(np.concatenate(orders)), np.arange(n))
    assert not np.array_equal(orders[0], np.sort(orders[0]))  # shuffled, like the real file
    # Feature statistics: VGGish-like audio on an 8-bit grid in [-2, 2]; sparse non-negative pool5.
    assert audio.min() >= -2.0 and audio.max() <= 2.0
    grid = (audio + 2.0) / (4.0 / 255)
    assert np.allclose(grid, np.round(grid), atol=1e-4)
    assert video.min() >= 0.0
    assert 0.65 <= (video == 0).mean() <= 0.85


def test_every_ave_clip_has_one_contiguous_event_and_the_ave_avvp_relabelling_matches(corpus):
    root, summary = corpus
    labels = _h5(root / synth.AVE_DIR / "labels.h5", "avadataset")
    foreground = labels[:, :, :28]
    for row in foreground:
        classes = np.flatnonzero(row.any(0))
        assert len(classes) == 1
        active = np.flatnonzero(row[:, classes[0]])
        assert np.array_equal(active, np.arange(active[0], active[-1] + 1))
    aa_labels = _h5(root / synth.AVE_AVVP_DIR / "ave_avvp_labels.h5", "avadataset")
    order = _h5(root / synth.AVE_AVVP_DIR / "ave_avvp_order.h5", "order")
    names = (root / synth.AVE_AVVP_DIR / "AVE_AVVP_Categories.txt").read_text().splitlines()
    assert len(names) == 12 and aa_labels.shape == (len(labels), 10, 13)
    assert order.dtype == np.int64 and len(order) == summary.counts["ave_avvp_train"] > 0
    ave_key = {c.avvp: c.key for c in synth.CONCEPTS if c.avvp}
    clip_class = foreground.argmax(-1).max(-1)
    shared = {synth.AVE_KEYS.index(ave_key[name]): j for j, name in enumerate(names)}
    assert sorted(order) == [r for r in range(len(labels)) if clip_class[r] in shared]
    for row in order:
        column = shared[int(clip_class[row])]
        assert np.array_equal(aa_labels[row, :, column], foreground[row, :, clip_class[row]])
        assert np.array_equal(aa_labels[row, :, 12], labels[row, :, 28])


def _rebuild_labels(rows: list[list[str]], names: list[str]) -> dict[str, np.ndarray]:
    """The spec's label construction (reference-tasks §2.1), independently of the generator."""
    out = {}
    for filename, onsets, offsets, events in rows:
        label = np.zeros((10, len(names) + 1))
        label[:, -1] = 1
        for on, off, event in zip(onsets.split(","), offsets.split(","), events.split(","),
                                  strict=True):
            label[int(on):int(off), names.index(event)] = 1
            label[int(on):int(off), -1] = 0
        out[filename] = label
    return out


@pytest.mark.parametrize("part", ["avvp", "ave_avvp"])
def test_avvp_label_files_encode_exactly_the_generated_events(part):
    pool = synth.AVVP_KEYS if part == "avvp" else synth.AVE_AVVP_KEYS
    columns = [synth.CONCEPT_INDEX[k] for k in pool]
    names = {c: synth.CONCEPTS[c].avvp for c in columns}
    rng = np.random.default_rng(3)
    ids = [f"{i:011d}" for i in range(40)]
    clips = synth._multi_event_clips(rng, ids, columns, "avvp")
    filenames = [f"{v}_0_10" for v in ids]
    for modality in ("audio", "video"):
        rows = synth._combined_rows(clips, filenames, modality, names)
        assert len(rows) == len(ids)  # the first event is audio-visual: every video is listed
        assert "," in rows[0][1]  # a multi-event row, so pandas keeps onsets as strings
        rebuilt = _rebuild_labels(rows, [names[c] for c in columns])
        activity = clips.audible if modality == "audio" else clips.visible
        truth = synth.segment_labels(clips.classes, activity, columns)
        assert np.array_equal(np.stack([rebuilt[f] for f in filenames]), truth)
    # Some events are heard and not seen, some seen and not heard, and some are shifted.
    assert (clips.audible & ~clips.visible).any() and (clips.visible & ~clips.audible).any()


def test_avvp_and_ucf_vggsound_files_follow_the_reference_formats(corpus):
    root, summary = corpus
    for part, directory, prefix, n_names in (("avvp", synth.AVVP_DATA_DIR, "AVVP", 25),
                                             ("ave_avvp_test", synth.AVE_AVVP_DIR, "AVE_AVVP", 12)):
        names = (root / directory / f"{prefix}_Categories.txt").read_text().splitlines()
        assert len(names) == n_names
        for word in ("audio", "visual"):
            header, rows = _read_tsv(root / directory / f"{prefix}_eval_{word}_checked_combined.csv")
            assert header == ["filename", "onset", "offset", "event_labels"]
            assert len(rows) == summary.counts[part]
            for filename, onsets, offsets, events in rows:
                assert len(filename.split("_")[-2:]) == 2 and len(filename) >= 11
                assert set(events.split(",")) <= set(names)
                assert all(0 <= int(a) < int(b) <= 10 for a, b in
                           zip(onsets.split(","), offsets.split(","), strict=True))
                zip_dir = synth.AVVP_AUDIO_ZIPS if word == "audio" else synth.AVVP_VIDEO_ZIPS
                members, array = _zip_array(root / zip_dir / f"{filename[:11]}.zip")
                assert members == [f"{filename[:11]}.pkl"]
                if word == "audio":
                    assert array.shape[1:] == (128,) and 8 <= array.shape[0] <= 11
                else:
                    assert array.shape == (10, 7, 7, 512) and array.dtype == np.float32
    fe = root / synth.FEATURE_EXTRACTOR_DIR
    ucf_names = (fe / "UCF101sameVGGSound.txt").read_text().splitlines()
    vgg_names = (fe / "VGGSoundsameUCF101.txt").read_text().splitlines()
    assert len(ucf_names) == len(vgg_names) == 16
    header, rows = _read_tsv(fe / "ucf2vggsound.csv", ",")
    assert header == ["category", "video_id"] and len(rows) == summary.counts["ucf"]
    for category, video_id in rows:
        assert category in ucf_names and video_id.startswith(f"v_{category}_g")
        _, array = _zip_array(root / synth.UCF_VIDEO_ZIPS / f"{video_id}.zip")
        assert array.shape[1:] == (7, 7, 512) and 7 <= array.shape[0] <= 12
    header, rows = _read_tsv(fe / "vggsound2ucf.csv", ",")
    assert header == ["category", "video_id", "split"] and len(rows) == summary.counts["vggsound"]
    assert {r[0] for r in rows} <= set(vgg_names) and {r[2] for r in rows} <= {"train", "val", "test"}
    for _, video_id, _ in rows:
        assert len(video_id) == 11
        _, array = _zip_array(root / synth.VGGSOUND_AUDIO_ZIPS / f"{video_id}.zip")
        assert array.shape[1:] == (128,)


def test_pretraining_files_and_text_features(corpus):
    root, summary = corpus
    fe = root / synth.FEATURE_EXTRACTOR_DIR
    categories = (fe / "VggsoundAVEL40kCategories.txt").read_text().splitlines()
    assert len(categories) == len(synth.CONCEPTS) == summary.counts["classes"]
    header, rows = _read_tsv(fe / "vggsound-avel40k.csv", ",")
    assert header == ["category", "video_id", "split"] and len(rows) == summary.counts["pretrain"]
    assert {r[2] for r in rows} == {"train", "val", "test"}
    header, prompts = _read_tsv(fe / "vggsoundCategories2Prompts.csv", ",")
    assert header == ["label", "prompt"] and [p[0] for p in prompts] == categories
    for category, video_id, _ in rows:
        assert category in categories
        _, audio = _zip_array(root / synth.VGGSOUND_AUDIO_ZIPS / f"{video_id}.zip")
        _, video = _zip_array(root / synth.VGGSOUND_VIDEO_ZIPS / f"{video_id}.zip")
        _, flags = _zip_array(root / synth.VGGSOUND_LABEL_ZIPS / f"{video_id}.zip")
        assert audio.shape[1:] == (128,) and 9 <= audio.shape[0] <= 11
        assert video.shape == (10, 7, 7, 512)
        assert flags.shape == (10,) and set(np.unique(flags)) <= {0.0, 1.0} and flags.any()
    with h5py.File(root / synth.TEXT_FEATURES) as f:
        assert sorted(f) == ["features", "labels"]
        assert [s.decode() for s in f["labels"][()]] == categories
        assert f["features"].shape == (len(categories), 10, 768)
        assert f["features"].dtype == np.float32
        text = f["features"][()]
    words = [min(10, len(p[1].split())) for p in prompts]
    assert all(np.abs(text[k, :w]).min(1).all() for k, w in enumerate(words))  # words
    assert all(not text[k, w:].any() for k, w in enumerate(words))  # zero padding
    manifest = json.loads((root / synth.MANIFEST).read_text())
    assert manifest["counts"] == summary.counts and manifest["paths"] == summary.paths
    assert all((root / p).exists() for p in summary.paths.values())


def test_cli_prints_a_json_summary_and_refuses_a_non_empty_directory(tmp_path):
    runner = CliRunner()
    target = tmp_path / "corpus"
    result = runner.invoke(cli, ["synth", str(target), "--scale", str(TINY), "--seed", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["pretrain"] == synth.scaled_counts(TINY)["pretrain"]
    assert summary["seed"] == 3 and (target / summary["paths"]["ave_labels"]).is_file()
    assert "synth: pretrain video" in result.stderr  # progress goes to stderr, JSON to stdout
    refused = runner.invoke(cli, ["synth", str(target), "--scale", str(TINY)])
    assert refused.exit_code == 1 and "not empty" in refused.stderr and refused.stdout == ""
    (target / "mine.txt").write_text("keep me")
    stale = target / synth.VGGSOUND_AUDIO_ZIPS / "stale.zip"
    stale.write_bytes(b"old")
    forced = runner.invoke(cli, ["synth", str(target), "--scale", str(TINY), "--seed", "4", "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["seed"] == 4
    assert (target / "mine.txt").read_text() == "keep me" and not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no staging folder left behind
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's private 0700
    bad = runner.invoke(cli, ["synth", str(tmp_path / "x"), "--scale", "0"])
    assert bad.exit_code == 2


def test_library_refuses_bad_arguments(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("x")
    with pytest.raises(OutputExistsError):
        synth.synthesize(tmp_path / "full", scale=TINY)
    with pytest.raises(ConfigError):
        synth.synthesize(tmp_path / "new", scale=-1.0)
    with pytest.raises(ConfigError):
        synth.synthesize(tmp_path / "new", scale=TINY, seed=-1)
    assert not (tmp_path / "new").exists()


def test_every_synthetic_task_set_passes_through_the_real_loaders(corpus):
    root, summary = corpus
    expected = {
        "ave": ({"ave/audio": summary.counts["ave"], "ave/video": summary.counts["ave"]}, 28),
        "avvp": ({"avvp/audio": summary.counts["avvp"], "avvp/video": summary.counts["avvp"]}, 25),
        "ave-avvp": ({"ave-avvp-train/audio": summary.counts["ave_avvp_train"],
                      "ave-avvp-test/video": summary.counts["ave_avvp_test"]}, 12),
        "ucf-vggsound": (None, 16),
    }
    for task, (sizes, n_classes) in expected.items():
        data = registry.load_task(task, data_root=root)
        assert data.n_classes == n_classes, task
        for name, size in (sizes or {}).items():
            assert len(data.sets[name]) == size, (task, name)
        for feature_set in data.sets.values():
            batch = feature_set.read(np.arange(min(2, len(feature_set))))
            assert batch.dtype == np.float64
            assert batch.shape[1:] == feature_set.feature_shape, (task, feature_set.name)
            assert np.isfinite(batch).all()
    ucf = registry.load_task("ucf-vggsound", data_root=root)
    assert sorted(len(s) for s in ucf.sets.values()) == sorted(
        [summary.counts["ucf"], summary.counts["vggsound"]])
    ave = registry.load_task("ave", data_root=root)
    labels = _h5(root / synth.AVE_DIR / "labels.h5", "avadataset")
    truth = labels[:, :, :28].argmax(-1).max(-1)
    assert np.array_equal(ave.sets["ave/audio"].labels, truth[[int(i) for i in ave.sets["ave/audio"].ids]])
    corpus_data = vggsound.load_pretrain(layout.resolve_paths("pretrain", data_root=root))
    assert len(corpus_data) == summary.counts["pretrain"]
    assert corpus_data.text_features.shape == (len(synth.CONCEPTS), 10, 768)
    batch = corpus_data.read(np.arange(3))
    assert batch["audio"].shape == (3, 10, 128) and batch["video"].shape == (3, 10, 7, 7, 512)


def _cca(x: np.ndarray, y: np.ndarray, k: int, reg: float = 0.1):
    """Linear CCA fitted on unlabelled pairs: projections of each side onto k shared directions."""
    mx, my = x.mean(0), y.mean(0)
    x, y = x - mx, y - my

    def inv_sqrt(c):
        w, u = np.linalg.eigh(c + reg * np.eye(len(c)))
        return u @ np.diag(w**-0.5) @ u.T

    wx, wy = inv_sqrt(x.T @ x / len(x)), inv_sqrt(y.T @ y / len(y))
    u, _, vt = np.linalg.svd(wx @ (x.T @ y / len(x)) @ wy)
    return (lambda a: (a - mx) @ wx @ u[:, :k]), (lambda b: (b - my) @ wy @ vt.T[:, :k])


def _prototype_accuracy(train_x, train_y, test_x, test_y) -> float:
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    classes = np.unique(train_y)
    protos = np.stack([((train_x[train_y == c] - mu) / sd).mean(0) for c in classes])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    predicted = classes[(((test_x - mu) / sd) @ protos.T).argmax(1)]
    return float((predicted == test_y).mean())


def test_cross_modal_transfer_is_learnable_from_pairs_but_not_direct():
    """Whole-clip events of 16 classes: a linear CCA fitted on unlabelled audio-video pairs
    transfers a prototype classifier across modalities far above chance, while applying the
    audio classifier to (channel-pooled, 128-d) video features directly stays near chance."""
    world = synth._build_world(0, 8)
    rng = np.random.default_rng(0)
    classes = [synth.CONCEPT_INDEX[k] for k in synth.UCF_VGG_KEYS]

    def clip_features(n: int):
        labels = synth._balanced_classes(rng, n, classes)
        clips = synth._single_event_clips(rng, [str(i) for i in range(n)], labels, "vggsound",
                                          full_prob=1.0, distractor_prob=0.0, distractor_pool=())
        audio = synth._render_audio(world, rng, clips).mean(1)
        video = np.concatenate([chunk.mean((1, 2, 3))
                                for _, chunk in synth._rendered(world, rng, clips, "video")])
        # Averaging groups of 4 channels keeps the matrices of the CCA small (128 x 128).
        return audio, video.reshape(n, 128, 4).mean(-1), labels

    pair_audio, pair_video, _ = clip_features(128)
    train_audio, train_video, train_y = clip_features(48)
    test_audio, test_video, test_y = clip_features(64)
    to_shared_a, to_shared_v = _cca(pair_audio, pair_video, k=12)
    chance = 1 / len(classes)
    within = _prototype_accuracy(train_audio, train_y, test_audio, test_y)
    a2v = _prototype_accuracy(to_shared_a(train_audio), train_y, to_shared_v(test_video), test_y)
    v2a = _prototype_accuracy(to_shared_v(train_video), train_y, to_shared_a(test_audio), test_y)
    direct = _prototype_accuracy(train_audio, train_y, test_video, test_y)
    assert within > 0.8
    assert a2v > 8 * chance and v2a > 8 * chance, (a2v, v2a)
    assert direct < 2.5 * chance, direct
