"""Safe checkpoint loading: weights-only unpickling, layout and family detection, size inference."""

from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file as load_safetensors
from torch import nn

from cmg_base.errors import literal
from cmg_base.inputs import check_regular_file
from cmg_base.torch_archive import check_torch_archive
from hdcid.checkpoint_keys import (
    ENCODER_KEY,
    EPOCH_KEY,
    REFERENCE_KEYS,
    TEXT_LSTM_KEY,
    TOTAL_STEP_KEY,
)
from hdcid.models import EncoderSizes
from hdcid.modules import text_lstm
from hdcid.normalization import NORMALIZATION_KEY
from hdcid.registry import (
    FAMILY_SPECS,
    SizeKey,
    detect_family,
    encoder_key_pattern,
    family_spec,
    new_encoder,
)
from toc.codebook.foreign import (
    ForeignLevel,
    foreign_candidates,
    layout_summary,
    locate_codebooks,
    locate_in_raw,
    open_safetensors,
)
from toc.codebook.state_dicts import FLOAT_DTYPES, WRAPPER_KEYS, strip_prefix
from toc.data.npy import load_npy
from toc.errors import CheckpointError, SettingsError

LINEAR_VIDEO_KEY = "Video_encoder.video_linear.weight"
# Trained weights, codes and EMA statistics stay far below this; a value above it is corruption
# (it would overflow float32 on the way through the encoder).
MAX_WEIGHT_MAGNITUDE = 1e9
MAX_LSTM_WIDTH = 1 << 16
# The width of the word vectors the published text LSTM reads (BERT-base token embeddings): what
# raw text is taken to be when a checkpoint's LSTM entry is too damaged to say.
WORD_VECTOR_WIDTH = 768

# What a checkpoint holds besides the encoder's parameters and codebook. A command is refused for
# one of these fields only when it reads it (`reads` of the loaders); a field it does not read
# that holds something unusable is one warning, and the field is treated as absent.
EPOCH_FIELD = "epoch"  # the reference protocol's epoch rule (quirk Q1); shown by inspect
TOTAL_STEP_FIELD = "total_step"  # read by no command
USAGE_COUNTS_FIELD = "usage_counts"  # per-code EMA counts: inspect's usage column, `toc health CKPT`
EMA_STATISTICS_FIELD = "ema_statistics"  # EMA weights, batches since each code's last use: training
TEXT_LSTM_FIELD = "text_lstm"  # raw word vectors go through it (checked where they are encoded)
INPUT_NORMALIZATION_FIELD = "input_normalization"  # applied to the inputs by every encoding
# What every encoding reads besides the encoder (`load_checkpoint`'s default).
ENCODING_READS = (INPUT_NORMALIZATION_FIELD,)


class UnusedFieldWarning(UserWarning):
    """A checkpoint field that the command does not read holds something unusable."""


