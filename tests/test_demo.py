"""The whole demo pipeline at a tiny scale: synth → train DCID/H-DCID → TOC → evaluate → report."""

from __future__ import annotations

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
        DemoSettings.quick(), scale=0.1, epochs=1, seeds=(0, 1), head_epochs=2, heads=("prototype", "linear")
    )
    return tmp_path, run_demo(tmp_path / "demo", settings)


def test_tiny_demo_writes_a_report_with_every_task_direction_and_variant(tiny_demo):
    tmp_path, result = tiny_demo
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    text = (tmp_path / "demo" / "report.md").read_text()
    for task in ("ave", "avvp", "ave-avvp", "ucf-vggsound"):
        for direction in ("v2a", "a2v"):
            assert f"### {task} · {direction} · prototype · strict" in text
    rows = (tmp_path / "demo" / "results.csv").read_text().splitlines()
    variants = {row.split(",")[2] for row in rows[1:]}
    assert variants == {"dcid", "dcid+toc", "hdcid", "hdcid+toc"}
    assert result.checkpoints["hdcid"].exists() and summary
    assert "Codebook health" in text or "health" in text.lower()


def test_the_demo_report_html_renders_every_table_and_chart_in_chromium(tiny_demo):
    tmp_path, result = tiny_demo
    assert "report.html" in [str(name) for name in result.report_files]
    assert_rendered(tmp_path / "demo")


def test_demo_refuses_a_non_empty_folder_without_force(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "--force" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
