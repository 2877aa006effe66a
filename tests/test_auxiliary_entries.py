"""Issue 25: auxiliary modules and fields are checked where they are used.

A reference checkpoint holds, beside the encoder, a text LSTM, CPC and CLUB nets, decoders,
optimiser states, counters and the quantizer's EMA statistics. Encoding, TOC and evaluation read
the encoder's parameters and codebook only, so whatever the rest holds, those commands give the
same codes and selections as on the plain reference file. Each rule is checked where a command
reads the field: raw 768-d word vectors through the text LSTM, `toc health CKPT` on the stored
counts, the reference protocol's epoch rule. Everywhere else an unusable field is one warning.

Also here: features must be floats, long clips are not bombs, and a command that fails leaves
nothing under a final name (eval's code cache, a fresh training run's folder).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import warnings
import zipfile

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fcid_fixtures import fcid_reference_file, load_fcid_reference
from hostile_inputs import error_line

from cli.main import cli
from cmg_base.errors import OutputError
from cmg_base.files import StagedFiles, append_text
from hdcid.modules import text_lstm
from tests.conftest import load_reference, reference_file
from toc.codebook.checkpoint import UnusedFieldWarning, load_checkpoint, load_codebooks
from toc.codebook.encode import EncodingSession, check_features, open_features
from toc.codebook.selection import TocSettings, select_levels
from toc.codebook.settings import score_weights
from toc.data.archives import load_feature, loads_ndarray
from toc.data.paired import load_paired
from toc.errors import CheckpointError, DataError
from toc.eval import cache as cache_module
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave, write_h5

LSTM_KEY = "Text_ar_lstm_parameters"
TOLERANCE = 1e-12  # the reference's float64 values, as tests/test_encoder_parity.py asserts them


def invoke(*args):
    """`toc ARGS` in this process. Every warning is shown, as in a fresh `toc` process (Python
    shows a repeated warning once per process; pytest runs many commands in one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UnusedFieldWarning)
        return CliRunner().invoke(cli, [str(a) for a in args])


def warning_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning:")]


def _edited(source, target, edit):
    """A copy of a reference checkpoint with `edit(raw_dict)` applied."""
    raw = torch.load(source, map_location="cpu", weights_only=True)
    raw["Encoder_parameters"] = dict(raw["Encoder_parameters"])
    edit(raw)
    torch.save(raw, target)
    return target


def _misfit_lstm(raw):
    """A sound reference-layout text LSTM whose output (2 x 24 = 48) is not the encoder's text
    width (256): as the reference code saves it beside an encoder made with other sizes."""
    torch.manual_seed(5)
    raw[LSTM_KEY] = text_lstm(768, 24).state_dict()


def _set(key, index, value):
    def edit(raw):
        tensor = raw["Encoder_parameters"][key].clone()
        tensor.view(-1)[index] = value
        raw["Encoder_parameters"][key] = tensor
    return edit


def _io(family):
    return load_reference("dcid_small_io.pt" if family == "dcid" else "hdcid_small_io.pt")


def _expected_codes(family, modality, io):
    """Per level: (codes [20], quantized [2,10,D]) the reference gives; H-DCID text: the concat."""
    if family == "dcid":
        return [(io[f"{modality}_codes"], io[f"{modality}_vq"])]
    return [(io[f"{modality}_codes_l{level}"], io[f"{modality}_vq_l{level}"]) for level in (1, 2)]


def _assert_reference_codes(family, modality, levels, io):
    """`levels`: per level (codes [B, T], quantized [B, T, D]) as numpy."""
    if family == "hdcid" and modality == "text":
        concat = np.concatenate([levels[0][1], levels[1][1]], axis=-1)
        assert np.abs(concat - io["text_vq_concat"].numpy()).max() <= TOLERANCE
        return
    for (codes, quantized), (ref_codes, ref_vq) in zip(levels, _expected_codes(family, modality, io), strict=True):
        assert np.array_equal(codes.reshape(-1), ref_codes.numpy()), (family, modality)
        assert np.abs(quantized - ref_vq.numpy()).max() <= TOLERANCE, (family, modality)


FAMILIES = {"dcid": "dcid_small.pt", "hdcid": "hdcid_small.pt"}


