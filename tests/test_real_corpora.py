"""The real-signal corpora through their one writer: every kind builds in the real layouts with
the expected shapes and classes, is byte-identical for a seed, holds its evaluation sources and
images out of pretraining, and reads through the AVE task loader and the pretraining loader."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from toc.corpora import fonts, instruments, shapes, vowels
from toc.corpora import real_signals as rs
from toc.corpora.extractors import VideoLifter
from toc.corpora.kinds import KINDS, corpus_for
from toc.errors import ConfigError

TINY = rs.RealCorpusConfig(pretrain_clips=20, ave_clips=12, seed=3, text_width=16)


def _read_zip(path: Path) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [f"{path.stem}.pkl"]
        return pickle.load(io.BytesIO(archive.read(f"{path.stem}.pkl")))


def _h5(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        assert list(handle.keys()) == [key]
        return handle[key][...]


def _digests(root: Path, marker: str) -> dict[str, str]:
    """sha256 of every file, the marker's `root` line aside (it names the folder)."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == marker:
            summary = json.loads(data)
            summary.pop("root")
            data = json.dumps(summary, sort_keys=True).encode()
        out[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def _clip_table(root: Path, kind: str) -> list[dict[str, str]]:
    return list(csv.DictReader((root / corpus_for(kind).clips_file).open(encoding="utf-8")))


@pytest.fixture(scope="module", params=list(KINDS))
def built(request, tmp_path_factory) -> tuple[str, Path]:
    kind = request.param
    root = tmp_path_factory.mktemp(kind) / "corpus"
    rs.build_real_corpus(corpus_for(kind), root, TINY)
    return kind, root


def test_every_kind_writes_the_pretraining_layout_with_its_classes_and_prompts(built):
    kind, root = built
    corpus = corpus_for(kind)
    assert len(corpus.class_names) == 10 and len(set(corpus.class_names)) == 10
    rows = list(csv.reader((root / rs.PRETRAIN_CSV).open(encoding="utf-8")))
    assert rows[0] == ["category", "video_id", "split"] and len(rows) == 1 + TINY.pretrain_clips
    assert {r[0] for r in rows[1:]} == set(corpus.class_names)  # balanced: every class present
    for _category, video_id, _ in rows[1:]:
        assert len(video_id) == 11 and video_id.startswith(corpus.id_prefix)
        audio = _read_zip(root / rs.PRETRAIN_AUDIO_DIR / f"{video_id}.zip")
        video = _read_zip(root / rs.PRETRAIN_VIDEO_DIR / f"{video_id}.zip")
        flags = _read_zip(root / rs.PRETRAIN_LABEL_DIR / f"{video_id}.zip")
        assert audio.shape == (10, 128) and audio.dtype == np.float32 and np.isfinite(audio).all()
        assert video.shape == (10, 7, 7, 512) and video.dtype == np.float32
        assert video.min() >= 0.0 and (video == 0).mean() > 0.5  # non-negative and sparse, like pool5
        assert flags.shape == (10,) and set(np.unique(flags)) <= {0, 1} and flags.sum() >= 3
    assert (root / rs.CATEGORIES_TXT).read_text(encoding="utf-8").split() == list(corpus.class_names)
    prompts = list(csv.DictReader((root / rs.PROMPTS_CSV).open(encoding="utf-8")))
    assert [p["prompt"] for p in prompts] == [corpus.prompt(name) for name in corpus.class_names]
    with h5py.File(root / rs.TEXT_FEATURES_FILE, "r") as handle:
        labels = [x.decode() if isinstance(x, bytes) else x for x in handle["labels"][...]]
        features = handle["features"][...]
    assert labels == list(corpus.class_names) and features.shape == (10, 10, TINY.text_width)
    # The class word is the only token that differs between the prompts.
    differs = [not np.array_equal(features[0, slot], features[1, slot]) for slot in range(10)]
    assert sum(differs) == 1


def test_every_kind_writes_the_ave_layout_with_one_hot_labels_and_a_partition(built):
    kind, root = built
    folder = root / rs.AVE_DIR
    n = TINY.ave_clips
    audio = _h5(folder / "audio_feature.h5", "avadataset")
    video = _h5(folder / "visual_feature.h5", "avadataset")
    labels = _h5(folder / "labels.h5", "avadataset")
    assert audio.shape == (n, 10, 128) and audio.dtype == np.float64
    assert video.shape == (n, 10, 7, 7, 512) and video.min() >= 0
    assert labels.shape == (n, 10, 29) and np.array_equal(labels.sum(axis=2), np.ones((n, 10)))
    assert not labels[:, :, 10:28].any()
    orders = [_h5(folder / f"{s}_order.h5", "order") for s in ("train", "val", "test")]
    assert sorted(np.concatenate(orders).tolist()) == list(range(n)) and all(len(o) for o in orders)
    table = [r for r in _clip_table(root, kind) if r["set"] == "ave"]
    names = corpus_for(kind).class_names
    column = corpus_for(kind).class_column
    assert labels[:, :, :28].argmax(axis=2).max(axis=1).tolist() == [names.index(r[column]) for r in table]
    for row, record in enumerate(table):
        event = np.zeros(10, dtype=bool)
        event[int(record["onset"]) : int(record["offset"])] = True
        assert np.array_equal(labels[row, :, 28] == 1, ~event)
        # The event seconds carry the signal: louder, and more active frames, than the background.
        if (~event).any():
            loudness = audio[row, :, :64].mean(axis=1)
            activity = video[row].reshape(10, -1).mean(axis=1)
            assert loudness[event].min() > loudness[~event].max()
            assert activity[event].min() > activity[~event].max()


def test_evaluation_sources_and_images_are_held_out_of_pretraining(built):
    kind, root = built
    corpus = corpus_for(kind)
    table = _clip_table(root, kind)
    pre = [r for r in table if r["set"] == "pretrain"]
    ave = [r for r in table if r["set"] == "ave"]
    assert len(pre) == TINY.pretrain_clips and len(ave) == TINY.ave_clips

    def held_out_unit(record: dict[str, str]) -> tuple[str, str]:
        # Speakers are held out by voice variant, makers whole; images by font / style, or each
        # scikit-learn image itself.
        source = record[corpus.source_column]
        source = source.split("/")[0].split("+")[1] if corpus.source_column == "speaker" else source
        return source, record[corpus.image_column].split("#")[0]

    pre_sources, pre_images = zip(*map(held_out_unit, pre), strict=True)
    ave_sources, ave_images = zip(*map(held_out_unit, ave), strict=True)
    assert not set(pre_sources) & set(ave_sources)
    assert not set(pre_images) & set(ave_images)
    marker = json.loads((root / corpus.marker_file).read_text())
    noun = corpus.sources_noun
    assert not set(marker[f"pretrain_{noun}"]) & set(marker[f"eval_{noun}"])
    assert {r[corpus.source_column] for r in ave} <= set(marker[f"eval_{noun}"])
    for side in ("fonts", "styles"):
        if f"eval_{side}" in marker:
            assert marker[f"eval_{side}"] and not set(marker[f"pretrain_{side}"]) & set(marker[f"eval_{side}"])
            assert set(ave_images) <= set(marker[f"eval_{side}"])


def test_same_seed_is_byte_identical_and_another_seed_differs(built, tmp_path):
    kind, root = built
    marker = corpus_for(kind).marker_file
    again = tmp_path / "again"
    rs.build_real_corpus(corpus_for(kind), again, TINY)
    assert _digests(again, marker) == _digests(root, marker)
    other = tmp_path / "other"
    rs.build_real_corpus(corpus_for(kind), other, rs.RealCorpusConfig(pretrain_clips=20, ave_clips=12, seed=4, text_width=16))
    assert not np.array_equal(
        _h5(root / rs.AVE_DIR / "audio_feature.h5", "avadataset"), _h5(other / rs.AVE_DIR / "audio_feature.h5", "avadataset")
    )


def test_the_task_and_pretraining_loaders_read_every_kind(built):
    from toc.data.pretraining import open_pretraining
    from toc.eval.tasks import load_task

    kind, root = built
    corpus = corpus_for(kind)
    table = _clip_table(root, kind)
    pretraining = open_pretraining(data_root=root)
    assert len(pretraining) == TINY.pretrain_clips
    batch = pretraining.read(np.arange(4))
    assert batch["audio"].shape == (4, 10, 128) and batch["video"].shape == (4, 10, 7, 7, 512)
    assert batch["text"].shape == (4, 10, TINY.text_width)
    class_of = {r["key"]: corpus.class_names.index(r[corpus.class_column]) for r in table if r["set"] == "pretrain"}
    assert pretraining.labels.tolist() == [class_of[video_id] for video_id in pretraining.corpus.ids]

    ave = load_task("ave", data_root=root)
    audio_set = ave.sets["ave/audio"]
    classes = [corpus.class_names.index(r[corpus.class_column]) for r in table if r["set"] == "ave"]
    assert len(audio_set) == TINY.ave_clips
    assert audio_set.labels.tolist() == [classes[int(i)] for i in audio_set.ids]


def test_synth_real_builds_each_kind_and_synth_spoken_digits_is_the_same_corpus(tmp_path):
    from cli.main import cli

    small = ["--clips", "10", "--ave-clips", "10", "--text-width", "8", "--seed", "2"]
    runner = CliRunner()
    words = runner.invoke(cli, ["synth-real", str(tmp_path / "words"), "--kind", "spoken-words", *small])
    assert words.exit_code == 0, words.output
    summary = json.loads(words.stdout)
    assert summary["pretrain_clips"] == 10 and summary["files"]["marker"] == "spoken-words.json"
    assert set(summary["eval_fonts"]) and not set(summary["eval_fonts"]) & set(summary["pretrain_fonts"])
    assert runner.invoke(cli, ["synth-real", str(tmp_path / "digits"), *small]).exit_code == 0  # default kind
    assert runner.invoke(cli, ["synth-spoken-digits", str(tmp_path / "alias"), *small]).exit_code == 0
    assert _digests(tmp_path / "alias", "spoken-digits.json") == _digests(tmp_path / "digits", "spoken-digits.json")
    # Another kind's corpus is never replaced, even with --force (its marker differs).
    refused = runner.invoke(cli, ["synth-real", str(tmp_path / "words"), "--kind", "instruments", *small, "--force"])
    assert refused.exit_code == 1 and "instruments.json" in refused.stderr
    unknown = runner.invoke(cli, ["synth-real", str(tmp_path / "x"), "--kind", "birdsong"])
    assert unknown.exit_code == 2 and not (tmp_path / "x").exists()


def test_missing_fonts_or_pillow_give_one_line_and_write_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "FONT_FOLDERS", ())
    monkeypatch.setattr(fonts, "_matplotlib_fonts", lambda: None)
    with pytest.raises(rs.MissingToolError, match="DejaVu fonts") as info:
        rs.build_real_corpus(corpus_for("spoken-words"), tmp_path / "x", TINY)
    assert "\n" not in str(info.value) and "fonts-dejavu" in str(info.value)
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes the import fail
    with pytest.raises(rs.MissingToolError, match="needs Pillow"):
        rs.build_real_corpus(corpus_for("spoken-words"), tmp_path / "y", TINY)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_shapes_are_drawn_inside_the_frame_and_distances_have_the_right_sign():
    square = shapes.POLYGONS["square"]
    half = square[:, 0].max()
    distance = shapes._polygon_distance(np.array([[0.0, 0.0], [half, 0.0], [1.0, 1.0]]), square)
    assert distance[0] == pytest.approx(-half) and distance[1] == pytest.approx(0.0) and distance[2] > 0
    rng = np.random.default_rng(0)
    ink = border = 0.0
    for shape in shapes.SHAPES:
        for style in shapes.STYLES:
            image = shapes.draw_shape(shape, style, shapes.random_placement(rng), 32)
            assert image.shape == (32, 32) and 0.0 <= image.min() and image.max() <= 1.0 and image.sum() > 10
            ink, border = ink + image.sum(), border + image.sum() - image[1:-1, 1:-1].sum()
    assert border < 0.005 * ink  # shapes are drawn inside the frame, hardly ever touching its edge


