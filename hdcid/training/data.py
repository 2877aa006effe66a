"""What the trainer reads: the corpus protocol, checks on what it returns, and the seeded order
in which clips are visited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from hdcid.errors import TrainDataError
from hdcid.modules import MIN_VIDEO_GRID
from hdcid.vocabulary import MODALITIES

# Array ranks per modality: audio [n, T, A]; video [n, T, H, W, C] (a spatial grid, e.g. VGG19
# pool5 maps) or [n, T, C] (no grid); text [n, T, W]. Audio and video are required, text optional.
RANKS = {"audio": (3,), "video": (5, 3), "text": (3,)}
REQUIRED = ("audio", "video")


class PretrainData(Protocol):
    """What the trainer needs from a corpus: its size and paired features for given rows.

    `read(rows)` returns numpy float arrays: audio [n, T, A], video [n, T, H, W, C] or [n, T, C],
    and optionally text [n, T, W] (word-level text features; the text LSTM runs inside the model);
    every modality has the same T (T = 1 for features without a time axis). An optional
    attribute `labels` (int array [len]) enables the linear-probe and per-class overlap
    diagnostics; an optional `event_mask` (bool array [len, T]) limits the audio–video
    code-sharing measures to event seconds.
    """

    def __len__(self) -> int: ...

    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]: ...


def check_batch(batch: dict[str, np.ndarray], n: int, expected: dict[str, tuple] | None) -> None:
    """One-line TrainDataError unless `batch` holds `n` finite rows per modality of the expected
    shape (`expected`: per-clip shapes, whose keys are the modalities the run uses)."""
    names = list(expected) if expected is not None else [k for k in MODALITIES if k in batch or k in REQUIRED]
    for key in names:
        ranks = RANKS[key]
        if key not in batch:
            raise TrainDataError(f"pretraining data: read() returned no '{key}' array (keys {sorted(batch)})")
        array = batch[key]
        shape = tuple(array.shape)
        if len(shape) not in ranks or shape[0] != n:
            dims = " or ".join(str(r) for r in ranks)
            raise TrainDataError(
                f"pretraining data: key '{key}' has shape {list(shape)} (expected {dims} dims with {n} rows)"
            )
        if expected is not None and shape[1:] != expected[key]:
            raise TrainDataError(
                f"pretraining data: key '{key}' (expected shape [n, {', '.join(map(str, expected[key]))}], "
                f"got {list(shape)})"
            )
        if not np.all(np.isfinite(array)):
            raise TrainDataError(f"pretraining data: key '{key}' holds NaN or infinite values")
    steps = {batch[k].shape[1] for k in names}
    if len(steps) != 1:
        raise TrainDataError(f"pretraining data: {' / '.join(names)} have different time lengths {sorted(steps)}")


def probe_shapes(data: PretrainData) -> dict[str, tuple[int, ...]]:
    """Per-clip shapes of the corpus (from its first clip), checked against what the model needs."""
    if len(data) < 1:
        raise TrainDataError("pretraining data is empty (0 clips)")
    probe = data.read([0])
    check_batch(probe, 1, None)
    shapes = {k: tuple(probe[k].shape[1:]) for k in MODALITIES if k in probe}
    if shapes["audio"][0] < 1:
        raise TrainDataError("pretraining data: clips have no time steps (T = 0)")
    video = shapes["video"]
    if len(video) == 4 and min(video[1:3]) < MIN_VIDEO_GRID:
        raise TrainDataError(
            f"pretraining data: key 'video' (expected [n, T, H, W, C] maps with H, W >= {MIN_VIDEO_GRID}, e.g. "
            f"7 x 7 VGG19 pool5, or [n, T, C] without a grid; got [n, {', '.join(map(str, video))}])"
        )
    return shapes


def video_has_grid(shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether the corpus' video is a spatial grid [T, H, W, C] (else vectors [T, C])."""
    return len(shapes["video"]) == 4


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of the n clips, seeded by (seed, epoch) only, so a resumed run sees exactly
    the same order. Negative epochs name fixed subsets (statistics, initialisation, diagnostics)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


def batches(order: torch.Tensor, batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


# The fixed subsets, as the negative "epochs" of epoch_order.
STATISTICS_SUBSET, INIT_SUBSET, DIAGNOSTICS_SUBSET = -1, -2, -3
