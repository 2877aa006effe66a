"""The whole demo pipeline at a tiny scale: synth → train DCID/H-DCID → TOC → evaluate → report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.test_report_html import assert_rendered
from toc.pipeline.demo import DemoSettings, run_demo


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tiny")
    settings = replace(
        DemoSettings.quick(), scale=0.1, epochs=1, seeds=(0, 1), head_epochs=2, heads=("prototype", "linear"),
        pretrain_runs=2,
    )
    return tmp_path, run_demo(tmp_path / "demo", settings)


def test_tiny_demo_writes_a_report_with_every_task_direction_and_variant(tiny_demo):
    tmp_path, result = tiny_demo
    out = tmp_path / "demo"
    summary = json.loads((out / "summary.json").read_text())
    text = (out / "report.md").read_text()
    groups = {(g["task"], g["direction"], g["head"]) for g in summary["groups"]}
    assert groups == {
        (t, d, h) for t in ("ave", "avvp", "ave-avvp", "ucf-vggsound") for d in ("v2a", "a2v")
        for h in ("prototype", "linear")
    }
    for task in ("ave", "avvp", "ave-avvp", "ucf-vggsound"):
        for direction in ("v2a", "a2v"):
            assert f"### {task} · {direction} · prototype · strict" in text
    rows = (out / "results.csv").read_text().splitlines()
    assert {row.split(",")[2] for row in rows[1:]} == {"dcid", "dcid+toc", "hdcid", "hdcid+toc"}
    # Two pretraining runs per family, paired by run: every group is tested over units and runs.
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    results = [r for r in records if r.get("kind") != "health"]
    assert {r["pretrain_run"] for r in results} == {0, 1}
    assert all(len(r["eval_parts"]) == r["n_eval"] for r in results)
    sections = {s.split(" — ")[0]: s for s in text.split("### ")[1:]}
    for group in summary["groups"]:
        assert group["recommendation"]["method"] == "paired test over units"
        section = sections[f"{group['task']} · {group['direction']} · {group['head']} · strict"]
        for variant in group["variants"]:
            low, high = variant["estimate"]["interval"]
            if high == low:
                # Only when every unit has the same outcome (tiny test sets here), and then said;
                # for accuracy the Wilson interval is shown instead.
                note = next(line for line in section.splitlines() if "has zero width" in line)
                assert variant["variant"] in note.split(":")[0]
                wilson = variant["estimate"]["wilson"]
                assert wilson is None or wilson[1] > wilson[0]
    # One codebook-health row per trained model and level, naming the checkpoint's own sha256.
    assert [len(result.checkpoints[f]) for f in ("dcid", "hdcid")] == [2, 2]
    for family, levels in (("dcid", (0,)), ("hdcid", (0, 1))):
        for checkpoint in result.checkpoints[family]:
            sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
            for level in levels:
                row = f"| {family} | {checkpoint.name} | `{sha[:12]}` | {level} |"
                assert row in text, row
    health = [r for r in records if r.get("kind") == "health"]
    assert len(health) == 2 * (1 + 2)


def test_the_demo_report_html_renders_every_table_and_chart_in_chromium(tiny_demo):
    tmp_path, result = tiny_demo
    assert "report.html" in [str(name) for name in result.report_files]
    assert_rendered(tmp_path / "demo")


def test_demo_refuses_a_non_empty_folder_without_force(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "--force" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
