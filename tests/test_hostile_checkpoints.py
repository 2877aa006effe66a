"""Hostile checkpoints (items 2 and 3): no trust by the back door, NaN / Inf / absurd values never
give a result, text-LSTM states and counters are checked before anything runs (and, since issue
25, refuse only the commands that read them: tests/test_auxiliary_entries.py)."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from toc.codebook.checkpoint import EPOCH_FIELD, UnusedFieldWarning, load_checkpoint, load_codebooks
from toc.codebook.encode import EncodingSession, check_features
from toc.codebook.selection import TocSettings, select_levels
from toc.errors import CheckpointError, ConfigError, DataError, TocError
from toc.pipeline.plan import load_plan
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _edited(tmp_path, name, edit, family="dcid-avt"):
    path = save_reference_checkpoint(tmp_path / name, family)
    state = torch.load(path, weights_only=True)
    edit(state["Encoder_parameters"])
    torch.save(state, path)
    return path


def _set_first(key, value):
    def edit(encoder):
        tensor = encoder[key].clone().double()
        tensor.view(-1)[0] = value
        encoder[key] = tensor
    return edit


# ------------------------------------------------------------------ item 2: trust by the back door


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_plan_file_cannot_grant_trust(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    payload = tmp_path / "evil.pt"
    payload.write_bytes(pickle.dumps(_Payload(marker)))
    write_ave(tmp_path / "data")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'trust_checkpoint = true\ndata_root = "{tmp_path / "data"}"\ntasks = ["ave"]\nvariants = ["dcid"]\n'
        f'heads = ["prototype"]\nseeds = [0]\n[checkpoints]\ndcid = "{payload}"\n'
    )
    with pytest.raises(ConfigError, match="cannot grant trust"):
        load_plan(plan)
    result = invoke("compare", "--config", plan, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "--trust-checkpoint" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
    # Without the key, the checkpoint itself is refused by the weights-only reader.
    plan.write_text(plan.read_text().replace("trust_checkpoint = true\n", ""))
    result = invoke("compare", "--config", plan, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "refused" in result.stderr and not marker.exists()


def test_compare_has_the_command_line_trust_flag():
    result = invoke("compare", "--help")
    assert "--trust-checkpoint" in result.output


# ------------------------------------------------------------------ item 3: NaN / Inf / absurd values


@pytest.mark.parametrize("key", ["Cross_quantizer.embedding", "audio_self_att.affine_matrix.weight"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_for_encoding(tmp_path, key, value):
    path = _edited(tmp_path, "bad.pt", _set_first(key, value))
    with pytest.raises(CheckpointError, match=f"NaN/Inf value.*{key}|{key}.*NaN/Inf"):
        load_checkpoint(path)
    np.save(tmp_path / "a.npy", np.zeros((2, 10, 128)))
    result = invoke("encode", path, "--modality", "audio", "--input", tmp_path / "a.npy", "-o", tmp_path / "o.h5")
    assert result.exit_code == 1 and "bad.pt" in result.stderr and not (tmp_path / "o.h5").exists()


def test_non_finite_codebook_gives_no_eval_result(tmp_path):
    write_ave(tmp_path / "data")
    path = _edited(tmp_path, "bad.pt", _set_first("Cross_quantizer.embedding", float("nan")))
    result = invoke("eval", "ave", "--checkpoint", path, "--data-root", tmp_path / "data", "--head", "prototype")
    assert result.exit_code == 1 and "bad.pt" in result.stderr and '"metrics"' not in result.stdout


def test_finite_but_absurd_values_have_their_own_message(tmp_path):
    path = _edited(tmp_path, "big.pt", _set_first("Cross_quantizer.embedding", 1e200))
    with pytest.raises(CheckpointError, match=r"finite but absurd.*got \|x\| up to 1e\+200"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="finite but absurd"):
        load_codebooks(path)
    # Scoring a finite codebook whose squares overflow says so, rather than "NaN/Inf".
    codebook = torch.ones(8, 4, dtype=torch.float64)
    codebook[0, 1] = 1e200
    with pytest.raises(TocError, match="finite but absurdly large values in 1 channel"):
        select_levels([codebook], TocSettings(2), source="cb.pt")


def test_nan_codebook_needs_allow_nonfinite_everywhere(tmp_path):
    path = _edited(tmp_path, "nan.pt", _set_first("Cross_quantizer.embedding", float("nan")))
    assert invoke("inspect", path).exit_code == 1
    assert invoke("select", path, "--channels", "4").exit_code == 1
    assert invoke("select", path, "--channels", "4", "--allow-nonfinite").exit_code == 0


def test_an_encoder_overflowing_its_dtype_is_an_error_not_code_zero(tmp_path):
    path = save_reference_checkpoint(tmp_path / "ok.pt")
    session = EncodingSession(load_checkpoint(path), dtype=torch.float32)
    huge = np.full((1, 10, 128), 1e300)  # finite in float64, inf in float32
    with pytest.raises(DataError, match="NaN/Inf for clip 0"):
        session.encode_batch("audio", huge)


def test_bad_text_lstm_state_is_one_line(tmp_path):
    """Issue 25: a damaged or ill-fitting text LSTM no longer refuses the checkpoint (encoding
    audio, video or text features never runs it); it is refused, in one line naming its key, where
    raw word vectors would go through it. A damaged one is also one warning at load."""
    from hdcid.modules import text_lstm

    path = save_reference_checkpoint(tmp_path / "t.pt", with_text_lstm=True)
    state = torch.load(path, weights_only=True)
    state["Text_ar_lstm_parameters"]["weight_hh_l0"] = torch.zeros(5)
    torch.save(state, path)
    with pytest.warns(UserWarning, match="Text_ar_lstm_parameters.weight_ih_l0': not an LSTM state_dict"):
        checkpoint = load_checkpoint(path)
    session = EncodingSession(checkpoint, dtype=torch.float64)
    assert session.encode_batch("audio", np.zeros((1, 10, 128)))[0][0].shape == (1, 10)
    with pytest.raises(CheckpointError, match=r"raw 768-d word vectors \(x.npy\) must go through the text LSTM.*not an LSTM"):
        check_features(checkpoint, "text", (1, 10, 768), "x.npy")
    state["Text_ar_lstm_parameters"] = text_lstm(768, 3).double().state_dict()  # 2 x 3 != text width
    torch.save(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedFieldWarning)  # a sound LSTM of another width: no warning
        checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="weight_hh_l0.*does not fit the text encoder"):
        check_features(checkpoint, "text", (1, 10, 768), "x.npy")


def test_absurd_epoch_is_a_warning_unless_read(tmp_path):
    """Issue 25: an impossible epoch refused every command; only the reference protocol's epoch
    rule reads it (tests/test_auxiliary_entries.py has the eval side)."""
    path = save_reference_checkpoint(tmp_path / "e.pt", extra={"epoch": -(10**12)})
    with pytest.warns(UserWarning, match="key 'epoch': not a plausible count"):
        assert load_checkpoint(path).epoch is None
    with pytest.raises(CheckpointError, match="key 'epoch': not a plausible count"):
        load_checkpoint(path, reads=(EPOCH_FIELD,))
    path = save_reference_checkpoint(tmp_path / "f.pt", extra={"epoch": torch.tensor(float("nan"))})
    assert load_checkpoint(path).epoch is None
