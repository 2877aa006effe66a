"""Other VQ libraries' own models at random initialisation, saved and read back by toc.

Optional: needs the `vq` extra (vector-quantize-pytorch) and the `codecs` extra (transformers);
each test skips with the reason when its library is absent. Nothing is downloaded: every model is
built from a tiny config. Two checks per model, both against computations independent of toc:

* the codebook toc derives from the saved file reproduces the library's own code indices
  (nearest code written in numpy, residual levels included), and
* `toc select` returns, per level, the channel indices of the TOC rule written in numpy on the
  codebook the library itself reports.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from cli.main import cli
from tests.test_foreign_codebooks import numpy_toc_indices
from toc.codebook.checkpoint import load_codebooks


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def nearest(x: np.ndarray, codebook: np.ndarray, cosine: bool = False) -> np.ndarray:
    """Index of the nearest code for each row of x, in float64."""
    x, e = np.asarray(x, dtype=np.float64), np.asarray(codebook, dtype=np.float64)
    if cosine:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    distance = (x * x).sum(1, keepdims=True) - 2 * x @ e.T + (e * e).sum(1)[None, :]
    return distance.argmin(1)


def residual_codes(x: np.ndarray, codebooks: list[np.ndarray]) -> np.ndarray:
    """Residual VQ in numpy: [N, D] vectors → [N, L] codes, level by level."""
    residual = np.asarray(x, dtype=np.float64).copy()
    codes = []
    for codebook in codebooks:
        index = nearest(residual, codebook)
        residual -= np.asarray(codebook, dtype=np.float64)[index]
        codes.append(index)
    return np.stack(codes, axis=1)


def save_both(state: dict, tmp_path, stem: str):
    pt, st = tmp_path / f"{stem}.pt", tmp_path / f"{stem}.safetensors"
    torch.save(state, pt)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return pt, st


def check_select(path, codebooks: list[np.ndarray], channels: int = 6) -> dict:
    result = run("select", path, "--channels", channels, "--max-num", 2, "--min-num", 1)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["levels"]) == len(codebooks)
    for level, codebook in zip(document["levels"], codebooks, strict=True):
        assert level["indices"] == numpy_toc_indices(codebook, channels, 2, 1)
    return document


# ----------------------------------------------------------------------- vector-quantize-pytorch


@pytest.fixture(scope="module")
def vqp():
    return pytest.importorskip("vector_quantize_pytorch", reason="vector-quantize-pytorch is not installed (pip install 'cmg-toc[vq]')")


def _train_a_little(module, dim: int, steps: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    module.train()
    x = torch.randn(4, 64, dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            module(x)  # EMA updates move the codebooks and the cluster sizes away from their init
    return module.eval()


def test_residual_vq_per_level(vqp, tmp_path):
    torch.manual_seed(0)
    rvq = _train_a_little(vqp.ResidualVQ(dim=16, num_quantizers=3, codebook_size=32), 16)
    x = torch.randn(2, 50, 16)
    with torch.no_grad():
        _, indices, _ = rvq(x)  # [B, N, Q]
    library_books = [layer.codebook.detach().numpy() for layer in rvq.layers]
    for path in save_both(rvq.state_dict(), tmp_path, "rvq"):
        loaded = load_codebooks(path)
        assert loaded.family == "vector-quantize-pytorch"
        assert [lv.name for lv in loaded.foreign] == [f"layers.{q}._codebook.embed" for q in range(3)]
        ours = [cb.numpy() for cb in loaded.codebooks]
        for mine, theirs in zip(ours, library_books, strict=True):
            assert np.array_equal(mine, theirs)
        assert np.array_equal(residual_codes(x.reshape(-1, 16).numpy(), ours), indices.reshape(-1, 3).numpy())
        check_select(path, library_books)
    # toc health on the library's own indices, levels on the last axis ([B, N, Q]).
    np.save(tmp_path / "indices.npy", indices.numpy())
    report = json.loads(run("health", tmp_path / "indices.npy", "--codebook-size", 32).stdout)
    for q, level in enumerate(report["levels"]):
        assert level["used_codes"] == len(np.unique(indices[..., q].numpy()))
        assert level["tokens"] == 100


def test_vector_quantize_heads_projection_learnable_and_cosine(vqp, tmp_path):
    torch.manual_seed(1)
    cases = {
        "heads": (vqp.VectorQuantize(dim=16, codebook_size=32, heads=2, separate_codebook_per_head=True), 2),
        "projected": (vqp.VectorQuantize(dim=16, codebook_size=32, codebook_dim=8), 1),
        "learnable": (vqp.VectorQuantize(dim=16, codebook_size=32, learnable_codebook=True, ema_update=False), 1),
        "cosine": (vqp.VectorQuantize(dim=16, codebook_size=32, use_cosine_sim=True), 1),
    }
    for name, (vq, levels) in cases.items():
        vq = _train_a_little(vq, 16)
        codebook = vq.codebook.detach().numpy()  # the library's getter: [K, D] or [H, K, D]
        books = list(codebook) if codebook.ndim == 3 else [codebook]
        pt, _ = save_both(vq.state_dict(), tmp_path, name)
        loaded = load_codebooks(pt)
        assert len(loaded.codebooks) == levels, name
        for mine, theirs in zip(loaded.codebooks, books, strict=True):
            assert np.array_equal(mine.numpy(), theirs), name
        check_select(pt, books, channels=6)
        if name == "cosine":
            assert loaded.foreign[0].lookup.startswith("cosine")
        if name == "projected":
            assert loaded.codebooks[0].shape == (32, 8)


def test_grouped_residual_vq(vqp, tmp_path):
    torch.manual_seed(2)
    grvq = _train_a_little(vqp.GroupedResidualVQ(dim=16, num_quantizers=2, groups=2, codebook_size=32), 16)
    books = [layer.codebook.detach().numpy() for rvq in grvq.rvqs for layer in rvq.layers]
    pt, st = save_both(grvq.state_dict(), tmp_path, "grvq")
    loaded = load_codebooks(st)
    assert [lv.name for lv in loaded.foreign] == [f"rvqs.{g}.layers.{q}._codebook.embed" for g in range(2) for q in range(2)]
    check_select(pt, books)


# ----------------------------------------------------------------------- Hugging Face transformers


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers", reason="transformers is not installed (pip install 'cmg-toc[codecs]')")


def _fill(tensor: torch.Tensor, generator: torch.Generator, positive: bool = False) -> None:
    values = torch.rand(tensor.shape, generator=generator) * 4 + 0.1 if positive else torch.randn(tensor.shape, generator=generator)
    tensor.copy_(values.to(tensor.dtype))


def _saved_pretrained(model, tmp_path, name):
    folder = tmp_path / name
    model.save_pretrained(folder)
    (path,) = folder.glob("*.safetensors")
    return path


def test_transformers_encodec(transformers, tmp_path):
    config = transformers.EncodecConfig(
        hidden_size=16, num_filters=4, codebook_size=32, codebook_dim=16, upsampling_ratios=[2, 2],
        target_bandwidths=[1.5, 3.0], sampling_rate=400, num_lstm_layers=1,
    )
    model = transformers.EncodecModel(config).eval()
    fresh = _saved_pretrained(model, tmp_path, "fresh")
    untrained = run("select", fresh, "--channels", 4)
    assert untrained.exit_code == 0 and "all codes are identical" in untrained.stderr  # zero codebooks at init
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.quantizer.layers:
            _fill(layer.codebook.embed, g)
            _fill(layer.codebook.cluster_size, g, positive=True)
    path = _saved_pretrained(model, tmp_path, "encodec")
    loaded = load_codebooks(path)
    assert loaded.family == "transformers-encodec"
    levels = len(model.quantizer.layers)
    assert [lv.name for lv in loaded.foreign] == [f"quantizer.layers.{i}.codebook.embed" for i in range(levels)]
    embeddings = torch.randn(2, 16, 30, generator=g)
    with torch.no_grad():
        codes = model.quantizer.encode(embeddings, bandwidth=3.0)  # [Q, B, T]
    q = codes.shape[0]
    vectors = embeddings.permute(0, 2, 1).reshape(-1, 16).numpy()
    ours = [cb.numpy() for cb in loaded.codebooks]
    assert np.array_equal(residual_codes(vectors, ours[:q]), codes.permute(1, 2, 0).reshape(-1, q).numpy())
    check_select(path, [layer.codebook.embed.numpy() for layer in model.quantizer.layers])
    np.save(tmp_path / "codes.npy", codes.numpy())
    report = json.loads(run("health", tmp_path / "codes.npy", "--codebook-size", 32, "--level-axis", 0).stdout)
    assert [lv["used_codes"] for lv in report["levels"]] == [len(np.unique(codes[i].numpy())) for i in range(q)]


def test_transformers_dac(transformers, tmp_path):
    config = transformers.DacConfig(
        encoder_hidden_size=4, downsampling_ratios=[2, 2], decoder_hidden_size=8, n_codebooks=3,
        codebook_size=32, codebook_dim=4, hidden_size=16,
    )
    model = transformers.DacModel(config).eval()
    path = _saved_pretrained(model, tmp_path, "dac")
    loaded = load_codebooks(path)
    assert loaded.family == "transformers-dac"
    assert all(lv.lookup.startswith("cosine") for lv in loaded.foreign)
    g = torch.Generator().manual_seed(1)
    for quantizer, codebook in zip(model.quantizer.quantizers, loaded.codebooks, strict=True):
        latents = torch.randn(2, 4, 25, generator=g)
        with torch.no_grad():
            _, indices = quantizer.decode_latents(latents)
        assert np.array_equal(nearest(latents.permute(0, 2, 1).reshape(-1, 4).numpy(), codebook.numpy(), cosine=True), indices.reshape(-1).numpy())
    check_select(path, [q.codebook.weight.detach().numpy() for q in model.quantizer.quantizers], channels=3)


def test_transformers_mimi(transformers, tmp_path):
    config = transformers.MimiConfig(
        hidden_size=16, num_filters=4, codebook_size=32, codebook_dim=8, num_quantizers=4,
        num_semantic_quantizers=1, upsampling_ratios=[2, 2], upsample_groups=16, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, intermediate_size=16, head_dim=8, sliding_window=4,
        frame_rate=12.5, sampling_rate=200, vector_quantization_hidden_dimension=8,
    )
    model = transformers.MimiModel(config).eval()
    g = torch.Generator().manual_seed(2)
    groups = [model.quantizer.semantic_residual_vector_quantizer, model.quantizer.acoustic_residual_vector_quantizer]
    with torch.no_grad():
        for group in groups:
            for layer in group.layers:
                _fill(layer.codebook.embed_sum, g)
                _fill(layer.codebook.cluster_usage, g, positive=True)
                layer.codebook._embed = None  # the library caches the derived codebook
    path = _saved_pretrained(model, tmp_path, "mimi")
    loaded = load_codebooks(path)
    assert loaded.family == "transformers-mimi"
    library_books = [layer.codebook.embed for group in groups for layer in group.layers]
    assert [lv.name.split(".layers.")[0] for lv in loaded.foreign] == [
        "quantizer.semantic_residual_vector_quantizer"] + ["quantizer.acoustic_residual_vector_quantizer"] * 3
    for mine, theirs in zip(loaded.codebooks, library_books, strict=True):
        assert torch.equal(mine, theirs)  # embed_sum / cluster_usage.clamp(min=1e-5), bit for bit
    embeddings = torch.randn(2, 16, 20, generator=g)
    with torch.no_grad():
        for group, ours in ((groups[0], loaded.codebooks[:1]), (groups[1], loaded.codebooks[1:])):
            codes = group.encode(embeddings)  # [Q, B, T]
            projected = group.input_proj(embeddings)
            vectors = projected.permute(0, 2, 1).reshape(-1, 8).numpy()
            assert np.array_equal(residual_codes(vectors, [c.numpy() for c in ours]), codes.permute(1, 2, 0).reshape(-1, len(ours)).numpy())
    check_select(path, [b.numpy() for b in library_books])
