"""Codebooks of other VQ models: a table of known state_dict layouts and one locator.

TOC scores the channels of any [K, D] codebook. CMG / DCID / H-DCID checkpoints are read by
toc.codebook.checkpoint (which imports this module, never the other way round); this module
finds the codebooks in the state_dicts that other VQ libraries save (vector-quantize-pytorch, EnCodec, DAC, Mimi, taming-transformers VQGAN, Hugging Face codec
models, ...) from their key layouts, or in the tensors a user names with a key pattern, and
returns them as named levels, each a [K, D] tensor with K codes of D channels.

The locator only reads: it never builds the other library's model and needs none of its code.
For .safetensors files it reads the header first and loads only the tensors it returns.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from cmg_base.errors import literal
from toc.codebook.state_dicts import FLOAT_DTYPES, WRAPPER_KEYS, strip_prefix
from toc.errors import CheckpointError

# Nested containers deeper than this are not searched (a state_dict is at most a few levels deep).
MAX_NESTING = 8

DIRECT = "direct"  # the anchor tensor is the codebook, [K, D] (or [H, K, D]: one level per head)
RATIO = "ratio"  # codebook = anchor (an EMA sum of assigned vectors) / count.clamp(min=eps)[:, None]
TRANSPOSE = "transpose"  # the anchor is stored [D, K]; the codebook is its transpose

# safetensors header dtype names → torch dtypes (the ones a codebook or its siblings can have).
_SAFETENSORS_DTYPES = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "I8": torch.int8,
    "U8": torch.uint8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class ForeignLayout:
    """One known way of storing VQ codebooks in a state_dict.

    `anchor` is a regular expression matched against a whole (prefix-stripped) key; its group
    `p` is the owning module's prefix (with its trailing dot, or empty), and every sibling name
    below is relative to it. A key matches the layout when the anchor matches, the anchor
    tensor has rank `ndim`, and every entry of `requires` exists (an entry may list
    alternatives separated by '|').
    """

    name: str
    written_by: str  # which libraries / models save this layout (for the docs and `toc inspect`)
    anchor: str
    ndim: int
    derive: str = DIRECT
    count: str | None = None  # per-code EMA assignment count, used for code usage (and RATIO)
    requires: tuple[str, ...] = ()
    init_flag: str | None = None  # 0 = the codebook was never initialised (k-means init pending)
    lookup: str = "euclidean"  # how the library assigns a vector to a code
    group_order: tuple[str, ...] = ()  # sub-quantizer names in code order (before natural order)
    epsilon: float = 1e-5  # RATIO: the library's clamp of the count

    def derivation(self) -> str:
        anchor = self.anchor_name()
        if self.derive == RATIO:
            return f"{anchor} / {self.count}.clamp(min={self.epsilon:g})[:, None]"
        if self.derive == TRANSPOSE:
            return f"{anchor}.T"
        return anchor

    def anchor_name(self) -> str:
        """The anchor's tensor name relative to the module prefix, for display."""
        return self.anchor.split(")", 1)[-1].replace("\\.", ".")


_P = r"(?P<p>(?:.+\.)?)"