def test_instrument_notes_fill_part_of_the_second_at_the_gain_and_in_the_register():
    rng = np.random.default_rng(0)
    makers, _ = instruments.CORPUS.choose_sources(rng)
    for label in range(len(instruments.INSTRUMENTS)):
        second = instruments.CORPUS.event_second((makers[0], label), rng)
        assert second.shape == (16_000,) and np.isfinite(second).all()
        assert 0.3 - 1e-9 <= np.abs(second).max() <= 0.8 + 1e-9
        assert 0.2 < (np.abs(second) > 1e-6).mean() < 0.96  # a note, then silence around it
    low, high = (440.0 * 2 ** ((m - 69) / 12) for m in instruments.REGISTERS["flute"])
    flute = instruments.INSTRUMENTS.index("flute")
    for _ in range(5):  # a flute's loudest partial is its fundamental, in the flute's register
        spectrum = np.abs(np.fft.rfft(instruments.CORPUS.event_second((makers[1], flute), rng)))
        assert 0.97 * low <= np.argmax(spectrum) <= 1.03 * high  # 1 Hz bins


def test_sung_vowels_have_their_singers_formants_and_fonts_without_a_symbol_are_left_out():
    rng = np.random.default_rng(0)
    singers, _ = vowels.CORPUS.choose_sources(rng)
    for label in range(len(vowels.VOWELS)):
        second = vowels.CORPUS.event_second((singers[0], label), rng)
        assert second.shape == (16_000,) and np.isfinite(second).all()
        assert 0.3 - 1e-9 <= np.abs(second).max() <= 0.8 + 1e-9
        assert 0.2 < (np.abs(second) > 1e-6).mean() < 0.96  # a note, then silence around it
    # The spectral envelope's first peak is the singer's F1: "heed" low, "hod" high.
    heed, hod = vowels.CORPUS.class_names.index("heed"), vowels.CORPUS.class_names.index("hod")
    singer = singers[2]
    for label in (heed, hod):
        spectrum = np.abs(np.fft.rfft(vowels.sing(singer, label, 0.8, rng))) ** 2
        freqs = np.fft.rfftfreq(int(0.8 * 16_000), 1 / 16_000)
        smooth = np.convolve(spectrum, np.ones(81) / 81, mode="same")  # 100 Hz: over the harmonics
        band = (freqs > 150) & (freqs < 1200)
        peak = freqs[band][np.argmax(smooth[band])]
        assert abs(peak - singer.formants[label, 0]) < 0.2 * singer.formants[label, 0]
    found = {font.name: font for font in fonts.find_fonts("test", 6)}
    assert fonts.has_glyphs(found["DejaVuSans"], "iɪɛæɑɔʊuʌɝ")
    if "DejaVuMathTeXGyre" in found:
        assert not fonts.has_glyphs(found["DejaVuMathTeXGyre"], "ɝ")
        assert "DejaVuMathTeXGyre" not in {f.name for f in vowels._fonts_with_symbols("test")}


def test_video_lifter_of_32_pixel_images_is_fixed_sparse_and_exact_in_float16():
    images = np.random.default_rng(0).uniform(0, 1, size=(2, 32, 32))
    first, second = VideoLifter(32)(images), VideoLifter(32)(images)
    assert first.shape == (2, 7, 7, 512) and np.array_equal(first, second) and first.min() >= 0
    assert np.array_equal(first.astype(np.float16).astype(np.float32), first)
    with pytest.raises(ConfigError, match="side"):
        VideoLifter(16)
