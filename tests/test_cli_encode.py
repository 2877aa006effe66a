"""`toc encode` end to end: outputs, determinism, text LSTM, and clean errors."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.conftest import load_reference
from toc.testing.checkpoints import save_reference_checkpoint


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_encode_matches_reference_codes_in_float64(tmp_path, dcid_small_path):
    io = load_reference("dcid_small_io.pt")
    for modality in ("audio", "video", "text"):
        np.save(tmp_path / f"{modality}.npy", io[modality].double().numpy())
        out = tmp_path / f"{modality}.h5"
        result = _run("encode", dcid_small_path, "--modality", modality, "--input", tmp_path / f"{modality}.npy", "-o", out, "--dtype", "float64", "--batch-size", "1")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["n"] == 2 and summary["levels"] == 1
        with h5py.File(out) as handle:
            assert np.array_equal(handle["level0/codes"][()].reshape(-1), io[f"{modality}_codes"].numpy())
            assert np.abs(handle["level0/quantized"][()] - io[f"{modality}_vq"].numpy()).max() <= 1e-12


def test_encode_h5_input_two_levels_and_determinism(tmp_path, hdcid_small_path):
    io = load_reference("hdcid_small_io.pt")
    with h5py.File(tmp_path / "in.h5", "w") as handle:
        handle["feats"] = io["video"].numpy()
    outs = []
    for name in ("a.h5", "b.h5"):
        result = _run("encode", hdcid_small_path, "--modality", "video", "--input", tmp_path / "in.h5", "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
        with h5py.File(tmp_path / name) as handle:
            outs.append({k: handle[k][()] for k in ("level0/codes", "level1/codes", "level1/quantized")})
    assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])
    assert np.array_equal(outs[0]["level1/codes"].reshape(-1), io["video_codes_l2"].numpy())


def test_text_lstm_runs_first_for_word_vectors(tmp_path):
    path = save_reference_checkpoint(tmp_path / "ck.pt", with_text_lstm=True)
    np.save(tmp_path / "words.npy", np.random.default_rng(0).normal(size=(3, 10, 768)))
    result = _run("encode", path, "--modality", "text", "--input", tmp_path / "words.npy", "-o", tmp_path / "o.h5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text_lstm_applied"] is True


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((2, 10, 64)), r"wrong audio feature shape \(expected \[N, T, 128\], got \[2, 10, 64\]\)"),
        (np.full((2, 10, 128), np.nan), "non-finite"),
    ],
)
def test_bad_features_give_one_line_and_no_output(tmp_path, dcid_small_path, array, message):
    np.save(tmp_path / "x.npy", array)
    out = tmp_path / "o.h5"
    result = _run("encode", dcid_small_path, "--modality", "audio", "--input", tmp_path / "x.npy", "-o", out)
    assert result.exit_code == 1
    assert re.search(message, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))


def test_existing_output_needs_force(tmp_path, dcid_small_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 10, 128)))
    out = tmp_path / "o.h5"
    out.write_text("old")
    result = _run("encode", dcid_small_path, "--modality", "audio", "--input", tmp_path / "x.npy", "-o", out)
    assert result.exit_code == 1 and "--force" in result.stderr and out.read_text() == "old"
    assert _run("encode", dcid_small_path, "--modality", "audio", "--input", tmp_path / "x.npy", "-o", out, "--force").exit_code == 0


def test_modality_the_family_lacks(tmp_path):
    path = save_reference_checkpoint(tmp_path / "at.pt", "dcid-at")
    np.save(tmp_path / "x.npy", np.zeros((1, 10, 7, 7, 512)))
    result = _run("encode", path, "--modality", "video", "--input", tmp_path / "x.npy", "-o", tmp_path / "o.h5")
    assert result.exit_code == 1 and "has no video encoder" in result.stderr


def test_usage_errors_exit_2(dcid_small_path):
    assert _run("encode", dcid_small_path, "--modality", "smell", "--input", "x", "-o", "y").exit_code == 2
    assert _run("encode", dcid_small_path, "--modality", "audio", "--input", "x", "-o", "y", "--batch-size", "0").exit_code == 2


def test_float32_and_float64_codes_agree_on_fixture(tmp_path, dcid_small_path):
    io = load_reference("dcid_small_io.pt")
    np.save(tmp_path / "v.npy", io["video"].numpy())
    codes = {}
    for dtype in ("float32", "float64"):
        out = tmp_path / f"{dtype}.h5"
        assert _run("encode", dcid_small_path, "--modality", "video", "--input", tmp_path / "v.npy", "-o", out, "--dtype", dtype).exit_code == 0
        with h5py.File(out) as handle:
            codes[dtype] = handle["level0/codes"][()]
            assert handle["level0/quantized"].dtype == np.dtype(dtype)
    assert np.array_equal(codes["float32"], codes["float64"])
