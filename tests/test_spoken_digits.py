"""The spoken-digits corpus: layout, keys, shapes, dtypes, disjoint splits, determinism, messages."""

from __future__ import annotations

import csv
import io
import json
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from toc.corpora import extractors as ex
from toc.corpora import real_signals as rs
from toc.corpora import spoken_digits as sd
from toc.errors import OutputExistsError

HAVE_TOOLS = shutil.which("espeak-ng") is not None
try:
    import sklearn  # noqa: F401
except ImportError:
    HAVE_TOOLS = False
needs_tools = pytest.mark.skipif(
    not HAVE_TOOLS, reason="spoken-digits corpus needs espeak-ng and scikit-learn (optional extras)"
)

TINY = sd.RealCorpusConfig(pretrain_clips=20, ave_clips=12, seed=3, text_width=16)


def _read_zip(path: Path) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if ".pkl" in n]
        assert names == [f"{path.stem}.pkl"]
        return pickle.load(io.BytesIO(archive.read(names[-1])))


def _h5(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        assert list(handle.keys()) == [key]
        return handle[key][...]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not HAVE_TOOLS:
        pytest.skip("spoken-digits corpus needs espeak-ng and scikit-learn (optional extras)")
    root = tmp_path_factory.mktemp("sd") / "corpus"
    sd.build_spoken_digits(root, TINY)
    return root


def _clip_table(root: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((root / sd.CLIPS_FILE).open(encoding="utf-8")))


@needs_tools
def test_pretraining_layout_has_reference_files_shapes_and_dtypes(corpus):
    rows = list(csv.reader((corpus / rs.PRETRAIN_CSV).open(encoding="utf-8")))
    assert rows[0] == ["category", "video_id", "split"]
    assert len(rows) == 1 + TINY.pretrain_clips
    assert {r[2] for r in rows[1:]} == {"train", "val", "test"}
    assert {r[0] for r in rows[1:]} == set(sd.DIGIT_NAMES)  # balanced: every digit present
    for _category, video_id, _ in rows[1:]:
        assert len(video_id) == 11
        audio = _read_zip(corpus / rs.PRETRAIN_AUDIO_DIR / f"{video_id}.zip")
        video = _read_zip(corpus / rs.PRETRAIN_VIDEO_DIR / f"{video_id}.zip")
        flags = _read_zip(corpus / rs.PRETRAIN_LABEL_DIR / f"{video_id}.zip")
        assert audio.shape == (10, 128) and audio.dtype == np.float32 and np.isfinite(audio).all()
        assert video.shape == (10, 7, 7, 512) and video.dtype == np.float32
        assert video.min() >= 0.0 and (video == 0).mean() > 0.3  # non-negative and sparse, like pool5
        assert flags.shape == (10,) and set(np.unique(flags)) <= {0, 1} and flags.sum() >= 3
    categories = (corpus / rs.CATEGORIES_TXT).read_text(encoding="utf-8").split()
    assert categories == list(sd.DIGIT_NAMES)
    prompts = list(csv.DictReader((corpus / rs.PROMPTS_CSV).open(encoding="utf-8")))
    assert [p["label"] for p in prompts] == list(sd.DIGIT_NAMES)


@needs_tools
def test_text_features_h5_has_digit_labels_and_word_features(corpus):
    with h5py.File(corpus / rs.TEXT_FEATURES_FILE, "r") as handle:
        labels = [x.decode("utf-8") if isinstance(x, bytes) else x for x in handle["labels"][...]]
        features = handle["features"][...]
    assert labels == list(sd.DIGIT_NAMES)
    assert features.shape == (10, 10, TINY.text_width) and features.dtype == np.float32
    # Only the digit-name slot differs between classes; slots past the prompt are zero padding.
    n_words = len(sd.CORPUS.prompt("zero").split())
    assert np.array_equal(features[0, : n_words - 1], features[7, : n_words - 1])
    assert not np.allclose(features[0, n_words - 1], features[7, n_words - 1])
    assert not features[:, n_words:].any()


@needs_tools
def test_ave_layout_keys_shapes_dtypes_and_labels(corpus):
    folder = corpus / rs.AVE_DIR
    n = TINY.ave_clips
    audio = _h5(folder / "audio_feature.h5", "avadataset")
    video = _h5(folder / "visual_feature.h5", "avadataset")
    labels = _h5(folder / "labels.h5", "avadataset")
    assert audio.shape == (n, 10, 128) and audio.dtype == np.float64
    assert video.shape == (n, 10, 7, 7, 512) and video.dtype == np.float64 and video.min() >= 0
    assert labels.shape == (n, 10, 29)
    assert np.array_equal(labels.sum(axis=2), np.ones((n, 10)))  # one-hot per segment
    assert not labels[:, :, 10:28].any()  # only the 10 digit columns and background are used
    orders = {s: _h5(folder / f"{s}_order.h5", "order") for s in ("train", "val", "test")}
    assert all(o.dtype == np.int64 and len(o) > 0 for o in orders.values())
    assert sorted(np.concatenate(list(orders.values())).tolist()) == list(range(n))
    # The AVE video-level target rule recovers each clip's digit; background marks the rest.
    table = [r for r in _clip_table(corpus) if r["set"] == "ave"]
    targets = labels[:, :, :28].argmax(axis=2).max(axis=1)
    assert targets.tolist() == [sd.DIGIT_NAMES.index(r["digit"]) for r in table]
    for row, record in enumerate(table):
        event = np.zeros(10, dtype=bool)
        event[int(record["onset"]) : int(record["offset"])] = True
        assert np.array_equal(labels[row, :, 28] == 1, ~event)


@needs_tools
def test_event_segments_carry_the_signal_and_background_does_not(corpus):
    table = [r for r in _clip_table(corpus) if r["set"] == "ave"]
    audio = _h5(corpus / rs.AVE_DIR / "audio_feature.h5", "avadataset")
    video = _h5(corpus / rs.AVE_DIR / "visual_feature.h5", "avadataset")
    for row, record in enumerate(table):
        event = np.zeros(10, dtype=bool)
        event[int(record["onset"]) : int(record["offset"])] = True
        loudness = audio[row, :, :64].mean(axis=1)  # mean log-mel of the kept frames
        activity = video[row].reshape(10, -1).mean(axis=1)
        if (~event).any():
            assert loudness[event].min() > loudness[~event].max()
            assert activity[event].min() > activity[~event].max()


@needs_tools
def test_evaluation_speakers_and_images_are_disjoint_from_pretraining(corpus):
    table = _clip_table(corpus)
    pre = [r for r in table if r["set"] == "pretrain"]
    ave = [r for r in table if r["set"] == "ave"]
    assert len(pre) == TINY.pretrain_clips and len(ave) == TINY.ave_clips
    assert not {r["speaker"] for r in pre} & {r["speaker"] for r in ave}
    variant = lambda name: name.split("/")[0].split("+")[1]  # noqa: E731
    assert not {variant(r["speaker"]) for r in pre} & {variant(r["speaker"]) for r in ave}
    assert not {r["image_index"] for r in pre} & {r["image_index"] for r in ave}
    marker = json.loads((corpus / sd.MARKER_FILE).read_text())
    assert not set(marker["pretrain_speakers"]) & set(marker["eval_speakers"])
    # The table's digit agrees with the csv category and the sklearn image label.
    from sklearn.datasets import load_digits

    image_labels = load_digits().target
    csv_rows = list(csv.DictReader((corpus / rs.PRETRAIN_CSV).open(encoding="utf-8")))
    assert [r["category"] for r in csv_rows] == [r["digit"] for r in pre]
    assert all(sd.DIGIT_NAMES[image_labels[int(r["image_index"])]] == r["digit"] for r in table)


@needs_tools
def test_same_seed_gives_identical_arrays_and_another_seed_differs(corpus, tmp_path):
    again = tmp_path / "again"
    sd.build_spoken_digits(again, TINY)
    for name in ("audio_feature.h5", "visual_feature.h5", "labels.h5", "train_order.h5", "test_order.h5"):
        key = "order" if "order" in name else "avadataset"
        assert np.array_equal(_h5(corpus / rs.AVE_DIR / name, key), _h5(again / rs.AVE_DIR / name, key))
    assert (corpus / rs.PRETRAIN_CSV).read_bytes() == (again / rs.PRETRAIN_CSV).read_bytes()
    for zip_path in sorted((corpus / rs.PRETRAIN_VIDEO_DIR).glob("*.zip"))[:5]:
        assert np.array_equal(_read_zip(zip_path), _read_zip(again / rs.PRETRAIN_VIDEO_DIR / zip_path.name))
    for zip_path in sorted((corpus / rs.PRETRAIN_AUDIO_DIR).glob("*.zip")):
        assert np.array_equal(_read_zip(zip_path), _read_zip(again / rs.PRETRAIN_AUDIO_DIR / zip_path.name))
    other = tmp_path / "other"
    sd.build_spoken_digits(other, sd.RealCorpusConfig(pretrain_clips=20, ave_clips=12, seed=4, text_width=16))
    assert not np.array_equal(
        _h5(corpus / rs.AVE_DIR / "audio_feature.h5", "avadataset"),
        _h5(other / rs.AVE_DIR / "audio_feature.h5", "avadataset"),
    )


@needs_tools
def test_existing_output_is_refused_and_force_replaces_only_a_corpus(corpus, tmp_path):
    with pytest.raises(OutputExistsError, match="pass force to replace"):
        sd.build_spoken_digits(corpus, TINY)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not written by this command"):
        sd.build_spoken_digits(foreign, TINY, force=True)
    assert (foreign / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder left behind


@needs_tools
def test_cli_builds_and_prints_a_json_summary(tmp_path):
    from cli.main import cli

    target = tmp_path / "cli-corpus"
    result = CliRunner().invoke(cli, ["synth-spoken-digits", str(target), "--clips", "10", "--ave-clips", "10",
                                      "--text-width", "8", "--seed", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pretrain_clips"] == 10 and summary["ave_clips"] == 10
    assert (target / rs.AVE_DIR / "labels.h5").is_file()
    again = CliRunner().invoke(cli, ["synth-spoken-digits", str(target), "--clips", "10"])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_missing_espeak_ng_gives_a_one_line_message(monkeypatch, tmp_path):
    from cli.main import cli

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(sd.MissingToolError, match="espeak-ng") as info:
        sd.build_spoken_digits(tmp_path / "x", TINY)
    assert "\n" not in str(info.value) and "apt-get install espeak-ng" in str(info.value)
    result = CliRunner().invoke(cli, ["synth-spoken-digits", str(tmp_path / "y"), "--clips", "10"])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "espeak-ng" in result.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_missing_scikit_learn_gives_a_one_line_message(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/nonexistent/espeak-ng")
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(sd.MissingToolError, match="scikit-learn") as info:
        sd.build_spoken_digits(tmp_path / "x", TINY)
    assert "\n" not in str(info.value) and "cmg-toc[corpus]" in str(info.value)


def test_video_lifter_is_fixed_non_negative_and_exact_in_float16():
    images = np.random.default_rng(0).uniform(0, 1, size=(3, 8, 8))
    first, second = ex.VideoLifter()(images), ex.VideoLifter()(images)
    assert first.shape == (3, 7, 7, 512) and np.array_equal(first, second)
    assert first.min() >= 0 and np.array_equal(first.astype(np.float16).astype(np.float32), first)
    assert not np.array_equal(first[0], first[1])


def test_audio_features_tell_a_tone_from_noise():
    t = np.arange(ex.SAMPLE_RATE) / ex.SAMPLE_RATE
    rng = np.random.default_rng(0)
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.003, t.size)
    noise = rng.normal(0, 0.003, t.size)
    features = ex.audio_segment_features(np.stack([tone, noise]))
    assert features.shape == (2, 128) and np.isfinite(features).all()
    peak_band = int(np.argmax(ex.MEL_BANK[int(440 / (ex.SAMPLE_RATE / 2) * 256)]))
    assert features[0, peak_band] - features[1, peak_band] > 5  # log-mel: far louder at 440 Hz
    assert features[0, :64].argmax() == peak_band


@needs_tools
def test_real_loaders_read_the_corpus_from_data_root(corpus):
    from toc.data.layout import resolve_paths
    from toc.data.vggsound import load_pretrain
    from toc.eval.tasks import load_task

    pretrain = load_pretrain(resolve_paths("pretrain", data_root=corpus))
    assert len(pretrain) == TINY.pretrain_clips and pretrain.category_names == list(sd.DIGIT_NAMES)
    batch = pretrain.read(np.arange(3))
    assert batch["audio"].shape == (3, 10, 128) and batch["video"].shape == (3, 10, 7, 7, 512)
    assert pretrain.text_for(np.arange(3)).shape == (3, 10, TINY.text_width)
    table = {r["key"]: r["digit"] for r in _clip_table(corpus) if r["set"] == "pretrain"}
    assert [sd.DIGIT_NAMES[i] for i in pretrain.labels] == [table[i] for i in pretrain.ids]

    ave = load_task("ave", data_root=corpus)
    audio_set = ave.sets["ave/audio"]
    assert len(audio_set) == TINY.ave_clips
    digits = [sd.DIGIT_NAMES.index(r["digit"]) for r in _clip_table(corpus) if r["set"] == "ave"]
    assert audio_set.labels.tolist() == [digits[int(i)] for i in audio_set.ids]
    assert sorted(len(v) for v in ave.predefined_splits["ave/audio"].values()) == sorted(
        len(_h5(corpus / rs.AVE_DIR / f"{s}_order.h5", "order")) for s in ("train", "val", "test")
    )