# ------------------------------------------------------------------ a text LSTM of another width


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_misfit_text_lstm_encodes_audio_video_and_text_features_exactly(tmp_path, family):
    """Before the fix every encode / select / inspect of such a file was refused ("the text
    LSTM's output does not fit the text encoder"): encode parity 0/6 on reference checkpoints of
    other sizes. The LSTM is legitimate (the reference saves it whatever the text width): no
    warning, the reference codes, and bit for bit what the plain fixture gives."""
    path = _edited(reference_file(FAMILIES[family]), tmp_path / "misfit.pt", _misfit_lstm)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedFieldWarning)
        checkpoint = load_checkpoint(path)
    assert checkpoint.text_lstm_state is None and "does not fit" in str(checkpoint.text_lstm_problem)
    plain = EncodingSession(load_checkpoint(reference_file(FAMILIES[family])), dtype=torch.float64)
    session = EncodingSession(checkpoint, dtype=torch.float64)
    io = _io(family)
    for modality in ("audio", "video", "text"):
        features = io[modality].double().numpy()
        assert check_features(checkpoint, modality, features.shape, "io") is False
        levels = session.encode_batch(modality, features)
        _assert_reference_codes(family, modality, levels, io)
        for (codes, quantized), (plain_codes, plain_quantized) in zip(levels, plain.encode_batch(modality, features), strict=True):
            assert np.array_equal(codes, plain_codes) and np.array_equal(quantized, plain_quantized)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_misfit_text_lstm_encodes_through_toc_encode(tmp_path, family):
    path = _edited(reference_file(FAMILIES[family]), tmp_path / "misfit.pt", _misfit_lstm)
    io = _io(family)
    for modality in ("audio", "video", "text"):
        np.save(tmp_path / f"{modality}.npy", io[modality].double().numpy())
        out = tmp_path / f"{modality}.h5"
        result = invoke("encode", path, "--modality", modality, "--input", tmp_path / f"{modality}.npy", "-o", out,
                        "--dtype", "float64")
        assert result.exit_code == 0, result.output
        assert warning_lines(result) == [] and json.loads(result.stdout)["text_lstm_applied"] is False
        with h5py.File(out) as handle:
            levels = [(handle[f"level{lv}/codes"][()], handle[f"level{lv}/quantized"][()]) for lv in range(handle.attrs["levels"])]
        _assert_reference_codes(family, modality, levels, io)


def _reference_settings():
    expected = json.loads(reference_file("toc_reference_indices.json").read_text())
    cases = []
    for family, names in (("dcid", ["dcid_small"]), ("hdcid", ["hdcid_small_level0", "hdcid_small_level1"])):
        for key in expected[names[0]]:
            channels, max_num, min_num = (int(v) for v in re.findall(r"=(\d+)", key))
            cases.append((family, channels, max_num, min_num, [expected[name][key] for name in names]))
    return cases


def test_a_misfit_text_lstm_selects_every_reference_toc_setting(tmp_path):
    """`toc select` on the misfit-LSTM files gives the reference's index lists for every setting of
    tests/fixtures/cmg-reference/toc_reference_indices.json (13 settings; both H-DCID levels)."""
    paths = {family: _edited(reference_file(name), tmp_path / f"{family}.pt", _misfit_lstm) for family, name in FAMILIES.items()}
    cases = _reference_settings()
    assert len(cases) == 13
    for family, channels, max_num, min_num, expected in cases:
        result = invoke("select", paths[family], "--channels", channels, "--max-num", max_num, "--min-num", min_num)
        assert result.exit_code == 0, result.output
        assert not any(line.startswith("warning:") and "Text_ar" in line for line in result.stderr.splitlines())
        assert [level["indices"] for level in json.loads(result.stdout)["levels"]] == expected, (family, channels)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_raw_word_vectors_to_a_misfit_lstm_are_refused_in_one_line(tmp_path, family):
    path = _edited(reference_file(FAMILIES[family]), tmp_path / "misfit.pt", _misfit_lstm)
    with pytest.raises(CheckpointError) as caught:
        check_features(load_checkpoint(path), "text", (2, 10, 768), "words.npy")
    assert caught.value.key == f"{LSTM_KEY}.weight_hh_l0" and caught.value.file == path
    assert caught.value.expected.startswith("hidden size 128") and caught.value.actual == "hidden size 24"
    np.save(tmp_path / "words.npy", np.zeros((2, 10, 768)))
    result = invoke("encode", path, "--modality", "text", "--input", tmp_path / "words.npy", "-o", tmp_path / "o.h5")
    line = error_line(result)
    assert line == (
        f"Error: {path}, key '{LSTM_KEY}.weight_hh_l0': raw 768-d word vectors ({tmp_path / 'words.npy'}) must go "
        "through the text LSTM, which cannot take them: the text LSTM's output does not fit the text encoder "
        "(expected hidden size 128 (2 x hidden = text width 256), got hidden size 24)"
    )
    assert not (tmp_path / "o.h5").exists()


