"""report.html: report.md's content as one self-contained page, checked in a real headless
Chromium (skipped with a clear message where it is not installed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.browser import open_page
from toc.report.html import markdown_to_html

GOLDEN = Path(__file__).parent / "golden"
PNG = b"\x89PNG\r\n\x1a\n"


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The pipe tables of a markdown text, each cell as the text a reader sees (markup removed)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
            continue
        if current:
            rows = [current[0], *current[2:]]  # the separator row is not a row
            tables.append([[_plain(c) for c in re.split(r"(?<!\\)\|", row.strip()[1:-1])] for row in rows])
            current = []
    return tables


def _plain(cell: str) -> str:
    return cell.strip().replace("\\|", "|").replace("**", "").replace("`", "")


def test_markdown_subset():
    page = markdown_to_html(
        "# Title\n\nA *word* and **bold `code`** [docs](docs/x.md) [web](https://example.org).\n\n"
        "| a | b \\| c |\n|---|---|\n| **x** | 1 |\n\n- one\n- two\n\n![chart](c.png)\n\n![gone](g.png)\n",
        {"c.png": PNG},
    )
    assert "<h1>Title</h1>" in page
    assert "<em>word</em>" in page and "<strong>bold <code>code</code></strong>" in page
    assert "docs/x.md" not in page and '<a href="https://example.org">web</a>' in page  # no relative links
    assert "<th>b | c</th>" in page and "<td><strong>x</strong></td>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo=' in page
    assert "figure not drawn: gone (g.png)" in page and 'src="g.png"' not in page
    assert "<script" not in markdown_to_html("<script>alert(1)</script>", {})  # text is escaped


def test_report_html_has_every_table_of_report_md(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(GOLDEN / "results.jsonl"), "-o", str(tmp_path), "--no-charts"])
    assert result.exit_code == 0, result.output
    assert "report.html" in json.loads(result.stdout)["files"]
    page = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    assert page.count("<table>") == len(markdown_tables(markdown)) > 3
    assert "<img" not in page  # no charts were drawn, and none is pretended
    assert re.search(r"""(src|href)=["'](?!data:|https?:|#)""", page) is None  # nothing to fetch beside the file
    again = tmp_path / "again"
    CliRunner().invoke(cli, ["report", str(GOLDEN / "results.jsonl"), "-o", str(again), "--no-charts"])
    assert (again / "report.html").read_bytes() == (tmp_path / "report.html").read_bytes()


def assert_rendered(folder: Path) -> None:
    """Open FOLDER/report.html in Chromium: every table of report.md is there with the same
    cells, every figure written beside it is shown decoded, and nothing was fetched."""
    page = open_page(folder / "report.html")
    expected = markdown_tables((folder / "report.md").read_text())
    assert page.tables == expected
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs and len(page.images) == len(pngs)
    for image in page.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image["alt"]
        assert image["scheme"] == "data" and image["width"] > 0 and image["height"] > 0
    assert page.scripts == 0
    assert all(url.startswith(("data:", (folder / "report.html").resolve().as_uri())) for url in page.requested)
    assert page.title == "Model-selection report" and page.headings[0] == "Model-selection report"


def test_report_html_renders_in_headless_chromium(tmp_path):
    pytest.importorskip("matplotlib", reason="the charts need matplotlib (pip install 'cmg-toc[plot]')")
    selection = {
        "tool": "cmg-toc", "version": "0.1.0",
        "checkpoint": {"path": "absent.pt", "sha256": "cd" * 32, "family": "dcid-avt"},
        "parameters": {"channels": 4, "max_num": 1, "min_num": 1},
        "levels": [{"level": 0, "codebook_shape": [8, 6], "indices": [3, 1, 0, 5],
                    "scores": [0.9, 0.5, -0.2, -0.4], "parameters": {}, "short_by": 0}],
    }
    (tmp_path / "sel.json").write_text(json.dumps(selection))
    result = CliRunner().invoke(cli, [
        "report", str(GOLDEN / "results.jsonl"), "-o", str(tmp_path / "out"), "--selection", str(tmp_path / "sel.json"),
    ])
    assert result.exit_code == 0, result.output
    assert {"chart-ave.png", "chart-avvp.png", "selection-sel.png"} <= set(json.loads(result.stdout)["files"])
    assert_rendered(tmp_path / "out")
