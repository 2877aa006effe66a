"""Typed errors: library code raises these; the CLI turns them into one line and an exit code."""

from __future__ import annotations

from hdcid.errors import CmgError


class TocError(CmgError):
    """Base class for every error the toolkit reports to a user (exit code 1 in the CLI)."""


def _describe(message: str, *, file=None, key=None, expected=None, actual=None) -> str:
    parts = []
    if file is not None:
        parts.append(f"{file}")
    if key is not None:
        parts.append(f"key '{key}'")
    head = ": ".join([", ".join(parts), message]) if parts else message
    if expected is not None or actual is not None:
        head += f" (expected {expected}, got {actual})"
    return head


class CheckpointError(TocError):
    """A checkpoint or codebook file that cannot be loaded safely or is not what it claims."""

    def __init__(self, message: str, *, file=None, key=None, expected=None, actual=None):
        self.file, self.key, self.expected, self.actual = file, key, expected, actual
        super().__init__(_describe(message, file=file, key=key, expected=expected, actual=actual))


class DataError(TocError):
    """A feature file, label file or index that is missing, malformed or of the wrong shape."""

    def __init__(self, message: str, *, file=None, key=None, expected=None, actual=None):
        self.file, self.key, self.expected, self.actual = file, key, expected, actual
        super().__init__(_describe(message, file=file, key=key, expected=expected, actual=actual))


class ConfigError(TocError):
    """Parameters that are individually valid but cannot be used together or with this input."""


class OutputExistsError(TocError):
    """An output file exists and overwriting was not requested."""
