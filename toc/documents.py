"""The JSON documents the toolkit writes: who wrote them, and byte-stable serialisation."""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Mapping
from typing import Any

from toc.errors import DataError

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
        parts.append(int(digits[:9]) if digits else 0)  # a 5000-digit "version" is not a number
    return tuple(parts + [0] * (3 - len(parts)))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json(text: str, *, file: Any, what: str = "JSON document") -> Any:
    """Strict JSON as every document the toolkit reads must be: no NaN / Infinity (Python's
    parser accepts them), no number that overflows to inf, no integer too long to convert, and
    a nesting too deep to parse is a one-line DataError naming `file`, like any other defect."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); expected a {what}", file=file) from None
    except RecursionError:
        raise DataError(f"not a {what}: JSON nested too deeply", file=file) from None
    except ValueError as exc:
        text = str(exc).strip().splitlines()
        raise DataError(f"not valid JSON ({text[0][:120] if text else 'bad value'}); expected a {what}", file=file) from None
