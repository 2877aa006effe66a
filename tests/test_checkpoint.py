"""Checkpoint loading: every accepted layout and every refusal, with one-line messages."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from toc.codebook.checkpoint import load_checkpoint, load_codebooks
from toc.errors import CheckpointError
from toc.testing.checkpoints import save_reference_checkpoint, tiny_encoder


def _codes(checkpoint, modality="audio"):
    torch.manual_seed(1)
    x = torch.randn(2, 10, checkpoint.sizes.audio_dim, dtype=torch.float64)
    with torch.no_grad():
        return checkpoint.build_encoder().encode(modality, x)[0][1]


@pytest.mark.parametrize("family", ["dcid-avt", "dcid-av", "dcid-at", "hdcid-avt"])
def test_reference_layout_of_every_family_loads_with_sizes(tmp_path, family):
    path = save_reference_checkpoint(tmp_path / "ck.pt", family)
    checkpoint = load_checkpoint(path)
    assert checkpoint.family == family
    assert checkpoint.sizes.audio_output_dim == 8 and checkpoint.sizes.n_embeddings == 16
    assert checkpoint.levels == (2 if family == "hdcid-avt" else 1)
    assert checkpoint.epoch == 2 and checkpoint.total_step == 10
    assert len(checkpoint.sha256) == 64


def test_bare_state_dict_and_prefixes_give_identical_codes(tmp_path):
    reference = load_checkpoint(save_reference_checkpoint(tmp_path / "ref.pt"))
    state = tiny_encoder().state_dict()
    variants = {
        "bare.pt": state,
        "module.pt": {f"module.{k}": v for k, v in state.items()},
        "compiled.pt": {f"_orig_mod.{k}": v for k, v in state.items()},
        "wrapped.pt": {"state_dict": {f"module._orig_mod.{k}": v for k, v in state.items()}},
        "float32.pt": {"Encoder_parameters": {k: v.float() for k, v in state.items()}},
    }
    expected = _codes(reference)
    for name, payload in variants.items():
        torch.save(payload, tmp_path / name)
        loaded = load_checkpoint(tmp_path / name)
        assert loaded.family == "dcid-avt", name
        assert torch.equal(_codes(loaded), expected), name


def test_safetensors_and_extra_keys(tmp_path):
    from safetensors.torch import save_file

    state = tiny_encoder().state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "enc.safetensors"))
    assert load_checkpoint(tmp_path / "enc.safetensors").family == "dcid-avt"
    path = save_reference_checkpoint(tmp_path / "extra.pt", extra={"my_notes": "x", "CPC_parameters": {}})
    assert load_checkpoint(path).extra_keys == ["my_notes"]


def test_text_lstm_is_loaded_when_present(tmp_path):
    checkpoint = load_checkpoint(save_reference_checkpoint(tmp_path / "t.pt", with_text_lstm=True))
    assert checkpoint.text_lstm_input_dim == 768
    assert checkpoint.build_text_lstm() is not None


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"Encoder_parameters": {}, "x": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="pass trust_checkpoint only if"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_codebooks(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"this is not a checkpoint at all", "not a readable torch checkpoint")],
)
def test_empty_and_non_torch_files(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = save_reference_checkpoint(tmp_path / "ck.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_unknown_layout_lists_top_level_keys(tmp_path):
    torch.save({"weights": torch.zeros(3), "meta": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"top-level keys found: \[meta, weights\]"):
        load_checkpoint(tmp_path / "x.pt")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = tiny_encoder().state_dict()
    del state["Audio_encoder.audio_linear.bias"]
    state["Audio_encoder.surprise"] = torch.zeros(1, dtype=torch.float64)
    torch.save({"Encoder_parameters": state}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "x.pt")
    message = str(info.value)
    assert "missing keys [Audio_encoder.audio_linear.bias]" in message
    assert "unexpected keys [Audio_encoder.surprise]" in message
    assert "\n" not in message


def test_wrong_shape_is_named(tmp_path):
    state = tiny_encoder().state_dict()
    state["Text_encoder.text_linear.bias"] = torch.zeros(9, dtype=torch.float64)
    torch.save({"Encoder_parameters": state}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"Text_encoder.text_linear.bias.*expected \[8\], got \[9\]"):
        load_checkpoint(tmp_path / "x.pt")


def test_integer_dtype_is_refused(tmp_path):
    state = tiny_encoder().state_dict()
    state["Cross_quantizer.embedding"] = state["Cross_quantizer.embedding"].long()
    torch.save({"Encoder_parameters": state}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="unsupported dtype"):
        load_checkpoint(tmp_path / "x.pt")


def test_bare_codebooks_in_every_container(tmp_path):
    codebook = torch.randn(12, 6)
    torch.save({"codebook": codebook}, tmp_path / "a.pt")
    torch.save(torch.stack([codebook, codebook * 2]), tmp_path / "b.pt")
    np.save(tmp_path / "c.npy", codebook.numpy())
    from safetensors.torch import save_file

    save_file({"embedding": codebook}, str(tmp_path / "d.safetensors"))
    assert load_codebooks(tmp_path / "a.pt").family == "codebook"
    assert len(load_codebooks(tmp_path / "b.pt").codebooks) == 2
    assert torch.equal(load_codebooks(tmp_path / "c.npy").codebooks[0], codebook)
    assert torch.equal(load_codebooks(tmp_path / "d.safetensors").codebooks[0], codebook)


def test_safetensors_with_absurd_header_is_refused(tmp_path):
    import json
    import struct

    header = json.dumps({"embedding": {"dtype": "F32", "shape": [10**12, 10**12], "data_offsets": [0, 4 * 10**24]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="invalid safetensors"):
        load_codebooks(path)


def test_codebooks_from_reference_checkpoints(dcid_small_path, hdcid_small_path):
    assert [tuple(c.shape) for c in load_codebooks(dcid_small_path).codebooks] == [(64, 256)]
    loaded = load_codebooks(hdcid_small_path)
    assert loaded.family == "hdcid-avt" and len(loaded.codebooks) == 2


def test_path_is_a_directory(tmp_path: Path):
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)
