"""Safe checkpoint loading: weights-only unpickling, layout and family detection, size inference."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file as load_safetensors
from torch import nn

from cmg_base.errors import literal
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
from toc.errors import CheckpointError, SettingsError

LINEAR_VIDEO_KEY = "Video_encoder.video_linear.weight"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_raw(path: Path, trust_checkpoint: bool):
    """Read any supported container into Python objects without executing pickled code."""
    if not path.exists():
        raise CheckpointError("file not found", file=path)
    if path.is_dir():
        raise CheckpointError("is a directory, not a checkpoint file", file=path)
    if path.stat().st_size == 0:
        raise CheckpointError("empty file (0 bytes)", file=path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_safetensors(str(path), device="cpu")
        except Exception as exc:  # the library raises its own error types for bad headers
            raise CheckpointError(f"invalid safetensors file ({_first_line(exc)})", file=path) from exc
    if suffix == ".npy":
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise CheckpointError(f"not a plain numeric .npy array ({_first_line(exc)})", file=path) from exc
        except Exception as exc:
            raise CheckpointError(f"unreadable .npy file ({_first_line(exc)})", file=path) from exc
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
    text_lstm_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    epoch: int | None = None
    total_step: int | None = None
    extra_keys: list[str] = field(default_factory=list)
    # Per-channel input statistics stored by `toc train --standardize-inputs`; re-applied on encode.
    input_normalization: dict[str, torch.Tensor] | None = field(default=None, repr=False)

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
        if counts is None:
            return None
        return [counts] if counts.dim() == 1 else list(counts.unbind(0))

    @property
    def text_lstm_input_dim(self) -> int | None:
        if not self.text_lstm_state:
            return None
        return int(self.text_lstm_state["weight_ih_l0"].shape[1])

    def build_encoder(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.Module:
        """The family's encoder (hdcid.registry) with this checkpoint's weights, strict-loaded, in
        eval mode."""
        # Cast the module before loading: loading into float32 first would round a float64
        # checkpoint's weights through float32.
        encoder = new_encoder(self.sizes).to(dtype)
        load_state_strict(encoder, self.encoder_state, self.path, ENCODER_KEY)
        return encoder.to(device=device).eval()

    def build_text_lstm(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> nn.LSTM | None:
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


def load_checkpoint(path: str | Path, *, trust_checkpoint: bool = False) -> Checkpoint:
    """Load a reference-format (or bare state_dict, prefixed, safetensors) encoder checkpoint."""
    path = Path(path)
    raw = _read_raw(path, trust_checkpoint)
    try:
        return _checkpoint_from_raw(raw, path)
    except CheckpointError as exc:
        _refuse_foreign_encoder(raw, path, exc)
        raise


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
    text_state = container.get(TEXT_LSTM_KEY) if container else None
    if text_state is not None:
        if not isinstance(text_state, dict) or "weight_ih_l0" not in text_state or "weight_hh_l0" not in text_state:
            raise CheckpointError("not an LSTM state_dict", file=path, key=TEXT_LSTM_KEY)
        text_state = _strip_prefixes(text_state)
        _check_tensors(text_state, path, TEXT_LSTM_KEY)
    normalization = container.get(NORMALIZATION_KEY) if container else None
    if normalization is not None:
        normalization = _check_normalization(normalization, path, sizes)
    epoch = container.get(EPOCH_KEY) if container else None
    total_step = container.get(TOTAL_STEP_KEY) if container else None
    checkpoint = Checkpoint(
        path=path,
        sha256=file_sha256(path),
        family=sizes.family,
        sizes=sizes,
        encoder_state=encoder_state,
        text_lstm_state=text_state,
        epoch=int(epoch) if isinstance(epoch, (int, np.integer)) or (torch.is_tensor(epoch) and epoch.numel() == 1) else None,
        total_step=int(total_step) if isinstance(total_step, (int, np.integer)) else None,
        extra_keys=sorted(str(k) for k in container if k not in REFERENCE_KEYS) if container else [],
        input_normalization=normalization,
    )
    # Fail now, with key names, rather than later inside the encoder build; the meta device
    # gives the expected keys and shapes without allocating or initialising any weights.
    with torch.device("meta"):
        expected = new_encoder(sizes).state_dict()
    check_state(expected, encoder_state, path, ENCODER_KEY)
    return checkpoint


# ---------------------------------------------------------------------- codebooks only


@dataclass
class LoadedCodebooks:
    """Codebooks from a checkpoint of any family or from a bare codebook file."""

    path: Path
    sha256: str
    family: str  # a checkpoint family, or "codebook" for a bare codebook file
    codebooks: list[torch.Tensor]  # one [N, D] per level, dtype as stored, CPU
    ema_counts: list[torch.Tensor] | None
    epoch: int | None
    sizes: dict[str, int]
    # Levels of another VQ model's file (toc.codebook.foreign): names, layout, usage, notes.
    foreign: list[ForeignLevel] | None = None


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


def load_codebooks(
    path: str | Path, *, trust_checkpoint: bool = False, codebook_key: tuple[str, ...] | list[str] | None = None,
) -> LoadedCodebooks:
    """Codebooks per level from a reference checkpoint (any family), a bare codebook file, or
    another VQ model's state_dict (a known layout, or the tensors `codebook_key` patterns name)."""
    path = Path(path)
    codebook_key = tuple(p for p in (codebook_key or ()) if p)
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
        ema_counts=checkpoint.ema_counts, epoch=checkpoint.epoch, sizes=checkpoint.sizes.as_dict(),
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
