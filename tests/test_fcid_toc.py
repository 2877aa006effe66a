"""The FCID scripts' TOC settings without fixtures: score variants, overlapping blocks, presets."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from tests.fcid_fixtures import save_fcid_checkpoint, tiny_fcid_encoder
from toc.codebook.presets import FCID_TOC_PRESETS, fcid_preset
from toc.codebook.scoring import score_channels
from toc.codebook.selection import (
    SelectionFile,
    TocSettings,
    read_selection,
    select_channels,
    select_level,
)
from toc.codebook.settings import score_weights
from toc.errors import ConfigError, DataError, SettingsError


def _brute_force(codebook: torch.Tensor, channels: int, max_num: int, min_num: int, var_weight: float) -> list[int]:
    """The published routine written plainly: pairwise loop, two independent top-k blocks."""
    n, d = codebook.shape
    rows = codebook.tolist()
    sim = [sum(rows[i][c] * rows[j][c] for i in range(n) for j in range(n) if i != j) / (n * (n - 1)) for c in range(d)]
    var = codebook.var(dim=0).tolist()
    score = [-0.7 * s + var_weight * v for s, v in zip(sim, var, strict=True)]
    k = channels // (max_num + min_num)
    descending = sorted(range(d), key=lambda c: (-score[c], c))
    ascending = sorted(range(d), key=lambda c: (score[c], c))
    return descending[: k * max_num] + ascending[: k * min_num]


@pytest.mark.parametrize("variant", ["sim_var", "sim_only"])
@pytest.mark.parametrize("channels,max_num,min_num", [(6, 1, 0), (8, 1, 1), (9, 3, 1), (5, 0, 1), (24, 1, 1)])
def test_both_variants_follow_the_published_rule(variant, channels, max_num, min_num):
    generator = torch.Generator().manual_seed(7)
    codebook = torch.randn(9, 12, generator=generator, dtype=torch.float64) * torch.linspace(0.2, 2.0, 12, dtype=torch.float64)
    codebook += torch.randn(12, generator=generator, dtype=torch.float64)
    sim_weight, var_weight = score_weights(variant)
    settings = TocSettings(channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight, reference_topk=True)
    got = select_level(codebook, settings).indices.tolist()
    assert got == _brute_force(codebook, channels, max_num, min_num, var_weight)


def test_the_two_variants_rank_differently():
    # Channel 0: large variance, mean 0 (sim < 0); channel 1: small variance, mean 0.
    codebook = torch.tensor([[3.0, 0.1, 0.5], [-3.0, -0.1, 0.5], [0.0, 0.0, 0.5]], dtype=torch.float64)
    sim_var = score_channels(codebook, sim_weight=0.7, var_weight=0.3)
    sim_only = score_channels(codebook, sim_weight=0.7, var_weight=0.0)
    assert torch.equal(sim_only.score, -0.7 * sim_only.similarity)
    assert select_channels(sim_var, 3, 1, 0).tolist() == [0, 1, 2]
    assert select_channels(sim_only, 3, 1, 0).tolist()[0] == 0
    assert score_weights("sim_only") == (0.7, 0.0) and score_weights("sim_var") == (0.7, 0.3)
    with pytest.raises(SettingsError, match="unknown score variant"):
        score_weights("variance")


def test_overlapping_blocks_only_with_reference_topk():
    codebook = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(ConfigError, match="must not exceed the codebook width"):
        select_channels(codebook, 8, 1, 1)
    both = select_channels(codebook, 8, 1, 1, reference_topk=True).tolist()
    assert len(both) == 8 and sorted(both[:4]) == sorted(both[4:]) == [0, 1, 2, 3]
    assert both[4:] == list(reversed(both[:4]))  # bottom block ascending = top block reversed
    with pytest.raises(ConfigError, match="block exceeds the codebook width"):
        select_channels(codebook, 8, 1, 0, reference_topk=True)
    # Within the width and without overlap the two rules agree.
    assert select_channels(codebook, 4, 1, 1, reference_topk=True).tolist() == select_channels(codebook, 4, 1, 1).tolist()


def test_selection_files_with_repeats_need_the_reference_flag(tmp_path):
    codebook = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    selection = select_level(codebook, TocSettings(8, 1, 1, reference_topk=True))
    for flag in (True, False):
        parameters = dict(selection.settings.as_dict(), reference_topk=flag)
        document = SelectionFile.from_selections(
            [selection], checkpoint_path="x.pt", checkpoint_sha256="0" * 64, family="fcid-avt", parameters=parameters,
        )
        path = tmp_path / f"sel-{flag}.json"
        path.write_text(document.dumps())
        if flag:
            assert read_selection(path).levels[0].indices == selection.indices.tolist()
        else:
            with pytest.raises(DataError, match="duplicate indices"):
                read_selection(path)


def test_published_presets():
    assert set(FCID_TOC_PRESETS) == {"ave", "avvp", "ave-avvp", "ucf-vggsound"}
    ave = fcid_preset("ave").settings()
    assert (ave.channels, ave.max_num, ave.min_num, ave.sim_weight, ave.var_weight) == (256, 1, 0, 0.7, 0.3)
    for task, channels in (("avvp", 196), ("ave-avvp", 128), ("ucf-vggsound", 168)):
        settings = fcid_preset(task).settings()
        assert (settings.channels, settings.min_num, settings.var_weight) == (channels, 0, 0.0)
    assert fcid_preset("ave-avvp").direction == "v2a"
    with pytest.raises(ConfigError, match="no FCID TOC preset"):
        fcid_preset("vggsound")


def test_cli_score_option(tmp_path):
    path = save_fcid_checkpoint(tmp_path / "fcid.pt", tiny_fcid_encoder())
    runner = CliRunner()
    result = runner.invoke(cli, ["score", str(path), "--score", "sim_only"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["parameters"]["var_weight"] == 0.0
    level = document["levels"][0]
    assert level["score"] == pytest.approx([-0.7 * s for s in level["similarity"]], rel=1e-15, abs=0)
    result = runner.invoke(cli, ["select", str(path), "--channels", "8", "--score", "sim_only", "--var-weight", "0.3"])
    assert result.exit_code == 2 and "drop --var-weight" in result.output
    result = runner.invoke(cli, ["select", str(path), "--channels", "8", "--max-num", "1", "--min-num", "0", "--score", "sim_var"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parameters"]["score"] == "sim_var"


def _published_routine(codebook: torch.Tensor, channels: int, max_num: int, min_num: int, var_weight: float) -> list[int]:
    """The published routine's arithmetic written with torch: a float32 buffer, in-place adds."""
    n, d = codebook.shape
    sim = torch.zeros(d)
    for i in range(n):
        for j in range(n):
            if i != j:
                sim += codebook[i] * codebook[j]
    sim = sim / (n * (n - 1))
    score = -0.7 * sim + var_weight * torch.var(codebook, dim=0) if var_weight else -0.7 * sim
    k = channels // (max_num + min_num)
    return torch.cat([torch.topk(score, k * max_num).indices, torch.topk(score, k * min_num, largest=False).indices]).tolist()