LAYOUTS: tuple[ForeignLayout, ...] = (
    ForeignLayout(
        name="vector-quantize-pytorch",
        written_by="lucidrains vector-quantize-pytorch (VectorQuantize, ResidualVQ, GroupedResidualVQ; "
        "EMA or learnable codebooks; heads), and models built on it (audiolm-pytorch SoundStream)",
        anchor=_P + r"_codebook\.embed",
        ndim=3,
        count="_codebook.cluster_size",
        requires=("_codebook.cluster_size",),
        init_flag="_codebook.initted",
    ),
    ForeignLayout(
        name="encodec",
        written_by="facebookresearch encodec and audiocraft (`.th` state_dicts), SpeechTokenizer, "
        "original WavTokenizer",
        anchor=_P + r"_codebook\.embed",
        ndim=2,
        count="_codebook.cluster_size",
        requires=("_codebook.cluster_size",),
        init_flag="_codebook.inited",
    ),
    ForeignLayout(
        name="moshi-mimi",
        written_by="kyutai moshi's Mimi codec (rvq_first = semantic, rvq_rest = acoustic)",
        anchor=_P + r"_codebook\.embedding_sum",
        ndim=2,
        derive=RATIO,
        count="_codebook.cluster_usage",
        requires=("_codebook.cluster_usage",),
        init_flag="_codebook._initialized",
        group_order=("rvq_first", "rvq_rest"),
    ),
    ForeignLayout(
        name="transformers-mimi",
        written_by="Hugging Face transformers MimiModel (semantic, then acoustic quantizers)",
        anchor=_P + r"codebook\.embed_sum",
        ndim=2,
        derive=RATIO,
        count="codebook.cluster_usage",
        requires=("codebook.cluster_usage",),
        init_flag="codebook.initialized",
        group_order=("semantic", "acoustic"),
    ),
    ForeignLayout(
        name="transformers-encodec",
        written_by="Hugging Face transformers EncodecModel and codecs with the same Euclidean "
        "codebook (XcodecModel, WavTokenizer, HiggsAudioV2Tokenizer, ...)",
        anchor=_P + r"codebook\.embed",
        ndim=2,
        count="codebook.cluster_size",
        requires=("codebook.cluster_size",),
        init_flag="codebook.inited",
    ),
    ForeignLayout(
        name="descript-audio-codec",
        written_by="descript-audio-codec (DAC) `weights.pth`; in_proj / out_proj are weight-normed",
        anchor=_P + r"codebook\.weight",
        ndim=2,
        requires=("in_proj.weight_v|in_proj.parametrizations.weight.original1",),
        lookup="cosine (inputs and codes L2-normalised)",
    ),
    ForeignLayout(
        name="transformers-dac",
        written_by="Hugging Face transformers DacModel",
        anchor=_P + r"codebook\.weight",
        ndim=2,
        requires=("in_proj.weight",),
        lookup="cosine (inputs and codes L2-normalised)",
    ),
    ForeignLayout(
        name="taming-vqgan",
        written_by="taming-transformers VQGAN (VectorQuantizer, VectorQuantizer2), latent-diffusion "
        "VQ models, transformers Chameleon / Janus / Emu3 / GLM-Image VQ-VAEs",
        anchor=r"(?P<p>(?:.+\.)?quantize\.)embedding\.weight",
        ndim=2,
    ),
    ForeignLayout(
        name="taming-gumbel",
        written_by="taming-transformers GumbelQuantize (codes picked by a Gumbel-softmax over proj)",
        anchor=r"(?P<p>(?:.+\.)?quantize\.)embed\.weight",
        ndim=2,
        requires=("proj.weight",),
        lookup="gumbel-softmax over proj logits",
    ),
    ForeignLayout(
        name="vq-vae-2",
        written_by="rosinality vq-vae-2-pytorch and its forks (quantize_t / quantize_b); embed is [D, K]",
        anchor=_P + r"embed",
        ndim=2,
        derive=TRANSPOSE,
        count="cluster_size",
        requires=("cluster_size", "embed_avg"),
        group_order=("quantize_t", "quantize_b"),  # top codes first, as the model returns them
    ),
)

LAYOUT_NAMES = tuple(layout.name for layout in LAYOUTS)
CODEBOOK_KEY_LAYOUT = "codebook-key"


@dataclass
class ForeignLevel:
    """One codebook level found in a foreign state_dict."""

    name: str  # the key it was read from (with [h] for one head of a [H, K, D] tensor)
    key: str  # the anchor key, prefix-stripped
    layout: str
    codebook: torch.Tensor  # [K, D], the stored dtype, CPU
    usage: torch.Tensor | None  # per-code EMA assignment count [K], when the layout stores one
    initialised: bool | None  # from the layout's init flag, when it stores one
    lookup: str
    derivation: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "key": self.key,
            "layout": self.layout,
            "derivation": self.derivation,
            "lookup": self.lookup,
            "initialised": self.initialised,
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- tensor sources


