"""UCF101↔VGGSound (§12 F-D) and the VGGSound-AVEL pretraining corpus (F-P)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from toc.data.layout import resolve_paths
from toc.data.vggsound import load_pretrain
from toc.errors import DataError
from toc.eval.tasks import load_task
from toc.testing.datafixtures import (
    EXTRACTOR_DIR,
    PRETRAIN_ROWS,
    UCF_CLASSES,
    UCF_ROWS,
    VGGSOUND_CLASSES,
    segment_values,
    write_feature_zip,
    write_lines,
    write_pretrain,
    write_table,
    write_text_features,
    write_ucf_vggsound,
)


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    return write_ucf_vggsound(tmp_path_factory.mktemp("ucf"))


def test_ucf_vggsound_sets(ucf_root):
    task = load_task("ucf-vggsound", data_root=ucf_root)
    assert task.kind == "clip" and task.n_classes == 16
    assert task.directions == {"v2a": ("ucf/video", "vggsound/audio"),
                               "a2v": ("vggsound/audio", "ucf/video")}
    ucf, vgg = task.sets["ucf/video"], task.sets["vggsound/audio"]
    assert ucf.labels.dtype == np.int64 and vgg.labels.dtype == np.int64
    assert ucf.labels.tolist() == [UCF_CLASSES.index(r[0]) for r in UCF_ROWS] == [0, 7, 5]
    # All three splits of vggsound2ucf.csv are loaded (quirk Q13), names with commas included.
    assert list(vgg.ids) == ["ggggggggggg", "hhhhhhhhhhh", "iiiiiiiiiii"]
    assert vgg.labels.tolist() == [0, 7, VGGSOUND_CLASSES.index("playing violin, fiddle")]
    video = ucf.read(np.array([0, 1, 2]))
    assert video.shape == (3, 10, 7, 7, 512) and video.dtype == np.float64
    assert np.array_equal(video[0, 7], video[0, 6]) and np.array_equal(video[0, 9], video[0, 6])
    assert np.allclose(video[1, :, 3, 3, 100], 31 + 0.01 * np.arange(10))  # 12 -> first 10
    audio = vgg.read(np.array([0]))
    assert audio.shape == (1, 10, 128) and np.array_equal(audio[0, 9], audio[0, 8])


def _ucf_error(root) -> str:
    with pytest.raises(DataError) as exc:
        load_task("ucf-vggsound", data_root=root)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_ucf_vggsound_errors(tmp_path):
    write_ucf_vggsound(tmp_path)
    ext = tmp_path / EXTRACTOR_DIR
    write_lines(ext / "VGGSoundsameUCF101.txt", VGGSOUND_CLASSES[:15])
    assert "aligned" in _ucf_error(tmp_path)
    write_ucf_vggsound(tmp_path)
    write_table(ext / "ucf2vggsound.csv", ("category", "video_id"),
                [*UCF_ROWS, ("Surfing", "v_Surfing_g01_c01")])
    assert "unknown category" in _ucf_error(tmp_path) and "row 5" in _ucf_error(tmp_path)
    write_table(ext / "ucf2vggsound.csv", ("category", "video_id"), [*UCF_ROWS, UCF_ROWS[1]])
    assert "duplicate id 'v_Typing_g01_c01'" in _ucf_error(tmp_path)
    write_table(ext / "ucf2vggsound.csv", ("category", "video_id"), UCF_ROWS)
    (tmp_path / "vggsound40k/feature/audio/zip/hhhhhhhhhhh.zip").unlink()
    assert "video id 'hhhhhhhhhhh'" in _ucf_error(tmp_path)


@pytest.fixture(scope="module")
def pretrain_root(tmp_path_factory):
    return write_pretrain(tmp_path_factory.mktemp("pretrain"))


def corpus(root):
    return load_pretrain(resolve_paths("pretrain", data_root=root))


def test_pretrain_corpus(pretrain_root):
    data = corpus(pretrain_root)
    # Reference order: train rows, then test, then val; all are used.
    assert data.ids == ["qqqqqqqqqqq", "sssssssssss", "rrrrrrrrrrr", "ppppppppppp"]
    assert data.splits == ["train", "train", "test", "val"]
    assert data.category_names == ["cat meowing", "dog barking"]
    assert data.labels.tolist() == [0, 0, 1, 1] and data.labels.dtype == np.int64
    batch = data.read(np.array([3, 0]))
    assert batch["audio"].shape == (2, 10, 128) and batch["video"].shape == (2, 10, 7, 7, 512)
    assert batch["audio"].dtype == np.float64 == batch["video"].dtype
    # ppppppppppp (first CSV row) has T = 7 audio: padded with its last row.
    assert np.array_equal(batch["audio"][0, 9], batch["audio"][0, 6])
    assert batch["audio"][0, 6, 0] == np.float64(np.float32(50.06))
    text = data.text_for(np.array([0, 2]))
    assert text.shape == (2, 10, 8) and text.dtype == np.float64
    assert np.array_equal(text[1], data.text_features[1]) and data.text.width == 8
    assert data.feature_set("video").read(np.array([1])).shape == (1, 10, 7, 7, 512)


def _pretrain_error(root) -> str:
    with pytest.raises(DataError) as exc:
        corpus(root)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_pretrain_csv_errors(tmp_path):
    write_pretrain(tmp_path)
    csv = tmp_path / EXTRACTOR_DIR / "vggsound-avel40k.csv"
    header = ("category", "video_id", "split")
    write_table(csv, header, [*PRETRAIN_ROWS, ("horse neighing", "ttttttttttt", "train")])
    text = _pretrain_error(tmp_path)
    assert "video id 'ttttttttttt'" in text and "no text features" in text
    write_table(csv, header, [*PRETRAIN_ROWS, ("dog barking", "ttttttttttt", "holdout")])
    assert "unknown split" in _pretrain_error(tmp_path)
    write_table(csv, header, [*PRETRAIN_ROWS, PRETRAIN_ROWS[2]])
    assert "duplicate id 'rrrrrrrrrrr'" in _pretrain_error(tmp_path)
    write_table(csv, header, [*PRETRAIN_ROWS, ("dog barking", "ttttttttttt", "train")])
    text = _pretrain_error(tmp_path)
    assert "ttttttttttt.zip" in text and "vggsound-avel40k.csv" in text


def test_pretrain_feature_errors_on_read(tmp_path):
    write_pretrain(tmp_path)
    bad = segment_values(0, 10, (7, 7, 512))
    bad[2, 1, 1, 1] = np.inf
    write_feature_zip(tmp_path / "vggsound40k/feature/video/zip", "qqqqqqqqqqq", bad)
    write_feature_zip(tmp_path / "vggsound40k/feature/audio/zip", "sssssssssss",
                      np.zeros((10, 64)))
    data = corpus(tmp_path)
    with pytest.raises(DataError, match="NaN/Inf.*qqqqqqqqqqq"):
        data.read(np.array([0]))
    with pytest.raises(DataError, match=r"sssssssssss.*expected \[T>=1,128\], got \[10,64\]"):
        data.read(np.array([1]))


def test_text_feature_errors(tmp_path):
    write_pretrain(tmp_path)
    path = tmp_path / "vggsound40k/data/text_features.h5"
    with h5py.File(path, "a") as handle:
        del handle["features"]
        handle.create_dataset("features", data=np.zeros((2, 9, 8)))
    assert "expected [2,10,W], got [2,9,8]" in _pretrain_error(tmp_path)
    with h5py.File(path, "a") as handle:
        del handle["features"]
        handle.create_dataset("features", data=np.full((2, 10, 4), np.nan))
    assert "NaN/Inf" in _pretrain_error(tmp_path)
    with h5py.File(path, "a") as handle:
        del handle["features"]
    assert "key 'features'" in _pretrain_error(tmp_path)
    write_text_features(path, ["cat meowing", "dog barking", "cat meowing"])
    assert "duplicate category name 'cat meowing'" in _pretrain_error(tmp_path)
    path.unlink()
    assert "missing text-feature file" in _pretrain_error(tmp_path)


def test_any_text_width_and_fixed_length_labels(tmp_path):
    write_pretrain(tmp_path, text_width=768)
    assert corpus(tmp_path).text_features.shape == (2, 10, 768)
    path = tmp_path / "vggsound40k/data/text_features.h5"
    with h5py.File(path, "a") as handle:  # fixed-length byte strings ('S' dtype) also work
        del handle["labels"]
        handle.create_dataset("labels", data=np.array([b"cat meowing", b"dog barking"]))
    assert corpus(tmp_path).category_names == ["cat meowing", "dog barking"]
