"""The root error type shared by the model library and the toolkit built on it."""

from __future__ import annotations


class CmgError(Exception):
    """Base of every error reported to a user as one line (the CLI exits with code 1)."""


class ModelError(CmgError):
    """A state_dict or tensor that does not fit the model it is meant for."""