def test_a_fitting_text_lstm_still_runs_for_raw_word_vectors(tmp_path):
    """The reference's own LSTM (768 -> 2 x 128) fits dcid_small's 256-d text encoder: raw word
    vectors go through it, as the published text path does."""
    def fit(raw):
        torch.manual_seed(5)
        raw[LSTM_KEY] = text_lstm(768, 128).state_dict()

    path = _edited(reference_file("dcid_small.pt"), tmp_path / "fit.pt", fit)
    words = np.random.default_rng(0).normal(size=(2, 10, 768))
    checkpoint = load_checkpoint(path)
    assert check_features(checkpoint, "text", words.shape, "words") is True
    session = EncodingSession(checkpoint, dtype=torch.float64)
    [(codes, _)] = session.encode_batch("text", words, needs_lstm=True)
    lstm = text_lstm(768, 128).double().eval()
    lstm.load_state_dict({k: v.double() for k, v in torch.load(path, weights_only=True)[LSTM_KEY].items()})
    with torch.no_grad():
        hidden, _ = lstm(torch.from_numpy(words))
        [(_, expected)] = checkpoint.build_encoder(torch.float64).encode("text", hidden)
    assert np.array_equal(codes, expected.numpy())


# ------------------------------------------------------------------ damaged auxiliary entries


def _garbage_lstms():
    lstm = text_lstm(768, 128).state_dict()
    nan = dict(lstm)
    nan["weight_ih_l1"] = torch.full_like(lstm["weight_ih_l1"], float("nan"))
    wrong_keys = {"weight_ih_l0": lstm["weight_ih_l0"], "weight_hh_l0": lstm["weight_hh_l0"], "bias": torch.zeros(3)}
    # Shapes declaring 4e12 and 1e12 elements, stored in 4 bytes each (stride 0): never materialised.
    huge = dict(lstm)
    huge["weight_ih_l0"] = torch.zeros(1).expand(4 * 10**6, 10**6)
    huge["weight_hh_l0"] = torch.zeros(1).expand(10**6, 10**6)
    # The right shapes, stored in one element: any computation would expand it.
    overlapping = dict(lstm)
    overlapping["weight_ih_l0"] = torch.zeros(1).expand(*lstm["weight_ih_l0"].shape)
    return {
        "not-a-dict": "a string", "a-list": [1, 2, 3], "a-tensor": torch.zeros(3),
        "wrong-keys": wrong_keys, "huge-declared-shape": huge, "nan-weights": nan, "overlapping-strides": overlapping,
        "integer-weights": {k: v.to(torch.int32) for k, v in lstm.items()},
    }


@pytest.mark.parametrize("kind", sorted(_garbage_lstms()))
def test_a_garbage_text_lstm_entry_still_encodes_audio_and_video(tmp_path, kind):
    """One warning naming the entry; audio, video and 256-d text give the reference codes; only
    raw word vectors are refused, in one line; the entry is never run or expanded."""
    entry = _garbage_lstms()[kind]
    path = _edited(reference_file("dcid_small.pt"), tmp_path / "garbage.pt", lambda raw: raw.update({LSTM_KEY: entry}))
    with pytest.warns(UnusedFieldWarning, match=rf"garbage.pt, key '{LSTM_KEY}[^']*': .*; treated as unavailable"):
        checkpoint = load_checkpoint(path)
    session = EncodingSession(checkpoint, dtype=torch.float64)
    io = _io("dcid")
    for modality in ("audio", "video", "text"):
        _assert_reference_codes("dcid", modality, session.encode_batch(modality, io[modality].double().numpy()), io)
    with pytest.raises(CheckpointError, match=rf"key '{LSTM_KEY}[^']*': raw 768-d word vectors \(w\) must go through"):
        check_features(checkpoint, "text", (1, 10, 768), "w")
    np.save(tmp_path / "audio.npy", io["audio"].double().numpy())
    result = invoke("encode", path, "--modality", "audio", "--input", tmp_path / "audio.npy", "-o", tmp_path / "a.h5")
    assert result.exit_code == 0, result.output
    assert len(warning_lines(result)) == 1 and LSTM_KEY in warning_lines(result)[0]
    for command in (["inspect", path], ["select", path, "--channels", 64], ["score", path, "--format", "csv"]):
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)
        assert len(warning_lines(result)) == 1, result.stderr


