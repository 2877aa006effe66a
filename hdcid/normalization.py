"""Input standardisation: per-channel statistics of the audio and video features, and the formula.

A model trained on standardised inputs stores the statistics in its checkpoint under
NORMALIZATION_KEY (`{modality}_mean`, `{modality}_std`, one value per channel); whoever encodes
with that model applies the same `apply` to its inputs. Text features are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

NORMALIZATION_KEY = "Input_normalization"
NORMALIZED_MODALITIES = ("audio", "video")
MIN_STD = 1e-6  # channels with a smaller spread are treated as constant (scale 1)


class _Readable(Protocol):
    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]: ...


def mean_key(modality: str) -> str:
    return f"{modality}_mean"


def std_key(modality: str) -> str:
    return f"{modality}_std"


def channel_statistics(data: _Readable, rows: Sequence[int], batch_size: int) -> dict[str, torch.Tensor]:
    """Per-channel mean / std of audio and video (channels last) over `rows`, float64 accumulation,
    stored as float32."""
    rows = list(rows)
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(rows), batch_size):
        batch = data.read(rows[start : start + batch_size])
        for key in NORMALIZED_MODALITIES:
            x = torch.from_numpy(np.asarray(batch[key], dtype=np.float64))
            flat = x.reshape(-1, x.shape[-1])
            sums[key] = sums.get(key, 0) + flat.sum(0)
            squares[key] = squares.get(key, 0) + (flat**2).sum(0)
            counts[key] = counts.get(key, 0) + flat.shape[0]
    out = {}
    for key in NORMALIZED_MODALITIES:
        mean = sums[key] / counts[key]
        var = (squares[key] / counts[key] - mean**2).clamp_min(0.0)
        # Constant channels keep scale 1 rather than dividing by ~0.
        std = torch.where(var.sqrt() > MIN_STD, var.sqrt(), torch.ones_like(var))
        out[mean_key(key)], out[std_key(key)] = mean.float(), std.float()
    return out


def apply(stats: dict[str, torch.Tensor] | None, modality: str, x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std over the last (channel) axis, computed in x's dtype and device; x as is
    when there are no statistics for this modality."""
    if not stats or mean_key(modality) not in stats:
        return x
    mean = stats[mean_key(modality)].to(device=x.device, dtype=x.dtype)
    std = stats[std_key(modality)].to(device=x.device, dtype=x.dtype)
    return (x - mean) / std
