"""How a run starts: global seeds, the quantizer's reset patience, a warm start from a DCID
checkpoint, the input statistics, and data-dependent codebooks with consistent EMA counts."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmg_base.inputs import check_regular_file
from cmg_base.torch_archive import check_torch_archive
from hdcid import normalization
from hdcid.checkpoint_keys import (
    DECODER_KEY,
    ENCODER_KEY,
    MI_MODALITIES,
    TEXT_LSTM_KEY,
    cpc_key,
    mi_net_key,
)
from hdcid.errors import ModelError
from hdcid.quantizer import ACTIVE_WITHIN, NEVER_RESET, RESET_AFTER
from hdcid.recipes import ResetPatience, TrainConfig
from hdcid.training.data import INIT_SUBSET, STATISTICS_SUBSET, PretrainData, epoch_order
from hdcid.training.step import PretrainModel
from hdcid.vocabulary import MODALITIES

STATISTICS_CLIPS = 4096  # clips the input statistics are computed on
SAMPLE_CLIPS = 2048  # clips whose semantic features seed a data-dependent codebook
LEVEL_1_DECODERS = ("Video_decoder", "Audio_decoder", "Text_decoder")


def seed_everything(seed: int) -> None:
    """Seed the global torch, Python and numpy RNGs (model initialisation and dropout draw from them)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))


def reset_schedule(patience: ResetPatience, steps_per_epoch: int, forwards_per_step: int) -> tuple[int, int]:
    """(reset_after, active_within) in quantizer calls for a reset patience.

    "reference": the published 300 / 100 batches. "auto": a code unused for a whole epoch is
    dead (the published 300 batches can exceed a small corpus' whole run). An integer is taken
    as is. Both scale `active_within` with the published ratio. "off": no code is ever reset
    (a revived copy of a code both modalities share splits it in two, docs/training.md).
    """
    if patience == "reference":
        return RESET_AFTER, ACTIVE_WITHIN
    if patience == "off":
        return NEVER_RESET, ACTIVE_WITHIN
    reset_after = steps_per_epoch * forwards_per_step if patience == "auto" else int(patience)
    reset_after = max(2, reset_after)
    return reset_after, max(1, round(reset_after * ACTIVE_WITHIN / RESET_AFTER))


def configure_quantizer(model: PretrainModel, config: TrainConfig, steps_per_epoch: int) -> None:
    """Set the dead-code reset policy of the run's quantizer from its remedies."""
    # With reference forwards every CLUB iteration is one more quantizer call per step.
    forwards = 1 + (config.mi_iters if config.reference_forwards and config.levels == 2 else 0)
    reset_after, active_within = reset_schedule(config.remedies.reset_patience, steps_per_epoch, forwards)
    model.quantizer.set_reset_policy(
        reset_after, active_within, updates_ema=config.remedies.ema_consistent,
    )
    r = config.remedies
    model.quantizer.set_sharing_policy(
        cosine=r.cosine_codes, reset_source=r.reset_source, reset_shared_only=r.reset_shared_only,
        reset_limit=r.reset_limit,
    )


def input_statistics(data: PretrainData, config: TrainConfig) -> dict[str, torch.Tensor]:
    """Per-channel audio / video statistics on a fixed subset of the corpus."""
    rows = epoch_order(len(data), config.seed, STATISTICS_SUBSET)[:STATISTICS_CLIPS].tolist()
    return normalization.channel_statistics(data, rows, config.batch_size)


# ---------------------------------------------------------------------- warm start


def warm_start(model: PretrainModel, path: Path, levels: int) -> dict[str, torch.Tensor] | None:
    """Load level 1 (encoder, text LSTM, CPC, CLUB nets, level-1 decoder) from a DCID checkpoint
    into an H-DCID model; returns the checkpoint's input statistics, if it has any."""
    if levels != 2:
        raise ModelError("{} warm-starts H-DCID level 1; it needs levels 2", settings=("init_from",))
    check_regular_file(path, what="checkpoint to warm-start from", error=ModelError)
    check_torch_archive(path, error=ModelError)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(source, dict) or ENCODER_KEY not in source:
        raise ModelError(f"{path}: not a DCID checkpoint (no {ENCODER_KEY})")
    _load_level_1_encoder(model, path, source[ENCODER_KEY])
    partial = [(TEXT_LSTM_KEY, model.text_lstm), (cpc_key(0), model.cpc[0])]
    partial += [(mi_net_key(m, 0), model.mi_nets[0][m]) for m in MI_MODALITIES]
    for key, module in partial:
        if key in source:
            load_matching(path, key, module, source[key])
    if DECODER_KEY in source:
        decoder_state = {k: v for k, v in source[DECODER_KEY].items() if k.split(".")[0] in LEVEL_1_DECODERS}
        load_matching(path, DECODER_KEY, model.decoder, decoder_state, strict=False)
    if normalization.NORMALIZATION_KEY in source:
        return {k: v.float() for k, v in source[normalization.NORMALIZATION_KEY].items()}
    return None


