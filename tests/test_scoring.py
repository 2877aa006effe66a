"""TOC channel scores: closed form vs brute force, streaming, input types, invariances, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toc.codebook.scoring import ScoringError, score_channels


def brute_force(codebook: torch.Tensor, sim_weight: float = 0.7, var_weight: float = 0.3):
    """The definition: mean over ordered pairs i != j of E[i,d]*E[j,d], unbiased variance."""
    e = codebook.to(torch.float64)
    n = e.shape[0]
    products = torch.einsum("id,jd->ijd", e, e)
    off_diagonal = products.sum((0, 1)) - (e * e).sum(0)
    similarity = off_diagonal / (n * (n - 1))
    variance = e.var(0, unbiased=True)
    return similarity, variance, -sim_weight * similarity + var_weight * variance


def random_codebook(seed: int, n: int, d: int, offset: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) * torch.linspace(0.1, 3, d, dtype=torch.float64) + offset


def test_scores_equal_the_pairwise_definition():
    codebook = random_codebook(0, 37, 11, offset=0.5)
    scores = score_channels(codebook)
    similarity, variance, score = brute_force(codebook)
    torch.testing.assert_close(scores.similarity, similarity, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores.variance, variance, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scores.score, score, rtol=1e-12, atol=1e-12)
    assert scores.score.dtype == torch.float64 and scores.n_codes == 37 and scores.n_channels == 11


def test_weights_enter_linearly():
    codebook = random_codebook(1, 20, 5)
    scores = score_channels(codebook, sim_weight=2.0, var_weight=-0.5)
    torch.testing.assert_close(scores.score, -2.0 * scores.similarity - 0.5 * scores.variance)


def test_two_codes_is_the_minimum():
    codebook = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    scores = score_channels(codebook)
    torch.testing.assert_close(scores.similarity, torch.tensor([3.0, -8.0], dtype=torch.float64))
    torch.testing.assert_close(scores.variance, torch.tensor([2.0, 18.0], dtype=torch.float64))
    with pytest.raises(ScoringError, match="at least 2 codes"):
        score_channels(codebook[:1])


def test_variance_is_stable_with_a_large_offset():
    # Naive sum-of-squares in float64 loses every digit here; the chunked two-pass + Chan merge
    # keeps the variance exact to ~1e-6 relative.
    base = random_codebook(2, 1000, 4)
    shifted = base + 1e8
    scores = score_channels(shifted, chunk_rows=64)
    torch.testing.assert_close(scores.variance, base.var(0), rtol=1e-6, atol=0)


def test_many_merge_groups_and_a_ragged_last_chunk():
    codebook = random_codebook(7, 1001, 5, offset=3.0)
    _, _, expected = brute_force(codebook)
    for chunk_rows in (1, 3, 64, 1000, 5000):
        torch.testing.assert_close(score_channels(codebook, chunk_rows=chunk_rows).score, expected, rtol=1e-10, atol=1e-12)


def test_threads_do_not_change_a_single_bit():
    codebook = random_codebook(8, 3000, 6, offset=1.0).to(torch.float32)
    one = score_channels(codebook, chunk_rows=7, workers=1)
    for workers in (2, 3, 8):
        many = score_channels(codebook, chunk_rows=7, workers=workers)
        assert torch.equal(many.score, one.score) and torch.equal(many.variance, one.variance)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_float_dtype_is_scored_in_float64(dtype):
    codebook = random_codebook(3, 30, 7).to(dtype)
    scores = score_channels(codebook, chunk_rows=8)
    _, _, expected = brute_force(codebook.to(torch.float64))
    assert scores.score.dtype == torch.float64
    torch.testing.assert_close(scores.score, expected, rtol=1e-10, atol=1e-10)


def test_numpy_memmap_and_h5_inputs_match_torch(tmp_path):
    codebook = random_codebook(4, 129, 9).to(torch.float32)
    expected = score_channels(codebook).score
    array = codebook.numpy()
    memmap = np.lib.format.open_memmap(tmp_path / "cb.npy", mode="w+", dtype=np.float32, shape=array.shape)
    memmap[:] = array
    memmap.flush()
    readonly = np.load(tmp_path / "cb.npy", mmap_mode="r")
    with h5py.File(tmp_path / "cb.h5", "w") as handle:
        handle["codebook"] = array
    with h5py.File(tmp_path / "cb.h5", "r") as handle:
        from_h5 = score_channels(handle["codebook"], chunk_rows=10).score
    for got in (score_channels(array).score, score_channels(readonly, chunk_rows=7).score, from_h5):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_rejects_non_float_and_wrong_rank():
    with pytest.raises(ScoringError, match="float"):
        score_channels(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ScoringError, match="float"):
        score_channels(np.ones((4, 3), dtype=np.int32))
    with pytest.raises(ScoringError, match=r"2 dims, got \[2, 4, 3\]"):
        score_channels(torch.ones(2, 4, 3))
    with pytest.raises(ScoringError, match="chunk_rows"):
        score_channels(torch.ones(4, 3), chunk_rows=0)


def test_non_finite_values_are_refused_with_the_channel_named():
    codebook = random_codebook(5, 10, 6)
    codebook[3, 2] = float("nan")
    codebook[7, 4] = float("inf")
    with pytest.raises(ScoringError, match=r"level 1: non-finite .* 2 channel\(s\) \[2, 4\]"):
        score_channels(codebook, where="level 1")
    scores = score_channels(codebook, allow_nonfinite=True)
    assert torch.isnan(scores.score[[2, 4]]).all()
    assert torch.isfinite(scores.score[[0, 1, 3, 5]]).all()


def test_does_not_touch_autograd_or_the_input():
    codebook = random_codebook(6, 12, 3).requires_grad_(True)
    before = codebook.detach().clone()
    scores = score_channels(codebook)
    assert not scores.score.requires_grad
    assert torch.equal(codebook.detach(), before)


codebooks = st.tuples(st.integers(2, 40), st.integers(1, 12), st.integers(0, 2**31 - 1))


@settings(max_examples=40, deadline=None)
@given(codebooks, st.data())
def test_code_permutation_leaves_scores_unchanged(shape, data):
    n, d, seed = shape
    codebook = random_codebook(seed, n, d)
    permutation = torch.tensor(data.draw(st.permutations(list(range(n)))))
    a, b = score_channels(codebook), score_channels(codebook[permutation])
    torch.testing.assert_close(a.similarity, b.similarity, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a.variance, b.variance, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(codebooks, st.data())
def test_channel_permutation_permutes_scores(shape, data):
    n, d, seed = shape
    codebook = random_codebook(seed, n, d)
    permutation = torch.tensor(data.draw(st.permutations(list(range(d)))))
    a, b = score_channels(codebook), score_channels(codebook[:, permutation])
    torch.testing.assert_close(b.score, a.score[permutation], rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(codebooks, st.floats(0.01, 100))
def test_positive_scaling_scales_similarity_and_variance_by_c_squared(shape, c):
    n, d, seed = shape
    codebook = random_codebook(seed, n, d)
    a, b = score_channels(codebook), score_channels(codebook * c)
    torch.testing.assert_close(b.similarity, a.similarity * c * c, rtol=1e-9, atol=1e-9 * c * c)
    torch.testing.assert_close(b.variance, a.variance * c * c, rtol=1e-9, atol=1e-9 * c * c)


@settings(max_examples=40, deadline=None)
@given(codebooks, st.integers(1, 50))
def test_chunked_streaming_equals_one_shot(shape, chunk_rows):
    n, d, seed = shape
    codebook = random_codebook(seed, n, d, offset=2.0).to(torch.float32)
    one_shot = score_channels(codebook, chunk_rows=n)
    chunked = score_channels(codebook, chunk_rows=chunk_rows)
    torch.testing.assert_close(chunked.score, one_shot.score, rtol=1e-12, atol=1e-12)
    _, _, expected = brute_force(codebook)
    torch.testing.assert_close(chunked.score, expected, rtol=1e-10, atol=1e-10)
