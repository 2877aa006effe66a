"""Evaluated variants: which codebook levels and channels of the cached codes a head sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toc.cache import EncodedSet
from toc.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """A named view of the codes: the levels it concatenates and whether it applies TOC."""

    name: str
    levels: tuple[int, ...]
    uses_selection: bool
    description: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dcid", (0,), False, "all channels of codebook level 0"),
        Variant("dcid+toc", (0,), True, "TOC-selected channels of level 0"),
        Variant("hdcid", (0, 1), False, "both levels concatenated, level 0 first"),
        Variant("hdcid+toc", (0, 1), True, "per-level TOC selections concatenated, level 0 first"),
    )
}


@dataclass(frozen=True)
class InlineSelection:
    """`--channels C --max-num A --min-num B`: TOC computed here from each level's codebook."""

    channels: int
    max_num: int
    min_num: int


@dataclass(frozen=True)
class FileSelection:
    """A `toc select` JSON: indices per level (keyed by level number), in the head's column order."""

    path: Path
    levels: dict[int, tuple[int, ...]]
    checkpoint_sha256: str = ""


Selection = InlineSelection | FileSelection


def load_selection_file(path: str | Path) -> FileSelection:
    """Read a `toc select` JSON through toc.selection and keep the per-level indices."""
    from toc.selection import read_selection

    document = read_selection(path)
    levels = {int(entry.level): tuple(int(i) for i in entry.indices) for entry in document.levels}
    return FileSelection(Path(path), levels, document.checkpoint_sha256)


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


def parse_variants(values: Sequence[str]) -> list[str]:
    """Accept repeated and comma-separated names; keep first-seen order, drop repeats."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in VARIANTS:
                raise ConfigError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
            if name not in names:
                names.append(name)
    if not names:
        raise ConfigError("no variant given")
    return names


def resolve_view(variant_name: str, codebooks: Sequence[np.ndarray], selection: Selection | None) -> ChannelView:
    """Build the channel view of `variant_name` for a checkpoint with these codebooks."""
    if variant_name not in VARIANTS:
        raise ConfigError(f"unknown variant {variant_name!r}; choose from {', '.join(VARIANTS)}")
    variant = VARIANTS[variant_name]
    n_levels = len(codebooks)
    if max(variant.levels) >= n_levels:
        raise ConfigError(
            f"variant {variant_name} needs {len(variant.levels)} codebook levels; the checkpoint has {n_levels}"
        )
    channels: list[np.ndarray] = []
    for level in variant.levels:
        width = int(codebooks[level].shape[1])
        if not variant.uses_selection:
            channels.append(np.arange(width, dtype=np.int64))
        elif selection is None:
            raise ConfigError(f"variant {variant_name} needs --selection FILE or --channels/--max-num/--min-num")
        elif isinstance(selection, FileSelection):
            if level not in selection.levels:
                raise ConfigError(
                    f"{selection.path}: variant {variant_name} needs a selection for level {level}; "
                    f"the file has level(s) {sorted(selection.levels)}"
                )
            indices = np.asarray(selection.levels[level], dtype=np.int64)
            if indices.size == 0:
                raise ConfigError(f"{selection.path}: the selection for level {level} is empty")
            if indices.min() < 0 or indices.max() >= width:
                raise ConfigError(
                    f"{selection.path}: level {level} selects channel {int(indices.max())}, "
                    f"but the codebook has {width} channels (wrong checkpoint?)"
                )
            channels.append(indices)
        else:
            from toc.selection import select_channels

            indices = np.asarray(
                _as_indices(select_channels(codebooks[level], selection.channels, selection.max_num, selection.min_num)),
                dtype=np.int64,
            )
            if indices.size == 0:
                raise ConfigError(f"--channels {selection.channels} selects no channel on level {level}")
            channels.append(indices)
    return ChannelView(variant_name, variant.levels, tuple(channels))


def _as_indices(result) -> list[int]:
    """select_channels may return indices directly or a result object carrying them."""
    if hasattr(result, "tolist"):
        return [int(i) for i in result.tolist()]
    if hasattr(result, "indices"):
        result = result.indices
    if hasattr(result, "tolist"):
        result = result.tolist()
    return [int(i) for i in result]
