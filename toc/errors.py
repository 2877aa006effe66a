"""Typed errors of the toolkit: library code raises these; the CLI turns them into one line.

All are `cmg_base.errors.CmgError`s, so each can name the file, key, expected and actual value,
and the settings involved (see `CmgError`).
"""

from __future__ import annotations

from cmg_base.errors import CmgError, OutputError, OutputExistsError
from cmg_base.errors import SettingsError as BaseSettingsError

__all__ = [
    "CheckpointError", "CmgError", "ConfigError", "DataError", "OutputError", "OutputExistsError",
    "SettingsError", "TocError",
]


class TocError(CmgError):
    """Base class of the toolkit's own errors (exit code 1 in the CLI)."""


class CheckpointError(TocError):
    """A checkpoint or codebook file that cannot be loaded safely or is not what it claims."""


class DataError(TocError):
    """A feature file, label file or index that is missing, malformed or of the wrong shape."""


class ConfigError(TocError):
    """Parameters that are individually valid but cannot be used with this input."""


class SettingsError(ConfigError, BaseSettingsError):
    """Settings that cannot be used as given, alone or together: the CLI reports a usage error
    (exit code 2) and spells the settings as its flags."""
