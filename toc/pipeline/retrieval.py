"""`toc eval retrieval`: the option rules, then checkpoint → retrieval set → codes → clip vectors
→ one record per (direction, vector kind). The library core is toc.eval.retrieval."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE, DTYPES, torch_dtype
from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.encode import EncodingSession
from toc.codebook.selection import SelectionFile, read_selection, selection_for
from toc.codebook.settings import TocRequest
from toc.data.retrieval import load_retrieval_set
from toc.errors import ConfigError, SettingsError
from toc.eval.retrieval import (
    MODALITY_LETTER,
    EncodedItems,
    RetrievalRecord,
    RetrievalRun,
    all_directions,
    encode_set,
    read_encoded,
    run_retrieval,
)
from toc.eval.variants import VARIANTS, check_applicable, method_of_checkpoint
from toc.progress import ProgressFactory, no_progress
from toc.vocabulary import (
    DEFAULT_PROTOCOL,
    ENCODE_BATCH_SIZE,
    PROTOCOLS,
    RETRIEVAL_LAYOUTS,
    RETRIEVAL_TOC_SOURCES,
    VECTOR_KINDS,
)

_LETTER_MODALITY = {v: k for k, v in MODALITY_LETTER.items()}


def parse_direction(name: str) -> tuple[str, str]:
    """`a2t` → ("audio", "text"); any of a, v, t on both sides."""
    if len(name) != 3 or name[1] != "2" or name[0] not in _LETTER_MODALITY or name[2] not in _LETTER_MODALITY:
        raise SettingsError(f"{{}}: {name!r} is not a direction like a2t, t2v or a2v", settings=("direction",))
    return _LETTER_MODALITY[name[0]], _LETTER_MODALITY[name[2]]


@dataclass(frozen=True)
class RetrievalOptions:
    """Everything `toc eval retrieval` is asked."""

    checkpoint: str | Path | None = None
    layout: str = "paired"
    pairs: str | Path | None = None  # the paired layout's h5 file
    data_root: str | Path | None = None
    config: str | Path | None = None
    overrides: Mapping[str, str | Path | None] = field(default_factory=dict)  # layout paths
    split: str = "test"  # VALOR-32K's annotation file
    encoded: Sequence[str | Path] = ()  # two `toc encode` outputs instead of a layout
    directions: Sequence[str] = ()  # empty: every direction the set's modalities allow
    vectors: Sequence[str] = VECTOR_KINDS
    variant: str | None = None  # default: the checkpoint's own (+toc with TOC)
    toc: TocRequest = field(default_factory=TocRequest)
    protocol: str = DEFAULT_PROTOCOL
    dtype: str = DEFAULT_DTYPE
    batch_size: int = ENCODE_BATCH_SIZE
    device: str = DEFAULT_DEVICE
    trust_checkpoint: bool = False

    def check(self) -> None:
        layout_given = self.pairs is not None or self.data_root is not None or self.config is not None
        if self.encoded:
            if len(self.encoded) != 2:
                raise SettingsError(f"{{}} takes two files (query and gallery side), got {len(self.encoded)}", settings=("encoded",))
            if layout_given:
                raise SettingsError("{} replaces the layout; drop {} / {} / {}", settings=("encoded", "pairs", "data_root", "config"))
        else:
            if self.checkpoint is None:
                raise SettingsError("give {} CKPT (or two {} files of codes)", settings=("checkpoint", "encoded"))
            if self.layout not in RETRIEVAL_LAYOUTS:
                raise SettingsError(f"{{}} must be one of {', '.join(RETRIEVAL_LAYOUTS)}", settings=("layout",))
            if self.layout == "paired" and self.pairs is None:
                raise SettingsError("the paired layout needs {} FILE.h5", settings=("pairs",))
            if self.layout != "paired" and self.data_root is None and self.config is None and not self.overrides:
                raise SettingsError(f"the {self.layout} layout needs {{}} DIR or {{}} FILE", settings=("data_root", "config"))
        for kind in self.vectors:
            if kind not in VECTOR_KINDS:
                raise SettingsError(f"{{}}: {kind!r} is not one of {', '.join(VECTOR_KINDS)}", settings=("vectors",))
        if not self.vectors:
            raise SettingsError("{} needs at least one kind", settings=("vectors",))
        for name in self.directions:
            parse_direction(name)
        if self.protocol not in PROTOCOLS:
            raise SettingsError(f"{{}} must be one of {', '.join(PROTOCOLS)}", settings=("protocol",))
        if self.dtype not in DTYPES:
            raise SettingsError(f"{{}} must be one of {', '.join(DTYPES)}", settings=("dtype",))
        if self.batch_size < 1:
            raise SettingsError("{} must be at least 1", settings=("batch_size",))
        toc = self.toc
        toc.check(RETRIEVAL_TOC_SOURCES)
        if toc.given and self.encoded and self.checkpoint is None and toc.channels is not None:
            raise SettingsError("TOC selects from a codebook: give {} with {}", settings=("checkpoint", "channels"))
        if self.variant is not None and self.variant not in VARIANTS:
            raise SettingsError(f"{{}} must be one of {', '.join(VARIANTS)}", settings=("variant",))
        if self.variant is not None and VARIANTS[self.variant].uses_selection != toc.given:
            raise SettingsError(
                "the +toc variants (and only they) need {} FILE or {} C", settings=("selection", "channels"),
            )


def _selection_for_codes(options: RetrievalOptions, checkpoint, attributes: list[dict[str, str]]) -> SelectionFile:
    """The --selection file, refused unless it was made for the checkpoint whose codes are read:
    the loaded checkpoint, or else the one the `toc encode` files name."""
    if checkpoint is not None:
        return read_selection(options.toc.selection, made_for=checkpoint)
    selection = read_selection(options.toc.selection)
    named = {a.get("checkpoint_sha256", "") for a in attributes} - {""}
    if named and named != {selection.checkpoint_sha256}:
        raise ConfigError(
            f"{selection.source}: selection was made for checkpoint {selection.checkpoint_sha256[:12]} "
            f"({selection.checkpoint_path}), but the encoded files come from {', '.join(sorted(n[:12] for n in named))}"
        )
    return selection


def _encoded_attributes(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as handle:
        return {k: str(handle.attrs[k]) for k in ("family", "checkpoint_sha256") if k in handle.attrs}


def evaluate_retrieval(options: RetrievalOptions, *, progress: ProgressFactory = no_progress) -> Iterator[RetrievalRecord]:
    """Check the options, encode (or read) both sides, and yield one record per (direction, vectors)."""
    options.check()
    checkpoint = load_checkpoint(options.checkpoint, trust_checkpoint=options.trust_checkpoint) if options.checkpoint else None
    notes: list[str] = []
    if options.encoded:
        sides = [read_encoded(p) for p in options.encoded]
        if len(sides[0]) != len(sides[1]):
            raise ConfigError(
                f"{options.encoded[0]} and {options.encoded[1]} hold {len(sides[0])} and {len(sides[1])} items; "
                "row i of each is pair i"
            )
        if len(sides[0].codes) != len(sides[1].codes):
            raise ConfigError(f"{options.encoded[0]} and {options.encoded[1]} have different numbers of codebook levels")
        # Two sides of one modality (e.g. audio against audio) keep their own keys.
        keys = ("query", "gallery") if sides[0].modality == sides[1].modality else (sides[0].modality, sides[1].modality)
        encoded: dict[str, EncodedItems] = dict(zip(keys, sides, strict=True))
        directions = [keys]
        attributes = [_encoded_attributes(Path(p)) for p in options.encoded]
        family = checkpoint.family if checkpoint is not None else attributes[0].get("family")
        levels_available = len(sides[0].codes)
        if checkpoint is not None:
            n_codes = [int(cb.shape[0]) for cb in checkpoint.codebooks]
            if {a.get("checkpoint_sha256", "") for a in attributes} - {"", checkpoint.sha256}:
                notes.append("the encoded files were not made from this checkpoint")
        else:
            # Without the codebook: histograms over the code ids seen (unseen ids add zeros,
            # which change no cosine).
            n_codes = [1 + max(int(c.max()) for s in sides for c in s.codes[level] if c.size) for level in range(levels_available)]
        layout = "encoded"
    else:
        assert checkpoint is not None
        data = load_retrieval_set(
            options.layout, pairs=options.pairs, data_root=options.data_root, config=options.config,
            overrides=options.overrides, split=options.split, protocol=options.protocol,
        )
        notes += list(data.notes)
        directions = [parse_direction(d) for d in options.directions] or all_directions(data.modalities)
        if not directions:
            raise ConfigError(f"the {data.layout} set has one modality ({', '.join(data.modalities)}); retrieval needs two")
        needed = sorted({m for pair in directions for m in pair})
        for modality in needed:
            if modality not in data.items:
                raise ConfigError(f"the {data.layout} set has no {modality} items (it has {', '.join(data.modalities)})")
            if modality not in checkpoint.sizes.modalities:
                raise ConfigError(f"a {checkpoint.family} checkpoint has no {modality} encoder")
        session = EncodingSession(checkpoint, dtype=torch_dtype(options.dtype), device=options.device)
        encoded = encode_set(session, data, needed, batch_size=options.batch_size, progress=progress)
        family, levels_available = checkpoint.family, checkpoint.levels
        n_codes = [int(cb.shape[0]) for cb in checkpoint.codebooks]
        layout = data.layout
    selection: SelectionFile | None = None
    if options.toc.selection is not None:
        selection = _selection_for_codes(options, checkpoint, attributes if options.encoded else [])
    elif options.toc.channels is not None:
        assert checkpoint is not None
        selection = selection_for(checkpoint, options.toc.settings())
    variant = options.variant or method_of_checkpoint(family, levels_available) + ("+toc" if selection else "")
    check_applicable([variant], levels_available, family)
    run = RetrievalRun(
        directions=directions, vectors=tuple(options.vectors), variant=variant, levels=VARIANTS[variant].levels,
        selection=selection, protocol=options.protocol, layout=layout,
        checkpoint_sha256=checkpoint.sha256 if checkpoint is not None else "", dtype=options.dtype, notes=tuple(notes),
    )
    yield from run_retrieval(encoded, n_codes, run)