@pytest.mark.parametrize("variant", ["sim_var", "sim_only"])
def test_reference_topk_is_the_published_arithmetic(variant):
    from toc.codebook.scoring import reference_similarity

    generator = torch.Generator().manual_seed(11)
    codebook = torch.randn(17, 10, generator=generator, dtype=torch.float64)
    codebook[:, 7] = codebook[:, 2]  # an exact tie, so the order among equal scores is topk's
    codebook[:, 5] = codebook[:, 4] * (1 + 1e-12)  # equal in float32, not in float64
    sim = torch.zeros(10)
    for i in range(17):
        for j in range(17):
            if i != j:
                sim += codebook[i] * codebook[j]
    assert torch.equal(reference_similarity(codebook), sim / (17 * 16))
    sim_weight, var_weight = score_weights(variant)
    for channels, max_num, min_num in ((6, 1, 0), (8, 1, 1), (20, 1, 1), (9, 3, 1)):
        settings = TocSettings(channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight, reference_topk=True)
        expected = _published_routine(codebook, channels, max_num, min_num, var_weight)
        assert select_level(codebook, settings).indices.tolist() == expected
        assert select_channels(codebook, channels, max_num, min_num, sim_weight=sim_weight, var_weight=var_weight,
                               reference_topk=True).tolist() == expected
