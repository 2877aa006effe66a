"""TOC selection: reference parity, tie rule, budgets, H-DCID levels, the selection file."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_reference, reference_file
from toc.codebook.scoring import ChannelScores, score_channels
from toc.codebook.selection import (
    SelectionFile,
    ShortSelectionWarning,
    TocSettings,
    plan_budget,
    read_selection,
    select_channels,
    select_levels,
)
from toc.errors import ConfigError, DataError


def reference_codebooks() -> dict[str, torch.Tensor]:
    hdcid = load_reference("hdcid_small.pt")["Encoder_parameters"]["Cross_quantizer.embedding"]
    return {
        "codebook_400x256": load_reference("codebook_400x256.pt")["codebook"],
        "dcid_small": load_reference("dcid_small.pt")["Encoder_parameters"]["Cross_quantizer.embedding"],
        "hdcid_small_level0": hdcid[0],
        "hdcid_small_level1": hdcid[1],
    }


def reference_cases():
    expected = json.loads(reference_file("toc_reference_indices.json").read_text())
    for name, settings_map in expected.items():
        for key, indices in settings_map.items():
            channels, max_num, min_num = (int(v) for v in re.findall(r"=(\d+)", key))
            yield pytest.param(name, channels, max_num, min_num, indices, id=f"{name}:{key}")


def test_every_reference_codebook_and_setting_is_covered():
    cases = list(reference_cases())
    assert len(cases) == 26
    assert {c.values[0] for c in cases} == set(reference_codebooks())


@pytest.mark.parametrize("name,channels,max_num,min_num,expected", list(reference_cases()))
def test_selection_matches_reference_indices(name, channels, max_num, min_num, expected):
    codebook = reference_codebooks()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSelectionWarning)
        got = select_channels(codebook, channels, max_num, min_num)
    assert got.dtype == torch.int64
    assert got.tolist() == expected


def test_hdcid_levels_match_reference_and_concatenate_level0_first():
    expected = json.loads(reference_file("toc_reference_indices.json").read_text())
    codebook = load_reference("hdcid_small.pt")["Encoder_parameters"]["Cross_quantizer.embedding"]
    selections = select_levels(list(codebook.unbind(0)), TocSettings(channels=56, max_num=1, min_num=1))
    key = "choose_channel=56,toc_max_num=1,toc_min_num=1"
    assert [s.level for s in selections] == [0, 1]
    assert selections[0].indices.tolist() == expected["hdcid_small_level0"][key]
    assert selections[1].indices.tolist() == expected["hdcid_small_level1"][key]
    document = SelectionFile.from_selections(
        list(reversed(selections)), checkpoint_path="h.pt", checkpoint_sha256="", family="hdcid-avt", parameters={},
    )
    assert [level.level for level in document.levels] == [0, 1]  # the order features are concatenated in


def test_per_level_settings():
    codebooks = [torch.randn(10, 8, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    selections = select_levels(codebooks, {0: TocSettings(4, 1, 0), 1: TocSettings(6, 1, 1)})
    assert [s.indices.numel() for s in selections] == [4, 6]
    with pytest.raises(ConfigError, match="no TOC settings given for level 1"):
        select_levels(codebooks, {0: TocSettings(4)})
    with pytest.raises(ConfigError, match="level 2 does not exist"):
        select_levels(codebooks, TocSettings(4), levels=[2])


def test_ties_go_to_the_lower_channel_index():
    scores = torch.tensor([1.0, 5.0, 5.0, 1.0, 3.0, 5.0, 1.0], dtype=torch.float64)
    assert select_channels(scores, 3, 1, 0).tolist() == [1, 2, 5]
    assert select_channels(scores, 2, 0, 1).tolist() == [0, 3]
    # All tied: top block first, the bottom block never repeats a channel.
    flat = torch.zeros(6, dtype=torch.float64)
    assert select_channels(flat, 6, 1, 1).tolist() == [0, 1, 2, 3, 4, 5]


def test_short_budget_warns_and_exact_budget_fills_it():
    scores = torch.arange(10, dtype=torch.float64)
    with pytest.warns(ShortSelectionWarning, match="8 of 9"):
        short = select_channels(scores, 9, 3, 1)
    assert short.tolist() == [9, 8, 7, 6, 5, 4, 0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = select_channels(scores, 9, 3, 1, exact_budget=True)
    assert exact.tolist() == [9, 8, 7, 6, 5, 4, 3, 0, 1]
    assert select_channels(scores, 3, 0, 2, exact_budget=True).tolist() == [0, 1, 2]
    assert plan_budget(9, 3, 1, 10).short_by == 1
    assert plan_budget(9, 3, 1, 10, exact_budget=True).short_by == 0


@pytest.mark.parametrize(
    "channels,max_num,min_num,match",
    [(0, 1, 1, "at least 1"), (11, 1, 1, "expected <= 10, got 11"), (4, 0, 0, "both are 0"),
     (4, -1, 1, "max_num must not be negative"), (4, 1, -2, "min_num must not be negative"),
     (2.5, 1, 1, "integer")],
)
def test_bad_budgets_are_refused(channels, max_num, min_num, match):
    with pytest.raises(ConfigError, match=match):
        select_channels(torch.arange(10, dtype=torch.float64), channels, max_num, min_num)


def test_non_finite_scores_are_refused_or_skipped():
    scores = torch.tensor([1.0, float("nan"), 3.0, 2.0], dtype=torch.float64)
    with pytest.raises(ConfigError, match="non-finite"):
        select_channels(scores, 2, 1, 1)
    assert select_channels(scores, 3, 1, 0, allow_nonfinite=True).tolist() == [2, 3, 0]


def test_accepts_scores_codebooks_and_numpy():
    codebook = torch.randn(20, 9, generator=torch.Generator().manual_seed(3))
    scores = score_channels(codebook)
    a = select_channels(codebook, 6)
    assert isinstance(scores, ChannelScores)
    assert torch.equal(a, select_channels(scores, 6))
    assert torch.equal(a, select_channels(scores.score.numpy(), 6))
    assert torch.equal(a, select_channels(codebook.numpy(), 6))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40), st.integers(0, 4), st.integers(0, 4), st.booleans(), st.integers(0, 2**31 - 1), st.data()
)
def test_selections_are_distinct_valid_indices_of_the_promised_count(d, max_num, min_num, exact, seed, data):
    if max_num + min_num == 0:
        max_num = 1
    channels = data.draw(st.integers(1, d))
    # Few distinct values, so ties are common.
    scores = torch.randint(0, 4, (d,), generator=torch.Generator().manual_seed(seed)).to(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortSelectionWarning)
        got = select_channels(scores, channels, max_num, min_num, exact_budget=exact)
    groups = channels // (max_num + min_num)
    promised = channels if exact else groups * (max_num + min_num)
    assert got.numel() == promised
    assert len(set(got.tolist())) == promised
    assert all(0 <= i < d for i in got.tolist())
    top = (groups * max_num + (channels - groups * (max_num + min_num) if exact and max_num else 0))
    top_scores, bottom_scores = scores[got[:top]], scores[got[top:]]
    assert torch.all(top_scores[:-1] >= top_scores[1:])
    assert torch.all(bottom_scores[:-1] <= bottom_scores[1:])
    if top and got.numel() > top:
        # Nothing outside the top block beats its weakest member; nothing unselected is below the bottom block.
        assert torch.all(scores[got[top:]] <= top_scores.min())


def _document(selections):
    return SelectionFile.from_selections(
        selections, checkpoint_path="ckpt.pt", checkpoint_sha256="ab" * 32, family="hdcid-avt",
        parameters={"channels": 6, "max_num": 1, "min_num": 1},
    )


def test_selection_file_round_trip_is_byte_identical(tmp_path):
    codebooks = [torch.randn(12, 8, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    text = _document(select_levels(codebooks, TocSettings(6))).dumps()
    assert text == _document(select_levels(codebooks, TocSettings(6))).dumps()
    raw = json.loads(text)
    assert list(raw) == sorted(raw)
    assert raw["tool"] == "cmg-toc" and raw["checkpoint"]["family"] == "hdcid-avt"
    path = tmp_path / "sel.json"
    path.write_text(text)
    document = read_selection(path)
    assert [level.level for level in document.levels] == [0, 1]
    assert document.indices_for(1).tolist() == raw["levels"][1]["indices"]
    assert document.levels[0].scores == raw["levels"][0]["scores"]
    with pytest.raises(ConfigError, match="no selection for level 2"):
        document.indices_for(2)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.pop("levels"), "key 'levels': missing key"),
        (lambda d: d.update(tool="other"), "expected cmg-toc, got other"),
        (lambda d: d["levels"][0].update(indices=[0, 0, 1, 2, 3, 4]), "duplicate indices"),
        (lambda d: d["levels"][0].update(indices=[0, 1, 2, 3, 4, 99]), r"index out of range \(expected integers in \[0, 8\), got 99\)"),
        (lambda d: d["levels"][0].update(scores=[1.0]), "expected 6, got 1"),
        (lambda d: d["levels"][0].update(codebook_shape=[12]), "bad codebook shape"),
        (lambda d: d["levels"].reverse(), "increasing order"),
        (lambda d: d["checkpoint"].pop("sha256"), "key 'checkpoint.sha256': missing key"),
        (lambda d: d["levels"][0].update(level="0"), "expected int, got str"),
    ],
)
def test_bad_selection_files_get_one_line_errors(tmp_path, mutate, match):
    codebooks = [torch.randn(12, 8, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    raw = json.loads(_document(select_levels(codebooks, TocSettings(6))).dumps())
    mutate(raw)
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=match) as info:
        read_selection(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unreadable_selection_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_selection(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_selection(bad)


def test_selection_artifact_saves_loads_and_refuses_newer_versions(tmp_path):
    codebooks = [torch.randn(12, 8, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    made = _document(select_levels(codebooks, TocSettings(6, exact_budget=True)))
    saved = made.save(tmp_path / "sel.json")
    assert saved.path == tmp_path / "sel.json"
    loaded = SelectionFile.load(saved.path)
    assert loaded.levels == made.levels and loaded.parameters == made.parameters
    assert loaded.dumps() == saved.path.read_text()  # what is read back writes the same bytes
    raw = json.loads(saved.path.read_text())
    raw["version"] = "99.0.0"
    (tmp_path / "new.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match="written by a newer cmg-toc"):
        SelectionFile.load(tmp_path / "new.json")


def test_settings_are_validated_once_with_their_names():
    with pytest.raises(ConfigError, match=r"max_num \+ min_num must be at least 1"):
        TocSettings(4, 0, 0)
    with pytest.raises(ConfigError, match="sim_weight must be a finite number"):
        TocSettings(4, sim_weight=float("nan"))
