"""TOC on other VQ models' codebooks: every documented layout, --codebook-key, and refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from cli.main import cli
from tests.foreign_layouts import (
    BUILDERS,
    Built,
    encodec_original,
    transformers_mimi,
    vector_quantize_pytorch_rvq,
)
from toc.codebook.checkpoint import load_checkpoint, load_codebooks
from toc.codebook.foreign import LAYOUT_NAMES, SafetensorsSource
from toc.codebook.selection import read_selection
from toc.errors import CheckpointError
from toc.testing.checkpoints import save_reference_checkpoint


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def numpy_toc_indices(codebook, channels: int, max_num: int = 1, min_num: int = 1, sim_weight=0.7, var_weight=0.3) -> list[int]:
    """The TOC rule written independently in numpy: the closed-form pairwise mean, the unbiased
    variance, then the top block descending and the bottom block ascending (ties: lower index)."""
    e = np.asarray(codebook, dtype=np.float64)
    n = e.shape[0]
    s, q = e.sum(0), (e * e).sum(0)
    similarity = (s * s - q) / (n * (n - 1))
    variance = e.var(axis=0, ddof=1)
    score = -sim_weight * similarity + var_weight * variance
    groups = channels // (max_num + min_num)
    top = list(np.argsort(-score, kind="stable")[: groups * max_num])
    bottom = [c for c in np.argsort(score, kind="stable") if c not in top][: groups * min_num]
    return [int(c) for c in top + bottom]


def _save(built: Built, path) -> None:
    if path.suffix == ".safetensors":
        state = built.container.get("state_dict", built.container)
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(built.container, path)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_documented_layout_is_found_in_code_order(tmp_path, name):
    built = BUILDERS[name]()
    path = tmp_path / "model.pt"
    _save(built, path)
    loaded = load_codebooks(path)
    assert loaded.family == built.layout
    assert [lv.name for lv in loaded.foreign] == built.names
    assert len(loaded.codebooks) == len(built.codebooks)
    for got, expected in zip(loaded.codebooks, built.codebooks, strict=True):
        assert torch.equal(got, expected)
    for level, expected in zip(loaded.foreign, built.usage, strict=True):
        assert (level.usage is None) == (expected is None)
        if expected is not None:
            assert torch.equal(level.usage, expected)
    assert loaded.sizes["levels"] == len(built.names)


@pytest.mark.parametrize("name", ["vq-pytorch-rvq", "encodec", "transformers-mimi", "descript-audio-codec", "vq-vae-2"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_select_indices_per_level_equal_an_independent_computation(tmp_path, name, suffix):
    built = BUILDERS[name](seed=3)
    path = tmp_path / f"model{suffix}"
    _save(built, path)
    channels = 6
    result = run("select", path, "--channels", channels, "--max-num", 2, "--min-num", 1)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["checkpoint"]["family"] == built.layout
    assert [lv["name"] for lv in document["levels"]] == built.names
    for level, codebook in zip(document["levels"], built.codebooks, strict=True):
        assert level["indices"] == numpy_toc_indices(codebook.numpy(), channels, 2, 1)
    out = tmp_path / "sel.json"
    assert run("select", path, "--channels", channels, "-o", out).exit_code == 0
    assert len(read_selection(out).levels) == len(built.names)


def test_score_and_level_selection_by_number_or_name(tmp_path):
    built = transformers_mimi(seed=1)
    path = tmp_path / "mimi.safetensors"
    _save(built, path)
    by_name = json.loads(run("score", path, "--level", built.names[2]).stdout)
    by_number = json.loads(run("score", path, "--level", 2).stdout)
    assert by_name["levels"] == by_number["levels"]
    (level,) = by_name["levels"]
    e = built.codebooks[2].double().numpy()
    n = e.shape[0]
    expected_sim = (e.sum(0) ** 2 - (e * e).sum(0)) / (n * (n - 1))
    np.testing.assert_allclose(level["similarity"], expected_sim, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(level["variance"], e.var(0, ddof=1), rtol=1e-9)
    assert level["name"] == built.names[2] and level["layout"] == "transformers-mimi"
    bad = run("score", path, "--level", "nope")
    assert bad.exit_code == 2 and "level name" in bad.output


def test_inspect_lists_layout_names_usage_and_notes(tmp_path):
    built = vector_quantize_pytorch_rvq()
    path = tmp_path / "rvq.pt"
    _save(built, path)
    report = json.loads(run("inspect", path, "--format", "json").stdout)
    assert report["checkpoint"]["family"] == "vector-quantize-pytorch"
    assert [lv["name"] for lv in report["levels"]] == built.names
    counts = built.usage[1].double()
    p = counts / counts.sum()
    usage = report["levels"][1]["usage"]
    assert usage["usage_perplexity"] == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-12)
    assert usage["active_codes"] == int((counts > 1e-3).sum())
    assert report["levels"][0]["derivation"] == "layers.0._codebook.embed"
    assert report["levels"][0]["initialised"] is True
    table = run("inspect", path)
    assert table.exit_code == 0 and "layers.2._codebook.embed" in table.stdout


def test_mimi_codebook_is_the_ema_sum_over_the_clamped_usage(tmp_path):
    built = BUILDERS["moshi-mimi"]()
    path = tmp_path / "mimi.pt"
    _save(built, path)
    loaded = load_codebooks(path)
    # Code 0 has usage 0: the library divides by 1e-5, not by 0.
    assert torch.isfinite(loaded.codebooks[0]).all()
    assert loaded.foreign[0].derivation.endswith("embedding_sum / _codebook.cluster_usage.clamp(min=1e-05)[:, None]")
    assert [lv.name.split(".vq.")[0] for lv in loaded.foreign] == ["quantizer.rvq_first"] + ["quantizer.rvq_rest"] * 3


def test_prefixes_and_wrappers_change_nothing(tmp_path):
    built = encodec_original(levels=3)
    variants = {
        "ddp.pt": {f"module.{k}": v for k, v in built.container.items()},
        "compiled.pt": {"model": {f"_orig_mod.{k}": v for k, v in built.container.items()}},
        "nested.pt": {"generator": built.container, "epoch": 4},
    }
    for file_name, payload in variants.items():
        torch.save(payload, tmp_path / file_name)
        loaded = load_codebooks(tmp_path / file_name)
        assert loaded.family == "encodec", file_name
        assert all(torch.equal(a, b) for a, b in zip(loaded.codebooks, built.codebooks, strict=True)), file_name
    nested = load_codebooks(tmp_path / "nested.pt")
    assert nested.foreign[0].name == "generator.quantizer.vq.layers.0._codebook.embed"


def test_never_initialised_codebooks_are_flagged(tmp_path):
    built = encodec_original(levels=2)
    for i in range(2):
        built.container[f"quantizer.vq.layers.{i}._codebook.inited"] = torch.zeros(1)
        built.container[f"quantizer.vq.layers.{i}._codebook.embed"] = torch.zeros(32, 16)
    path = tmp_path / "fresh.pt"
    _save(built, path)
    result = run("select", path, "--channels", 4)
    assert result.exit_code == 0
    assert result.stderr.count("never initialised") == 2 and "all codes are identical" in result.stderr
    report = json.loads(run("inspect", path, "--format", "json").stdout)
    assert report["levels"][0]["initialised"] is False


def test_shared_codebook_levels_are_noted(tmp_path):
    built = vector_quantize_pytorch_rvq(levels=2)
    built.container["layers.1._codebook.embed"] = built.container["layers.0._codebook.embed"].clone()
    path = tmp_path / "shared.pt"
    _save(built, path)
    loaded = load_codebooks(path)
    assert loaded.foreign[1].notes == ["identical to layers.0._codebook.embed (a shared codebook)"]


def test_codebook_key_glob_regex_and_3d(tmp_path):
    g = torch.Generator().manual_seed(5)
    state = {
        "net.vq.codes": torch.randn(20, 6, generator=g),
        "net.vq.stack": torch.randn(3, 20, 6, generator=g),
        "net.head.weight": torch.randn(4, 6, generator=g),
        "net.head.bias": torch.randn(4, generator=g),
    }
    path = tmp_path / "custom.pt"
    torch.save(state, path)
    unknown = run("select", path, "--channels", 4)
    assert unknown.exit_code == 1 and unknown.stderr.count("\n") == 1
    assert "--codebook-key" in unknown.stderr and "net.vq.codes [20, 6]" in unknown.stderr
    glob = json.loads(run("select", path, "--channels", 4, "--codebook-key", "*.codes").stdout)
    assert glob["checkpoint"]["family"] == "codebook-key"
    assert [lv["name"] for lv in glob["levels"]] == ["net.vq.codes"]
    assert glob["levels"][0]["indices"] == numpy_toc_indices(state["net.vq.codes"].numpy(), 4)
    stack = json.loads(run("select", path, "--channels", 4, "--codebook-key", "re:net\\.vq\\.st.*").stdout)
    assert [lv["name"] for lv in stack["levels"]] == ["net.vq.stack[0]", "net.vq.stack[1]", "net.vq.stack[2]"]
    assert stack["levels"][2]["indices"] == numpy_toc_indices(state["net.vq.stack"][2].numpy(), 4)
    both = json.loads(run("inspect", path, "--format", "json", "--codebook-key", "net.vq.codes", "--codebook-key", "net.head.weight").stdout)
    assert [lv["name"] for lv in both["levels"]] == ["net.head.weight", "net.vq.codes"]
    none = run("select", path, "--channels", 4, "--codebook-key", "nothing*")
    assert none.exit_code == 1 and "matched no tensor" in none.stderr
    vector = run("select", path, "--channels", 4, "--codebook-key", "*.bias")
    assert vector.exit_code == 1 and "key 'net.head.bias'" in vector.stderr and "got [4]" in vector.stderr
    regex = run("select", path, "--channels", 4, "--codebook-key", "re:(")
    assert regex.exit_code == 1 and "invalid regular expression" in regex.stderr


def test_codebook_key_on_a_known_layout_keeps_its_derivation(tmp_path):
    built = transformers_mimi(seed=2)
    path = tmp_path / "mimi.pt"
    _save(built, path)
    loaded = load_codebooks(path, codebook_key=["re:.*acoustic.*layers\\.[02]\\.codebook\\.embed_sum"])
    assert [lv.name for lv in loaded.foreign] == [built.names[1], built.names[3]]
    assert torch.equal(loaded.codebooks[1], built.codebooks[3])
    every = load_codebooks(path, codebook_key=["*.embed_sum"])
    assert [lv.name for lv in every.foreign] == built.names  # semantic first, as detected


def test_codebook_key_overrides_a_cmg_checkpoint(tmp_path):
    path = save_reference_checkpoint(tmp_path / "cmg.pt")
    loaded = load_codebooks(path, codebook_key=["Encoder_parameters.Cross_quantizer.embedding"])
    assert loaded.family == "codebook-key"
    assert torch.equal(loaded.codebooks[0], load_codebooks(path).codebooks[0])


def test_bad_foreign_tensors_are_named(tmp_path):
    built = encodec_original(levels=2)
    built.container["quantizer.vq.layers.1._codebook.embed"] = torch.zeros(32, 16, dtype=torch.int64)
    torch.save(built.container, tmp_path / "int.pt")
    with pytest.raises(CheckpointError, match=r"layers\.1\._codebook\.embed.*expected a float dtype, got int64"):
        load_codebooks(tmp_path / "int.pt")
    built = encodec_original(levels=2)
    built.container["quantizer.vq.layers.0._codebook.cluster_size"] = torch.ones(31)
    torch.save(built.container, tmp_path / "count.pt")
    with pytest.raises(CheckpointError, match=r"cluster_size.*expected \[32\], got \[31\]"):
        load_codebooks(tmp_path / "count.pt")


def test_safetensors_reads_only_the_codebook_tensors(tmp_path, monkeypatch):
    built = BUILDERS["transformers-dac"]()
    path = tmp_path / "dac.safetensors"
    _save(built, path)
    read: list[str] = []
    original = SafetensorsSource.tensor

    def recording(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(SafetensorsSource, "tensor", recording)
    loaded = load_codebooks(path)
    assert loaded.family == "transformers-dac"
    assert sorted(read) == sorted(built.names)


def test_foreign_checkpoints_cannot_be_encoded_and_say_so(tmp_path):
    built = vector_quantize_pytorch_rvq()
    path = tmp_path / "rvq.pt"
    _save(built, path)
    with pytest.raises(CheckpointError, match="vector-quantize-pytorch checkpoint \\(3 codebook level\\(s\\)\\), not a CMG"):
        load_checkpoint(path)
    features = tmp_path / "x.npy"
    np.save(features, np.zeros((2, 10, 128), dtype=np.float32))
    result = run("encode", path, "--modality", "audio", "--input", features, "-o", tmp_path / "out.h5")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "encoding and evaluation need a CMG encoder" in result.stderr


def test_lightning_checkpoint_with_pickled_hyperparameters_needs_trust(tmp_path):
    built = BUILDERS["taming-vqgan"]()
    built.container["hyper_parameters"] = {"args": argparse.Namespace(lr=1e-4)}
    path = tmp_path / "last.ckpt"
    torch.save(built.container, path)
    refused = run("inspect", path)
    assert refused.exit_code == 1 and "--trust-checkpoint" in refused.stderr
    trusted = run("inspect", path, "--trust-checkpoint", "--format", "json")
    assert trusted.exit_code == 0
    assert json.loads(trusted.stdout)["checkpoint"]["family"] == "taming-vqgan"


def test_the_layout_table_in_the_docs_lists_every_layout():
    text = (Path(__file__).resolve().parents[1] / "docs" / "toc.md").read_text()
    for name in LAYOUT_NAMES:
        assert f"`{name}`" in text, name


def test_affine_parameters_are_noted(tmp_path):
    built = vector_quantize_pytorch_rvq(levels=1)
    built.container["layers.0._codebook.codebook_mean"] = torch.zeros(1, 1, 16)
    built.container["layers.0._codebook.codebook_variance"] = torch.ones(1, 1, 16)
    path = tmp_path / "affine.pt"
    _save(built, path)
    assert "affine_param=True" in load_codebooks(path).foreign[0].notes[0]
