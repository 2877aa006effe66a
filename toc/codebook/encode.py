"""Features → code indices and quantized vectors per codebook level, batched, with an h5 writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from cmg_base.errors import literal
from cmg_base.files import atomic_path, check_space
from cmg_base.inputs import check_regular_file
from hdcid import normalization
from hdcid.modules import MIN_VIDEO_GRID, run_text_lstm
from hdcid.quantizer import NonFiniteFeatures
from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE, DTYPES, torch_dtype
from toc.codebook.checkpoint import INPUT_NORMALIZATION_FIELD, Checkpoint
from toc.data.hdf5 import H5Input
from toc.data.npy import load_npy
from toc.errors import CheckpointError, ConfigError, DataError, SettingsError
from toc.progress import Advance, ProgressFactory, no_progress
from toc.vocabulary import ENCODE_BATCH_SIZE


def expected_feature_shape(checkpoint: Checkpoint, modality: str) -> tuple[str, ...]:
    """The per-clip shape an input must have, for messages: e.g. ('T', '7', '7', '512')."""
    sizes = checkpoint.sizes
    if modality == "audio":
        return ("T", str(sizes.audio_dim))
    if modality == "video":
        return ("T", "H", "W", str(sizes.video_dim)) if sizes.video_grid else ("T", str(sizes.video_dim))
    widths = [str(sizes.text_dim)]
    if checkpoint.text_lstm_state and checkpoint.text_lstm_input_dim != sizes.text_dim:
        widths.append(str(checkpoint.text_lstm_input_dim))  # raw word vectors, through the LSTM
    return ("T", "|".join(widths))


# How much memory one forward pass may take: batches of long clips are split below the requested
# batch size to stay within it (codes do not depend on the batch size), and a clip too long to
# encode alone within it is refused, before anything is read.
WORKING_SET_BYTES = 512 << 20
ATTENTION_HEADS = 4


def clip_bytes(checkpoint: Checkpoint, modality: str, shape: tuple[int, ...], itemsize: int) -> int:
    """About the memory one clip of per-clip shape `shape[1:]` takes through the encoder: its
    float64 copy and the compute-dtype copies, plus the T x T attention weights of each head."""
    steps = int(shape[1])
    per_step = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    width = max(checkpoint.sizes.embedding_dim, checkpoint.sizes.dim_feedforward)
    return steps * per_step * (8 * 2 + itemsize * 2) + steps * width * itemsize * 8 + 3 * ATTENTION_HEADS * steps * steps * itemsize


def rows_per_pass(checkpoint: Checkpoint, modality: str, shape: tuple[int, ...], itemsize: int, batch_size: int,
                  source: str, key: str | None = None) -> int:
    """The batch size actually used: `batch_size`, or fewer rows when clips are long."""
    per_clip = clip_bytes(checkpoint, modality, shape, itemsize)
    if per_clip > WORKING_SET_BYTES:
        raise DataError(
            f"clips too long to encode: one clip of {shape[1]} steps needs about {per_clip / 2**20:,.0f} MiB "
            f"(attention is quadratic in the steps)", file=source, key=key,
            expected=f"at most {WORKING_SET_BYTES >> 20} MiB per clip", actual=f"shape {list(shape)}",
        )
    return max(1, min(batch_size, WORKING_SET_BYTES // max(1, per_clip)))


def require_text_lstm(checkpoint: Checkpoint, width: int, source: str) -> None:
    """Raw word vectors of `width` go through the checkpoint's text LSTM: refuse, in one line
    naming the checkpoint's key with expected and actual, when it cannot take them."""
    problem = checkpoint.text_lstm_problem
    if problem is not None:
        raise CheckpointError(
            f"raw {width}-d word vectors ({source}) must go through the text LSTM, which cannot "
            f"take them: {problem.message}",
            file=problem.file, key=problem.key, expected=problem.expected, actual=problem.actual,
        )


