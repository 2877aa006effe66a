"""Every figure README.md states is found in the results file it links.

A figure is a measured number as a reader meets it: a decimal (0.68, 82.8), a percentage (91%),
or a count of time, memory or speed (7 min, 1.4 GB, 3x). A README paragraph (or table, or list
item) that states one must link a file under benchmarks/results/, and each of its figures must
appear there, as written or as the rounding of a number written there to the same decimals. So a
figure cannot drift from the measurement that backs it, and cannot be stated without one. Numbers
inside code are commands and settings, not figures, and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_FENCE = re.compile(r"```.*?```", re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\((benchmarks/results/[^)#\s]+)(?:#[^)\s]*)?\)")
_ANY_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT = re.compile(r"%|\s?(?:min|minutes?|s|seconds?|h|hours?|ms|GB|MB|KB|GiB|MiB|KiB|x|×)(?!\w)")
_CANDIDATE = re.compile(rf"(?<![\w.,^])({_NUMBER})(?![\w.]?\d)")
_ANY_NUMBER = re.compile(rf"(?<![\w.])[-+−]?({_NUMBER})")


def _prose_blocks(text: str) -> list[str]:
    """Blank-line separated blocks of README outside code, with list items as blocks of their own."""
    text = _FENCE.sub("", text)
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        items = re.split(r"\n(?=\s*[-*] )", block)
        blocks.extend(item for item in items if item.strip())
    return blocks


def figures(block: str) -> list[str]:
    """The figures a block states (without code spans and link targets), as written."""
    prose = _ANY_LINK_TARGET.sub("]", _CODE_SPAN.sub("", block))
    prose = re.sub(r"\b\d+(?:\.\d+){2,}\b|(?<=Python )\d+\.\d+", "", prose)  # versions: 2.13.0, Python 3.10
    found = []
    for match in _CANDIDATE.finditer(prose):
        # A decimal is a figure; an integer only with a unit (10 classes and 400 codes are settings).
        if "." in match.group(1) or _UNIT.match(prose, match.end()):
            found.append(match.group(1))
    return found


def _value(text: str) -> float:
    return float(text.replace(",", ""))


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def stated_in(figure: str, source: str) -> bool:
    """Whether `source` writes `figure`, or a number that rounds to it at its decimals."""
    wanted, places = _value(figure), _decimals(figure)
    for match in _ANY_NUMBER.finditer(source):
        value = _value(match.group(1))
        if value == wanted or (_decimals(match.group(1)) > places and round(value, places) == wanted):
            return True
    return False


def untraced(readme_text: str, root: Path) -> list[str]:
    problems = []
    for block in _prose_blocks(readme_text):
        found = figures(block)
        if not found:
            continue
        links = sorted(set(_LINK.findall(block)))
        first_line = block.strip().splitlines()[0][:80]
        if not links:
            problems.append(f"figures {found} with no benchmarks/results link: {first_line!r}")
            continue
        sources = []
        for link in links:
            path = root / link
            if not path.is_file():
                problems.append(f"linked results file {link} does not exist: {first_line!r}")
                continue
            sources.append(path.read_text())
        for figure in found:
            if sources and not any(stated_in(figure, source) for source in sources):
                problems.append(f"{figure} not in {', '.join(links)}: {first_line!r}")
    return problems


def test_every_readme_figure_is_in_the_results_file_it_links():
    assert untraced(README.read_text(), ROOT) == []


def test_the_check_finds_a_figure_missing_from_its_file_and_an_unlinked_one(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.md").write_text("| seed | acc |\n| 1 | 82.83 |\n| 2 | 7,310 s |\n")
    good = "Transfer reached 82.8% in 7,310 s ([r](benchmarks/results/r.md)); `toc --seed 4.5` is code."
    assert untraced(good, tmp_path) == []
    assert figures(good) == ["82.8", "7,310"]
    wrong = "Transfer reached 82.9% ([r](benchmarks/results/r.md#seed))."
    assert untraced(wrong, tmp_path) == ["82.9 not in benchmarks/results/r.md: " + repr(wrong)]
    unlinked = "It took 3.5 min on torch 2.13.0 ([docs](docs/training.md))."
    assert figures(unlinked) == ["3.5"]
    assert len(untraced(unlinked, tmp_path)) == 1
    rounded_up = "Transfer reached 83% ([r](benchmarks/results/r.md))."  # 82.83 rounds to 83
    assert untraced(rounded_up, tmp_path) == []
    assert figures("10 classes, 400 codes, NeurIPS 2023, 2 cores, Python 3.10 or newer") == []
