"""The model vocabulary: modalities, encoder families and their codebook levels, the methods that
are trained, the published sizes, dtypes, devices and the recipe choices.

Every other module (here, in `toc` and in `cli`) takes these words from this one file. It imports
no torch, so the command line can offer them as choices and defaults before any work starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hdcid.errors import ModelError

if TYPE_CHECKING:
    import torch

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

# The methods a checkpoint is trained with and evaluated as, with the codebook levels of each:
# DCID (one shared codebook), H-DCID (two: a coarse and a fine level) and FCID (one coarse
# codebook). An encoder family (above) says which modules a file holds; a method says how it was
# trained and which downstream variants read it (toc.eval.variants).
METHOD_LEVELS = {"dcid": 1, "hdcid": 2, "fcid": 1}
METHODS = tuple(METHOD_LEVELS)

# The released checkpoints' sizes (`nips2023_AVT_vgg40k_size400.pt` and its H-DCID / FCID
# siblings): what the encoder defaults and the reference recipe use.
PUBLISHED_SIZES = {
    "audio_dim": 128, "video_dim": 512, "text_dim": 256,  # VGGish, VGG19 pool5 channels, text features
    "n_embeddings": 400, "embedding_dim": 256,
    "audio_output_dim": 256, "video_output_dim": 2048, "text_output_dim": 256,
}
PUBLISHED_BATCH_SIZE = 80  # the published pretraining and downstream scripts' batch

# Compute dtypes by the names settings and files use (torch_dtype gives the torch object).
DTYPES = ("float32", "float64")
DEFAULT_DTYPE = "float32"  # float64 is bit-faithful to the reference and slower
DEVICES = ("cpu", "cuda")
DEFAULT_DEVICE = "cpu"

# Choices of the training recipes (hdcid.recipes).
CODEBOOK_INITS = ("uniform", "sample", "kmeans")
ALIGN_DISTANCES = ("cosine", "euclidean")
RESET_SOURCES = ("active", "paired")  # a dead code restarts as a copy of an active code, or a pair's mean
RESET_PATIENCE_WORDS = ("reference", "auto", "off")
# Targets of the swapped code prediction: balanced by Sinkhorn–Knopp, or centred and sharpened.
SWAP_TARGETS = ("sinkhorn", "centring")


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
    if name not in DTYPES:
        raise ModelError(f"dtype must be {' or '.join(DTYPES)}, got {name}")
    import torch  # here, so that the vocabulary imports without torch

    return getattr(torch, name)


def method_levels(method: str) -> int:
    """Codebook levels of a method: 1 for DCID and FCID, 2 for H-DCID."""
    try:
        return METHOD_LEVELS[method]
    except KeyError:
        raise ModelError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}") from None