def test_unknown_and_auxiliary_entries_are_not_read(tmp_path):
    """CPC, CLUB nets, decoders, optimiser states and unknown keys holding anything are never
    read: no warning, the reference codes, listed as extra keys when unknown."""
    def edit(raw):
        raw.update({
            "CPC_parameters": "not a state_dict", "Decoder_parameters": {"linear.weight": torch.full((3,), float("nan"))},
            "Video_mi_net_parameters": [1, 2], "optimizer": {"state": {0: {"exp_avg": torch.full((2,), float("inf"))}}},
            "optimizer_audio_mi_net": None, "someone_elses_notes": {"lr": -1, "text": "x" * 1000},
        })

    path = _edited(reference_file("dcid_small.pt"), tmp_path / "aux.pt", edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedFieldWarning)
        checkpoint = load_checkpoint(path)
    assert checkpoint.extra_keys == ["someone_elses_notes"]
    io = _io("dcid")
    session = EncodingSession(checkpoint, dtype=torch.float64)
    for modality in ("audio", "video", "text"):
        _assert_reference_codes("dcid", modality, session.encode_batch(modality, io[modality].double().numpy()), io)


def _made_with_other_sizes(tmp_path):
    """The issue's file: an encoder of text width 48 beside the reference's own LSTM (768 -> 2 x
    128), plus whatever else a file may carry: garbage CPC / decoder / optimiser entries, an
    impossible total_step, NaN in the EMA weights and counters of unused codes."""
    torch.manual_seed(3)
    path = save_reference_checkpoint(tmp_path / "other.pt", text_dim=48, extra={
        LSTM_KEY: text_lstm(768, 128).double().state_dict(), "total_step": -5, "CPC_parameters": "garbage",
        "Decoder_parameters": [1], "optimizer": {"state": None},
    })
    _edited(path, path, _set("Cross_quantizer.ema_weight", 0, float("nan")))
    return _edited(path, path, _set("Cross_quantizer.unactivated_count", 0, float("nan")))


ENCODER_ONLY_COMMANDS = {
    "inspect": lambda ck, d, t: ["inspect", ck],
    "score": lambda ck, d, t: ["score", ck],
    "select": lambda ck, d, t: ["select", ck, "--channels", 8],
    "plot": lambda ck, d, t: ["plot", ck, "--channels", 8, "-o", t / "toc.png"],
    "health": lambda ck, d, t: ["health", ck],
    "health-task": lambda ck, d, t: ["health", ck, "--task", "ave", "--data-root", d],
    "encode-audio": lambda ck, d, t: ["encode", ck, "--modality", "audio", "--input", t / "audio.npy", "-o", t / "a.h5"],
    "encode-video": lambda ck, d, t: ["encode", ck, "--modality", "video", "--input", t / "video.npy", "-o", t / "v.h5"],
    "encode-text": lambda ck, d, t: ["encode", ck, "--modality", "text", "--input", t / "text48.npy", "-o", t / "t.h5"],
    "eval-prototype": lambda ck, d, t: ["eval", "ave", "--checkpoint", ck, "--data-root", d, "--head", "prototype"],
    "eval-linear": lambda ck, d, t: ["eval", "ave", "--checkpoint", ck, "--data-root", d, "--direction", "v2a",
                                     "--epochs", "2", "--channels", 8, "--variant", "dcid,dcid+toc"],
}


@pytest.mark.parametrize("command", sorted(ENCODER_ONLY_COMMANDS))
def test_every_encoder_only_command_reads_a_file_made_with_other_sizes(tmp_path, command):
    path = _made_with_other_sizes(tmp_path)
    data = write_ave(tmp_path / "data")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "audio.npy", rng.normal(size=(3, 10, 128)))
    np.save(tmp_path / "video.npy", rng.normal(size=(3, 10, 7, 7, 512)))
    np.save(tmp_path / "text48.npy", rng.normal(size=(3, 10, 48)))
    result = invoke(*ENCODER_ONLY_COMMANDS[command](path, data, tmp_path))
    assert result.exit_code == 0, result.output
    warned = warning_lines(result)
    assert len(warned) == 2 and "'total_step'" in warned[1] and "ema_weight" in warned[0], warned
    assert "Traceback" not in result.output and "Error" not in result.stderr


