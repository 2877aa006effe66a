"""`toc inspect / score / select / plot` on reference checkpoints and bare codebook files."""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from tests.conftest import reference_file
from toc.codebook.selection import read_selection


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def expected_indices(name: str, key: str) -> list[int]:
    return json.loads(reference_file("toc_reference_indices.json").read_text())[name][key]


def test_select_dcid_matches_reference_and_reruns_are_byte_identical():
    path = reference_file("dcid_small.pt")
    first = run("select", path, "--channels", 200, "--max-num", 3, "--min-num", 1)
    assert first.exit_code == 0, first.output
    second = run("select", path, "--channels", 200, "--max-num", 3, "--min-num", 1)
    assert first.stdout == second.stdout
    document = json.loads(first.stdout)
    assert document["checkpoint"]["family"] == "dcid-avt"
    assert len(document["checkpoint"]["sha256"]) == 64
    assert document["parameters"]["channels"] == 200
    (level,) = document["levels"]
    assert level["codebook_shape"] == [64, 256]
    assert level["indices"] == expected_indices("dcid_small", "choose_channel=200,toc_max_num=3,toc_min_num=1")
    assert len(level["scores"]) == 200 and level["scores"][0] >= level["scores"][1]


def test_select_hdcid_all_levels_and_one_level(tmp_path):
    path = reference_file("hdcid_small.pt")
    key = "choose_channel=47,toc_max_num=3,toc_min_num=1"
    result = run("select", path, "--channels", 47, "--max-num", 3, "--min-num", 1)
    assert result.exit_code == 0
    assert "44 of 47 channels" in result.stderr and "--exact-budget" in result.stderr
    levels = json.loads(result.stdout)["levels"]
    assert [lv["level"] for lv in levels] == [0, 1]
    assert levels[0]["indices"] == expected_indices("hdcid_small_level0", key)
    assert levels[1]["indices"] == expected_indices("hdcid_small_level1", key)
    out = tmp_path / "sel.json"
    one = run("select", path, "--channels", 47, "--max-num", 3, "--min-num", 1, "--level", 1, "-o", out)
    assert one.exit_code == 0 and one.stdout == ""
    document = read_selection(out)
    assert [lv.level for lv in document.levels] == [1]
    assert document.levels[0].indices == expected_indices("hdcid_small_level1", key)
    again = run("select", path, "--channels", 47, "--level", 1, "-o", out)
    assert again.exit_code == 1 and "--force" in again.stderr
    exact = run("select", path, "--channels", 47, "--max-num", 3, "--min-num", 1, "--exact-budget", "-o", out, "--force")
    assert exact.exit_code == 0 and exact.stderr == ""
    assert all(len(lv.indices) == 47 for lv in read_selection(out).levels)


@pytest.mark.parametrize("suffix", [".pt", ".npy", ".safetensors"])
def test_select_bare_codebook_files(tmp_path, suffix):
    codebook = torch.load(reference_file("codebook_400x256.pt"), map_location="cpu", weights_only=True)["codebook"]
    path = tmp_path / f"cb{suffix}"
    if suffix == ".pt":
        torch.save({"codebook": codebook}, path)
    elif suffix == ".npy":
        np.save(path, codebook.numpy())
    else:
        from safetensors.torch import save_file

        save_file({"codebook": codebook}, str(path))
    result = run("select", path, "--channels", 224)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["checkpoint"]["family"] == "codebook"
    assert document["levels"][0]["indices"] == expected_indices("codebook_400x256", "choose_channel=224,toc_max_num=1,toc_min_num=1")


def test_select_errors_are_one_line(tmp_path):
    path = reference_file("dcid_small.pt")
    too_many = run("select", path, "--channels", 300)
    assert too_many.exit_code == 1 and "expected <= 256, got 300" in too_many.stderr
    assert too_many.stderr.count("\n") == 1
    assert run("select", path, "--channels", 0).exit_code == 2
    assert run("select", path, "--channels", 8, "--max-num", 0, "--min-num", 0).exit_code == 2
    assert run("select", path, "--channels", 8, "--level", 3).exit_code == 2
    bad = tmp_path / "nan.pt"
    codebook = torch.randn(10, 6)
    codebook[2, 4] = float("nan")
    torch.save(codebook, bad)
    refused = run("select", bad, "--channels", 4)
    assert refused.exit_code == 1 and "channel(s) [4]" in refused.stderr
    skipped = run("select", bad, "--channels", 4, "--allow-nonfinite")
    assert skipped.exit_code == 0
    assert 4 not in json.loads(skipped.stdout)["levels"][0]["indices"]


def test_score_formats_agree():
    path = reference_file("hdcid_small.pt")
    as_json = json.loads(run("score", path).stdout)
    assert [lv["level"] for lv in as_json["levels"]] == [0, 1]
    level1 = as_json["levels"][1]
    rows = list(csv.DictReader(io.StringIO(run("score", path, "--level", 1, "--format", "csv").stdout)))
    assert len(rows) == 64
    assert [float(r["score"]) for r in rows] == level1["score"]
    best = max(range(64), key=lambda c: level1["score"][c])
    assert next(r for r in rows if r["rank"] == "1")["channel"] == str(best)
    table = run("score", path, "--format", "table", "--sim-weight", 1.0, "--var-weight", 0.0)
    assert table.exit_code == 0 and len(table.stdout.splitlines()) == 1 + 128


def test_inspect_reports_levels_and_usage():
    dcid = json.loads(run("inspect", reference_file("dcid_small.pt"), "--format", "json").stdout)
    assert dcid["checkpoint"]["family"] == "dcid-avt"
    (level,) = dcid["levels"]
    assert level["codebook_shape"] == [64, 256] and level["dtype"] == "float32"
    counts = torch.load(reference_file("dcid_small.pt"), weights_only=True)["Encoder_parameters"]["Cross_quantizer.ema_count"].double()
    p = counts / counts.sum()
    assert level["usage"]["active_codes"] == int((counts > 1e-3).sum())
    assert level["usage"]["usage_perplexity"] == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-12)
    hdcid = json.loads(run("inspect", reference_file("hdcid_small.pt"), "--format", "json").stdout)
    assert len(hdcid["levels"]) == 2 and hdcid["sizes"]["levels"] == 2
    # A never-updated ema_count (all zeros): every code dead, perplexity undefined.
    assert hdcid["levels"][0]["usage"]["active_codes"] == 0
    assert hdcid["levels"][0]["usage"]["usage_perplexity"] is None
    table = run("inspect", reference_file("codebook_400x256.pt"))
    assert table.exit_code == 0 and "400x256" in table.stdout and "codebook" in table.stdout


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    result = run("plot", reference_file("hdcid_small.pt"), "--channels", 32, "--max-num", 1, "--min-num", 0, "-o", out)
    assert result.exit_code == 0, result.output
    first = out.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("plot", reference_file("hdcid_small.pt"), "--channels", 32, "--max-num", 1, "--min-num", 0, "-o", out, "--force").exit_code == 0
    assert out.read_bytes() == first


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "fig.png"
    result = run("plot", reference_file("hdcid_small.pt"), "--channels", 32, "-o", out)
    assert result.exit_code == 1
    assert "cmg-toc[plot]" in result.stderr and not out.exists()
