"""AVE loader on the §12 F-A fixture: shapes, clip targets, splits, lazy reads, every error."""

from __future__ import annotations

import numpy as np
import pytest

from toc.data.ave import clip_targets, load_ave
from toc.data.layout import resolve_paths
from toc.errors import DataError
from toc.testing.datafixtures import AVE_DIR, write_ave, write_h5


def ave(root):
    return load_ave(resolve_paths("ave", data_root=root))


@pytest.fixture(scope="module")
def ave_root(tmp_path_factory):
    return write_ave(tmp_path_factory.mktemp("ave"))


def test_sets_labels_and_splits(ave_root):
    task = ave(ave_root)
    assert task.task == "ave" and task.kind == "clip" and task.n_classes == 28
    assert set(task.sets) == {"ave/audio", "ave/video"}
    audio, video = task.sets["ave/audio"], task.sets["ave/video"]
    assert len(audio) == len(video) == 5 and list(audio.ids) == ["0", "1", "2", "3", "4"]
    assert audio.labels.dtype == np.int64
    assert audio.labels.tolist() == [3, 0, 27, 5, 12] == video.labels.tolist()
    assert audio.feature_shape == (10, 128) and video.feature_shape == (10, 7, 7, 512)
    splits = task.predefined_splits["ave/audio"]
    assert splits["train"].tolist() == [3, 1, 0]  # file order kept
    assert audio.labels[splits["train"]].tolist() == [5, 0, 3]  # §12 expected train targets
    assert splits["val"].tolist() == [2] and splits["test"].tolist() == [4]
    assert task.predefined_splits["ave/video"]["train"].tolist() == [3, 1, 0]
    assert task.directions == {"v2a": ("ave/video", "ave/audio"), "a2v": ("ave/audio", "ave/video")}


def test_reads_any_row_order_with_repeats(ave_root):
    task = ave(ave_root)
    rows = np.array([3, 1, 0, 3, 4])
    audio = task.sets["ave/audio"].read(rows)
    video = task.sets["ave/video"].read(rows)
    assert audio.shape == (5, 10, 128) and audio.dtype == np.float64
    assert video.shape == (5, 10, 7, 7, 512)
    # Fixture value of sample n, segment t is n + 0.01 t.
    assert audio[:, 0, 0].tolist() == [3.0, 1.0, 0.0, 3.0, 4.0]
    assert np.allclose(video[:, 9, 6, 6, 511], rows + 0.09)
    assert task.sets["ave/audio"].read(np.array([], dtype=np.int64)).shape == (0, 10, 128)


def test_sets_cover_only_rows_named_in_order_files(tmp_path):
    write_ave(tmp_path, n=6, train=(5, 0), val=(2,), test=(3,))
    task = ave(tmp_path)
    audio = task.sets["ave/audio"]
    assert list(audio.ids) == ["0", "2", "3", "5"]
    train = task.predefined_splits["ave/audio"]["train"]
    assert [audio.ids[i] for i in train] == ["5", "0"]
    assert audio.read(train)[:, 0, 0].tolist() == [5.0, 0.0]


def test_clip_target_rule():
    labels = np.zeros((2, 10, 29))
    labels[:, :, 28] = 1
    labels[0, 4, :] = 0
    labels[0, 4, 7] = 1
    assert clip_targets(labels).tolist() == [7, 0]  # all background -> 0, as the reference


def _error(root) -> str:
    with pytest.raises(DataError) as exc:
        ave(root)
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_file_and_key(tmp_path):
    write_ave(tmp_path)
    (tmp_path / AVE_DIR / "labels.h5").unlink()
    assert "labels.h5" in _error(tmp_path) and "missing file" in _error(tmp_path)
    write_h5(tmp_path / AVE_DIR / "labels.h5", "wrong_key", np.zeros((5, 10, 29)))
    text = _error(tmp_path)
    assert "key 'avadataset'" in text and "wrong_key" in text


def test_empty_and_non_h5_files(tmp_path):
    write_ave(tmp_path)
    (tmp_path / AVE_DIR / "test_order.h5").write_bytes(b"")
    assert "test_order.h5" in _error(tmp_path) and "empty file" in _error(tmp_path)
    (tmp_path / AVE_DIR / "test_order.h5").write_bytes(b"not an h5 file at all")
    assert "unreadable h5" in _error(tmp_path)


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [("visual_feature.h5", (5, 10, 7, 7, 256), "expected [N,10,7,7,512], got [5,10,7,7,256]"),
     ("audio_feature.h5", (5, 10, 64), "expected [N,10,128], got [5,10,64]"),
     ("labels.h5", (5, 10, 28), "expected [5,10,29], got [5,10,28]"),
     ("audio_feature.h5", (4, 10, 128), "different row counts")],
)
def test_wrong_shapes(tmp_path, name, shape, expected):
    write_ave(tmp_path)
    write_h5(tmp_path / AVE_DIR / name, "avadataset", np.zeros(shape))
    text = _error(tmp_path)
    assert expected in text and name in text


@pytest.mark.parametrize(
    ("order", "needle"),
    [([3, 9], "expected 0..4, got 3..9"), ([1, 1], "duplicate row 1"), ([4], "both the"),
     ([], "empty dataset")],
)
def test_bad_order_files(tmp_path, order, needle):
    write_ave(tmp_path)
    write_h5(tmp_path / AVE_DIR / "train_order.h5", "order", np.asarray(order, dtype=np.int64))
    assert needle in _error(tmp_path)


def test_float_order_is_rejected(tmp_path):
    write_ave(tmp_path)
    write_h5(tmp_path / AVE_DIR / "val_order.h5", "order", np.array([2.0]))
    assert "wrong dtype" in _error(tmp_path)


def test_nan_features_fail_on_read(tmp_path):
    audio = np.zeros((5, 10, 128))
    audio[1, 2, 3] = np.nan
    write_ave(tmp_path, audio=audio)
    task = ave(tmp_path)  # metadata is fine; values are checked when read
    assert task.sets["ave/audio"].read(np.array([0, 2])).shape == (2, 10, 128)
    with pytest.raises(DataError) as exc:
        task.sets["ave/audio"].read(np.array([3, 1]))
    assert "NaN/Inf values in row 1" in str(exc.value) and "audio_feature.h5" in str(exc.value)


def test_nan_labels(tmp_path):
    labels = np.zeros((5, 10, 29))
    labels[0, 0, 0] = np.inf
    write_ave(tmp_path, labels=labels)
    assert "NaN/Inf" in _error(tmp_path)
