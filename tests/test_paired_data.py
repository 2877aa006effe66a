"""The own-data format (toc.data.paired): h5 file or .npy folder, any widths, any T, text
variants, labels, splits, and one-line errors for what is wrong."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from toc.corpora.paired import synthesize_paired
from toc.data.paired import PairedPretraining, load_paired, paired_task
from toc.data.pretraining import open_pretraining
from toc.errors import DataError, SettingsError
from toc.eval.tasks import load_task


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def write_h5(path, **datasets):
    with h5py.File(path, "w") as out:
        for key, value in datasets.items():
            value = np.asarray(value)
            if value.dtype.kind == "U":
                out.create_dataset(key, data=value.astype(object), dtype=h5py.string_dtype("utf-8"))
            else:
                out.create_dataset(key, data=value)
    return path


def small(n=12, audio=(11,), video=(5,), seed=0):
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.normal(size=(n, *audio)).astype(np.float32),
        "video": np.abs(rng.normal(size=(n, *video))),
        "labels": np.arange(n) % 3,
    }


def test_clip_level_features_get_one_time_step(tmp_path):
    data = small()
    corpus = load_paired(write_h5(tmp_path / "paired.h5", **data))
    assert (len(corpus), corpus.steps) == (12, 1)
    assert corpus.audio_shape == (1, 11) and corpus.video_shape == (1, 5) and not corpus.video_has_grid
    batch = corpus.read([3, 0, 3])
    assert set(batch) == {"audio", "video"}  # no text in the file: none handed out
    assert batch["audio"].dtype == np.float64 and batch["audio"].shape == (3, 1, 11)
    assert np.array_equal(batch["audio"][:, 0], data["audio"][[3, 0, 3]].astype(np.float64))
    assert np.array_equal(batch["video"][:, 0], data["video"][[3, 0, 3]])
    assert corpus.class_names == ["0", "1", "2"] and corpus.ids[:2] == ["0", "1"]
    task = paired_task(corpus)
    assert task.kind == "clip" and task.directions == {"v2a": ("paired/video", "paired/audio"), "a2v": ("paired/audio", "paired/video")}
    assert task.predefined_splits == {}  # no split: the strict protocol draws a seeded one
    assert task.sets["paired/video"].read(np.array([2])).shape == (1, 1, 5)


def test_npy_folder_reads_the_same_as_h5(tmp_path):
    data = small(audio=(4, 6), video=(4, 7, 7, 3))
    data["split"] = np.array(["train"] * 6 + ["val"] * 3 + ["test"] * 3)
    data["class_names"] = np.array(["dog", "cat", "bird"])
    write_h5(tmp_path / "paired.h5", **data)
    folder = tmp_path / "paired"
    folder.mkdir()
    for key, value in data.items():
        np.save(folder / f"{key}.npy", value)
    from_h5, from_npy = load_paired(tmp_path / "paired.h5"), load_paired(folder)
    rows = [5, 1, 9]
    for key in ("audio", "video"):
        assert np.array_equal(from_h5.read(rows)[key], from_npy.read(rows)[key])
    assert from_h5.video_shape == (4, 7, 7, 3) and from_h5.video_has_grid
    assert from_h5.class_names == from_npy.class_names == ["dog", "cat", "bird"]
    splits = from_npy.split_rows()
    assert [list(splits[s]) for s in ("train", "val", "test")] == [list(range(6)), [6, 7, 8], [9, 10, 11]]
    assert list(from_npy.pretraining_rows()) == list(range(9))  # test clips stay unseen
    task = paired_task(from_npy)
    assert set(task.predefined_splits) == {"paired/audio", "paired/video"}
    # The data-root layout resolves paired.h5 first, the folder when there is no file.
    assert load_task("paired", data_root=tmp_path).sets["paired/audio"].source == str(tmp_path / "paired.h5")
    (tmp_path / "paired.h5").unlink()
    assert load_task("paired", data_root=tmp_path).sets["paired/audio"].source == str(folder)


def test_text_per_clip_per_step_and_per_class(tmp_path):
    data = small(audio=(3, 4), video=(3, 2))
    rng = np.random.default_rng(1)
    per_step = rng.normal(size=(12, 3, 6))
    corpus = load_paired(write_h5(tmp_path / "a.h5", **data, text=per_step))
    assert np.array_equal(corpus.read([4])["text"], per_step[[4]])
    vector = rng.normal(size=(12, 6))
    corpus = load_paired(write_h5(tmp_path / "b.h5", **data, text=vector))
    assert np.array_equal(corpus.read([4])["text"], np.repeat(vector[[4]][:, None], 3, axis=1))
    # Word features of another length: the mean over the non-zero (non-padding) rows, repeated.
    words = rng.normal(size=(12, 5, 6))
    words[:, 3:] = 0.0
    corpus = load_paired(write_h5(tmp_path / "c.h5", **data, text=words))
    expected = words[7, :3].mean(axis=0)
    assert np.allclose(corpus.read([7])["text"][0], np.repeat(expected[None], 3, axis=0), rtol=0, atol=1e-12)
    prompts = rng.normal(size=(3, 6))
    corpus = load_paired(write_h5(tmp_path / "d.h5", **data, prompts=prompts))
    assert corpus.text_source == "prompts"
    assert np.array_equal(corpus.read([5])["text"][0, 0], prompts[5 % 3])


def test_string_labels_become_class_indices(tmp_path):
    data = small()
    data["labels"] = np.array(["b", "a", "c"] * 4)
    corpus = load_paired(write_h5(tmp_path / "p.h5", **data))
    assert corpus.class_names == ["a", "b", "c"] and list(corpus.labels[:3]) == [1, 0, 2]


@pytest.mark.parametrize("change,message", [
    (dict(audio_feats=np.zeros((12, 3))), "unknown dataset 'audio_feats'"),
    (dict(video=np.zeros((12, 7, 7, 3))), r"a grid needs a time axis"),
    (dict(video=np.zeros((12, 2, 4))), r"different numbers of time steps.*expected T = 1 \(as audio\), got T = 2"),
    (dict(video=np.zeros((11, 5))), r"different number of clips than audio.*expected N = 12, got N = 11"),
    (dict(labels=np.arange(12) - 1), r"label out of range in row 0 \(expected 0 <= label < 11, got -1\)"),
    (dict(split=np.array(["train"] * 10 + ["test"] * 2)), r"no clip in the 'val' split"),
    (dict(split=np.array(["train"] * 10 + ["dev"] * 2)), r"unknown split name.*got 'dev'"),
    (dict(text=np.zeros((12, 2)), prompts=np.zeros((3, 2))), "both 'text'"),
    (dict(video=np.zeros((12, 1, 4, 4, 3))), r"video grid too small.*H, W >= 5"),
    (dict(audio=np.zeros((12, 0))), "empty features"),
    (dict(audio=np.array([["x", "y"]] * 12)), r"wrong dtype.*expected a float dtype"),
])
def test_bad_files_are_one_line_errors(tmp_path, change, message):
    data = {**small(), **change}
    path = write_h5(tmp_path / "paired.h5", **data)
    with pytest.raises(DataError, match=message):
        load_paired(path)
    result = run("eval", "paired", "--checkpoint", tmp_path / "none.pt", "--data-root", tmp_path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1


def test_nan_is_refused_when_a_row_is_read(tmp_path):
    data = small()
    data["audio"][7, 2] = np.nan
    corpus = load_paired(write_h5(tmp_path / "paired.h5", **data))
    corpus.read([0, 1])
    with pytest.raises(DataError, match=r"paired.h5, key 'audio': NaN/Inf values in row 7"):
        corpus.read([6, 7])


def test_evaluation_needs_labels(tmp_path):
    data = small()
    del data["labels"]
    corpus = load_paired(write_h5(tmp_path / "paired.h5", **data))
    assert len(PairedPretraining(corpus)) == 12  # pretraining needs no labels
    with pytest.raises(DataError, match="no clip labels"):
        paired_task(corpus)


def test_a_data_root_names_one_pretraining_corpus(tmp_path):
    with pytest.raises(SettingsError, match="give data_root DIR, paired FILE_OR_DIR"):
        open_pretraining()
    write_h5(tmp_path / "paired.h5", **small())
    assert isinstance(open_pretraining(data_root=tmp_path), PairedPretraining)
    assert isinstance(open_pretraining(paired=tmp_path / "paired.h5"), PairedPretraining)
    with pytest.raises(SettingsError, match="paired names own data"):
        open_pretraining(paired=tmp_path / "paired.h5", data_root=tmp_path)
    csv = tmp_path / "vggsound40k/data/vggsound-avel40k.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("category,video_id,split\n")
    with pytest.raises(SettingsError, match="holds own data"):
        open_pretraining(data_root=tmp_path)


def test_synth_paired_is_deterministic_and_in_the_format(tmp_path):
    first = synthesize_paired(tmp_path / "a", scale=0.1, seed=3)
    synthesize_paired(tmp_path / "b", scale=0.1, seed=3)
    assert (tmp_path / "a/paired.h5").read_bytes() == (tmp_path / "b/paired.h5").read_bytes()
    corpus = load_paired(tmp_path / "a/paired.h5")
    assert (corpus.steps, corpus.audio_shape, corpus.video_shape) == (1, (1, 768), (1, 512))
    assert len(corpus) == first.clips == 40 and len(corpus.class_names) == 10 and not corpus.has_text
    with h5py.File(tmp_path / "a/paired.h5") as handle:
        assert handle["audio"].shape == (40, 768)  # T = 1 is stored without a time axis
    assert sum(first.split_counts.values()) == 40 and min(first.split_counts.values()) > 0
    other = run("synth", tmp_path / "c", "--layout", "paired", "--scale", "0.1", "--steps", "3",
                "--audio-dim", "20", "--video-dim", "9", "--text-dim", "5")
    assert other.exit_code == 0, other.output
    summary = json.loads(other.stdout)
    assert (summary["steps"], summary["audio_dim"], summary["video_dim"], summary["text_dim"]) == (3, 20, 9, 5)
    corpus = load_paired(tmp_path / "c/paired.h5")
    assert corpus.read([0])["text"].shape == (1, 3, 5) and corpus.video_shape == (3, 9)