def settle_fields(unavailable: dict[str, CheckpointError], reads: Collection[str]) -> None:
    """Refuse the first unusable field the caller reads; warn once about each other one."""
    for name, problem in unavailable.items():
        if name in reads:
            raise problem
    for problem in unavailable.values():
        warnings.warn(UnusedFieldWarning(f"{problem}; treated as unavailable"), stacklevel=3)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_raw(path: Path, trust_checkpoint: bool):
    """Read any supported container into Python objects without executing pickled code."""
    check_regular_file(path, what="checkpoint", error=CheckpointError, missing="file not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_safetensors(str(path), device="cpu")
        except Exception as exc:  # the library raises its own error types for bad headers
            raise CheckpointError(f"invalid safetensors file ({_first_line(exc)})", file=path) from exc
    if suffix == ".npy":
        return torch.from_numpy(load_npy(path, what="codebook", error=CheckpointError))
    # torch neither checks record CRCs nor bounds compressed records: the archive is checked first.
    check_torch_archive(path, error=CheckpointError)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_checkpoint:
            raise CheckpointError(
                "refused: loading it needs arbitrary unpickling, which can run code; "
                "pass {} only if you trust this file"
                f" ({literal(_first_line(exc).split('Please file')[0].strip())})",
                file=path, settings=("trust_checkpoint",),
            ) from exc
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as inner:
            raise CheckpointError(f"unreadable checkpoint ({_first_line(inner)})", file=path) from inner
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(
            f"not a readable torch checkpoint (truncated or corrupt?): {_first_line(exc)}", file=path
        ) from exc
    except MemoryError:
        raise CheckpointError("not a readable torch checkpoint: it declares more data than fits in memory", file=path) from None
    except Exception as exc:
        raise CheckpointError(f"not a readable torch checkpoint: {_first_line(exc)}", file=path) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _strip_prefixes(state: dict) -> dict:
    return {strip_prefix(str(key)): value for key, value in state.items()}


_ENCODER_KEY_PATTERN = encoder_key_pattern()


def _looks_like_encoder(state) -> bool:
    return isinstance(state, dict) and any(isinstance(k, str) and _ENCODER_KEY_PATTERN.search(k) for k in state)


@dataclass
class Checkpoint:
    """A loaded checkpoint: family, sizes, codebooks per level, and the encoder it builds."""

    path: Path
    sha256: str
    family: str
    sizes: EncoderSizes
    encoder_state: dict[str, torch.Tensor] = field(repr=False)
    # The text LSTM, only when raw word vectors can go through it (sound, finite, and its output
    # is the text encoder's width); otherwise `text_lstm_problem` says why not.
    text_lstm_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    epoch: int | None = None
    total_step: int | None = None
    extra_keys: list[str] = field(default_factory=list)
    # Per-channel input statistics stored by `toc train --standardize-inputs`; re-applied on encode.
    input_normalization: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    # The word-vector width the file's text LSTM entry declares (WORD_VECTOR_WIDTH when the entry
    # is too damaged to say; None: no entry), and why raw text cannot go through it (None: it can).
    text_lstm_input_dim: int | None = None
    text_lstm_problem: CheckpointError | None = field(default=None, repr=False)
    # Fields that hold something unusable, by name (the *_FIELD constants): treated as absent.
    unavailable: dict[str, CheckpointError] = field(default_factory=dict, repr=False)

    @property
    def levels(self) -> int:
        return self.sizes.levels

    @property
    def codebooks(self) -> list[torch.Tensor]:
        embedding = self.encoder_state[family_spec(self.family).codebook_key]
        return [embedding] if embedding.dim() == 2 else list(embedding.unbind(0))

    @property
    def ema_counts(self) -> list[torch.Tensor] | None:
        counts = self.encoder_state.get(family_spec(self.family).ema_count_key)
        if counts is None or USAGE_COUNTS_FIELD in self.unavailable:
            return None
        return [counts] if counts.dim() == 1 else list(counts.unbind(0))

    def build_encoder(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.Module:
        """The family's encoder (hdcid.registry) with this checkpoint's weights, strict-loaded, in
        eval mode."""
        # Cast the module before loading: loading into float32 first would round a float64
        # checkpoint's weights through float32.
        encoder = new_encoder(self.sizes).to(dtype)
        load_state_strict(encoder, self.encoder_state, self.path, ENCODER_KEY)
        return encoder.to(device=device).eval()

    def build_text_lstm(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.LSTM | None:
        """The text LSTM that raw word vectors go through (None: the file holds none); a damaged
        or ill-fitting one is refused here, where it would be used, never run."""
        if self.text_lstm_problem is not None:
            raise self.text_lstm_problem
        if not self.text_lstm_state:
            return None
        state = self.text_lstm_state
        lstm = text_lstm(int(state["weight_ih_l0"].shape[1]), int(state["weight_hh_l0"].shape[1]))
        load_state_strict(lstm, state, self.path, TEXT_LSTM_KEY)
        return lstm.to(device=device, dtype=dtype).eval()


def check_state(expected: dict[str, torch.Tensor], state: dict, path: Path, where: str) -> None:
    """Missing / unexpected / mis-shaped keys of `state` against `expected`, named in one line."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short_list(unexpected)}")
        raise CheckpointError("; ".join(parts), file=path, key=where)
    for key, tensor in expected.items():
        value = state[key]
        if not torch.is_tensor(value):
            raise CheckpointError("not a tensor", file=path, key=f"{where}.{key}", expected="tensor", actual=type(value).__name__)
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(
                "wrong shape", file=path, key=f"{where}.{key}", expected=list(tensor.shape), actual=list(value.shape)
            )


def load_state_strict(module: nn.Module, state: dict, path: Path, where: str) -> None:
    """`load_state_dict(strict=True)` with missing / unexpected / mis-shaped keys named in one line."""
    expected = module.state_dict()
    check_state(expected, state, path, where)
    converted = {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in state.items()}
    module.load_state_dict(converted, strict=True)


def _short_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"


def _dim(state: dict, key: str, axis: int, path: Path) -> int:
    tensor = state.get(key)
    if tensor is None:
        raise CheckpointError("missing key needed to infer the model sizes", file=path, key=key)
    if not torch.is_tensor(tensor) or tensor.dim() <= axis:
        actual = list(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
        raise CheckpointError("unexpected tensor", file=path, key=key, expected=f"a tensor with > {axis} dims", actual=actual)
    return int(tensor.shape[axis])


def infer_sizes(state: dict, path: Path) -> EncoderSizes:
    """Read every size from the state_dict's shapes, as the family's registry entry says."""
    family = detect_family(state)
    if family is None:
        markers = " / ".join(
            "+".join(group) for spec in FAMILY_SPECS.values() for group in spec.markers
        )
        raise CheckpointError(
            f"cannot tell the model family from the encoder keys (none of {markers} found; "
            f"keys start with {_short_list(sorted({k.split('.')[0] for k in state}))})",
            file=path,
        )
    spec = family_spec(family)
    embedding = state.get(spec.codebook_key)
    if embedding is None or not torch.is_tensor(embedding):
        raise CheckpointError("missing codebook", file=path, key=spec.codebook_key)
    expected_dims = 2 if spec.levels == 1 else 3  # [N, D], or [levels, N, D]
    if embedding.dim() != expected_dims:
        raise CheckpointError(
            f"codebook has the wrong rank for a {family} checkpoint",
            file=path, key=spec.codebook_key,
            expected=f"{expected_dims} dims", actual=list(embedding.shape),
        )
    layers = spec.layer_indices(state)
    size_keys = dict(spec.size_keys)
    # A linear video branch (own video features without a spatial grid) in place of the published
    # convolutional one: its width is read from the linear layer.
    video_grid = LINEAR_VIDEO_KEY not in state
    if not video_grid and "video_output_dim" in size_keys:
        size_keys["video_output_dim"] = SizeKey(LINEAR_VIDEO_KEY, 0)
    fields = {name: _dim(state, where.key, where.axis, path) for name, where in size_keys.items()}
    if not video_grid:
        fields["video_grid"] = False
    fields.update(
        n_embeddings=int(embedding.shape[-2]),
        embedding_dim=int(embedding.shape[-1]),
        itrm_layers=max(layers) + 1 if layers else spec.base_sizes.itrm_layers,
    )
    d_model = _dim(state, spec.width_key, 0, path)
    if d_model != fields["embedding_dim"]:
        raise CheckpointError(
            "semantic width differs from the code width",
            file=path, key=spec.width_key,
            expected=f"{fields['embedding_dim']} rows", actual=d_model,
        )
    if d_model % 4:
        raise CheckpointError("transformer width is not divisible by the 4 attention heads", file=path, key=spec.width_key, expected="a multiple of 4", actual=d_model)
    return replace(spec.base_sizes, **fields)


def _check_tensors(state: dict, path: Path, where: str) -> None:
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise CheckpointError("not a tensor", file=path, key=f"{where}.{key}", expected="tensor", actual=type(value).__name__)
        if value.dtype not in FLOAT_DTYPES:
            raise CheckpointError("unsupported dtype", file=path, key=f"{where}.{key}", expected="a float dtype", actual=str(value.dtype).replace("torch.", ""))
        # A saved view may declare a shape whose elements share storage (stride 0): a few bytes
        # that any computation would expand to the declared size.
        declared, stored = value.numel() * value.element_size(), value.untyped_storage().nbytes()
        if declared > stored:
            raise CheckpointError(
                "tensor declares more elements than its storage holds (overlapping strides)",
                file=path, key=f"{where}.{key}", expected=f"at most {stored:,} bytes",
                actual=f"{list(value.shape)} = {declared:,} bytes",
            )


def _unwrap(raw, path: Path) -> tuple[dict, dict]:
    """Return (encoder_state, container) from any accepted layout."""
    if isinstance(raw, dict):
        if ENCODER_KEY in raw:
            encoder_state = raw[ENCODER_KEY]
            if not isinstance(encoder_state, dict):
                raise CheckpointError("not a state_dict", file=path, key=ENCODER_KEY, expected="dict", actual=type(encoder_state).__name__)
            return _strip_prefixes(encoder_state), raw
        for wrapper in WRAPPER_KEYS:
            if wrapper in raw and isinstance(raw[wrapper], dict):
                inner = _strip_prefixes(raw[wrapper])
                if _looks_like_encoder(inner):
                    return inner, raw
        stripped = _strip_prefixes(raw)
        if _looks_like_encoder(stripped):
            return stripped, {}
        keys = ", ".join(sorted(map(str, raw))[:12]) + (", ..." if len(raw) > 12 else "")
        raise CheckpointError(f"unknown checkpoint layout; top-level keys found: [{keys}]", file=path)
    raise CheckpointError(f"unknown checkpoint layout: top level is a {type(raw).__name__}, not a dict", file=path)


def _check_normalization(stats, path: Path, sizes: EncoderSizes) -> dict[str, torch.Tensor]:
    if not isinstance(stats, dict):
        raise CheckpointError("not a dict", file=path, key=NORMALIZATION_KEY, expected="dict", actual=type(stats).__name__)
    widths = {"audio": sizes.audio_dim, "video": sizes.video_dim}
    out = {}
    for name, value in stats.items():
        modality = str(name).split("_")[0]
        if modality not in widths or not torch.is_tensor(value) or value.dtype not in FLOAT_DTYPES:
            raise CheckpointError("unexpected entry", file=path, key=f"{NORMALIZATION_KEY}.{name}")
        if tuple(value.shape) != (widths[modality],):
            raise CheckpointError("wrong shape", file=path, key=f"{NORMALIZATION_KEY}.{name}", expected=[widths[modality]], actual=list(value.shape))
        if not torch.isfinite(value).all() or (name.endswith("_std") and (value <= 0).any()):
            raise CheckpointError("non-finite or non-positive statistics", file=path, key=f"{NORMALIZATION_KEY}.{name}")
        out[str(name)] = value.double()
    return out


def _read_text_lstm(entry, path: Path, sizes: EncoderSizes) -> tuple[dict | None, int, CheckpointError | None, bool]:
    """The text LSTM entry, checked without running or materialising anything: (state when raw
    word vectors can go through it, the word-vector width it declares, why they cannot, whether
    the entry is damaged rather than merely made for another text width).

    Shapes are checked on the meta device before any value is read; a sound LSTM whose output
    (2 x hidden, bidirectional) is not the text encoder's width is legitimate (the reference
    saves its LSTM whatever the encoder's text width) and only refused for raw text."""
    key = TEXT_LSTM_KEY
    if not isinstance(entry, dict):
        return None, WORD_VECTOR_WIDTH, CheckpointError(
            "not an LSTM state_dict", file=path, key=key, expected="dict", actual=type(entry).__name__,
        ), True
    state = _strip_prefixes(entry)
    ih, hh = state.get("weight_ih_l0"), state.get("weight_hh_l0")
    shapes_ok = (
        torch.is_tensor(ih) and torch.is_tensor(hh) and ih.dim() == 2 and hh.dim() == 2
        and 1 <= hh.shape[1] <= MAX_LSTM_WIDTH and 1 <= ih.shape[1] <= MAX_LSTM_WIDTH
    )
    if not shapes_ok:
        shown = " and ".join(str(list(t.shape)) if torch.is_tensor(t) else type(t).__name__ for t in (ih, hh))
        return None, WORD_VECTOR_WIDTH, CheckpointError(
            "not an LSTM state_dict", file=path, key=f"{key}.weight_ih_l0",
            expected=f"2-D weights [4H, I] and [4H, H] with 1 <= I, H <= {MAX_LSTM_WIDTH}", actual=shown,
        ), True
    width, hidden = int(ih.shape[1]), int(hh.shape[1])
    try:
        with torch.device("meta"):
            expected = text_lstm(width, hidden).state_dict()
        check_state(expected, state, path, key)
        _check_tensors(state, path, key)
        _check_values(state, path, key, "a weight of the text LSTM")
    except CheckpointError as problem:
        return None, width, problem, True
    if sizes.text_dim is None or 2 * hidden != sizes.text_dim:
        expected_text = (
            f"hidden size {sizes.text_dim // 2} (2 x hidden = text width {sizes.text_dim})"
            if sizes.text_dim is not None else "no text LSTM (the encoder has no text branch)"
        )
        return None, width, CheckpointError(
            "the text LSTM's output does not fit the text encoder", file=path, key=f"{key}.weight_hh_l0",
            expected=expected_text, actual=f"hidden size {hidden}",
        ), False
    return state, width, None, False


def _check_values(state: dict, path: Path, where: str, what: str) -> None:
    """Every float tensor of `state` is finite and of a sane magnitude (shapes already checked)."""
    for key, value in state.items():
        if not torch.is_tensor(value) or not value.is_floating_point() or value.numel() == 0:
            continue
        values = value.detach().double()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise CheckpointError(
                f"{bad} NaN/Inf value(s) in {what}; the checkpoint is corrupt",
                file=path, key=f"{where}.{key}", expected="finite values",
            )
        largest = float(values.abs().max())
        if largest > MAX_WEIGHT_MAGNITUDE:
            raise CheckpointError(
                f"finite but absurd values in {what}; the checkpoint is corrupt",
                file=path, key=f"{where}.{key}",
                expected=f"|x| <= {MAX_WEIGHT_MAGNITUDE:.0e}", actual=f"|x| up to {largest:.3g}",
            )


def check_encoding_values(checkpoint: Checkpoint) -> None:
    """Every float tensor that takes part in encoding — the parameters and the codebook, not the
    quantizer's training statistics — is finite and of a sane magnitude.

    A NaN weight makes every distance NaN and every code 0, which looks like a result; 1e200 is
    finite but overflows float32 (and every square overflows float64), so it is refused with its
    own message rather than as NaN. (The text LSTM is checked where raw text goes through it.)
    """
    statistics = set(family_spec(checkpoint.family).statistics_keys)
    used = {k: v for k, v in checkpoint.encoder_state.items() if k not in statistics}
    _check_values(used, checkpoint.path, ENCODER_KEY, "a weight used for encoding")


def _statistics_problems(state: dict, family: str, path: Path) -> dict[str, CheckpointError]:
    """The quantizer's training statistics, checked as fields: usage counts finite and >= 0, the
    other statistics finite. Encoding never reads them."""
    spec = family_spec(family)
    problems: dict[str, CheckpointError] = {}
    for key in spec.statistics_keys:
        value = state.get(key)
        if not torch.is_tensor(value) or value.numel() == 0:
            continue
        values = value.detach().double()
        counts = key == spec.ema_count_key
        bad = ~torch.isfinite(values)
        if counts:
            bad |= values < 0
        if bool(bad.any()):
            name = USAGE_COUNTS_FIELD if counts else EMA_STATISTICS_FIELD
            problems.setdefault(name, CheckpointError(
                f"{int(bad.sum())} value(s) NaN, infinite{' or negative' if counts else ''} in a training statistic",
                file=path, key=f"{ENCODER_KEY}.{key}", expected="finite counts >= 0" if counts else "finite values",
            ))
    return problems


# An epoch or step count above this is not one (the reference protocol trains n - epoch - 1 epochs).
MAX_COUNT = 1 << 40


def _count(value, path: Path, key: str) -> int | None:
    """An epoch / step counter: an integer (or a one-element integer tensor) in 0..MAX_COUNT;
    None when absent or not a number at all (older files store other things under these keys);
    CheckpointError for a number that is no count."""
    if torch.is_tensor(value) and value.numel() == 1 and not value.is_floating_point() and not value.is_complex():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    if not 0 <= int(value) <= MAX_COUNT:
        raise CheckpointError("not a plausible count", file=path, key=key, expected=f"0..{MAX_COUNT}", actual=int(value))
    return int(value)


def load_checkpoint(
    path: str | Path, *, trust_checkpoint: bool = False, reads: Collection[str] = ENCODING_READS,
) -> Checkpoint:
    """Load a reference-format (or bare state_dict, prefixed, safetensors) encoder checkpoint;
    every value the encoder will use is checked (finite, sane magnitude) before it is returned.

    The other fields (the *_FIELD names: counters, training statistics, the text LSTM, input
    statistics) are checked too, but an unusable one is refused only when it is in `reads` (what
    the caller's result depends on); otherwise it is one UnusedFieldWarning and treated as absent.
    The text LSTM is checked again where raw text would go through it (`build_text_lstm`)."""
    path = Path(path)
    raw = _read_raw(path, trust_checkpoint)
    try:
        checkpoint = _checkpoint_from_raw(raw, path)
    except CheckpointError as exc:
        _refuse_foreign_encoder(raw, path, exc)
        raise
    check_encoding_values(checkpoint)
    settle_fields(checkpoint.unavailable, reads)
    return checkpoint


def _refuse_foreign_encoder(raw, path: Path, cause: CheckpointError) -> None:
    """Say plainly when the file is another VQ model's: its codebooks can be scored, not encoded with."""
    try:
        levels = locate_in_raw(raw, path=path)
    except CheckpointError:
        return
    if levels:
        raise CheckpointError(
            f"a {layout_summary(levels)} checkpoint ({len(levels)} codebook level(s)), not a CMG / DCID / "
            "H-DCID encoder: toc inspect / score / select / plot read its codebooks, but encoding and "
            "evaluation need a CMG encoder",
            file=path,
        ) from cause


def _checkpoint_from_raw(raw, path: Path) -> Checkpoint:
    encoder_state, container = _unwrap(raw, path)
    _check_tensors(encoder_state, path, ENCODER_KEY)
    sizes = infer_sizes(encoder_state, path)
    # Fail now, with key names, rather than later inside the encoder build; the meta device
    # gives the expected keys and shapes without allocating or initialising any weights.
    with torch.device("meta"):
        expected = new_encoder(sizes).state_dict()
    check_state(expected, encoder_state, path, ENCODER_KEY)
    unavailable = _statistics_problems(encoder_state, sizes.family, path)
    # Auxiliary modules and fields: each is checked, none is needed to load (see load_checkpoint).
    text_state, text_width, text_problem = None, None, None
    if container and TEXT_LSTM_KEY in container:
        text_state, text_width, text_problem, damaged = _read_text_lstm(container[TEXT_LSTM_KEY], path, sizes)
        if damaged:
            unavailable[TEXT_LSTM_FIELD] = text_problem
    normalization = container.get(NORMALIZATION_KEY) if container else None
    if normalization is not None:
        try:
            normalization = _check_normalization(normalization, path, sizes)
        except CheckpointError as problem:
            unavailable[INPUT_NORMALIZATION_FIELD] = problem
            normalization = None
    counters = {}
    for name, key in ((EPOCH_FIELD, EPOCH_KEY), (TOTAL_STEP_FIELD, TOTAL_STEP_KEY)):
        try:
            counters[name] = _count(container.get(key) if container else None, path, key)
        except CheckpointError as problem:
            unavailable[name] = problem
            counters[name] = None
    return Checkpoint(
        path=path,
        sha256=file_sha256(path),
        family=sizes.family,
        sizes=sizes,
        encoder_state=encoder_state,
        text_lstm_state=text_state,
        epoch=counters[EPOCH_FIELD],
        total_step=counters[TOTAL_STEP_FIELD],
        extra_keys=sorted(str(k) for k in container if k not in REFERENCE_KEYS) if container else [],
        input_normalization=normalization,
        text_lstm_input_dim=text_width,
        text_lstm_problem=text_problem,
        unavailable=unavailable,
    )


# ---------------------------------------------------------------------- codebooks only


@dataclass
class LoadedCodebooks:
    """Codebooks from a checkpoint of any family or from a bare codebook file."""

    path: Path
    sha256: str
    family: str  # a checkpoint family, or "codebook" for a bare codebook file
    codebooks: list[torch.Tensor]  # one [N, D] per level, dtype as stored, CPU
    ema_counts: list[torch.Tensor] | None  # None also when they are unusable (see `unavailable`)
    epoch: int | None
    sizes: dict[str, int]
    # Levels of another VQ model's file (toc.codebook.foreign): names, layout, usage, notes.
    foreign: list[ForeignLevel] | None = None
    # Fields that hold something unusable, by name (the *_FIELD constants): treated as absent.
    unavailable: dict[str, CheckpointError] = field(default_factory=dict)


def _bare_codebook(raw, path: Path) -> torch.Tensor | None:
    candidate = raw
    if isinstance(raw, np.ndarray):
        candidate = torch.from_numpy(raw)
    if isinstance(raw, dict):
        tensors = {k: v for k, v in raw.items() if torch.is_tensor(v) or isinstance(v, np.ndarray)}
        if len(raw) == 1 and len(tensors) == 1:
            candidate = next(iter(tensors.values()))
            candidate = torch.from_numpy(candidate) if isinstance(candidate, np.ndarray) else candidate
        else:
            return None
    if not torch.is_tensor(candidate):
        return None
    if candidate.dim() not in (2, 3):
        raise CheckpointError("a codebook must be [N, D] or [L, N, D]", file=path, expected="2 or 3 dims", actual=list(candidate.shape))
    if candidate.dtype not in FLOAT_DTYPES:
        raise CheckpointError("a codebook must hold floats", file=path, expected="a float dtype", actual=str(candidate.dtype).replace("torch.", ""))
    return candidate


def check_codebook_values(loaded: LoadedCodebooks, *, allow_nonfinite: bool = False) -> None:
    """The codebooks are finite and sane (unless `allow_nonfinite`: scoring then skips those
    channels). EMA usage counts that are not finite and non-negative are recorded as unavailable
    (USAGE_COUNTS_FIELD) and dropped: a usage report built on NaN would look like a result."""
    if not allow_nonfinite:
        for level, codebook in enumerate(loaded.codebooks):
            values = codebook.detach().double()
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                channels = torch.nonzero(~finite.all(dim=0)).flatten().tolist()
                raise CheckpointError(
                    f"level {level}: NaN/Inf values in {len(channels)} channel(s) {channels[:8]}; the codebook is "
                    "corrupt (pass {} to skip those channels where a command allows it)",
                    file=loaded.path, settings=("allow_nonfinite",),
                )
            largest = float(values.abs().max()) if values.numel() else 0.0
            if largest > MAX_WEIGHT_MAGNITUDE:
                raise CheckpointError(
                    f"level {level}: finite but absurd codebook values; the codebook is corrupt",
                    file=loaded.path, expected=f"|x| <= {MAX_WEIGHT_MAGNITUDE:.0e}", actual=f"|x| up to {largest:.3g}",
                )
    for level, counts in enumerate(loaded.ema_counts or []):
        values = counts.detach().double()
        if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            name = loaded.foreign[level].name if loaded.foreign else f"level {level}"
            loaded.unavailable.setdefault(USAGE_COUNTS_FIELD, CheckpointError(
                f"{name}: EMA usage counts are NaN, infinite or negative", file=loaded.path,
                expected="finite counts >= 0",
            ))
    if USAGE_COUNTS_FIELD in loaded.unavailable:
        loaded.ema_counts = None


def load_codebooks(
    path: str | Path, *, trust_checkpoint: bool = False, codebook_key: tuple[str, ...] | list[str] | None = None,
    allow_nonfinite: bool = False, reads: Collection[str] = (),
) -> LoadedCodebooks:
    """Codebooks per level from a reference checkpoint (any family), a bare codebook file, or
    another VQ model's state_dict (a known layout, or the tensors `codebook_key` patterns name),
    checked by `check_codebook_values`. A checkpoint's other fields are refused only when they
    are in `reads` (e.g. USAGE_COUNTS_FIELD for `toc health`); see load_checkpoint."""
    loaded = _load_codebooks(Path(path), trust_checkpoint, tuple(p for p in (codebook_key or ()) if p))
    check_codebook_values(loaded, allow_nonfinite=allow_nonfinite)
    settle_fields(loaded.unavailable, reads)
    return loaded


def _load_codebooks(path: Path, trust_checkpoint: bool, codebook_key: tuple[str, ...]) -> LoadedCodebooks:
    if path.suffix.lower() == ".safetensors" and path.is_file() and path.stat().st_size > 0:
        # Header first: a large model's codebooks are found and read without loading the rest.
        with open_safetensors(path) as source:
            levels = None
            if codebook_key or not _looks_like_encoder(dict.fromkeys(source.keys())):
                levels = locate_codebooks(source, codebook_key, path)
        if levels:
            return _foreign_codebooks(path, levels)
    raw = _read_raw(path, trust_checkpoint)
    if codebook_key:
        return _foreign_codebooks(path, locate_in_raw(raw, codebook_key, path))
    bare = None
    if not (isinstance(raw, dict) and (ENCODER_KEY in raw or _looks_like_encoder(_strip_prefixes(raw)))):
        foreign = locate_in_raw(raw, path=path)
        if foreign:
            return _foreign_codebooks(path, foreign)
        bare = _bare_codebook(raw, path)
    if bare is not None:
        levels = [bare] if bare.dim() == 2 else list(bare.unbind(0))
        return LoadedCodebooks(
            path=path, sha256=file_sha256(path), family="codebook", codebooks=levels, ema_counts=None,
            epoch=None, sizes={"levels": len(levels), "n_embeddings": int(bare.shape[-2]), "embedding_dim": int(bare.shape[-1])},
        )
    if isinstance(raw, dict) and not _holds_encoder(raw):
        raise CheckpointError(
            "no codebook found: not a CMG checkpoint, not a bare codebook, and no known VQ layout "
            f"matched ({literal(foreign_candidates(raw))}); name the codebook tensor(s) with {{}} PATTERN",
            file=path, settings=("codebook_key",),
        )
    checkpoint = _checkpoint_from_raw(raw, path)
    return LoadedCodebooks(
        path=path, sha256=checkpoint.sha256, family=checkpoint.family, codebooks=checkpoint.codebooks,
        ema_counts=None if USAGE_COUNTS_FIELD in checkpoint.unavailable else checkpoint.ema_counts,
        epoch=checkpoint.epoch, sizes=checkpoint.sizes.as_dict(), unavailable=dict(checkpoint.unavailable),
    )


def _holds_encoder(raw: dict) -> bool:
    """Whether `_unwrap` would find a CMG encoder state_dict in this container."""
    if ENCODER_KEY in raw or _looks_like_encoder(_strip_prefixes(raw)):
        return True
    return any(isinstance(raw.get(w), dict) and _looks_like_encoder(_strip_prefixes(raw[w])) for w in WRAPPER_KEYS)


def _foreign_codebooks(path: Path, levels: list[ForeignLevel]) -> LoadedCodebooks:
    shapes = {tuple(level.codebook.shape) for level in levels}
    sizes = {"levels": len(levels)}
    if len(shapes) == 1:
        ((n, d),) = shapes
        sizes.update(n_embeddings=int(n), embedding_dim=int(d))
    counts = [level.usage for level in levels]
    return LoadedCodebooks(
        path=path, sha256=file_sha256(path), family=layout_summary(levels),
        codebooks=[level.codebook for level in levels],
        ema_counts=counts if all(c is not None for c in counts) else None,  # type: ignore[misc]
        epoch=None, sizes=sizes, foreign=levels,
    )


def choose_levels(loaded: LoadedCodebooks, level: str | int) -> list[int]:
    """The codebook levels a command works on: "all", one level number that the file has, or
    (another VQ model's file) one level's name."""
    count = len(loaded.codebooks)
    if level == "all":
        return list(range(count))
    names = [info.name for info in loaded.foreign or ()]
    if level in names:
        return [names.index(level)]
    try:
        value = int(level)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{{}}: expected 'all', a level number or a level name, got {literal(repr(level))}", settings=("level",),
        ) from None
    if not 0 <= value < count:
        raise SettingsError(
            f"{{}}: level {value} does not exist in {loaded.path} (it has {count} level(s): 0..{count - 1})",
            settings=("level",),
        )
    return [value]
