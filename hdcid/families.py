"""The model vocabulary: modalities, encoder families, how a family maps to codebook levels, dtypes.

Every other module (here and in `toc`) takes these names from this one file.
"""

from __future__ import annotations

import torch

from hdcid.errors import ModelError

MODALITIES = ("audio", "video", "text")

# The published encoders: DCID over audio-video-text and its two-modality variants (one shared
# codebook each), H-DCID over audio-video-text (two codebooks, one per level), and FCID (the
# ACL 2025 model: one coarse codebook, per-clip during pretraining, per-second downstream).
FCID_FAMILY = "fcid-avt"
FAMILY_MODALITIES = {
    "dcid-avt": ("audio", "video", "text"),
    "dcid-av": ("audio", "video"),
    "dcid-at": ("audio", "text"),
    "hdcid-avt": ("audio", "video", "text"),
    FCID_FAMILY: ("audio", "video", "text"),
}
FAMILIES = tuple(FAMILY_MODALITIES)
# The families `hdcid.models.CmgEncoder` builds (FCID has its own encoder class, hdcid.fcid).
CMG_FAMILIES = ("dcid-avt", "dcid-av", "dcid-at", "hdcid-avt")
_FAMILY_LEVELS = {"dcid-avt": 1, "dcid-av": 1, "dcid-at": 1, "hdcid-avt": 2, FCID_FAMILY: 1}
# The family the trainer builds for a number of levels (it trains the three-modality models).
_TRAINED_FAMILY = {1: "dcid-avt", 2: "hdcid-avt"}

# Compute dtypes by the names settings and files use.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def levels_of(family: str) -> int:
    """Codebook levels of an encoder family: 1 for DCID and FCID, 2 for H-DCID."""
    try:
        return _FAMILY_LEVELS[family]
    except KeyError:
        raise ModelError(f"unknown encoder family {family!r}; expected one of {', '.join(FAMILIES)}") from None


def family_for(levels: int) -> str:
    """The three-modality family with this many codebook levels (what the trainer builds)."""
    try:
        return _TRAINED_FAMILY[levels]
    except KeyError:
        raise ModelError(f"no encoder family has {levels} codebook levels; expected 1 (DCID) or 2 (H-DCID)") from None


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a dtype name ("float32" / "float64")."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ModelError(f"dtype must be {' or '.join(DTYPES)}, got {name}") from None