class TensorSource:
    """Keys, shapes and dtypes of a state_dict without loading it; tensors on request."""

    def keys(self) -> list[str]:
        raise NotImplementedError

    def shape(self, key: str) -> tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, key: str) -> torch.dtype | None:
        raise NotImplementedError

    def tensor(self, key: str) -> torch.Tensor:
        raise NotImplementedError

    def dtype_name(self, key: str) -> str:
        return str(self.dtype(key)).replace("torch.", "")

    def original_key(self, key: str) -> str:
        return key


def _flatten(container: Mapping, prefix: str, out: dict[str, torch.Tensor], depth: int) -> None:
    for key, value in container.items():
        name = f"{prefix}{key}"
        if torch.is_tensor(value):
            out.setdefault(strip_prefix(name), value)
        elif isinstance(value, Mapping) and depth < MAX_NESTING:
            _flatten(value, name + ".", out, depth + 1)


class MappingSource(TensorSource):
    """A (possibly nested) dict of tensors, flattened to dotted keys with DDP/compile prefixes removed."""

    def __init__(self, state: Mapping):
        self._tensors: dict[str, torch.Tensor] = {}
        _flatten(state, "", self._tensors, 0)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(int(s) for s in self._tensors[key].shape)

    def dtype(self, key: str) -> torch.dtype | None:
        return self._tensors[key].dtype

    def tensor(self, key: str) -> torch.Tensor:
        return self._tensors[key].detach().cpu()


