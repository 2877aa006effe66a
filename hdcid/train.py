"""DCID / H-DCID pretraining: config, one training step, schedule, checkpoints, exact resume."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hdcid.decoders import DecoderSizes, build_decoder
from hdcid.diagnostics import LevelDiagnostics, level_diagnostics
from hdcid.errors import CmgError, ModelError
from hdcid.files import commit_temporary, temporary_beside
from hdcid.losses import (
    CLUBSampleGroup,
    CrossCPC,
    alignment_loss,
    identical_rows,
    modality_gap_loss,
)
from hdcid.models import CmgEncoder, EncoderOutput, EncoderSizes
from hdcid.modules import run_text_lstm, text_lstm
from hdcid.quantizer import ACTIVE_WITHIN, RESET_AFTER, quantize

MODALITIES = ("audio", "video", "text")
TEXT_LSTM_HIDDEN = 128  # the BiLSTM gives 2·128 = 256 text features (the encoder's text_dim)
CLUB_HIDDEN = 256
CPC_WIDTH = 256
MILESTONES = (10, 20, 30)
GAMMA = 0.5
NORMALIZATION_KEY = "Input_normalization"
TRAINER_KEY = "Trainer_state"
SMALL_CORPUS_STEP_BUDGET = 400  # optimizer steps the small-corpus recipe aims for by default
CONFIG_KEY = "Train_config"


class TrainDataError(CmgError):
    """The pretraining data returned arrays of the wrong keys, shapes or values."""


class PretrainData(Protocol):
    """What the trainer needs from a corpus: its size and paired features for given rows.

    `read(rows)` returns numpy float arrays: audio [n, T, A], video [n, T, H, W, C], text [n, T, W]
    (word-level text features; the text LSTM runs inside the model). An optional attribute
    `labels` (int array [len]) enables the linear-probe diagnostic.
    """

    def __len__(self) -> int: ...

    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Remedies:
    """Small-corpus remedies (issue 6); every field at its default reproduces the published recipe."""

    standardize_inputs: bool = False  # z-score audio / video channels with stored corpus statistics
    codebook_init: str = "uniform"  # uniform (reference) | sample | kmeans (from semantic features)
    reset_patience: str = "reference"  # reference (300/100 batches) | auto (one epoch) | an integer
    ema_consistent: bool = False  # EMA counts/weights start (and are reset) consistent with the codes
    align_weight: float = 0.0  # weight of the InfoNCE alignment between modalities' semantic features
    align_temperature: float = 0.1
    align_distance: str = "cosine"  # cosine | euclidean (pulls paired features to one point)
    gap_weight: float = 0.0  # weight of the modality-gap term (squared centroid distance / norm²)
    warmup_steps: int = 0  # linear warm-up of the CLUB and commitment loss weights


@dataclass(frozen=True)
class Recipe:
    """A named training preset: the remedies plus the batch size, specific-feature widths and
    schedule they were measured with. Explicit options override any of them."""

    name: str
    remedies: Remedies
    batch_size: int
    audio_output_dim: int
    video_output_dim: int
    text_output_dim: int
    epochs: dict[int, int]  # levels → epochs, when the corpus size does not decide
    step_budget: int | None = None  # if set: epochs = enough to reach this many steps (capped)
    max_epochs: int = 30

    def default_epochs(self, levels: int, n_clips: int, batch_size: int | None = None) -> int:
        """Epochs when none are given: the published counts, or a step budget on a small corpus."""
        if self.step_budget is None:
            return self.epochs[levels]
        steps_per_epoch = max(1, math.ceil(n_clips / (batch_size or self.batch_size)))
        return max(self.epochs[levels], min(self.max_epochs, math.ceil(self.step_budget / steps_per_epoch)))

    def config_values(self) -> dict[str, Any]:
        """The TrainConfig fields this recipe sets (epochs excluded: see default_epochs)."""
        return {
            "remedies": self.remedies, "batch_size": self.batch_size,
            "audio_output_dim": self.audio_output_dim, "video_output_dim": self.video_output_dim,
            "text_output_dim": self.text_output_dim,
        }


RECIPES: dict[str, Recipe] = {
    # The published DCID / H-DCID pretraining: sizes of the released checkpoints, batch 80,
    # 6 DCID / 5 H-DCID epochs, no remedies.
    "reference": Recipe(
        "reference", Remedies(), batch_size=80, audio_output_dim=256, video_output_dim=2048,
        text_output_dim=256, epochs={1: 6, 2: 5},
    ),
    # Recommended (the default): every remedy on (benchmarks/results/small_corpus.md); the shared
    # codebook keeps the published 400 x 256 shape, but the modality-specific branches, which
    # only feed reconstruction and CLUB, shrink to 64 wide — the published 2048-wide video branch
    # costs about a minute per batch of 80 on a 2-core CPU. Batch 16 and a step budget give a
    # few hundred clips enough optimizer steps.
    "small-corpus": Recipe(
        "small-corpus",
        Remedies(
            standardize_inputs=True, codebook_init="kmeans", reset_patience="auto",
            ema_consistent=True, align_weight=1.0, warmup_steps=100,
        ),
        batch_size=16, audio_output_dim=64, video_output_dim=64, text_output_dim=64,
        epochs={1: 3, 2: 3}, step_budget=SMALL_CORPUS_STEP_BUDGET,
    ),
}
DEFAULT_RECIPE = "small-corpus"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a pretraining run. The field defaults are the published recipe;
    `TrainConfig.from_recipe()` (what `toc train` uses) starts from the recommended preset."""

    levels: int = 1
    epochs: int = 6
    max_steps: int | None = None  # stop after this many optimizer steps in total
    batch_size: int = 80
    seed: int = 43
    device: str = "cpu"
    dtype: str = "float32"
    reference_forwards: bool = False  # H-DCID: run the encoder 6x per batch as the published code
    save_every: int = 0  # also write last.pt every N steps (0: only at epoch ends and run end)
    level2_start: int = 3
    level2_weight: float = 0.3
    n_embeddings: int = 400
    embedding_dim: int = 256
    audio_output_dim: int = 256
    video_output_dim: int = 2048
    text_output_dim: int = 256
    lr: float = 4e-4
    mi_lr: float = 1e-3
    clip: float = 0.5
    mi_iters: int = 5
    diagnostics_clips: int = 1024  # clips used for the per-epoch diagnostics (0: none)
    remedies: Remedies = field(default_factory=Remedies)
    recipe: str = ""  # the preset the run started from (informational; the fields above decide)

    # Fields that may change between a run and its resumption.
    RESUMABLE_CHANGES = ("epochs", "max_steps", "save_every", "device", "diagnostics_clips")

    def validate(self) -> None:
        if self.levels not in (1, 2):
            raise ModelError(f"levels must be 1 (DCID) or 2 (H-DCID), got {self.levels}")
        if self.levels == 1 and self.embedding_dim != 256:
            raise ModelError(
                f"DCID (levels 1) fixes the code width at 256 as the reference; got embedding_dim "
                f"{self.embedding_dim} (use levels 2 for another width)"
            )
        for name in ("epochs", "batch_size", "n_embeddings", "embedding_dim", "audio_output_dim",
                     "video_output_dim", "text_output_dim", "mi_iters"):
            if getattr(self, name) < 1:
                raise ModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embedding_dim % 4:
            raise ModelError(f"embedding_dim must be a multiple of the 4 attention heads, got {self.embedding_dim}")
        if self.video_output_dim < 2:
            raise ModelError(f"video_output_dim must be >= 2, got {self.video_output_dim}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ModelError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.dtype not in ("float32", "float64"):
            raise ModelError(f"dtype must be float32 or float64, got {self.dtype}")
        r = self.remedies
        if r.codebook_init not in ("uniform", "sample", "kmeans"):
            raise ModelError(f"codebook_init must be uniform, sample or kmeans, got {r.codebook_init!r}")
        if r.reset_patience not in ("reference", "auto") and not str(r.reset_patience).isdigit():
            raise ModelError(f"reset_patience must be reference, auto or an integer, got {r.reset_patience!r}")
        if r.align_distance not in ("cosine", "euclidean"):
            raise ModelError(f"align_distance must be cosine or euclidean, got {r.align_distance!r}")
        if r.gap_weight < 0:
            raise ModelError(f"gap_weight must be >= 0, got {r.gap_weight}")
        if r.align_temperature <= 0:
            raise ModelError(f"align_temperature must be > 0, got {r.align_temperature}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    def as_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_recipe(
        recipe: str = DEFAULT_RECIPE, *, n_clips: int, levels: int = 2, epochs: int | None = None, **overrides: Any
    ) -> TrainConfig:
        """A config from a named preset (RECIPES) for a corpus of `n_clips` clips; keyword
        arguments (TrainConfig fields, `None` = not given) override the preset."""
        if recipe not in RECIPES:
            raise ModelError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
        preset = RECIPES[recipe]
        values = {**preset.config_values(), **{k: v for k, v in overrides.items() if v is not None}}
        if epochs is None:
            epochs = preset.default_epochs(levels, n_clips, values["batch_size"])
        return TrainConfig(levels=levels, epochs=epochs, recipe=recipe, **values)

    @staticmethod
    def from_dict(data: dict) -> TrainConfig:
        known = {f.name for f in fields(TrainConfig)}
        values = {k: v for k, v in data.items() if k in known}
        values["remedies"] = Remedies(**data.get("remedies", {}))
        return TrainConfig(**values)


@dataclass
class TrainResult:
    """Where a run ended and what it wrote."""

    run_dir: Path
    total_step: int
    epoch: int  # the epoch the run stopped in (or the last completed one)
    finished: bool  # all epochs done
    last_checkpoint: Path
    epoch_checkpoints: list[Path]
    last_losses: dict[str, float]
    diagnostics: list[LevelDiagnostics]


# ---------------------------------------------------------------------- file helpers


def _save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    tmp = temporary_beside(path)
    try:
        torch.save(obj, tmp)
        commit_temporary(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = temporary_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        commit_temporary(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _rng_state(quantizer_random: random.Random, device: torch.device) -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "quantizer_python": quantizer_random.getstate(),
        # Plain types so that weights-only loading accepts the file.
        "numpy": {
            "name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, quantizer_random: random.Random, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    quantizer_random.setstate(_as_tuple(state["quantizer_python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------- data


def _check_batch(batch: dict[str, np.ndarray], n: int, expected: dict[str, tuple] | None) -> None:
    for key, rank in (("audio", 3), ("video", 5), ("text", 3)):
        if key not in batch:
            raise TrainDataError(f"pretraining data: read() returned no '{key}' array (keys {sorted(batch)})")
        array = batch[key]
        shape = tuple(array.shape)
        if len(shape) != rank or shape[0] != n:
            raise TrainDataError(
                f"pretraining data: key '{key}' has shape {list(shape)} (expected {rank} dims with {n} rows)"
            )
        if expected is not None and shape[1:] != expected[key]:
            raise TrainDataError(
                f"pretraining data: key '{key}' (expected shape [n, {', '.join(map(str, expected[key]))}], "
                f"got {list(shape)})"
            )
        if not np.all(np.isfinite(array)):
            raise TrainDataError(f"pretraining data: key '{key}' holds NaN or infinite values")
    steps = {batch[k].shape[1] for k in ("audio", "video", "text")}
    if len(steps) != 1:
        raise TrainDataError(f"pretraining data: audio / video / text have different time lengths {sorted(steps)}")


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    # Seeded by (seed, epoch) only, so a resumed run sees exactly the same order.
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


def _batches(order: torch.Tensor, batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


# ---------------------------------------------------------------------- model bundle


class PretrainModel(nn.Module):
    """Every network of a DCID / H-DCID pretraining run, named as the checkpoint keys."""

    def __init__(self, config: TrainConfig, audio_dim: int, video_dim: int, word_dim: int):
        super().__init__()
        c = config
        family = "hdcid-avt" if c.levels == 2 else "dcid-avt"
        self.sizes = EncoderSizes(
            family=family, audio_dim=audio_dim, video_dim=video_dim, text_dim=2 * TEXT_LSTM_HIDDEN,
            audio_output_dim=c.audio_output_dim, video_output_dim=c.video_output_dim,
            text_output_dim=c.text_output_dim, n_embeddings=c.n_embeddings, embedding_dim=c.embedding_dim,
        )
        self.levels = c.levels
        self.text_lstm = text_lstm(word_dim, TEXT_LSTM_HIDDEN)
        self.encoder = CmgEncoder(self.sizes)
        self.cpc = nn.ModuleList([CrossCPC(c.embedding_dim, CPC_WIDTH, CPC_WIDTH, 2) for _ in range(c.levels)])
        self.decoder = build_decoder(c.levels, DecoderSizes(
            audio_dim=audio_dim, video_dim=video_dim, text_dim=2 * TEXT_LSTM_HIDDEN,
            audio_output_dim=c.audio_output_dim, video_output_dim=c.video_output_dim,
            text_output_dim=c.text_output_dim, vq_dim=c.embedding_dim,
        ))
        y_dims = {"video": video_dim, "text": c.text_output_dim, "audio": c.audio_output_dim}
        # Per level, in the reference's training order video, text, audio.
        self.mi_nets = nn.ModuleList(
            nn.ModuleDict({m: CLUBSampleGroup(c.embedding_dim, y_dims[m], CLUB_HIDDEN) for m in ("video", "text", "audio")})
            for _ in range(c.levels)
        )

    def main_modules(self) -> list[nn.Module]:
        """The modules of the main optimizer, in the reference's chain order."""
        return [self.text_lstm, self.encoder, *self.cpc, self.decoder]

    def checkpoint_states(self) -> dict[str, dict]:
        out = {
            "Encoder_parameters": self.encoder.state_dict(),
            "Text_ar_lstm_parameters": self.text_lstm.state_dict(),
            "CPC_parameters": self.cpc[0].state_dict(),
            "Decoder_parameters": self.decoder.state_dict(),
        }
        if self.levels == 2:
            out["CPC_2_parameters"] = self.cpc[1].state_dict()
        for level, nets in enumerate(self.mi_nets):
            suffix = "_2" if level else ""
            for m in ("video", "text", "audio"):
                out[f"{m.capitalize()}_mi_net{suffix}_parameters"] = nets[m].state_dict()
        return out

    def load_checkpoint_states(self, states: dict) -> None:
        self.encoder.load_state_dict(states["Encoder_parameters"])
        self.text_lstm.load_state_dict(states["Text_ar_lstm_parameters"])
        self.cpc[0].load_state_dict(states["CPC_parameters"])
        self.decoder.load_state_dict(states["Decoder_parameters"])
        if self.levels == 2:
            self.cpc[1].load_state_dict(states["CPC_2_parameters"])
        for level, nets in enumerate(self.mi_nets):
            suffix = "_2" if level else ""
            for m in ("video", "text", "audio"):
                nets[m].load_state_dict(states[f"{m.capitalize()}_mi_net{suffix}_parameters"])


def _mi_optimizer_key(modality: str, level: int) -> str:
    return f"optimizer_{modality}_mi_net" + ("_2" if level else "")


# ---------------------------------------------------------------------- remedies


def _channel_statistics(data: PretrainData, rows: list[int], batch_size: int) -> dict[str, torch.Tensor]:
    """Per-channel mean / std of audio and video (channels last), float64 accumulation."""
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(rows), batch_size):
        batch = data.read(rows[start : start + batch_size])
        for key in ("audio", "video"):
            x = torch.from_numpy(np.asarray(batch[key], dtype=np.float64))
            flat = x.reshape(-1, x.shape[-1])
            sums[key] = sums.get(key, 0) + flat.sum(0)
            squares[key] = squares.get(key, 0) + (flat**2).sum(0)
            counts[key] = counts.get(key, 0) + flat.shape[0]
    out = {}
    for key in ("audio", "video"):
        mean = sums[key] / counts[key]
        var = (squares[key] / counts[key] - mean**2).clamp_min(0.0)
        # Constant channels keep scale 1 rather than dividing by ~0.
        std = torch.where(var.sqrt() > 1e-6, var.sqrt(), torch.ones_like(var))
        out[f"{key}_mean"], out[f"{key}_std"] = mean.float(), std.float()
    return out


def apply_input_normalization(stats: dict[str, torch.Tensor] | None, modality: str, x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std over the last (channel) axis, with the statistics stored in a checkpoint."""
    if not stats or f"{modality}_mean" not in stats:
        return x
    mean = stats[f"{modality}_mean"].to(device=x.device, dtype=x.dtype)
    std = stats[f"{modality}_std"].to(device=x.device, dtype=x.dtype)
    return (x - mean) / std


def _kmeans(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> torch.Tensor:
    """Lloyd's k-means from a random sample; empty clusters are re-seeded from random points."""
    n = points.shape[0]
    centres = points[torch.randperm(n, generator=generator)[: min(k, n)]].clone()
    if centres.shape[0] < k:
        extra = points[torch.randint(n, (k - centres.shape[0],), generator=generator)]
        centres = torch.cat([centres, extra + 1e-3 * torch.randn(extra.shape, generator=generator, dtype=points.dtype)])
    for _ in range(iterations):
        assign = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).to(points.dtype)
        empty = counts == 0
        centres = torch.where(empty.unsqueeze(1), centres, sums / counts.clamp_min(1).unsqueeze(1))
        if empty.any():
            refill = points[torch.randint(n, (int(empty.sum()),), generator=generator)]
            centres[empty] = refill
    return centres


# ---------------------------------------------------------------------- trainer


class Trainer:
    """Runs (or resumes) one pretraining run into RUN_DIR."""

    def __init__(
        self,
        config: TrainConfig,
        data: PretrainData,
        run_dir: str | Path,
        *,
        resume: bool = False,
        init_from: str | Path | None = None,
        on_step: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict, list[LevelDiagnostics]], None] | None = None,
        keep_saved: Sequence[str] = (),
    ):
        """`keep_saved`: on resume, resumable fields (e.g. "epochs") to keep from the saved run
        instead of taking them from `config`."""
        self.run_dir = Path(run_dir)
        self.data = data
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.resume = resume
        self.init_from = Path(init_from) if init_from else None
        saved = None
        if resume:
            saved = self._read_last()
            config = self._merge_resumed_config(TrainConfig.from_dict(saved[CONFIG_KEY]), config, keep_saved)
        config.validate()
        self.config = config
        self.device = torch.device(config.device)
        self.dtype = config.torch_dtype
        if len(data) < 1:
            raise TrainDataError("pretraining data is empty (0 clips)")
        probe = data.read([0])
        _check_batch(probe, 1, None)
        self.shapes = {k: tuple(probe[k].shape[1:]) for k in ("audio", "video", "text")}
        if self.shapes["audio"][0] < 3:
            raise TrainDataError(f"pretraining data: clips need at least 3 time steps for CPC, got {self.shapes['audio'][0]}")
        if self.shapes["video"][1:3] != (7, 7):
            raise TrainDataError(
                f"pretraining data: key 'video' (expected [n, T, 7, 7, C] VGG19 pool5 maps, got "
                f"[n, {', '.join(map(str, self.shapes['video']))}])"
            )
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed % (2**32))
        self.model = PretrainModel(config, self.shapes["audio"][-1], self.shapes["video"][-1], self.shapes["text"][-1])
        self.model.encoder.Cross_quantizer.python_random.seed(config.seed)
        self.model.to(device=self.device, dtype=self.dtype)
        self.optimizer = torch.optim.Adam(
            [p for module in self.model.main_modules() for p in module.parameters()], lr=config.lr
        )
        self.mi_optimizers = [
            {m: torch.optim.Adam(nets[m].parameters(), lr=config.mi_lr) for m in ("video", "text", "audio")}
            for nets in self.model.mi_nets
        ]
        self.normalization: dict[str, torch.Tensor] | None = None
        self.epoch = 0
        self.batch_in_epoch = 0
        self.total_step = 0
        self.steps_per_epoch = math.ceil(len(data) / config.batch_size)
        self._configure_quantizer()
        if saved is not None:
            self._restore(saved)
        else:
            self._fresh_start()

    # -------------------------------------------------------------- setup
    def _read_last(self) -> dict:
        path = self.run_dir / "last.pt"
        if not path.exists():
            raise CmgError(f"{path}: cannot resume: no last.pt in the run directory")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file
            raise CmgError(f"{path}: cannot resume: unreadable checkpoint ({str(exc).splitlines()[0][:200]})") from exc
        if not isinstance(saved, dict) or CONFIG_KEY not in saved or TRAINER_KEY not in saved:
            raise CmgError(f"{path}: cannot resume: not a checkpoint written by this trainer (no {TRAINER_KEY})")
        return saved

    def _merge_resumed_config(self, saved: TrainConfig, requested: TrainConfig, keep_saved: Sequence[str]) -> TrainConfig:
        changes = {name: getattr(requested, name) for name in TrainConfig.RESUMABLE_CHANGES if name not in keep_saved}
        return replace(saved, **changes)

    def _configure_quantizer(self) -> None:
        quantizer = self.model.encoder.Cross_quantizer
        patience = self.config.remedies.reset_patience
        if patience == "reference":
            reset_after, active_within = RESET_AFTER, ACTIVE_WITHIN
        else:
            # "auto": a code unused for a whole epoch is dead (the published 300 batches can exceed
            # a small corpus' whole run); an explicit integer is taken as is.
            forwards = 1 + (self.config.mi_iters if self.config.reference_forwards and self.config.levels == 2 else 0)
            reset_after = self.steps_per_epoch * forwards if patience == "auto" else int(patience)
            reset_after = max(2, reset_after)
            active_within = max(1, round(reset_after * ACTIVE_WITHIN / RESET_AFTER))
        quantizer.reset_after, quantizer.active_within = reset_after, active_within
        quantizer.reset_updates_ema = self.config.remedies.ema_consistent

    def _fresh_start(self) -> None:
        remedies = self.config.remedies
        if self.init_from is not None:
            self._warm_start(self.init_from)
        if remedies.standardize_inputs and self.normalization is None:
            rows = _epoch_order(len(self.data), self.config.seed, -1)[: 4096].tolist()
            self.normalization = _channel_statistics(self.data, rows, self.config.batch_size)
        levels_to_init = [lv for lv in range(self.config.levels) if not (self.init_from is not None and lv == 0)]
        if remedies.codebook_init != "uniform" and levels_to_init:
            self._init_codebooks(levels_to_init)
        if remedies.ema_consistent:
            self._sync_ema_counts()

    def _warm_start(self, path: Path) -> None:
        """Load level 1 (encoder, text LSTM, CPC, CLUB nets, level-1 decoder) from a DCID checkpoint."""
        if self.config.levels != 2:
            raise ModelError("--init-from warm-starts H-DCID level 1; it needs levels 2")
        try:
            source = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:200]})") from exc
        if not isinstance(source, dict) or "Encoder_parameters" not in source:
            raise ModelError(f"{path}: not a DCID checkpoint (no Encoder_parameters)")
        encoder_state = source["Encoder_parameters"]
        target = self.model.encoder.state_dict()
        for key, value in encoder_state.items():
            if key.startswith("Cross_quantizer."):
                if key not in target or target[key][0].shape != value.shape:
                    raise ModelError(
                        f"{path}: key 'Encoder_parameters.{key}' does not fit H-DCID level 1 (expected "
                        f"{list(target[key][0].shape) if key in target else 'no such key'}, got {list(value.shape)})"
                    )
                target[key][0].copy_(value)
                continue
            if key not in target:
                raise ModelError(f"{path}: key 'Encoder_parameters.{key}' is not part of an H-DCID encoder (a DCID checkpoint is needed)")
            if target[key].shape != value.shape:
                raise ModelError(
                    f"{path}: key 'Encoder_parameters.{key}' (expected {list(target[key].shape)}, got {list(value.shape)}); "
                    "use the DCID checkpoint's sizes"
                )
            target[key].copy_(value)
        self.model.encoder.load_state_dict(target)
        partial = [
            ("Text_ar_lstm_parameters", self.model.text_lstm, ""),
            ("CPC_parameters", self.model.cpc[0], ""),
            ("Video_mi_net_parameters", self.model.mi_nets[0]["video"], ""),
            ("Text_mi_net_parameters", self.model.mi_nets[0]["text"], ""),
            ("Audio_mi_net_parameters", self.model.mi_nets[0]["audio"], ""),
        ]
        for key, module, _ in partial:
            if key in source:
                self._load_matching(path, key, module, source[key])
        if "Decoder_parameters" in source:
            decoder_state = {k: v for k, v in source["Decoder_parameters"].items() if k.split(".")[0] in ("Video_decoder", "Audio_decoder", "Text_decoder")}
            self._load_matching(path, "Decoder_parameters", self.model.decoder, decoder_state, strict=False)
        if NORMALIZATION_KEY in source:
            self.normalization = {k: v.float() for k, v in source[NORMALIZATION_KEY].items()}

    @staticmethod
    def _load_matching(path: Path, key: str, module: nn.Module, state: dict, strict: bool = True) -> None:
        own = module.state_dict()
        for name, value in state.items():
            if name not in own or own[name].shape != value.shape:
                raise ModelError(
                    f"{path}: key '{key}.{name}' (expected {list(own[name].shape) if name in own else 'no such key'}, "
                    f"got {list(value.shape)})"
                )
        module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=strict)

    @torch.no_grad()
    def _semantic_sample(self, max_clips: int = 2048) -> list[torch.Tensor]:
        """Semantic features of all modalities pooled per level, from the current (initial) model."""
        rows = _epoch_order(len(self.data), self.config.seed, -2)[:max_clips].tolist()
        pooled: list[list[torch.Tensor]] = [[] for _ in range(self.config.levels)]
        self.model.eval()
        for start in range(0, len(rows), self.config.batch_size):
            inputs = self._tensors(self.data.read(rows[start : start + self.config.batch_size]))
            inputs["text"] = run_text_lstm(self.model.text_lstm, inputs["text"])
            for modality in MODALITIES:
                for level, features in enumerate(self.model.encoder.semantic_features(modality, inputs[modality])):
                    pooled[level].append(features.reshape(-1, features.shape[-1]).double().cpu())
        self.model.train()
        return [torch.cat(p) for p in pooled]

    def _init_codebooks(self, levels: list[int]) -> None:
        samples = self._semantic_sample()
        generator = torch.Generator().manual_seed(self.config.seed + 7)
        quantizer = self.model.encoder.Cross_quantizer
        k = self.config.n_embeddings
        for level in levels:
            points = samples[level]
            if self.config.remedies.codebook_init == "kmeans":
                codes = _kmeans(points, k, generator)
            else:
                picks = torch.randperm(points.shape[0], generator=generator)[:k]
                if len(picks) < k:
                    picks = torch.cat([picks, torch.randint(points.shape[0], (k - len(picks),), generator=generator)])
                codes = points[picks] + 1e-3 * points.std() * torch.randn(k, points.shape[1], generator=generator, dtype=points.dtype)
            codes = codes.to(device=self.device, dtype=self.dtype)
            counts = quantizer._level_buffers(level)[1]
            quantizer._write_level(level, embedding=codes, ema_weight=codes * counts.unsqueeze(-1) if counts.abs().sum() > 0 else codes.clone())

    def _sync_ema_counts(self) -> None:
        """Start every code with the EMA count it would have under uniform use, weight = code · count."""
        quantizer = self.model.encoder.Cross_quantizer
        steps = self.shapes["audio"][0]
        count = max(1.0, self.config.batch_size * steps / self.config.n_embeddings)
        for level in range(self.config.levels):
            embedding = quantizer._level_buffers(level)[0]
            counts = torch.full((embedding.shape[0],), count, dtype=embedding.dtype, device=embedding.device)
            quantizer._write_level(level, ema_count=counts, ema_weight=embedding * count)

    def _restore(self, saved: dict) -> None:
        self.model.load_checkpoint_states(saved)
        self.model.to(device=self.device, dtype=self.dtype)
        self.optimizer.load_state_dict(saved["optimizer"])
        for level, optimizers in enumerate(self.mi_optimizers):
            for m, optimizer in optimizers.items():
                optimizer.load_state_dict(saved[_mi_optimizer_key(m, level)])
        if NORMALIZATION_KEY in saved:
            self.normalization = {k: v.float() for k, v in saved[NORMALIZATION_KEY].items()}
        state = saved[TRAINER_KEY]
        self.epoch, self.batch_in_epoch, self.total_step = state["next_epoch"], state["next_batch"], state["total_step"]
        _set_rng_state(state["rng"], self.model.encoder.Cross_quantizer.python_random, self.device)
        self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop metrics lines written after the checkpoint we resume from (a crash after last.pt)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if record.get("kind") == "epoch":
                if record["epoch"] < self.epoch:
                    kept.append(line)
            elif record.get("total_step", 0) <= self.total_step:
                kept.append(line)
        _write_text_atomic(path, "".join(k + "\n" for k in kept))

    # -------------------------------------------------------------- one step
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {}
        for key in MODALITIES:
            x = torch.as_tensor(np.asarray(batch[key]), dtype=self.dtype).to(self.device)
            out[key] = apply_input_normalization(self.normalization, key, x)
        return out

    def _train_club(self, out: EncoderOutput, levels: int, iterations: int) -> dict[str, float]:
        losses: dict[str, float] = {}
        for level in range(levels):
            quantized = out.quantized[level].quantized
            specific = out.specific_2 if level else {"video": out.specific["video_club"], "text": out.specific["text"], "audio": out.specific["audio"]}
            pairs = {m: (quantized[m].detach(), specific[m].detach()) for m in ("video", "text", "audio")}
            for _ in range(iterations):
                for m in ("video", "text", "audio"):
                    optimizer = self.mi_optimizers[level][m]
                    optimizer.zero_grad()
                    loss = self.model.mi_nets[level][m].learning_loss(*pairs[m])
                    loss.backward()
                    optimizer.step()
                    losses[f"club_lld{'_2' if level else ''}_{m}"] = -float(loss.detach())
        return losses

    def _loss_weight(self) -> float:
        warmup = self.config.remedies.warmup_steps
        return 1.0 if warmup <= 0 else min(1.0, (self.total_step + 1) / warmup)

    def train_step(self, rows: list[int]) -> dict[str, float]:
        """One optimizer step on the given corpus rows; returns every loss term and batch statistic."""
        c = self.config
        raw = self.data.read(rows)
        _check_batch(raw, len(rows), self.shapes)
        inputs = self._tensors(raw)
        text = run_text_lstm(self.model.text_lstm, inputs["text"])
        level_2 = c.levels == 2 and self.epoch >= c.level2_start
        active_levels = 2 if level_2 else 1
        metrics: dict[str, float] = {}
        if c.reference_forwards and c.levels == 2:
            # The published H-DCID loop: every CLUB iteration re-runs the full encoder in train mode
            # (one more MM-EMA update and reset step each), then a sixth forward for the loss.
            for _ in range(c.mi_iters):
                extra = self.model.encoder(inputs["audio"], inputs["video"], text)
                metrics.update(self._train_club(extra, active_levels, 1))
            out = self.model.encoder(inputs["audio"], inputs["video"], text)
        else:
            out = self.model.encoder(inputs["audio"], inputs["video"], text)
            metrics.update(self._train_club(out, active_levels, c.mi_iters))
        warm = self._loss_weight()
        targets = {"audio": inputs["audio"], "video": inputs["video"], "text": text}
        same_text = identical_rows(inputs["text"]) if c.remedies.align_weight > 0 else None
        total = None
        level_losses = []
        for level in range(active_levels):
            suffix = "_2" if level else ""
            q = out.quantized[level]
            semantic = out.semantic[level]
            specific = out.specific_2 if level else {"video": out.specific["video_club"], "text": out.specific["text"], "audio": out.specific["audio"]}
            if level == 0:
                recon = self.model.decoder.level_1_losses(targets, out.specific, q.quantized)
            else:
                recon = self.model.decoder.level_2_losses(out.specific, out.specific_2, q.quantized)
            mi = {m: self.model.mi_nets[level][m].mi_est(q.quantized[m], specific[m]) for m in ("video", "text", "audio")}
            cpc = self.model.cpc[level](semantic["audio"], semantic["video"], semantic["text"])
            loss = cpc.nce + q.cmcm_loss.reshape(())
            for m in MODALITIES:
                loss = loss + recon[m] + warm * q.commitment[m] + warm * mi[m]
                metrics[f"recon{suffix}_{m}"] = float(recon[m].detach())
                metrics[f"commit{suffix}_{m}"] = float(q.commitment[m].detach())
                metrics[f"mi{suffix}_{m}"] = float(mi[m].detach())
            if c.remedies.align_weight > 0:
                align = alignment_loss(semantic, c.remedies.align_temperature, same_text, c.remedies.align_distance)
                loss = loss + c.remedies.align_weight * align
                metrics[f"align{suffix}"] = float(align.detach())
            if c.remedies.gap_weight > 0:
                gap = modality_gap_loss(semantic)
                loss = loss + c.remedies.gap_weight * gap
                metrics[f"gap{suffix}"] = float(gap.detach())
            metrics[f"nce{suffix}"] = float(cpc.nce.detach())
            metrics[f"cmcm{suffix}"] = float(q.cmcm_loss.sum().detach())
            metrics[f"equal_num{suffix}"] = float(q.equal_num)
            for pair, value in cpc.accuracy.items():
                metrics[f"cpc_acc{suffix}_{pair}"] = value
            used = {m: torch.unique(q.indices[m]) for m in MODALITIES}
            for m in MODALITIES:
                metrics[f"batch_codes{suffix}_{m}"] = float(len(used[m]))
            metrics[f"batch_agree{suffix}_av"] = float((q.indices["audio"] == q.indices["video"]).double().mean())
            metrics[f"loss_level{level + 1}"] = float(loss.detach())
            level_losses.append(loss)
        total = level_losses[0] + (c.level2_weight * level_losses[1] if level_2 else 0.0)
        metrics["loss"] = float(total.detach())
        metrics["loss_weight_warmup"] = warm
        self.optimizer.zero_grad()
        total.backward()
        # Per-module clipping, as the reference (each module's own norm ≤ clip).
        for module in [*self.model.cpc, self.model.encoder, self.model.text_lstm, *self.model.mi_nets, self.model.decoder]:
            nn.utils.clip_grad_norm_(module.parameters(), c.clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.total_step += 1
        return metrics

    # -------------------------------------------------------------- schedule
    def _set_learning_rate(self) -> None:
        # MultiStepLR([10, 20, 30], 0.5) per epoch, computed from the epoch (nothing to restore).
        factor = GAMMA ** sum(1 for m in MILESTONES if self.epoch >= m)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    @torch.no_grad()
    def diagnose(self) -> list[LevelDiagnostics]:
        """Codebook health on a fixed subset of the corpus, eval mode, no state change."""
        limit = self.config.diagnostics_clips
        if limit <= 0:
            return []
        rows = sorted(_epoch_order(len(self.data), self.config.seed, -3)[:limit].tolist())
        indices: list[dict[str, list[torch.Tensor]]] = [{m: [] for m in MODALITIES} for _ in range(self.config.levels)]
        semantic: list[dict[str, list[torch.Tensor]]] = [{m: [] for m in MODALITIES} for _ in range(self.config.levels)]
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(rows), self.config.batch_size):
                inputs = self._tensors(self.data.read(rows[start : start + self.config.batch_size]))
                inputs["text"] = run_text_lstm(self.model.text_lstm, inputs["text"])
                for m in MODALITIES:
                    features = self.model.encoder.semantic_features(m, inputs[m])
                    for level, feature in enumerate(features):
                        _, idx = quantize(feature, self.model.encoder.codebook(level))
                        indices[level][m].append(idx.reshape(feature.shape[:2]).cpu())
                        semantic[level][m].append(feature.double().cpu())
        finally:
            self.model.train(was_training)
        labels = getattr(self.data, "labels", None)
        label_tensor = torch.as_tensor(np.asarray(labels)[rows]) if labels is not None else None
        return [
            level_diagnostics(
                level, self.config.n_embeddings,
                {m: torch.cat(v) for m, v in indices[level].items()},
                {m: torch.cat(v) for m, v in semantic[level].items()},
                label_tensor,
            )
            for level in range(self.config.levels)
        ]

    # -------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        """The checkpoint dict: the published keys plus trainer state for exact resumption."""
        out: dict[str, Any] = dict(self.model.checkpoint_states())
        out["optimizer"] = self.optimizer.state_dict()
        for level, optimizers in enumerate(self.mi_optimizers):
            for m, optimizer in optimizers.items():
                out[_mi_optimizer_key(m, level)] = optimizer.state_dict()
        out["epoch"] = int(self.epoch if self.batch_in_epoch else max(self.epoch - 1, 0))
        out["total_step"] = int(self.total_step)
        if self.normalization is not None:
            out[NORMALIZATION_KEY] = {k: v.clone() for k, v in self.normalization.items()}
        out["scheduler"] = {"milestones": list(MILESTONES), "gamma": GAMMA, "last_epoch": int(self.epoch)}
        out[CONFIG_KEY] = self.config.as_dict()
        out[TRAINER_KEY] = {
            "next_epoch": int(self.epoch),
            "next_batch": int(self.batch_in_epoch),
            "total_step": int(self.total_step),
            "rng": _rng_state(self.model.encoder.Cross_quantizer.python_random, self.device),
        }
        return out

    def _save(self, path: Path) -> Path:
        _save_atomic(self.checkpoint(), path)
        return path

    def _log(self, record: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    # -------------------------------------------------------------- run
    def run(self) -> TrainResult:
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_record = {
            **c.as_dict(),
            "encoder_sizes": self.model.sizes.as_dict(),
            "data": {"clips": len(self.data), "shapes": {k: list(v) for k, v in self.shapes.items()}},
            "steps_per_epoch": self.steps_per_epoch,
            "reset_after": self.model.encoder.Cross_quantizer.reset_after,
        }
        _write_text_atomic(self.run_dir / "config.json", json.dumps(config_record, indent=2, sort_keys=True) + "\n")
        self.model.train()
        epoch_paths: list[Path] = []
        last_metrics: dict[str, float] = {}
        diagnostics: list[LevelDiagnostics] = []
        stopped = False
        while self.epoch < c.epochs and not stopped:
            self._set_learning_rate()
            batches = _batches(_epoch_order(len(self.data), c.seed, self.epoch), c.batch_size)
            while self.batch_in_epoch < len(batches):
                if c.max_steps is not None and self.total_step >= c.max_steps:
                    stopped = True
                    break
                last_metrics = self.train_step(batches[self.batch_in_epoch])
                self.batch_in_epoch += 1
                record = {"kind": "step", "epoch": self.epoch, "total_step": self.total_step, **last_metrics}
                self._log(record)
                if self.on_step:
                    self.on_step(record)
                if c.save_every and self.total_step % c.save_every == 0:
                    self._save(self.run_dir / "last.pt")
            if stopped:
                break
            diagnostics = self.diagnose()
            record = {
                "kind": "epoch", "epoch": self.epoch, "total_step": self.total_step,
                "diagnostics": [d.as_dict() for d in diagnostics],
            }
            self._log(record)
            if self.on_epoch:
                self.on_epoch(record, diagnostics)
            finished_epoch = self.epoch
            self.epoch += 1
            self.batch_in_epoch = 0
            state = self.checkpoint()
            state["epoch"] = finished_epoch
            _save_atomic(state, self.run_dir / f"epoch-{finished_epoch}.pt")
            epoch_paths.append(self.run_dir / f"epoch-{finished_epoch}.pt")
            _save_atomic(state, self.run_dir / "last.pt")
        last = self._save(self.run_dir / "last.pt")
        return TrainResult(
            run_dir=self.run_dir, total_step=self.total_step, epoch=self.epoch,
            finished=self.epoch >= c.epochs, last_checkpoint=last, epoch_checkpoints=epoch_paths,
            last_losses=last_metrics, diagnostics=diagnostics,
        )


def train(config: TrainConfig, data: PretrainData, run_dir: str | Path, **options: Any) -> TrainResult:
    """Train (or resume) a DCID / H-DCID model into RUN_DIR; `options` are `Trainer`'s keywords."""
    return Trainer(config, data, run_dir, **options).run()
