"""Hostile archives (items 3 and 6): feature-zip members inflated within a bound, one pickle member,
pickle structure bombs, torch records stored and CRC-checked, .npy headers that agree with the file."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import reference_file

from cli.main import cli
from toc.codebook.checkpoint import load_checkpoint, load_codebooks
from toc.codebook.encode import open_features
from toc.data.archives import MAX_MEMBER_BYTES, RATIO_FREE_BYTES, load_feature, read_zip_array
from toc.errors import CheckpointError, DataError
from toc.testing.hostile import (
    flip_record_byte,
    npy_lying_header,
    pickle_list_bomb,
    torch_with_deflated_records,
    zip_bomb,
    zip_many_pickles,
)


def test_a_zip_bomb_is_cut_off_at_the_members_bound(tmp_path):
    """A member that inflates about a thousand times is a bomb, whatever it declares; one that
    declares more than a clip may hold in memory is refused before inflating."""
    path = zip_bomb(tmp_path / "clip.zip", "clip.pkl", 50_000_000)
    assert path.stat().st_size < 200_000
    with pytest.raises(DataError, match="inflates far beyond its compressed size.*at most 100x"):
        load_feature(path, (128,), pad=True)
    huge = zip_bomb(tmp_path / "huge.zip", "clip.pkl", MAX_MEMBER_BYTES + 1)
    with pytest.raises(DataError, match="zip member too large"):
        load_feature(huge, (128,), pad=True)


def test_a_member_lying_about_its_size_is_still_cut_off(tmp_path):
    path = zip_bomb(tmp_path / "clip.zip", "clip.pkl", 5_000_000)
    data = bytearray(path.read_bytes())
    # Declare 1000 bytes in both headers: the stream itself still inflates to 5 MB.
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    data[info.header_offset + 22: info.header_offset + 26] = (1000).to_bytes(4, "little")
    central = data.rfind(b"PK\x01\x02")
    data[central + 24: central + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="clip.zip"):
        read_zip_array(path, max_member_bytes=4096)


def test_several_pickle_members_are_refused_not_last_wins(tmp_path):
    path = zip_many_pickles(tmp_path / "clip.zip", [np.zeros((10, 128)), np.ones((10, 128))])
    with pytest.raises(DataError, match="several pickle members"):
        read_zip_array(path)


def test_a_pickle_structure_bomb_is_refused_before_unpickling(tmp_path):
    path = pickle_list_bomb(tmp_path / "clip.zip", 200_000)
    with pytest.raises(DataError, match="too many opcodes"):
        read_zip_array(path)


def test_a_long_clip_is_not_a_bomb(tmp_path):
    """Issue 25: an AVVP audio zip of 1,000 steps (512 KB of float32) was refused as "zip member
    too large" (a bound of 300 steps); the reference keeps the first 10 steps of any clip. Now the
    bounds are the member's memory and its compression ratio, so long clips load, and a long clip
    of constant rows (compressing far more than real features) loads while it stays small."""
    steps = np.random.default_rng(0).normal(size=(1000, 128)).astype(np.float32)
    path = tmp_path / "long.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("long.pkl", pickle.dumps(steps))
    assert path.stat().st_size > 450_000
    out = load_feature(path, (128,), pad=True)
    assert out.shape == (10, 128) and np.array_equal(out, steps[:10].astype(np.float64))
    silent = tmp_path / "silent.zip"
    constant = np.zeros((RATIO_FREE_BYTES // (2 * 128 * 8), 128))  # 4 MB of zeros: ~1000x compressible
    with zipfile.ZipFile(silent, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("silent.pkl", pickle.dumps(constant))
    assert np.array_equal(load_feature(silent, (128,), pad=True), np.zeros((10, 128)))


def test_deflated_torch_records_are_refused_before_torch_inflates_them(tmp_path):
    path = torch_with_deflated_records(tmp_path / "bomb.pt", {"codebook": torch.zeros(4_000, 1_000)})
    assert path.stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="record is compressed"):
        load_codebooks(path)


@pytest.mark.parametrize("command", ["inspect", "select"])
def test_a_flipped_byte_in_a_tensor_record_is_refused(tmp_path, command):
    path = flip_record_byte(reference_file("hdcid_small.pt"), tmp_path / "flip.pt")
    with pytest.raises(CheckpointError, match="CRC-32 does not match"):
        load_checkpoint(path)
    args = ["inspect", str(path)] if command == "inspect" else ["select", str(path), "--channels", "16"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "flip.pt" in result.stderr and "CRC-32" in result.stderr


def test_npy_header_declaring_more_than_the_file_is_refused(tmp_path):
    path = npy_lying_header(tmp_path / "x.npy", (10**6, 10, 128))
    with pytest.raises(DataError, match="header does not match its size"):
        open_features(path)
    with pytest.raises(CheckpointError, match="header does not match its size"):
        load_codebooks(npy_lying_header(tmp_path / "cb.npy", (10**9, 256)))
