"""AVVP and AVE→AVVP loaders on the §12 F-B / F-C fixtures: labels, features, every CSV error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from toc.errors import DataError
from toc.eval.tasks import load_task
from toc.testing.datafixtures import (
    AVE_AVVP_CLASSES,
    AVVP_AUDIO_ROWS,
    AVVP_CLASSES,
    AVVP_VISUAL_ROWS,
    segment_values,
    write_ave_avvp,
    write_avvp,
    write_avvp_csv,
    write_feature_zip,
    write_h5,
    write_lines,
)

AUDIO_CSV = "AVVP/data/AVVP_eval_audio_checked_combined.csv"
VISUAL_CSV = "AVVP/data/AVVP_eval_visual_checked_combined.csv"


def segments(column: np.ndarray) -> list[int]:
    return np.flatnonzero(column).tolist()


@pytest.fixture(scope="module")
def avvp_root(tmp_path_factory):
    return write_avvp(tmp_path_factory.mktemp("avvp"))


def test_labels_follow_the_segment_rule(avvp_root):
    task = load_task("avvp", data_root=avvp_root)
    assert task.kind == "segment" and task.class_names == AVVP_CLASSES and task.n_classes == 25
    audio = task.sets["avvp/audio"]
    labels = audio.labels
    assert labels.shape == (3, 10, 26) and labels.dtype == np.float64
    speech, violin, dog, car = (AVVP_CLASSES.index(n) for n in
                                ("Speech", "Violin_fiddle", "Dog", "Car"))
    assert segments(labels[0, :, speech]) == [0, 5, 6, 7, 8]
    assert segments(labels[0, :, violin]) == [0, 1, 2, 3, 4, 6, 7, 9]
    assert segments(labels[0, :, 25]) == []
    assert segments(labels[1, :, dog]) == [2, 3, 4]
    assert segments(labels[1, :, 25]) == [0, 1, 5, 6, 7, 8, 9]
    assert segments(labels[2, :, car]) == list(range(10)) and segments(labels[2, :, 25]) == []
    assert labels.sum() == 5 + 8 + 3 + 7 + 10  # nothing else is set
    assert list(audio.ids) == ["IgN7v8nWmx8", "aaaaaaaaaaa", "bbbbbbbbbbb"]
    video = task.sets["avvp/video"]
    assert video.labels.shape == (2, 10, 26)
    assert segments(video.labels[0, :, speech]) == [4, 5]
    assert task.directions == {"v2a": ("avvp/video", "avvp/audio"),
                               "a2v": ("avvp/audio", "avvp/video")}
    assert task.predefined_splits == {}


def test_features_pad_truncate_and_cast(avvp_root):
    task = load_task("avvp", data_root=avvp_root)
    audio = task.sets["avvp/audio"].read(np.array([0, 1, 2]))
    assert audio.shape == (3, 10, 128) and audio.dtype == np.float64
    # Row 0 was [8,128] float32: rows 8-9 repeat row 7.
    assert np.array_equal(audio[0, 8], audio[0, 7]) and np.array_equal(audio[0, 9], audio[0, 7])
    assert audio[0, 7, 0] == np.float64(np.float32(0.07))
    # Row 2 was [12,128]: the first ten kept.
    assert np.allclose(audio[2, :, 0], 2 + 0.01 * np.arange(10))
    video = task.sets["avvp/video"].read(np.array([1, 0]))
    assert video.shape == (2, 10, 7, 7, 512) and video.dtype == np.float64
    assert video[:, 0, 0, 0, 0].tolist() == [1.0, 0.0]


def test_single_event_only_csv_parses(tmp_path):
    # Quirk Q6: with no comma anywhere pandas would parse ints; we read text, so it just works.
    write_avvp(tmp_path, audio_rows=[("aaaaaaaaaaa_0_10", "2", "5", "Dog")])
    task = load_task("avvp", data_root=tmp_path)
    assert task.sets["avvp/audio"].labels.shape == (1, 10, 26)


def _error(root) -> str:
    with pytest.raises(DataError) as exc:
        load_task("avvp", data_root=root)
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("row", "needle"),
    [(("aaaaaaaaaaa_0_10", "6", "5", "Dog"), "expected 0 <= onset <= offset <= 10, got 6..5"),
     (("aaaaaaaaaaa_0_10", "2", "11", "Dog"), "got 2..11"),
     (("aaaaaaaaaaa_0_10", "-1", "3", "Dog"), "got -1..3"),
     (("aaaaaaaaaaa_0_10", "2", "3", "Unicorn"), "unknown class name"),
     (("aaaaaaaaaaa_0_10", "2,3", "4", "Dog,Cat"), "differ in length"),
     (("aaaaaaaaaaa_0_10", "2.5", "4", "Dog"), "not an integer second"),
     (("short_0_10", "2", "4", "Dog"), "shorter than a YouTube id")],
)
def test_bad_csv_rows(tmp_path, row, needle):
    write_avvp(tmp_path)
    write_avvp_csv(tmp_path / AUDIO_CSV, [AVVP_AUDIO_ROWS[0], row])
    text = _error(tmp_path)
    assert needle in text and "AVVP_eval_audio_checked_combined.csv" in text and "row 3" in text


def test_duplicate_filename(tmp_path):
    write_avvp(tmp_path)
    write_avvp_csv(tmp_path / VISUAL_CSV, [AVVP_VISUAL_ROWS[0], AVVP_VISUAL_ROWS[0]])
    text = _error(tmp_path)
    assert "duplicate id 'IgN7v8nWmx8_30_40'" in text and "first on row 2" in text


def test_same_video_under_two_filenames(tmp_path):
    write_avvp(tmp_path)
    write_avvp_csv(tmp_path / VISUAL_CSV,
                   [AVVP_VISUAL_ROWS[0], ("IgN7v8nWmx8_0_10", "0", "1", "Dog")])
    assert "filename[:11]" in _error(tmp_path)


def test_comma_separated_csv_is_refused(tmp_path):
    write_avvp(tmp_path)
    (tmp_path / AUDIO_CSV).write_text("filename,onset,offset,event_labels\naaaaaaaaaaa_0_10,2,5,Dog\n")
    text = _error(tmp_path)
    assert "missing column (delimiter TAB)" in text and "key 'filename'" in text


@pytest.mark.parametrize(
    ("content", "needle"),
    [("", "empty file"), ("filename\tonset\toffset\tevent_labels\n", "no rows"),
     ("filename\tonset\toffset\tevent_labels\naaaaaaaaaaa_0_10\t2\t5\n", "wrong number of fields")],
)
def test_empty_and_ragged_csv(tmp_path, content, needle):
    write_avvp(tmp_path)
    (tmp_path / AUDIO_CSV).write_text(content)
    assert needle in _error(tmp_path)


def test_bad_category_lists(tmp_path):
    write_avvp(tmp_path)
    write_lines(tmp_path / "AVVP/data/AVVP_Categories.txt", ["Speech", "Dog", "Speech"])
    assert "duplicate class name 'Speech'" in _error(tmp_path)
    (tmp_path / "AVVP/data/AVVP_Categories.txt").unlink()
    assert "AVVP_Categories.txt" in _error(tmp_path)


def test_missing_zip_is_reported_at_load(tmp_path):
    write_avvp(tmp_path)
    (tmp_path / "AVVP/feature/audio/zip/bbbbbbbbbbb.zip").unlink()
    text = _error(tmp_path)
    assert "bbbbbbbbbbb.zip" in text and "video id 'bbbbbbbbbbb'" in text
    shutil.rmtree(tmp_path / "AVVP/feature/video")
    write_feature_zip(tmp_path / "AVVP/feature/audio/zip", "bbbbbbbbbbb", np.zeros((10, 128)))
    assert "missing feature directory" in _error(tmp_path)


def test_video_must_be_exactly_ten_segments(tmp_path):
    write_avvp(tmp_path)
    write_feature_zip(tmp_path / "AVVP/feature/video/zip", "aaaaaaaaaaa",
                      segment_values(0, 9, (7, 7, 512)))
    task = load_task("avvp", data_root=tmp_path)
    with pytest.raises(DataError) as exc:
        task.sets["avvp/video"].read(np.array([1]))
    assert "expected [10,7,7,512], got [9,7,7,512]" in str(exc.value)
    assert "aaaaaaaaaaa.zip" in str(exc.value)


@pytest.fixture(scope="module")
def ave_avvp_root(tmp_path_factory):
    return write_ave_avvp(tmp_path_factory.mktemp("ave_avvp"))


def test_ave_avvp_sets(ave_avvp_root):
    task = load_task("ave-avvp", data_root=ave_avvp_root)
    assert task.kind == "segment" and task.class_names == AVE_AVVP_CLASSES
    assert set(task.sets) == {"ave-avvp-train/audio", "ave-avvp-train/video",
                              "ave-avvp-test/audio", "ave-avvp-test/video"}
    assert task.directions == {"v2a": ("ave-avvp-train/video", "ave-avvp-test/audio"),
                               "a2v": ("ave-avvp-train/audio", "ave-avvp-test/video")}
    train_v = task.sets["ave-avvp-train/video"]
    assert list(train_v.ids) == ["0", "2"] and train_v.labels.shape == (2, 10, 13)
    assert segments(train_v.labels[0, :, 4]) == [2, 3, 4, 5, 6, 7]  # Chainsaw, AVE row 0
    assert segments(train_v.labels[1, :, 7]) == list(range(10))  # Accordion, AVE row 2
    assert train_v.read(np.array([1, 0])).shape == (2, 10, 7, 7, 512)
    assert task.sets["ave-avvp-train/audio"].read(np.array([1]))[0, 0, 0] == 2.0
    test_a = task.sets["ave-avvp-test/audio"]
    assert test_a.labels.shape == (2, 10, 13)
    speech, banjo = AVE_AVVP_CLASSES.index("Speech"), AVE_AVVP_CLASSES.index("Banjo")
    assert segments(test_a.labels[0, :, speech]) == [0, 1, 2, 3]
    assert segments(test_a.labels[0, :, banjo]) == list(range(3, 10))
    assert test_a.read(np.array([0, 1])).shape == (2, 10, 128)
    assert task.sets["ave-avvp-test/video"].read(np.array([1])).shape == (1, 10, 7, 7, 512)


def test_ave_avvp_errors(tmp_path):
    write_ave_avvp(tmp_path)
    csv = tmp_path / "AVE_AVVP/AVE_AVVP_eval_audio_checked_combined.csv"
    write_avvp_csv(csv, [("ccccccccccc_0_10", "0", "4", "Car")])  # Car is not among the 12
    with pytest.raises(DataError, match="unknown class name"):
        load_task("ave-avvp", data_root=tmp_path)
    write_ave_avvp(tmp_path)
    write_h5(tmp_path / "AVE_AVVP/ave_avvp_labels.h5", "avadataset", np.zeros((5, 10, 26)))
    with pytest.raises(DataError, match=r"expected \[N,10,13\], got \[5,10,26\]"):
        load_task("ave-avvp", data_root=tmp_path)
    write_ave_avvp(tmp_path)
    write_h5(tmp_path / "AVE_AVVP/ave_avvp_order.h5", "order", np.array([0, 5], dtype=np.int64))
    with pytest.raises(DataError, match="expected 0..4, got 0..5"):
        load_task("ave-avvp", data_root=tmp_path)
    write_ave_avvp(tmp_path)
    labels = np.zeros((5, 10, 13))
    labels[0, 0, 0] = 2.0
    write_h5(tmp_path / "AVE_AVVP/ave_avvp_labels.h5", "avadataset", labels)
    with pytest.raises(DataError, match="outside 0..1"):
        load_task("ave-avvp", data_root=tmp_path)
