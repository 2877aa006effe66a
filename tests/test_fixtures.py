"""The reference fixtures ship with the repository: every file is listed in tests/fixtures/README.md
with its sha256, and the bytes on disk are those bytes (a changed oracle would silently change
what every parity test proves)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.conftest import FIXTURES

ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<size>\d+) \| `(?P<sha>[0-9a-f]{64})` \|", re.M)


def _listed() -> dict[str, tuple[int, str]]:
    listed: dict[str, tuple[int, str]] = {}
    folder = None
    for line in (FIXTURES / "README.md").read_text().splitlines():
        heading = re.match(r"^## `([^`/]+)/`", line)
        if heading:
            folder = heading.group(1)
        match = ROW.match(line)
        if match:
            assert folder, f"table row before any folder heading: {line[:60]}"
            listed[f"{folder}/{match['name']}"] = (int(match["size"]), match["sha"])
    return listed


def test_every_fixture_is_listed_with_its_size_and_sha256():
    listed = _listed()
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk == set(listed)
    for name, (size, sha) in listed.items():
        data = (FIXTURES / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), name


def test_nothing_reads_outside_the_repository():
    """No test, helper or benchmark points at a folder beside the clone, where the fixtures used
    to live: a clone anywhere must run every parity test."""
    root = FIXTURES.parents[1]
    offenders = []
    for path in [*root.glob("tests/*.py"), *root.glob("benchmarks/*.py"), *root.glob("benchmarks/*.sh")]:
        text = path.read_text()
        if re.search(r'/ "shared"|\.\./shared|shared/(fixtures|docs)|parents\[1\]\.parent', text) and path.name != Path(__file__).name:
            offenders.append(path.name)
    assert offenders == []