def test_raw_word_vectors_to_a_file_made_with_other_sizes_are_refused_in_one_line(tmp_path):
    path = _made_with_other_sizes(tmp_path)
    np.save(tmp_path / "words.npy", np.zeros((3, 10, 768)))
    result = invoke("encode", path, "--modality", "text", "--input", tmp_path / "words.npy", "-o", tmp_path / "t.h5")
    assert error_line(result).endswith(
        "the text LSTM's output does not fit the text encoder (expected hidden size 24 (2 x hidden = text width 48), "
        "got hidden size 128)"
    )
    np.save(tmp_path / "wrong.npy", np.zeros((3, 10, 50)))
    result = invoke("encode", path, "--modality", "text", "--input", tmp_path / "wrong.npy", "-o", tmp_path / "t.h5")
    assert error_line(result).endswith("wrong text feature shape (expected [N, T, 48], got [3, 10, 50])")


# ------------------------------------------------------------------ counters and EMA statistics


def test_an_impossible_total_step_is_a_warning_for_inspect_and_encode(tmp_path):
    """Before the fix `total_step` -5 refused inspect and encode; no command reads it."""
    path = _edited(reference_file("dcid_small.pt"), tmp_path / "step.pt", lambda raw: raw.update(total_step=-5))
    inspected = invoke("inspect", path, "--format", "json")
    assert inspected.exit_code == 0, inspected.output
    assert warning_lines(inspected) == [
        f"warning: {path}, key 'total_step': not a plausible count (expected 0..1099511627776, got -5); treated as unavailable"
    ]
    assert json.loads(inspected.stdout)["epoch"] == 3
    io = _io("dcid")
    np.save(tmp_path / "video.npy", io["video"].double().numpy())
    encoded = invoke("encode", path, "--modality", "video", "--input", tmp_path / "video.npy", "-o", tmp_path / "v.h5", "--dtype", "float64")
    assert encoded.exit_code == 0 and len(warning_lines(encoded)) == 1
    with h5py.File(tmp_path / "v.h5") as handle:
        assert np.array_equal(handle["level0/codes"][()].reshape(-1), io["video_codes"].numpy())
    with pytest.warns(UnusedFieldWarning):
        assert load_checkpoint(path).total_step is None