class SafetensorsSource(TensorSource):
    """A .safetensors file read lazily: the header gives keys, shapes and dtypes."""

    def __init__(self, handle, path: Path):
        self._handle = handle
        self._path = path
        self._names: dict[str, str] = {}
        for original in handle.keys():
            self._names.setdefault(strip_prefix(original), original)
        self._meta: dict[str, tuple[tuple[int, ...], str]] = {}

    def _slice_meta(self, key: str) -> tuple[tuple[int, ...], str]:
        if key not in self._meta:
            piece = self._handle.get_slice(self._names[key])
            self._meta[key] = (tuple(int(s) for s in piece.get_shape()), str(piece.get_dtype()))
        return self._meta[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._slice_meta(key)[0]

    def dtype(self, key: str) -> torch.dtype | None:
        return _SAFETENSORS_DTYPES.get(self._slice_meta(key)[1])

    def dtype_name(self, key: str) -> str:
        dtype = self.dtype(key)
        return str(dtype).replace("torch.", "") if dtype is not None else self._slice_meta(key)[1]

    def tensor(self, key: str) -> torch.Tensor:
        try:
            return self._handle.get_tensor(self._names[key])
        except Exception as exc:  # the library raises its own error types for bad data
            raise CheckpointError(f"unreadable tensor ({_first_line(exc)})", file=self._path, key=key) from exc

    def original_key(self, key: str) -> str:
        return self._names[key]


@contextlib.contextmanager
def open_safetensors(path: Path) -> Iterator[SafetensorsSource]:
    """The file's header as a TensorSource; invalid files raise one-line CheckpointErrors."""
    try:
        handle_cm = safe_open(str(path), framework="pt", device="cpu")
        handle = handle_cm.__enter__()
    except Exception as exc:  # bad headers raise the library's own error types
        raise CheckpointError(f"invalid safetensors file ({_first_line(exc)})", file=path) from exc
    try:
        yield SafetensorsSource(handle, path)
    finally:
        handle_cm.__exit__(None, None, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def sources_of(raw) -> list[TensorSource]:
    """Where to look in a loaded container: its wrapped state_dict first, then everything."""
    if not isinstance(raw, Mapping):
        return []
    sources = []
    for wrapper in WRAPPER_KEYS:
        inner = raw.get(wrapper)
        if isinstance(inner, Mapping):
            sources.append(MappingSource(inner))
    sources.append(MappingSource(raw))
    return sources


# ----------------------------------------------------------------------------- the locator


def _natural_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _group_rank(layout: ForeignLayout, key: str) -> int:
    for rank, name in enumerate(layout.group_order):
        if name in key:
            return rank
    return len(layout.group_order)


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _has(keys: set[str], prefix: str, requirement: str) -> bool:
    return any(prefix + alternative in keys for alternative in requirement.split("|"))


def _orientation_ok(source: TensorSource, layout: ForeignLayout, key: str, prefix: str) -> bool:
    """TRANSPOSE layouts store [D, K]: the count sibling must be as long as axis 1."""
    if layout.derive != TRANSPOSE or layout.count is None:
        return True
    count = source.shape(prefix + layout.count)
    shape = source.shape(key)
    return len(count) == 1 and count[0] == shape[1]


def _matches(source: TensorSource, keys: set[str], layout: ForeignLayout, key: str) -> str | None:
    """The module prefix when `key` is this layout's anchor, else None."""
    match = re.fullmatch(layout.anchor, key)
    if match is None:
        return None
    prefix = match.group("p")
    if not all(_has(keys, prefix, requirement) for requirement in layout.requires):
        return None
    if len(source.shape(key)) != layout.ndim:
        return None
    if not _orientation_ok(source, layout, key, prefix):
        return None
    return prefix


def _float_tensor(source: TensorSource, key: str, path, what: str) -> torch.Tensor:
    dtype = source.dtype(key)
    if dtype not in FLOAT_DTYPES:
        raise CheckpointError(
            f"{what} must hold floats", file=path, key=key, expected="a float dtype",
            actual=source.dtype_name(key),
        )
    return source.tensor(key)


def _initialised(source: TensorSource, keys: set[str], name: str | None) -> bool | None:
    if name is None or name not in keys:
        return None
    flag = source.tensor(name)
    if flag.numel() == 0:
        return None
    return bool(flag.flatten()[0].item() != 0)


def _count_tensor(source: TensorSource, keys: set[str], name: str | None, shape: tuple[int, ...], path) -> torch.Tensor | None:
    if name is None or name not in keys:
        return None
    counts = source.tensor(name)
    if tuple(counts.shape) != shape:
        raise CheckpointError(
            "per-code count does not match the codebook", file=path, key=name,
            expected=_shape_text(shape), actual=_shape_text(counts.shape),
        )
    if counts.dtype not in FLOAT_DTYPES:
        counts = counts.double()
    return counts


def _levels_of(source: TensorSource, keys: set[str], layout: ForeignLayout, key: str, prefix: str, path) -> list[ForeignLevel]:
    stored = _float_tensor(source, key, path, "a codebook")
    count_name = prefix + layout.count if layout.count else None
    initialised = _initialised(source, keys, prefix + layout.init_flag if layout.init_flag else None)
    derivation = f"{prefix}{layout.derivation()}" if layout.derive != DIRECT else key
    if layout.derive == TRANSPOSE:
        codebook = stored.t().contiguous()
        usage = _count_tensor(source, keys, count_name, (int(codebook.shape[0]),), path)
        return [ForeignLevel(key, key, layout.name, codebook, usage, initialised, layout.lookup, derivation)]
    if layout.derive == RATIO:
        assert count_name is not None
        counts = _count_tensor(source, keys, count_name, (int(stored.shape[0]),), path)
        assert counts is not None  # required by the layout
        # The library's own arithmetic, in the stored dtype, so lookups reproduce its codes.
        codebook = stored / counts.to(stored.dtype).clamp(min=layout.epsilon)[:, None]
        return [ForeignLevel(key, key, layout.name, codebook, counts, initialised, layout.lookup, derivation)]
    if stored.dim() == 2:
        usage = _count_tensor(source, keys, count_name, (int(stored.shape[0]),), path)
        return [ForeignLevel(key, key, layout.name, stored, usage, initialised, layout.lookup, derivation)]
    # [H, K, D]: one codebook per head (H = 1 when heads share one codebook).
    heads = int(stored.shape[0])
    counts = _count_tensor(source, keys, count_name, (heads, int(stored.shape[1])), path)
    levels = []
    for head in range(heads):
        name = key if heads == 1 else f"{key}[{head}]"
        usage = counts[head] if counts is not None else None
        levels.append(ForeignLevel(name, key, layout.name, stored[head], usage, initialised, layout.lookup, derivation if heads == 1 else f"{derivation}[{head}]"))
    return levels


def _annotate(levels: list[ForeignLevel], source: TensorSource, keys: set[str]) -> None:
    """Notes a user should see before trusting the scores."""
    for index, level in enumerate(levels):
        codebook = level.codebook
        if level.initialised is False:
            level.notes.append("never initialised (its init flag is 0): the codes are not trained yet")
        if codebook.shape[0] >= 2 and bool((codebook == codebook[:1]).all()):
            level.notes.append("all codes are identical: every channel scores the same")
        if level.layout == "vector-quantize-pytorch" and codebook.numel():
            norms = codebook.double().norm(dim=1)
            if bool(((norms - 1).abs() < 1e-4).all()):
                level.lookup = "cosine (rows are unit-norm: built with use_cosine_sim=True)"
        prefix = level.key.rsplit(".", 1)[0] + "." if "." in level.key else ""
        if level.layout == "vector-quantize-pytorch" and prefix + "codebook_mean" in keys:
            level.notes.append(
                "built with affine_param=True: lookups map the codes through a per-channel affine "
                "transform of running statistics; the stored codes are scored"
            )
        if level.layout == "taming-vqgan" and prefix + "used" in keys:
            used = source.shape(prefix + "used")
            level.notes.append(f"remaps indices: {prefix}used lists {used[0] if used else 0} codes")
        for earlier in levels[:index]:
            if earlier.codebook.shape == codebook.shape and torch.equal(earlier.codebook, codebook):
                level.notes.append(f"identical to {earlier.name} (a shared codebook)")
                break


def locate_known(source: TensorSource, path=None) -> list[ForeignLevel]:
    """Every codebook level of a known layout, in code order (sub-quantizer groups, then natural key order)."""
    keys = set(source.keys())
    ordered_keys = sorted(keys, key=_natural_key)
    claimed: set[str] = set()
    found: list[tuple[int, tuple, int, ForeignLevel]] = []
    for layout in LAYOUTS:
        for key in ordered_keys:
            if key in claimed:
                continue
            prefix = _matches(source, keys, layout, key)
            if prefix is None:
                continue
            claimed.add(key)
            for head, level in enumerate(_levels_of(source, keys, layout, key, prefix, path)):
                found.append((_group_rank(layout, key), _natural_key(key), head, level))
    found.sort(key=lambda item: item[:3])
    levels = [item[3] for item in found]
    _annotate(levels, source, keys)
    return levels


def _compile(pattern: str):
    """`re:REGEX` is a Python regular expression (whole key); anything else is a glob."""
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as exc:
            raise CheckpointError(
                f"{{}}: invalid regular expression {literal(repr(pattern[3:]))} ({literal(exc)})",
                settings=("codebook_key",),
            ) from exc
        return lambda key: regex.fullmatch(key) is not None
    return lambda key: fnmatch.fnmatchcase(key, pattern)


def locate_by_pattern(source: TensorSource, patterns: Iterable[str], path=None) -> list[ForeignLevel]:
    """The tensors whose prefix-stripped key matches any pattern, as levels in natural key order.

    A matched tensor that is a known layout's anchor is derived by that layout (e.g. Mimi's
    embed_sum / cluster_usage); any other must be a float [K, D] (one level, rows are codes) or
    [L, K, D] (L levels).
    """
    patterns = list(patterns)
    matchers = [_compile(p) for p in patterns]
    keys = set(source.keys())
    selected = [k for k in keys if any(m(k) for m in matchers)]
    if not selected:
        raise CheckpointError(
            f"{{}} {literal(' '.join(repr(p) for p in patterns))} matched no tensor"
            f" ({literal(candidate_text(source))})",
            file=path, settings=("codebook_key",),
        )
    known_layouts = {
        key: next(((layout, p) for layout in LAYOUTS if (p := _matches(source, keys, layout, key)) is not None), None)
        for key in selected
    }
    # The same code order as automatic detection: sub-quantizer groups, then natural key order.
    selected.sort(key=lambda k: (_group_rank(known_layouts[k][0], k) if known_layouts[k] else 0, _natural_key(k)))
    levels: list[ForeignLevel] = []
    for key in selected:
        known = known_layouts[key]
        if known is not None:
            levels.extend(_levels_of(source, keys, known[0], key, known[1], path))
            continue
        shape = source.shape(key)
        if len(shape) not in (2, 3):
            raise CheckpointError(
                "{} matched a tensor that is not a codebook", file=path, key=key, settings=("codebook_key",),
                expected="[K, D] or [L, K, D]", actual=_shape_text(shape),
            )
        tensor = _float_tensor(source, key, path, "a codebook")
        if tensor.dim() == 2:
            levels.append(ForeignLevel(key, key, CODEBOOK_KEY_LAYOUT, tensor, None, None, "unknown", key))
        else:
            for index in range(int(tensor.shape[0])):
                levels.append(ForeignLevel(f"{key}[{index}]", key, CODEBOOK_KEY_LAYOUT, tensor[index], None, None, "unknown", f"{key}[{index}]"))
    _annotate(levels, source, keys)
    return levels


def candidate_text(source: TensorSource, limit: int = 8) -> str:
    """A short list of the float 2-D / 3-D tensors that could be codebooks, for error messages."""
    candidates = [
        f"{k} {_shape_text(source.shape(k))}"
        for k in sorted(source.keys(), key=_natural_key)
        if len(source.shape(k)) in (2, 3) and source.dtype(k) in FLOAT_DTYPES
    ]
    if not candidates:
        return "it holds no float 2-D or 3-D tensor"
    shown = ", ".join(candidates[:limit]) + (", ..." if len(candidates) > limit else "")
    return f"float 2-D/3-D tensors: {shown} ({len(candidates)})"


def locate_codebooks(source: TensorSource, codebook_key: Iterable[str] | None = None, path=None) -> list[ForeignLevel]:
    """Named codebook levels: those matching `codebook_key` patterns, or every known layout's."""
    patterns = [p for p in (codebook_key or ()) if p]
    if patterns:
        return locate_by_pattern(source, patterns, path)
    return locate_known(source, path)


def locate_in_raw(raw, codebook_key: Iterable[str] | None = None, path=None) -> list[ForeignLevel]:
    """Levels in a loaded container: its wrapped state_dict first, then the whole container.

    With patterns, an empty result is an error (raised by the pattern locator); without, an
    empty list means no known layout was found.
    """
    sources = sources_of(raw)
    patterns = [p for p in (codebook_key or ()) if p]
    for number, source in enumerate(sources):
        if patterns and number < len(sources) - 1:
            # A pattern may name keys inside or outside the wrapper: try the wrapper quietly.
            keys = source.keys()
            matchers = [_compile(p) for p in patterns]
            if not any(m(k) for k in keys for m in matchers):
                continue
        levels = locate_codebooks(source, patterns, path)
        if levels:
            return levels
    if patterns and not sources:
        raise CheckpointError("{} needs a state_dict (a dict of tensors)", file=path, settings=("codebook_key",))
    return []


def layout_summary(levels: list[ForeignLevel]) -> str:
    """The layout name(s) of the levels, in order of first appearance, joined by '+'."""
    names: list[str] = []
    for level in levels:
        if level.layout not in names:
            names.append(level.layout)
    return "+".join(names)


def foreign_candidates(raw) -> str:
    """The float 2-D / 3-D tensors of a loaded container, for a 'no codebook found' message."""
    sources = sources_of(raw)
    return candidate_text(sources[-1]) if sources else "it is not a dict of tensors"
