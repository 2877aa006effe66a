"""A synthetic corpus in the own-data layout (toc.data.paired): paired audio and video features
of chosen widths — by default 768-d audio and 512-d clip-level video with no time axis (T = 1),
the shape of CLAP / CLIP-style clip embeddings — with class labels and train / val / test
splits, optionally with per-class text prompts. What `toc train` / `toc eval paired` read from
a user's own features, from a known generative model.

The model (docs/synthetic-data.md): each class c has a latent factor z_c (16-d); a clip of class
c draws z = z_c + jitter per time step, and each modality renders [z, u] through its own fixed
random two-layer map, with u a per-clip, per-modality nuisance (8-d), plus noise. Audio is dense
and signed (tanh map) on a per-channel offset and scale; video is non-negative and sparse (ReLU
map, thresholded). The modalities share nothing but z, so cross-modal transfer has to go through
what the model learns about z; chance is 1 / classes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from cmg_base.files import staged_directory
from toc.data.paired import FILE_NAME, SPLITS
from toc.errors import ConfigError

GENERATOR_VERSION = 1
LATENT_DIM = 16
NUISANCE_DIM = 8
HIDDEN_DIM = 96
JITTER = 0.6  # per-clip (and per-step) spread of the class latent
NOISE = 0.3  # per-channel observation noise, relative to the standardised map output
VIDEO_THRESHOLD = 0.5  # ReLU threshold on the standardised video pre-activation
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / val / test
BASE_CLIPS = 400  # clips at scale 1.0
MIN_CLIPS = 40
MANIFEST = "synth.json"


@dataclass(frozen=True)
class PairedSynthSummary:
    """What `synthesize_paired` wrote."""

    root: str
    file: str
    seed: int
    clips: int
    classes: int
    steps: int
    audio_dim: int
    video_dim: int
    text_dim: int | None
    split_counts: dict[str, int]
    generator_version: int = GENERATOR_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


def _two_layer_map(rng: np.random.Generator, n_in: int, n_out: int, activation: str):
    """A fixed random map [n_in] → [n_out], its output standardised on a calibration sample."""
    w1 = rng.standard_normal((n_in, HIDDEN_DIM)) * (1.5 / np.sqrt(n_in))
    b1 = rng.standard_normal(HIDDEN_DIM) * 0.5
    w2 = rng.standard_normal((HIDDEN_DIM, n_out)) / np.sqrt(HIDDEN_DIM)

    def hidden(x):
        h = x @ w1 + b1
        return np.tanh(h) if activation == "tanh" else np.maximum(h, 0.0)

    calibration = hidden(rng.standard_normal((2048, n_in))) @ w2
    mean, std = calibration.mean(0), calibration.std(0) + 1e-6
    return lambda x: (hidden(x) @ w2 - mean) / std


def scaled_clips(scale: float) -> int:
    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"scale must be a positive number, got {scale}")
    return max(MIN_CLIPS, int(round(BASE_CLIPS * scale)))


def synthesize_paired(
    root: str | os.PathLike, *, scale: float = 1.0, seed: int = 0, classes: int = 10, steps: int = 1,
    audio_dim: int = 768, video_dim: int = 512, text_dim: int | None = None, force: bool = False,
) -> PairedSynthSummary:
    """Write ROOT/paired.h5 (and ROOT/synth.json); deterministic bytes for a seed.

    `text_dim`: None writes no text; a width writes one prompt vector per class (`prompts`
    [K, text_dim]). ROOT must be absent or empty unless `force` (then it must hold an earlier
    synthetic corpus).
    """
    n = scaled_clips(scale)
    for name, value, low in (("classes", classes, 2), ("steps", steps, 1), ("audio_dim", audio_dim, 1),
                             ("video_dim", video_dim, 1), ("seed", seed, 0)):
        if int(value) < low:
            raise ConfigError(f"{name} must be at least {low}, got {value}")
    if text_dim is not None and text_dim < 1:
        raise ConfigError(f"text_dim must be at least 1, got {text_dim}")
    if classes * 3 > n:
        raise ConfigError(f"{classes} classes need at least {3 * classes} clips (scale gives {n})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    factors = rng.standard_normal((classes, LATENT_DIM))
    audio_map = _two_layer_map(rng, LATENT_DIM + NUISANCE_DIM, audio_dim, "tanh")
    video_map = _two_layer_map(rng, LATENT_DIM + NUISANCE_DIM, video_dim, "relu")
    # Real embeddings are neither centred nor equally spread per channel.
    audio_offset = rng.normal(0.0, 1.5, audio_dim)
    audio_scale = np.exp(rng.normal(0.0, 0.5, audio_dim))
    labels = np.resize(np.arange(classes), n)[rng.permutation(n)].astype(np.int64)
    latent = factors[labels][:, None, :] + JITTER * rng.standard_normal((n, steps, LATENT_DIM))

    def render(render_map, width):
        nuisance = np.broadcast_to(rng.standard_normal((n, 1, NUISANCE_DIM)), (n, steps, NUISANCE_DIM))
        out = render_map(np.concatenate([latent, nuisance], axis=-1))
        return out + NOISE * rng.standard_normal((n, steps, width))

    audio = render(audio_map, audio_dim) * audio_scale + audio_offset
    video = np.maximum(render(video_map, video_dim) - VIDEO_THRESHOLD, 0.0)
    order = rng.permutation(n)
    n_val, n_test = (int(round(n * f)) for f in SPLIT_FRACTIONS[1:])
    split = np.empty(n, dtype=object)
    split[order[: n - n_val - n_test]] = SPLITS[0]
    split[order[n - n_val - n_test : n - n_test]] = SPLITS[1]
    split[order[n - n_test :]] = SPLITS[2]
    datasets: dict[str, np.ndarray] = {
        # No time axis when T = 1: [N, D], as clip-level embeddings are usually stored.
        "audio": (audio[:, 0] if steps == 1 else audio).astype(np.float32),
        "video": (video[:, 0] if steps == 1 else video).astype(np.float32),
        "labels": labels,
    }
    if text_dim is not None:
        text_map = _two_layer_map(rng, LATENT_DIM, text_dim, "tanh")
        datasets["prompts"] = (0.5 * text_map(factors)).astype(np.float32)
    strings = {
        "class_names": [f"class {c:02d}" for c in range(classes)],
        "split": [str(s) for s in split],
        "ids": [f"clip{i:05d}" for i in range(n)],
    }
    target = Path(root)
    with staged_directory(target, force=force, marker=MANIFEST) as staging:
        with h5py.File(staging / FILE_NAME, "w", libver="earliest") as handle:
            for key, data in datasets.items():
                handle.create_dataset(key, data=data, track_times=False)
            for key, values in strings.items():
                handle.create_dataset(key, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8"), track_times=False)
        summary = PairedSynthSummary(
            root=str(target), file=FILE_NAME, seed=seed, clips=n, classes=classes, steps=steps,
            audio_dim=audio_dim, video_dim=video_dim, text_dim=text_dim,
            split_counts={name: int((split == name).sum()) for name in SPLITS},
        )
        (staging / MANIFEST).write_text(json.dumps({"layout": "paired", **summary.to_dict()}, indent=2, sort_keys=True) + "\n")
    return summary
