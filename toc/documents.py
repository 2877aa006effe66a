"""The JSON documents the toolkit writes: who wrote them, and byte-stable serialisation."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping
from typing import Any

TOOL_NAME = "cmg-toc"


def tool_version() -> str:
    try:
        return importlib.metadata.version(TOOL_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def dumps_document(document: Mapping[str, Any]) -> str:
    """Sorted keys, two-space indent, shortest round-trip floats (repr): reruns are byte-identical."""
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; missing or non-numeric parts count as 0."""
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))