def test_an_impossible_epoch_is_shown_as_null_by_inspect(tmp_path):
    path = _edited(reference_file("dcid_small.pt"), tmp_path / "epoch.pt", lambda raw: raw.update(epoch=-5))
    result = invoke("inspect", path, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["epoch"] is None
    assert len(warning_lines(result)) == 1 and "key 'epoch'" in warning_lines(result)[0]
    table = invoke("inspect", path)
    assert table.exit_code == 0 and re.search(r"^epoch\s+-$", table.stdout, re.M)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_nan_ema_count_does_not_stop_encode_select_or_score(tmp_path, family):
    """Before the fix NaN in `Cross_quantizer.ema_count` (a training statistic) refused `toc
    encode`. Encoding reads the parameters and the codebook; inspect shows the level's usage as
    null; `toc health CKPT`, whose report is those counts, refuses in one line."""
    path = _edited(reference_file(FAMILIES[family]), tmp_path / "ema.pt", _set("Cross_quantizer.ema_count", -1, float("nan")))
    io = _io(family)
    np.save(tmp_path / "audio.npy", io["audio"].double().numpy())
    result = invoke("encode", path, "--modality", "audio", "--input", tmp_path / "audio.npy", "-o", tmp_path / "a.h5", "--dtype", "float64")
    assert result.exit_code == 0, result.output
    assert warning_lines(result) == [
        f"warning: {path}, key 'Encoder_parameters.Cross_quantizer.ema_count': 1 value(s) NaN, infinite or negative "
        "in a training statistic (expected finite counts >= 0); treated as unavailable"
    ]
    with h5py.File(tmp_path / "a.h5") as handle:
        levels = [(handle[f"level{lv}/codes"][()], handle[f"level{lv}/quantized"][()]) for lv in range(handle.attrs["levels"])]
    _assert_reference_codes(family, "audio", levels, io)
    plain = invoke("select", reference_file(FAMILIES[family]), "--channels", 32)
    selected = invoke("select", path, "--channels", 32)
    assert selected.exit_code == 0 and len(warning_lines(selected)) == 1
    assert json.loads(selected.stdout)["levels"] == json.loads(plain.stdout)["levels"]
    scored = invoke("score", path)
    assert scored.exit_code == 0 and json.loads(scored.stdout)["levels"] == json.loads(invoke("score", reference_file(FAMILIES[family])).stdout)["levels"]
    inspected = invoke("inspect", path, "--format", "json")
    assert inspected.exit_code == 0 and all(level["usage"] is None for level in json.loads(inspected.stdout)["levels"])
    health = invoke("health", path)
    assert "key 'Encoder_parameters.Cross_quantizer.ema_count'" in error_line(health) and health.exit_code == 1


@pytest.mark.parametrize("key", ["Cross_quantizer.ema_weight", "Cross_quantizer.unactivated_count"])
def test_other_ema_statistics_are_never_read_by_encoding(tmp_path, key):
    path = _edited(reference_file("dcid_small.pt"), tmp_path / "stat.pt", _set(key, 0, float("inf")))
    with pytest.warns(UnusedFieldWarning, match=f"key 'Encoder_parameters.{key}'"):
        checkpoint = load_checkpoint(path)
    io = _io("dcid")
    _assert_reference_codes("dcid", "video", EncodingSession(checkpoint, dtype=torch.float64).encode_batch("video", io["video"].double().numpy()), io)
    health = invoke("health", path)  # the usage counts themselves are sound
    assert health.exit_code == 0, health.output


@pytest.mark.parametrize("key", ["Cross_quantizer.embedding", "Audio_encoder.audio_linear.weight"])
def test_parameters_and_the_codebook_are_still_checked(tmp_path, key):
    """What encoding does read keeps its protection: NaN there refuses encoding."""
    path = _edited(reference_file("dcid_small.pt"), tmp_path / "bad.pt", _set(key, 0, float("nan")))
    with pytest.raises(CheckpointError, match=f"key 'Encoder_parameters.{key}'.*NaN/Inf value"):
        load_checkpoint(path)


def test_an_encoder_tensor_declaring_more_than_it_stores_is_refused(tmp_path):
    """The same expansion trick in a tensor encoding reads is refused before any value is read."""
    def expand(raw):
        weight = raw["Encoder_parameters"]["Audio_encoder.audio_linear.weight"]
        raw["Encoder_parameters"]["Audio_encoder.audio_linear.weight"] = torch.zeros(1).expand(*weight.shape)

    path = _edited(reference_file("dcid_small.pt"), tmp_path / "expanded.pt", expand)
    with pytest.raises(CheckpointError, match="audio_linear.weight': tensor declares more elements than its storage holds"):
        load_checkpoint(path)


def test_fcid_with_damaged_fields_encodes_and_selects_as_the_reference(tmp_path):
    """FCID's published file holds the encoder, epoch and total_step; its coarse codebook's EMA
    statistics and counters do not take part in encoding either."""
    def edit(raw):
        encoder = raw["Encoder_parameters"]
        for name in ("ema_count", "unactivated_count"):
            value = encoder[f"Cross_quantizer_coarse.{name}"].clone()
            value.view(-1)[0] = float("nan")
            encoder[f"Cross_quantizer_coarse.{name}"] = value
        raw.update(total_step=-5, CPC_parameters="garbage", Text_ar_lstm_parameters=[0])

    path = _edited(fcid_reference_file("fcid_small.pt"), tmp_path / "fcid.pt", edit)
    with pytest.warns(UnusedFieldWarning):
        checkpoint = load_checkpoint(path)
    io = load_fcid_reference("fcid_small_io.pt")
    encoder = checkpoint.build_encoder(torch.float64)
    with torch.no_grad():
        for modality in ("audio", "video"):
            [(codewords, codes)] = encoder.encode(modality, io[modality].double())
            assert torch.equal(codes.flatten(), io[f"{modality}_codes"])
            assert (codewords - io[f"{modality}_vq"]).abs().max().item() <= TOLERANCE
        [(_, codes)] = encoder.encode("text", io["text"].double())
        assert torch.equal(codes.flatten(), io["text_codes_split"])
    expected = json.loads(fcid_reference_file("toc_reference_indices.json").read_text())["fcid_small"]
    with pytest.warns(UnusedFieldWarning):
        codebooks = load_codebooks(path).codebooks
    assert len(expected) == 28
    for key, indices in expected.items():
        score = re.search(r"score=(\w+)", key).group(1)
        channels, max_num, min_num = (int(v) for v in re.findall(r"=(\d+)", key))
        sim_weight, var_weight = score_weights(score)
        settings = TocSettings(channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight, reference_topk=True)
        [selection] = select_levels([codebooks[0].double()], settings)
        assert selection.indices.tolist() == indices, key
    np.save(tmp_path / "audio.npy", io["audio"].double().numpy())
    result = invoke("encode", path, "--modality", "audio", "--input", tmp_path / "audio.npy", "-o", tmp_path / "a.h5", "--dtype", "float64")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "a.h5") as handle:
        assert np.array_equal(handle["level0/codes"][()].reshape(-1), io["audio_codes"].numpy())