def _load_level_1_encoder(model: PretrainModel, path: Path, encoder_state: Mapping[str, torch.Tensor]) -> None:
    target = model.encoder.state_dict()
    for key, value in encoder_state.items():
        if key.startswith("Cross_quantizer."):
            # DCID buffers [K, D] go into level 1 of the stacked H-DCID buffers [2, K, D].
            if key not in target or target[key][0].shape != value.shape:
                raise ModelError(
                    f"{path}: key '{ENCODER_KEY}.{key}' does not fit H-DCID level 1 (expected "
                    f"{list(target[key][0].shape) if key in target else 'no such key'}, got {list(value.shape)})"
                )
            target[key][0].copy_(value)
            continue
        if key not in target:
            raise ModelError(f"{path}: key '{ENCODER_KEY}.{key}' is not part of an H-DCID encoder (a DCID checkpoint is needed)")
        if target[key].shape != value.shape:
            raise ModelError(
                f"{path}: key '{ENCODER_KEY}.{key}' (expected {list(target[key].shape)}, got {list(value.shape)}); "
                "use the DCID checkpoint's sizes"
            )
        target[key].copy_(value)
    model.encoder.load_state_dict(target)


def load_matching(path: Path, key: str, module: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> None:
    """Load `state` into `module`, naming the first entry whose name or shape does not fit."""
    own = module.state_dict()
    for name, value in state.items():
        if name not in own or own[name].shape != value.shape:
            raise ModelError(
                f"{path}: key '{key}.{name}' (expected {list(own[name].shape) if name in own else 'no such key'}, "
                f"got {list(value.shape)})"
            )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=strict)


# ---------------------------------------------------------------------- codebooks


@torch.no_grad()
def semantic_sample(
    model: PretrainModel, data: PretrainData, config: TrainConfig,
    inputs: Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]], max_clips: int = SAMPLE_CLIPS,
) -> list[torch.Tensor]:
    """Semantic features of all modalities pooled per level, from the current (initial) model;
    `inputs` turns a corpus batch into model inputs. Leaves the model in train mode."""
    rows = epoch_order(len(data), config.seed, INIT_SUBSET)[:max_clips].tolist()
    pooled: list[list[torch.Tensor]] = [[] for _ in range(config.levels)]
    model.eval()
    for start in range(0, len(rows), config.batch_size):
        batch = inputs(data.read(rows[start : start + config.batch_size]))
        if "text" in batch:
            batch["text"] = model.prepare_text(batch["text"])
        for modality in (m for m in MODALITIES if m in batch):
            for level, features in enumerate(model.codebook_features(modality, batch[modality])):
                pooled[level].append(features.reshape(-1, features.shape[-1]).double().cpu())
    model.train()
    return [torch.cat(p) for p in pooled]


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> torch.Tensor:
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


def sampled_codes(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k of the points (with repeats if there are fewer), each moved by a little noise."""
    picks = torch.randperm(points.shape[0], generator=generator)[:k]
    if len(picks) < k:
        picks = torch.cat([picks, torch.randint(points.shape[0], (k - len(picks),), generator=generator)])
    return points[picks] + 1e-3 * points.std() * torch.randn(k, points.shape[1], generator=generator, dtype=points.dtype)


def init_codebooks(
    model: PretrainModel, samples: Sequence[torch.Tensor], config: TrainConfig, levels: Sequence[int],
    *, device: torch.device, dtype: torch.dtype,
) -> None:
    """Place the codes of `levels` among the sampled semantic features (k-means or a sample)."""
    generator = torch.Generator().manual_seed(config.seed + 7)
    quantizer = model.quantizer
    k = config.n_embeddings
    cosine = config.remedies.cosine_codes
    for level in levels:
        # Cosine codes are placed among the features' directions.
        points = F.normalize(samples[level], dim=-1) if cosine else samples[level]
        if config.remedies.codebook_init == "kmeans":
            codes = kmeans(points, k, generator)
        else:
            codes = sampled_codes(points, k, generator)
        if cosine:
            codes = F.normalize(codes, dim=-1)
        quantizer.replace_codes(level, codes.to(device=device, dtype=dtype))


@torch.no_grad()
def unit_codebooks(model: PretrainModel, levels: int) -> None:
    """Cosine codes: every level's codewords scaled to unit length (after any initialisation, so
    a uniform or warm-started codebook starts on the sphere too)."""
    for level in range(levels):
        model.quantizer.replace_codes(level, F.normalize(model.quantizer.codebook(level), dim=-1))


def sync_ema_counts(model: PretrainModel, config: TrainConfig, steps_per_clip: int) -> None:
    """Start every code with the EMA count it would have under uniform use, weight = code · count."""
    count = max(1.0, config.batch_size * steps_per_clip / config.n_embeddings)
    for level in range(config.levels):
        model.quantizer.start_uniform_counts(level, count)