def check_features(checkpoint: Checkpoint, modality: str, shape: tuple[int, ...], source: str, key: str | None = None) -> bool:
    """Validate an input's shape [N, ...] for `modality`; returns True when text must pass the LSTM
    first (features as wide as the LSTM's word vectors, not the text encoder's own width). Only
    then is the text LSTM checked (`require_text_lstm`): other inputs never depend on it."""
    if modality not in checkpoint.sizes.modalities:
        raise ConfigError(
            f"a {checkpoint.family} checkpoint has no {modality} encoder (it has {', '.join(checkpoint.sizes.modalities)})"
        )
    sizes = checkpoint.sizes
    expected = "[N, " + ", ".join(expected_feature_shape(checkpoint, modality)) + "]"
    ok = False
    needs_lstm = False
    if modality == "audio":
        ok = len(shape) == 3 and shape[2] == sizes.audio_dim
    elif modality == "video" and sizes.video_grid:
        # Any grid the convolutional branch can take (H, W >= 5); the published maps are 7 x 7.
        ok = len(shape) == 5 and shape[4] == sizes.video_dim and min(shape[2:4]) >= MIN_VIDEO_GRID
        expected += f" with H, W >= {MIN_VIDEO_GRID} (published: 7 x 7)"
    elif modality == "video":
        ok = len(shape) == 3 and shape[2] == sizes.video_dim
    else:
        if len(shape) == 3 and shape[2] == sizes.text_dim:
            ok = True
        elif len(shape) == 3 and checkpoint.text_lstm_input_dim and shape[2] == checkpoint.text_lstm_input_dim:
            require_text_lstm(checkpoint, int(shape[2]), source if key is None else f"{source}, key {key}")
            ok, needs_lstm = True, True
    if ok and (shape[0] < 1 or shape[1] < 1):
        ok = False
    if not ok:
        raise DataError(f"wrong {modality} feature shape", file=source, key=key, expected=expected, actual=list(shape))
    return needs_lstm