# ------------------------------------------------------------------ the epoch in evaluation


def test_only_the_reference_protocol_reads_the_epoch(tmp_path):
    data = write_ave(tmp_path / "data")
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt", extra={"epoch": -5})
    strict = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--head", "prototype", "--direction", "v2a")
    assert strict.exit_code == 0, strict.output
    assert len(warning_lines(strict)) == 1 and "key 'epoch'" in warning_lines(strict)[0]
    assert json.loads(strict.stdout.splitlines()[0])["metrics"]
    reference = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--protocol", "reference",
                       "--head", "linear", "--direction", "v2a", "--epochs", "3")
    assert error_line(reference) == (
        f"Error: {checkpoint}, key 'epoch': not a plausible count (expected 0..1099511627776, got -5)"
    )
    assert reference.stdout == "" and warning_lines(reference) == []


# ------------------------------------------------------------------ features are floats


@pytest.mark.parametrize("dtype", ["bool", "int64", "uint8"])
def test_integer_and_boolean_features_are_refused_everywhere(tmp_path, dtype):
    """Before the fix a boolean array was encoded as features (exit 0). No reference layout
    stores integer features (every published loader casts float features); labels and orders,
    which are integers, are not features."""
    array = (np.arange(2 * 10 * 128).reshape(2, 10, 128) % 2).astype(dtype)
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", array)
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle["feats"] = array
    for source, key in ((tmp_path / "x.npy", None), (tmp_path / "x.h5", "feats")):
        result = invoke("encode", checkpoint, "--modality", "audio", "--input", source, "-o", tmp_path / "o.h5")
        assert error_line(result) == (
            f"Error: {source}{'' if key is None else f', key {key!r}'}: wrong dtype"
            f"{' for a feature file' if key is None else ''} (expected a float dtype, got {np.dtype(dtype)})"
        )
        assert not (tmp_path / "o.h5").exists()
    with pytest.raises(DataError, match=f"features must be floats.*expected a float dtype, got {dtype}"):
        loads_ndarray(pickle.dumps(array[0]), file="clip.zip", key="clip.pkl")
    write_ave(tmp_path / "ave", audio=np.stack([array[0]] * 5))
    result = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", tmp_path / "ave", "--head", "prototype")
    assert "audio_feature.h5, key 'avadataset': wrong dtype (expected a float dtype" in error_line(result)
    paired = write_h5(tmp_path / "paired.h5", "audio", array.repeat(6, axis=0))
    write_h5(paired, "video", np.zeros((12, 10, 8)))
    with pytest.raises(DataError, match=f"paired.h5, key 'audio': wrong dtype \\(expected a float dtype, got {dtype}\\)"):
        load_paired(paired)


def test_float_features_of_any_width_still_load(tmp_path):
    for dtype in (np.float16, np.float32, np.float64):
        np.save(tmp_path / "x.npy", np.zeros((2, 10, 128), dtype))
        assert open_features(tmp_path / "x.npy").shape == (2, 10, 128)
        out = loads_ndarray(pickle.dumps(np.ones((3, 128), dtype)), file="clip.zip", key="clip.pkl")
        assert out.dtype == dtype


# ------------------------------------------------------------------ long clips


