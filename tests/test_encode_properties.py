"""Property tests: encoding is deterministic, batch-size independent, and returns codebook rows."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.encode import EncodingSession
from toc.testing.checkpoints import tiny_encoder

_ENCODER = tiny_encoder("hdcid-avt", seed=3)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    steps=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 100.0),
)
def test_codes_are_deterministic_and_codewords_are_codebook_rows(n, steps, seed, scale):
    x = torch.from_numpy(np.random.default_rng(seed).normal(scale=scale, size=(n, steps, 128)))
    with torch.no_grad():
        first = _ENCODER.encode("audio", x)
        second = _ENCODER.encode("audio", x.clone())
    for level, ((words_a, codes_a), (words_b, codes_b)) in enumerate(zip(first, second, strict=True)):
        assert torch.equal(codes_a, codes_b) and torch.equal(words_a, words_b)
        assert torch.equal(words_a.reshape(-1, words_a.shape[-1]), _ENCODER.codebook(level)[codes_a.flatten()])


@settings(max_examples=10, deadline=None)
@given(batch_size=st.integers(1, 7), seed=st.integers(0, 1000))
def test_codes_do_not_depend_on_the_batch_size(tmp_path_factory, batch_size, seed):
    path = tmp_path_factory.mktemp("ck") / "ck.pt"
    torch.save({"Encoder_parameters": _ENCODER.state_dict()}, path)
    session = EncodingSession(load_checkpoint(path), dtype=torch.float64)
    data = np.random.default_rng(seed).normal(size=(9, 10, 128))
    whole = session.encode_rows("audio", lambda rows: data[rows], 9, batch_size=9)
    batched = session.encode_rows("audio", lambda rows: data[rows], 9, batch_size=batch_size)
    assert all(np.array_equal(a, b) for a, b in zip(whole, batched, strict=True))
