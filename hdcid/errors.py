"""The errors of the model library, on the toolkit's shared root error.

`CmgError` (and `SettingsError`, for settings that cannot be used) come from `cmg_base.errors`
and are re-exported here, so `from hdcid.errors import CmgError` keeps working.
"""

from __future__ import annotations

from typing import Any

from cmg_base.errors import CmgError, OutputExistsError, SettingsError

__all__ = [
    "CmgError", "MeasureError", "ModelError", "OutputExistsError", "SettingsError", "TrainDataError", "literal",
]


def literal(value: Any) -> str:
    """`value` as text for a message that also holds `{}` setting placeholders (braces doubled)."""
    return str(value).replace("{", "{{").replace("}", "}}")


class ModelError(CmgError):
    """A state_dict, tensor or model setting that does not fit the model it is meant for."""


class TrainDataError(CmgError):
    """The pretraining data returned arrays of the wrong keys, shapes or values."""


class MeasureError(CmgError):
    """Codes (or labels, masks) given to a code-sharing measure with the wrong dtype or shape."""