def test_an_avvp_zip_of_a_thousand_steps_is_read_through_the_loader(tmp_path):
    """Issue 25: 1,000 steps (512 KB) was "zip member too large"; AVVP audio is pad-last /
    trunc-10, so such a clip gives its first 10 steps."""
    from toc.eval.tasks import load_task
    from toc.testing.datafixtures import write_avvp

    root = write_avvp(tmp_path / "data")
    audio_zip = root / "AVVP/feature/audio/zip/aaaaaaaaaaa.zip"
    steps = np.random.default_rng(1).normal(size=(1000, 128)).astype(np.float32)
    with zipfile.ZipFile(audio_zip, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{audio_zip.stem}.pkl", pickle.dumps(steps))
    assert audio_zip.stat().st_size > 450_000
    data = load_task("avvp", data_root=root)
    audio = data.sets["avvp/audio"]
    row = audio.ids.index(audio_zip.stem)
    assert np.array_equal(audio.read(np.array([row]))[0], steps[:10].astype(np.float64))
    assert load_feature(audio_zip, (128,), pad=True).shape == (10, 128)


# ------------------------------------------------------------------ failed commands leave no final name


def test_an_eval_that_fails_leaves_no_cache_file(tmp_path):
    """Before the fix the train set's cache file was put in place while the evaluation went on:
    when a later set failed (here: NaN in the evaluated audio), the failed command left it under
    its final name. Cache files are now staged and put in place at the evaluation's end."""
    audio = np.stack([np.full((10, 128), float(i)) for i in range(5)])
    audio[4, 3, 0] = np.nan  # clip 4 is the test clip: read after the video sets are encoded
    data = write_ave(tmp_path / "data", audio=audio)
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    cache = tmp_path / "cache"
    result = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--head", "prototype",
                    "--direction", "v2a", "--cache-dir", cache)
    assert "NaN/Inf" in error_line(result)
    assert list(cache.iterdir()) == []
    good = write_ave(tmp_path / "good")
    done = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", good, "--head", "prototype",
                  "--direction", "v2a", "--cache-dir", cache)
    assert done.exit_code == 0, done.output
    assert len(list(cache.glob("*.h5"))) == 2 and not list(cache.glob(".*"))


def test_an_eval_on_a_disk_that_fills_leaves_no_cache_file(tmp_path, monkeypatch):
    """The issue's case, simulated deterministically: the disk is full when the second set's
    cache file is written (the first one fitted)."""
    calls = []
    real = cache_module.check_space

    def filling(path, needed):
        calls.append(path)
        if len(calls) > 1:
            raise OutputError(f"{path}: not enough disk space (needs about {needed:,} bytes, 0 free)")
        real(path, needed)

    monkeypatch.setattr(cache_module, "check_space", filling)
    data = write_ave(tmp_path / "data")
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    cache = tmp_path / "cache"
    result = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--head", "prototype",
                    "--direction", "v2a", "--cache-dir", cache)
    assert "not enough disk space" in error_line(result) and len(calls) == 2
    assert list(cache.iterdir()) == []


def test_staged_files_are_whole_or_absent(tmp_path, monkeypatch):
    staged = StagedFiles()
    staged.write_bytes(tmp_path / "a", b"first")
    (tmp_path / "b").write_bytes(b"old")
    staged.write_bytes(tmp_path / "b", b"new")
    assert [name for name in sorted(os.listdir(tmp_path)) if not name.startswith(".")] == ["b"]
    assert (tmp_path / "b").read_bytes() == b"old" and staged.targets == [tmp_path / "a", tmp_path / "b"]
    staged.discard()
    assert sorted(os.listdir(tmp_path)) == ["b"]
    staged.write_bytes(tmp_path / "a", b"first")
    staged.commit()
    assert (tmp_path / "a").read_bytes() == b"first" and (tmp_path / "b").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"c: cannot write \(no space left on the device\)"):
        staged.write_bytes(tmp_path / "c", b"x")
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_an_append_that_fails_part_way_is_cut_back(tmp_path, monkeypatch):
    """A metrics line is appended whole or not at all (a full disk or the file-size limit can
    stop a write part way)."""
    path = tmp_path / "metrics.jsonl"
    append_text(path, '{"a": 1}\n')
    real_write = os.write

    def short_then_efbig(fd, data):
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "write", short_then_efbig)
    with pytest.raises(OutputError, match=r"metrics.jsonl: cannot write \(the file-size limit \(ulimit -f\) was reached\)"):
        append_text(path, '{"b": 2}\n')
    monkeypatch.undo()
    assert path.read_text() == '{"a": 1}\n'