class EncodingSession:
    """A frozen encoder built once from a checkpoint, encoding batches of one modality."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        train_mode: bool = False,
    ):
        if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
            raise SettingsError("{} cuda was requested but no CUDA device is available", settings=("device",))
        # Every encoding applies the stored input statistics: unusable ones refuse it here.
        if INPUT_NORMALIZATION_FIELD in checkpoint.unavailable:
            raise checkpoint.unavailable[INPUT_NORMALIZATION_FIELD]
        self.checkpoint = checkpoint
        self.dtype = dtype
        self.device = torch.device(device)
        self.encoder = checkpoint.build_encoder(dtype=dtype, device=self.device)
        # Reference quirk Q2 (only under the `reference` protocol): dropout stays on while the
        # downstream head trains. The quantizer itself never updates in this path.
        self.encoder.train(train_mode)
        # Built when raw word vectors first need it: encoding anything else never touches it.
        self._text_lstm = None

    def text_lstm(self):
        """The checkpoint's text LSTM in the session's dtype and device (built once)."""
        if self._text_lstm is None:
            self._text_lstm = self.checkpoint.build_text_lstm(dtype=self.dtype, device=self.device)
            if self._text_lstm is None:
                raise ConfigError(f"{self.checkpoint.path}: raw word vectors need a text LSTM and the file holds none")
        return self._text_lstm

    @property
    def levels(self) -> int:
        return self.checkpoint.levels

    def codebooks(self) -> list[np.ndarray]:
        return [self.encoder.codebook(level).detach().cpu().double().numpy() for level in range(self.levels)]

    @property
    def has_clip_codes(self) -> bool:
        """Whether the family also gives one code per clip (FCID's coarse codebook)."""
        return hasattr(self.encoder, "encode_with_clip")

    def _prepare(self, modality: str, features: np.ndarray, needs_lstm: bool) -> torch.Tensor:
        batch = torch.from_numpy(np.array(features, dtype=np.float64))
        # A checkpoint trained on standardised inputs carries their statistics: apply the same here.
        batch = normalization.apply(self.checkpoint.input_normalization, modality, batch)
        batch = batch.to(device=self.device, dtype=self.dtype)
        if needs_lstm:
            batch = run_text_lstm(self.text_lstm(), batch)
        return batch

    def _guarded(self, features: np.ndarray, run: Callable[[], object]):
        """`run()` with torch's failures as one line: NaN/Inf semantic features (the encoders
        refuse to quantize them: every code would be 0, which would look like a result),
        allocation failures and shape errors."""
        try:
            return run()
        except NonFiniteFeatures as exc:
            raise DataError(
                f"the encoder's output is NaN/Inf for clip {exc.clip} of this batch: the inputs (or the "
                f"checkpoint's weights) exceed what {str(self.dtype).replace('torch.', '')} can hold"
            ) from None
        except RuntimeError as exc:
            text = str(exc).strip().splitlines()
            reason = text[0][:200] if text else type(exc).__name__
            if "alloc" in reason.lower() or "memory" in reason.lower():
                raise DataError(
                    f"out of memory encoding a batch of {len(features)} clip(s) of {features.shape[1]} steps "
                    f"({reason}); use a smaller batch"
                ) from None
            raise DataError(f"encoding failed ({reason})") from None

    @torch.no_grad()
    def encode_batch(self, modality: str, features: np.ndarray, *, needs_lstm: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level: (codes int64 [B, T], quantized [B, T, D] in the session dtype)."""
        def run():
            return [
                (codes.cpu().numpy().astype(np.int64), codewords.cpu().numpy())
                for codewords, codes in self.encoder.encode(modality, self._prepare(modality, features, needs_lstm))
            ]
        return self._guarded(features, run)

    @torch.no_grad()
    def encode_batch_with_clip(
        self, modality: str, features: np.ndarray, *, needs_lstm: bool = False,
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
        """`encode_batch`'s levels plus the clip level (codes int64 [B], quantized [B, D]), one pass."""
        levels, (codewords, codes) = self._guarded(
            features, lambda: self.encoder.encode_with_clip(modality, self._prepare(modality, features, needs_lstm))
        )
        per_level = [(c.cpu().numpy().astype(np.int64), q.cpu().numpy()) for q, c in levels]
        return per_level, (codes.cpu().numpy().astype(np.int64), codewords.cpu().numpy())

    def encode_rows(
        self,
        modality: str,
        read: Callable[[np.ndarray], np.ndarray],
        n_rows: int,
        *,
        batch_size: int = ENCODE_BATCH_SIZE,
        progress: Advance | None = None,
        source: str = "features",
    ) -> list[np.ndarray]:
        """Codes per level, int64 [n_rows, T]; `read(rows)` returns float features for those rows."""
        if batch_size < 1:
            raise SettingsError("{} must be at least 1", settings=("batch_size",))
        codes: list[list[np.ndarray]] = [[] for _ in range(self.levels)]
        itemsize = torch.finfo(self.dtype).bits // 8
        for start in range(0, n_rows, batch_size):
            rows = np.arange(start, min(n_rows, start + batch_size))
            features = np.asarray(read(rows))
            if features.ndim == 2:
                features = features[:, None]  # features without a time axis [N, D]: one step each
            needs_lstm = check_features(self.checkpoint, modality, features.shape, source)
            _check_finite(features, source)
            step = rows_per_pass(self.checkpoint, modality, features.shape, itemsize, batch_size, source)
            for first in range(0, len(features), step):
                part = features[first : first + step]
                for level, (level_codes, _) in enumerate(self.encode_batch(modality, part, needs_lstm=needs_lstm)):
                    codes[level].append(level_codes)
            if progress:
                progress(len(rows))
        return [np.concatenate(parts) if parts else np.zeros((0, 0), np.int64) for parts in codes]


def encode_rows(
    checkpoint: Checkpoint,
    modality: str,
    read: Callable[[np.ndarray], np.ndarray],
    n_rows: int,
    *,
    dtype: torch.dtype = torch.float32,
    batch_size: int = ENCODE_BATCH_SIZE,
    device: str = DEFAULT_DEVICE,
    train_mode: bool = False,
    progress: Advance | None = None,
) -> list[np.ndarray]:
    """One-shot convenience around EncodingSession.encode_rows."""
    session = EncodingSession(checkpoint, dtype=dtype, device=device, train_mode=train_mode)
    return session.encode_rows(modality, read, n_rows, batch_size=batch_size, progress=progress)


def _check_finite(features: np.ndarray, source: str) -> None:
    if not np.isfinite(features).all():
        bad = int(np.argwhere(~np.isfinite(features))[0][0])
        raise DataError(f"non-finite values (NaN or Inf) in clip {bad} of this batch", file=source)


# ---------------------------------------------------------------------- file input / output


@dataclass
class FeatureArray:
    """A lazily readable [N, ...] feature array from an .npy or .h5 file."""

    path: Path
    key: str | None
    shape: tuple[int, ...]
    _handle: object = None
    _data: object = None

    def read(self, rows: np.ndarray) -> np.ndarray:
        start, stop = int(rows[0]), int(rows[-1]) + 1
        try:
            return np.asarray(self._data[start:stop], dtype=np.float64)
        except (OSError, ValueError, RuntimeError, TypeError) as exc:
            text = str(exc).strip().splitlines()
            raise DataError(f"unreadable rows {start}..{stop - 1} ({text[0][:200] if text else type(exc).__name__})",
                            file=self.path, key=self.key) from None

    def close(self) -> None:
        if isinstance(self._handle, h5py.File):
            self._handle.close()


def open_features(path: str | Path, key: str | None = None) -> FeatureArray:
    """Open .npy (memory-mapped, no pickles) or .h5 (dataset `key`, default: the only dataset);
    the file must be a regular file, its declared shape must match what it stores, and the array
    must hold floats (integer or boolean arrays are labels or indices, not features)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise SettingsError("{} applies to .h5 inputs only", settings=("key",))
        data = load_npy(path, what="feature file", error=DataError, mmap=True, missing="file not found", kinds="f")
        return FeatureArray(path, None, tuple(data.shape), None, data)
    if suffix in (".h5", ".hdf5"):
        check_regular_file(path, what="feature file", error=DataError, missing="file not found")
        try:
            handle = h5py.File(path, "r")
        except Exception as exc:
            raise DataError(f"not a readable HDF5 file ({str(exc).splitlines()[0][:200]})", file=path) from exc
        try:
            h5 = H5Input(path, handle)
            if key is None:
                datasets = h5.dataset_names(limit=9)
                if len(datasets) != 1:
                    raise DataError(f"pass {{}}: the file holds {len(datasets)}{'+' if len(datasets) > 8 else ''} datasets {literal(datasets[:8])}", file=path, settings=("key",))
                key = datasets[0]
            if not h5.has(key):
                raise DataError(f"no such dataset (found {h5.dataset_names(limit=8)})", file=path, key=key)
            data = h5.dataset(key, kinds="f", lazily=True, what="feature dataset")
        except BaseException:
            handle.close()
            raise
        return FeatureArray(path, key, tuple(data.shape), handle, data)
    raise DataError("unsupported feature file type", file=path, expected=".npy or .h5", actual=suffix or "no suffix")


def _create_code_datasets(out, checkpoint: Checkpoint, modality: str, dtype: str, n: int, steps: int,
                          widths: list[int], clip_width: int):
    """The datasets of a codes file: (codes, quantized) per level, and per clip when `clip_width`
    (else None), with the attributes that say what made them."""
    out.attrs["checkpoint_sha256"] = checkpoint.sha256
    out.attrs["family"] = checkpoint.family
    out.attrs["modality"] = modality
    out.attrs["dtype"] = dtype
    out.attrs["levels"] = len(widths)
    targets = []
    for level, width in enumerate(widths):
        group = out.create_group(f"level{level}")
        targets.append((
            group.create_dataset("codes", shape=(n, steps), dtype="int64"),
            group.create_dataset("quantized", shape=(n, steps, width), dtype=dtype),
        ))
    clip = None
    if clip_width:
        group = out.create_group("clip")
        clip = (
            group.create_dataset("codes", shape=(n,), dtype="int64"),
            group.create_dataset("quantized", shape=(n, clip_width), dtype=dtype),
        )
    return targets, clip


def _write_rows(targets, results, rows: np.ndarray) -> None:
    """Each (codes, quantized) result into its (codes, quantized) datasets at `rows` (contiguous)."""
    for (codes_ds, quant_ds), (codes, quantized) in zip(targets, results, strict=True):
        codes_ds[rows[0] : rows[-1] + 1] = codes
        quant_ds[rows[0] : rows[-1] + 1] = quantized


def encode_file(
    checkpoint: Checkpoint,
    modality: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    key: str | None = None,
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = ENCODE_BATCH_SIZE,
    device: str = DEFAULT_DEVICE,
    progress: ProgressFactory = no_progress,
) -> dict:
    """Encode a feature file into OUT.h5 (`level{L}/codes` [N, T] int64, `level{L}/quantized` [N, T, D]).

    Families with clip-level codes (FCID) also get `clip/codes` [N] and `clip/quantized` [N, D].
    Written to a temporary file and renamed, so OUT.h5 is either the old file or the complete new one.
    """
    if dtype not in DTYPES:
        raise SettingsError(f"{{}} must be one of {sorted(DTYPES)}", settings=("dtype",))
    if batch_size < 1:
        raise SettingsError("{} must be at least 1", settings=("batch_size",))
    features = open_features(input_path, key)
    try:
        # Features without a time axis, [N, D] (clip embeddings), are one step per clip.
        shape = (features.shape[0], 1, *features.shape[1:]) if len(features.shape) == 2 else features.shape
        needs_lstm = check_features(checkpoint, modality, shape, str(features.path), features.key)
        itemsize = 8 if dtype == "float64" else 4
        batch_size = rows_per_pass(checkpoint, modality, features.shape, itemsize, batch_size, str(features.path), features.key)
        session = EncodingSession(checkpoint, dtype=torch_dtype(dtype), device=device)
        n, steps = shape[0], shape[1]
        widths = [int(cb.shape[1]) for cb in checkpoint.codebooks]
        clip_width = widths[0] if session.has_clip_codes else 0
        # An upper bound of the file's size (data, plus HDF5's metadata and slack), so that a full
        # disk or a file-size limit is refused here and never met by HDF5 half-way.
        data_bytes = sum(n * steps * (8 + w * itemsize) for w in widths) + n * (8 + clip_width * itemsize)
        check_space(output_path, data_bytes + data_bytes // 64 + (1 << 20))
        with atomic_path(output_path) as tmp:
            with h5py.File(tmp, "w", track_order=True) as out:
                targets, clip = _create_code_datasets(out, checkpoint, modality, dtype, n, steps, widths, clip_width)
                with progress(f"encode {modality}", n) as advance:
                    for start in range(0, n, batch_size):
                        rows = np.arange(start, min(n, start + batch_size))
                        batch = features.read(rows).reshape(len(rows), *shape[1:])
                        _check_finite(batch, str(features.path))
                        if clip is None:
                            results = session.encode_batch(modality, batch, needs_lstm=needs_lstm)
                        else:
                            results, clip_results = session.encode_batch_with_clip(modality, batch, needs_lstm=needs_lstm)
                            _write_rows([clip], [clip_results], rows)
                        _write_rows(targets, results, rows)
                        advance(len(rows))
    finally:
        features.close()
    return {
        "output": str(output_path),
        "checkpoint_sha256": checkpoint.sha256,
        "family": checkpoint.family,
        "modality": modality,
        "n": int(n),
        "steps": int(steps),
        "levels": len(widths),
        "dtype": dtype,
        "text_lstm_applied": bool(needs_lstm),
        "clip_codes": bool(clip_width),
    }
