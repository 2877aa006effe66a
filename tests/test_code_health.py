"""`toc health`: usage, dead codes and perplexity per level, streamed from code files or read
from the counts a model file stores."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import toc.codebook.health as health_module
from cli.main import cli
from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.encode import encode_file
from toc.codebook.health import code_health, count_codes, usage_from_counts
from toc.codebook.summary import code_usage
from toc.errors import DataError, SettingsError
from toc.testing.checkpoints import save_reference_checkpoint


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def expected_level(codes: np.ndarray, k: int) -> dict:
    """Usage of one level written out by hand from numpy's unique counts."""
    values, counts = np.unique(codes.reshape(-1), return_counts=True)
    p = counts / counts.sum()
    entropy = -sum(float(x) * math.log(float(x)) for x in p)
    return {
        "tokens": int(codes.size),
        "used_codes": int(values.size),
        "dead_codes": k - int(values.size),
        "perplexity": math.exp(entropy),
        "top_code_share": float(counts.max() / counts.sum()),
    }


def assert_level(level: dict, expected: dict) -> None:
    for key in ("tokens", "used_codes", "dead_codes"):
        assert level[key] == expected[key], key
    assert level["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-12)
    assert level["top_code_share"] == pytest.approx(expected["top_code_share"], rel=1e-12)


def test_usage_from_counts_closed_form():
    usage = usage_from_counts([3, 0, 1, 0])
    assert (usage.used_codes, usage.dead_codes, usage.codebook_size) == (2, 2, 4)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert usage.perplexity == pytest.approx(math.exp(h), rel=1e-15)
    assert usage.entropy_bits == pytest.approx(h / math.log(2), rel=1e-15)
    assert usage.normalized_perplexity == pytest.approx(math.exp(h) / 4)
    assert usage.top_code_share == 0.75 and usage.usage_fraction == 0.5
    uniform = usage_from_counts(np.full(8, 5))
    assert uniform.perplexity == pytest.approx(8.0, rel=1e-15)
    empty = usage_from_counts(np.zeros(8))
    assert empty.perplexity is None and empty.dead_codes == 8
    ema = usage_from_counts([1e-5, 0.5, 2.0], active_threshold=1e-3)
    assert ema.used_codes == 2


def test_toc_encode_layout(tmp_path):
    """The h5 `toc encode` writes: level{L}/codes [N, T] (beside level{L}/quantized)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "codes.h5"
    levels = [rng.integers(0, 40, size=(30, 10)), rng.integers(0, 64, size=(30, 10)) // 4]
    with h5py.File(path, "w") as out:
        out.attrs["levels"] = 2
        for i, codes in enumerate(levels):
            out.create_dataset(f"level{i}/codes", data=codes.astype(np.int64))
            out.create_dataset(f"level{i}/quantized", data=np.zeros((30, 10, 4), dtype=np.float32))
    result = run("health", path, "--codebook-size", 64)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input"]["layout"] == "toc-encode"
    assert [lv["name"] for lv in report["levels"]] == ["level0/codes", "level1/codes"]
    for level, codes in zip(report["levels"], levels, strict=True):
        assert_level(level, expected_level(codes, 64))
    assert report["levels"][1]["dead_codes"] >= 48  # codes // 4 use at most 16 of 64


def test_codes_written_by_toc_encode(tmp_path):
    checkpoint = load_checkpoint(save_reference_checkpoint(tmp_path / "ck.pt", "hdcid-avt"))
    features = tmp_path / "audio.npy"
    np.save(features, np.random.default_rng(1).normal(size=(12, 10, checkpoint.sizes.audio_dim)).astype(np.float32))
    encode_file(checkpoint, "audio", features, tmp_path / "codes.h5")
    report = code_health(tmp_path / "codes.h5", checkpoint.sizes.n_embeddings)
    with h5py.File(tmp_path / "codes.h5", "r") as handle:
        for level in report.levels:
            codes = handle[f"level{level.level}/codes"][()]
            assert level.usage.used_codes == len(np.unique(codes))
            assert np.array_equal(level.counts, np.bincount(codes.reshape(-1), minlength=checkpoint.sizes.n_embeddings))


@pytest.mark.parametrize("axis,shape", [(-1, (6, 20, 3)), (1, (6, 4, 20)), (0, (5, 6, 20)), (2, (2, 3, 4, 5))])
def test_one_array_with_levels_on_an_axis(tmp_path, axis, shape):
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 16, size=shape).astype(np.int32)
    path = tmp_path / "codes.npy"
    np.save(path, codes)
    result = run("health", path, "--codebook-size", 16, "--level-axis", axis)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input"]["level_axis"] == (axis - len(shape) if axis >= 0 else axis)
    assert len(report["levels"]) == shape[axis]
    for index, level in enumerate(report["levels"]):
        assert_level(level, expected_level(np.take(codes, index, axis=axis), 16))
    assert "last axis" not in result.stderr


def test_default_axis_is_the_last_and_says_so(tmp_path):
    codes = np.random.default_rng(3).integers(0, 8, size=(10, 7, 4))
    np.save(tmp_path / "c.npy", codes)
    result = run("health", tmp_path / "c.npy", "--codebook-size", 8)
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["levels"]) == 4
    assert "last axis" in result.stderr and "--level-axis none" in result.stderr
    single = json.loads(run("health", tmp_path / "c.npy", "--codebook-size", 8, "--level-axis", "none").stdout)
    (level,) = single["levels"]
    assert_level(level, expected_level(codes, 8))


def test_h5_array_by_key_and_ambiguity(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "codes.h5"
    with h5py.File(path, "w") as out:
        out.create_dataset("audio_codes", data=rng.integers(0, 10, size=(3, 5, 20)))
        out.create_dataset("other", data=rng.integers(0, 10, size=(3,)))
    ambiguous = run("health", path, "--codebook-size", 10)
    assert ambiguous.exit_code == 1 and "--key" in ambiguous.stderr and "audio_codes" in ambiguous.stderr
    report = json.loads(run("health", path, "--codebook-size", 10, "--key", "audio_codes", "--level-axis", 1).stdout)
    assert len(report["levels"]) == 5 and report["input"]["datasets"] == ["audio_codes"]
    missing = run("health", path, "--codebook-size", 10, "--key", "nope")
    assert missing.exit_code == 1 and "no such dataset" in missing.stderr


def test_streaming_in_small_blocks_gives_the_same_counts_and_bounds_reads(tmp_path):
    codes = np.random.default_rng(5).integers(0, 12, size=(9, 7, 3))

    class Recording:
        def __init__(self, array):
            self.array, self.shape, self.dtype, self.sizes = array, array.shape, array.dtype, []

        def __getitem__(self, index):
            block = self.array[index]
            self.sizes.append(np.asarray(block).size)
            return block

    whole = count_codes(codes, 12, level_axis=1, path=tmp_path, key=None)
    for chunk in (1, 5, 7, 21, 50, 10_000):
        recording = Recording(codes)
        counts = count_codes(recording, 12, level_axis=1, path=tmp_path, key=None, chunk_elements=chunk)
        assert np.array_equal(counts, whole), chunk
        assert max(recording.sizes) <= max(chunk, 3), chunk  # one innermost row at least
        assert sum(recording.sizes) == codes.size


def test_out_of_range_and_wrong_dtype_are_one_line_errors(tmp_path):
    codes = np.zeros((4, 5), dtype=np.int64)
    codes[2, 3] = 9
    np.save(tmp_path / "c.npy", codes)
    with pytest.raises(DataError, match=r"index \(2, 3\).*expected 0 <= code < 8, got 9"):
        code_health(tmp_path / "c.npy", 8, level_axis=None, chunk_elements=3)
    result = run("health", tmp_path / "c.npy", "--codebook-size", 8)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    codes[2, 3] = -1
    np.save(tmp_path / "neg.npy", codes)
    assert "got -1" in run("health", tmp_path / "neg.npy", "--codebook-size", 8).stderr
    np.save(tmp_path / "f.npy", codes.astype(np.float32))
    floats = run("health", tmp_path / "f.npy", "--codebook-size", 8)
    assert floats.exit_code == 1 and "expected an integer dtype, got float32" in floats.stderr


def test_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    np.save(tmp_path / "c.npy", np.zeros((4, 3), dtype=np.int64))

    def never(*args, **kwargs):
        raise AssertionError("read before the sizes were checked")

    monkeypatch.setattr(health_module, "count_codes", never)
    with pytest.raises(SettingsError, match="1 GiB"):
        code_health(tmp_path / "c.npy", 1 << 27)
    with pytest.raises(SettingsError, match="level_axis 5 does not exist"):
        code_health(tmp_path / "c.npy", 8, level_axis=5)


def test_inputs_that_are_not_code_files(tmp_path):
    missing_size = run("health", tmp_path / "x.npy")
    assert missing_size.exit_code == 2 and "--codebook-size" in missing_size.output
    (tmp_path / "model.pt").write_bytes(b"x")
    model = run("health", tmp_path / "model.pt")
    assert model.exit_code == 1 and "model.pt" in model.stderr and model.stderr.count("\n") == 1
    (tmp_path / "codes.txt").write_text("1 2 3")
    text = run("health", tmp_path / "codes.txt", "--codebook-size", 8)
    assert text.exit_code == 1 and "unsupported input file type" in text.stderr
    assert "file not found" in run("health", tmp_path / "none.h5", "--codebook-size", 8).stderr
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    assert "not a readable HDF5 file" in run("health", tmp_path / "bad.h5", "--codebook-size", 8).stderr


def test_output_file_counts_and_reruns_are_byte_identical(tmp_path):
    np.save(tmp_path / "c.npy", np.random.default_rng(6).integers(0, 5, size=(20, 2)))
    out = tmp_path / "health.json"
    first = run("health", tmp_path / "c.npy", "--codebook-size", 5, "--counts", "-o", out)
    assert first.exit_code == 0 and first.stdout == ""
    text = out.read_text()
    report = json.loads(text)
    assert report["tool"] == "cmg-toc" and len(report["input"]["sha256"]) == 64
    assert sum(report["levels"][0]["counts"]) == 20
    again = run("health", tmp_path / "c.npy", "--codebook-size", 5, "--counts", "-o", out)
    assert again.exit_code == 1 and "--force" in again.stderr
    assert run("health", tmp_path / "c.npy", "--codebook-size", 5, "--counts", "-o", out, "--force").exit_code == 0
    assert out.read_text() == text


def test_npy_files_of_every_kind(tmp_path):
    codes = np.random.default_rng(7).integers(0, 6, size=(8, 5, 3)).astype(np.uint8)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(codes))
    report = code_health(tmp_path / "fortran.npy", 6, chunk_elements=4)
    for index, level in enumerate(report.levels):
        assert np.array_equal(level.counts, np.bincount(codes[..., index].reshape(-1), minlength=6))
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        code_health(tmp_path / "objects.npy", 6)
    np.save(tmp_path / "whole.npy", codes)
    data = (tmp_path / "whole.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with pytest.raises(DataError, match="truncated"):
        code_health(tmp_path / "cut.npy", 6)
    (tmp_path / "junk.npy").write_bytes(b"junk" * 10)
    with pytest.raises(DataError, match="not a plain numeric .npy"):
        code_health(tmp_path / "junk.npy", 6)


def test_a_checkpoint_reports_its_stored_counts_per_level(tmp_path):
    """A model file: the stored EMA counts through the same usage function as `toc inspect`."""
    path = save_reference_checkpoint(tmp_path / "ck.pt", "hdcid-avt")
    checkpoint = load_checkpoint(path)
    result = run("health", path, "--counts")
    assert result.exit_code == 0, result.output
    assert "EMA counts" in result.stderr
    report = json.loads(result.stdout)
    assert report["input"]["kind"] == "checkpoint" and report["input"]["family"] == "hdcid-avt"
    assert report["codebook_size"] == checkpoint.sizes.n_embeddings
    assert len(report["levels"]) == 2
    for level, counts in zip(report["levels"], checkpoint.ema_counts, strict=True):
        assert level["source"] == "ema_count"
        inspected = code_usage(counts)
        assert level["used_codes"] == inspected["active_codes"]
        assert level["dead_codes"] == inspected["dead_codes"]
        assert level["perplexity"] == inspected["usage_perplexity"]
        assert level["counts"] == pytest.approx(counts.double().tolist(), rel=0, abs=0)


def test_options_that_belong_to_the_other_kind_of_input(tmp_path):
    path = save_reference_checkpoint(tmp_path / "ck.pt", "dcid-avt")
    size = load_checkpoint(path).sizes.n_embeddings
    assert run("health", path, "--codebook-size", size).exit_code == 0
    wrong = run("health", path, "--codebook-size", size + 1)
    assert wrong.exit_code == 2 and "--codebook-size" in wrong.output and "disagrees" in wrong.output
    with_key = run("health", path, "--key", "codes")
    assert with_key.exit_code == 2 and "--key applies to codes files" in with_key.output
    np.save(tmp_path / "c.npy", np.zeros((4, 3), dtype=np.int64))
    pattern = run("health", tmp_path / "c.npy", "--codebook-size", 4, "--codebook-key", "x")
    assert pattern.exit_code == 2 and "--codebook-key applies to model files" in pattern.output
    torch.save(torch.randn(8, 4), tmp_path / "bare.pt")
    bare = run("health", tmp_path / "bare.pt")
    assert bare.exit_code == 1 and "stores no per-code usage counts" in bare.stderr
