"""In-memory paired corpora for the trainer tests (planted class structure, small and fast)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PlantedCorpus:
    """Clips of `n_classes` classes: every second of a clip carries its class prototype plus noise.

    Audio [T, 128], video [T, 7, 7, 512] (prototype broadcast over the 7x7 map) and one word
    sequence per class [T, word_dim] — the layout the trainer's data protocol asks for.
    """

    def __init__(self, n_clips: int = 16, n_classes: int = 4, steps: int = 10, word_dim: int = 24,
                 noise: float = 0.3, seed: int = 0, audio_dim: int = 128, video_dim: int = 512):
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n_clips) % n_classes
        audio_proto = rng.normal(size=(n_classes, audio_dim))
        video_proto = np.abs(rng.normal(size=(n_classes, video_dim)))
        words = rng.normal(size=(n_classes, steps, word_dim))
        self.audio = (audio_proto[self.labels][:, None, :] + noise * rng.normal(size=(n_clips, steps, audio_dim))).astype(np.float32)
        video = video_proto[self.labels][:, None, None, None, :] + noise * np.abs(rng.normal(size=(n_clips, steps, 7, 7, video_dim)))
        self.video = video.astype(np.float32)
        self.text = words[self.labels].astype(np.float32)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, rows: Sequence[int]) -> dict[str, np.ndarray]:
        rows = list(rows)
        self.reads += 1
        return {"audio": self.audio[rows], "video": self.video[rows], "text": self.text[rows]}
