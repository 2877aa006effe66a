"""The one-owner vocabulary of hdcid: families and levels, dtypes, input normalisation, checkpoint keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdcid import normalization
from hdcid.checkpoint_keys import REFERENCE_KEYS, mi_net_key, mi_optimizer_key, module_keys
from hdcid.errors import ModelError
from hdcid.models import EncoderSizes
from hdcid.vocabulary import DTYPES, FAMILIES, FAMILY_MODALITIES, family_for, levels_of, torch_dtype


def test_family_and_levels_are_one_rule():
    assert {f: levels_of(f) for f in FAMILIES} == {"dcid-avt": 1, "dcid-av": 1, "dcid-at": 1, "hdcid-avt": 2, "fcid-avt": 1}
    assert [family_for(n) for n in (1, 2)] == ["dcid-avt", "hdcid-avt"]
    assert all(levels_of(family_for(n)) == n for n in (1, 2))
    assert all(EncoderSizes(family=f).levels == levels_of(f) for f in FAMILIES)
    assert set(FAMILY_MODALITIES) == set(FAMILIES)
    for bad in (lambda: levels_of("vqvae"), lambda: family_for(3), lambda: torch_dtype("float16")):
        with pytest.raises(ModelError):
            bad()
    assert DTYPES == ("float32", "float64")
    assert [torch_dtype(name) for name in DTYPES] == [torch.float32, torch.float64]


def test_normalization_formula_and_statistics():
    rng = np.random.default_rng(0)
    audio = rng.normal(3.0, 2.0, size=(6, 5, 4))
    audio[..., 1] = 7.0  # a constant channel keeps scale 1

    class Data:
        def read(self, rows):
            return {"audio": audio[rows], "video": audio[rows][:, :, None, None, :]}

    stats = normalization.channel_statistics(Data(), range(6), batch_size=4)
    assert set(stats) == {"audio_mean", "audio_std", "video_mean", "video_std"} and stats["audio_std"].dtype == torch.float32
    assert float(stats["audio_std"][1]) == 1.0
    x = torch.from_numpy(audio)
    out = normalization.apply(stats, "audio", x)
    expected = (x - stats["audio_mean"].double()) / stats["audio_std"].double()
    assert out.dtype == torch.float64 and torch.equal(out, expected)
    assert normalization.apply(stats, "text", x) is x and normalization.apply(None, "audio", x) is x


def test_checkpoint_key_table():
    assert module_keys(1) == (
        "Encoder_parameters", "Text_ar_lstm_parameters", "CPC_parameters", "Decoder_parameters",
        "Video_mi_net_parameters", "Text_mi_net_parameters", "Audio_mi_net_parameters",
    )
    assert module_keys(2)[4:] == (
        "CPC_2_parameters", "Video_mi_net_parameters", "Text_mi_net_parameters", "Audio_mi_net_parameters",
        "Video_mi_net_2_parameters", "Text_mi_net_2_parameters", "Audio_mi_net_2_parameters",
    )
    assert mi_net_key("audio", 1) == "Audio_mi_net_2_parameters"
    assert mi_optimizer_key("video", 0) == "optimizer_video_mi_net" and mi_optimizer_key("text", 1) == "optimizer_text_mi_net_2"
    assert set(module_keys(2)) <= set(REFERENCE_KEYS) and normalization.NORMALIZATION_KEY in REFERENCE_KEYS
