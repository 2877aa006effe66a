"""The evaluated variants: which codebook levels and channels of the cached codes a head sees.

dcid / hdcid read every channel of one / both codebook levels; fcid reads FCID's one level, the
per-second coarse codewords its published downstream scripts feed their heads; the +toc
variants read the TOC-selected channels of a selection (toc.codebook.selection.SelectionFile),
per level, in the selection's order. Each variant belongs to a method (hdcid.vocabulary.METHODS),
and a checkpoint's method follows from its encoder family: FCID checkpoints are `fcid`, the
others `dcid` (one level) or `hdcid` (two). Imports no torch (the command line's choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hdcid.vocabulary import FCID_FAMILY, METHODS, method_levels
from toc.errors import ConfigError, SettingsError

if TYPE_CHECKING:
    from toc.codebook.selection import SelectionFile
    from toc.eval.cache import EncodedSet


@dataclass(frozen=True)
class Variant:
    """A named view of the codes: the levels it concatenates and whether it applies TOC."""

    name: str
    method: str  # the checkpoint it reads: "dcid" (one level), "hdcid" (two) or "fcid"
    levels: tuple[int, ...]
    uses_selection: bool
    description: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dcid", "dcid", (0,), False, "all channels of codebook level 0"),
        Variant("dcid+toc", "dcid", (0,), True, "TOC-selected channels of level 0"),
        Variant("hdcid", "hdcid", (0, 1), False, "both levels concatenated, level 0 first"),
        Variant("hdcid+toc", "hdcid", (0, 1), True, "per-level TOC selections concatenated, level 0 first"),
        Variant("fcid", "fcid", (0,), False, "all channels of FCID's per-second coarse codewords"),
        Variant("fcid+toc", "fcid", (0,), True, "TOC-selected channels of FCID's per-second coarse codewords"),
    )
}
VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)
assert {v.method for v in VARIANTS.values()} == set(METHODS)
assert all(len(VARIANTS[m].levels) == method_levels(m) for m in METHODS)


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name]


def method_of_checkpoint(model_family: str | None, levels: int) -> str:
    """A checkpoint's method: `fcid` for an FCID model, else by its codebook levels
    (`model_family` None: only the levels are known, e.g. a test double)."""
    if model_family == FCID_FAMILY:
        return "fcid"
    for method in ("dcid", "hdcid"):
        if method_levels(method) == levels:
            return method
    raise ConfigError(f"no variant reads a checkpoint with {levels} codebook levels")


def default_variants(levels: int, with_toc: bool, model_family: str | None = None) -> list[str]:
    """A checkpoint's own variant: fcid for FCID, dcid for one level, hdcid for two; +toc when
    TOC is given."""
    method = method_of_checkpoint(model_family, levels)
    return [method + "+toc" if with_toc else method]


def check_applicable(names: Sequence[str], levels: int, model_family: str | None = None) -> None:
    """Fail before any encoding when a variant cannot apply to a checkpoint with `levels` levels
    (and, when known, of model family `model_family`)."""
    own = method_of_checkpoint(model_family, levels) if model_family is not None else None
    for name in names:
        variant = get_variant(name)
        if max(variant.levels) >= levels:
            raise ConfigError(
                f"variant {name} needs {len(variant.levels)} codebook levels; the checkpoint has {levels}"
            )
        # FCID's codes are another model's: a dcid label on them (or fcid on DCID codes) would
        # put one model's numbers under another's name in the report.
        if own is not None and (variant.method == "fcid") != (own == "fcid"):
            raise ConfigError(
                f"variant {name} reads {variant.method} checkpoints; this is a {model_family} checkpoint "
                f"(its variants: {', '.join(v.name for v in VARIANTS.values() if v.method == own)}"
                + (", or dcid variants for its level 0" if own == "hdcid" else "") + ")"
            )


@dataclass(frozen=True)
class ChannelView:
    """A variant resolved against one checkpoint: channel indices per level it reads."""

    variant: str
    levels: tuple[int, ...]
    channels: tuple[np.ndarray, ...]  # per level in `levels`: int64 indices into the code width

    @property
    def width(self) -> int:
        return int(sum(len(c) for c in self.channels))

    def channels_json(self) -> list[list[int]]:
        return [[int(i) for i in c] for c in self.channels]

    def features(self, encoded: EncodedSet, rows: np.ndarray | None = None) -> np.ndarray:
        """float64 [N, T, width]: the selected columns of each level's quantized vectors."""
        parts = []
        for level, channels in zip(self.levels, self.channels, strict=True):
            # Selecting columns of the codebook first is the same as selecting them from the
            # quantized vectors (each is a codebook row) and touches K rows instead of N*T.
            sub_codebook = encoded.codebooks[level][:, channels]
            codes = encoded.codes[level] if rows is None else encoded.codes[level][rows]
            parts.append(sub_codebook[codes])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def resolve_view(variant_name: str, codebooks: Sequence[np.ndarray], selection: SelectionFile | None) -> ChannelView:
    """Build the channel view of `variant_name` for a checkpoint with these codebooks."""
    variant = get_variant(variant_name)
    check_applicable([variant_name], len(codebooks))  # the model family is checked by the loop
    indices_per_level = selection.level_indices() if selection is not None else {}
    channels: list[np.ndarray] = []
    for level in variant.levels:
        width = int(codebooks[level].shape[1])
        if not variant.uses_selection:
            channels.append(np.arange(width, dtype=np.int64))
            continue
        if selection is None:
            raise SettingsError(
                f"variant {variant_name} needs {{}} FILE or {{}}", settings=("selection", "channels"),
            )
        if level not in indices_per_level:
            raise ConfigError(
                f"{selection.source}: variant {variant_name} needs a selection for level {level}; "
                f"it has level(s) {sorted(indices_per_level)}"
            )
        indices = np.asarray(indices_per_level[level], dtype=np.int64)
        if indices.size == 0:
            raise ConfigError(f"{selection.source}: the selection for level {level} is empty")
        if indices.min() < 0 or indices.max() >= width:
            raise ConfigError(
                f"{selection.source}: level {level} selects channel {int(indices.max())}, "
                f"but the codebook has {width} channels (wrong checkpoint?)"
            )
        channels.append(indices)
    return ChannelView(variant_name, variant.levels, tuple(channels))
