"""In-memory task data and a counting code source for the evaluation tests (no checkpoint needed)."""

from __future__ import annotations

import numpy as np

from toc.data.base import FeatureSet, TaskData

T = 10


class FakeCodeSource:
    """Codes are written into the features themselves: feature[..., level] is the code index.

    With a dropout seed, a seeded 10% of codes are replaced, as a stand-in for dropout noise.
    """

    def __init__(self, codebooks: list[np.ndarray], sha256: str = "f" * 64, epoch: int | None = 2):
        self._codebooks = [np.asarray(cb, dtype=np.float64) for cb in codebooks]
        self.sha256 = sha256
        self.levels = len(codebooks)
        self.epoch = epoch
        self.family: str | None = None  # unknown: variants are checked by levels only
        self.calls: list[tuple[str, str, int | None]] = []

    def codebooks(self, dtype: str) -> list[np.ndarray]:
        cast = np.float32 if dtype == "float32" else np.float64
        return [cb.astype(cast).astype(np.float64) for cb in self._codebooks]

    def encode(self, feature_set, dtype, *, dropout_seed, batch_size, progress):
        self.calls.append((feature_set.name, dtype, dropout_seed))
        features = feature_set.read(np.arange(len(feature_set)))
        codes = [np.asarray(features[..., level], dtype=np.int64) for level in range(self.levels)]
        if dropout_seed is not None:
            rng = np.random.default_rng(1000 + dropout_seed)
            for level, cb in enumerate(self._codebooks):
                flip = rng.random(codes[level].shape) < 0.1
                codes[level] = np.where(flip, rng.integers(0, cb.shape[0], codes[level].shape), codes[level])
        return codes


def codebooks(levels: int = 2, k: int = 24, d: int = 12, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(k, d)) for _ in range(levels)]


def _feature_set(name: str, modality: str, ids, labels, codes: np.ndarray) -> FeatureSet:
    data = codes.astype(np.float64)
    return FeatureSet(
        name=name, modality=modality, ids=list(ids), labels=labels, feature_shape=tuple(data.shape[1:]),
        read=lambda rows: data[np.asarray(rows)], source=f"memory:{name}",
    )


def planted_codes(classes: np.ndarray, n_levels: int, k: int, signal: float, rng: np.random.Generator) -> np.ndarray:
    """[N, T, levels] codes: with probability `signal` a code of the clip's class block, else any code."""
    n = classes.size
    per_class = 2
    out = np.empty((n, T, n_levels), dtype=np.int64)
    for level in range(n_levels):
        own = classes[:, None] * per_class + rng.integers(0, per_class, (n, T))
        noise = rng.integers(0, k, (n, T))
        keep = rng.random((n, T)) < signal
        out[..., level] = np.where(keep, own % k, noise)
    return out


def clip_task(
    n_per_class: int = 12, n_classes: int = 4, *, levels: int = 2, k: int = 24, signal: float = 0.8,
    predefined: bool = True, seed: int = 0, task: str = "ave",
) -> TaskData:
    """An AVE-like clip task: video and audio of the same clips share class-planted codes."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(classes)
    n = classes.size
    ids = [f"vid{i:04d}" for i in range(n)]
    video = _feature_set("mem/video", "video", ids, classes, planted_codes(classes, levels, k, signal, rng))
    audio = _feature_set("mem/audio", "audio", ids, classes, planted_codes(classes, levels, k, signal, rng))
    splits = {}
    if predefined:
        order = rng.permutation(n)
        n_test, n_val = n // 5, n // 10
        split = {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test : n_test + n_val]), "train": np.sort(order[n_test + n_val :])}
        splits = {"mem/video": split, "mem/audio": split}
    return TaskData(
        task=task, kind="clip", class_names=[f"class{c}" for c in range(n_classes)],
        sets={"mem/video": video, "mem/audio": audio},
        directions={"v2a": ("mem/video", "mem/audio"), "a2v": ("mem/audio", "mem/video")},
        predefined_splits=splits,
    )


def segment_task(n_videos: int = 30, n_classes: int = 3, *, levels: int = 2, k: int = 24, signal: float = 0.9, seed: int = 0, task: str = "avvp") -> TaskData:
    """An AVVP-like segment task: per segment one class or background; codes planted per segment.

    Background segments use the codes after the class blocks.
    """
    rng = np.random.default_rng(seed)
    ids = [f"yt{i:09d}" for i in range(n_videos)]

    def one_modality(name: str, modality: str) -> FeatureSet:
        seg_class = rng.integers(0, n_classes + 1, (n_videos, T))  # n_classes = background
        labels = np.zeros((n_videos, T, n_classes + 1), dtype=np.float64)
        np.put_along_axis(labels, seg_class[..., None], 1.0, axis=-1)
        codes = np.empty((n_videos, T, levels), dtype=np.int64)
        for level in range(levels):
            own = seg_class * 2 + rng.integers(0, 2, (n_videos, T))
            noise = rng.integers(0, k, (n_videos, T))
            codes[..., level] = np.where(rng.random((n_videos, T)) < signal, own % k, noise)
        return _feature_set(name, modality, ids, labels, codes)

    video, audio = one_modality("seg/video", "video"), one_modality("seg/audio", "audio")
    return TaskData(
        task=task, kind="segment", class_names=[f"event{c}" for c in range(n_classes)],
        sets={"seg/video": video, "seg/audio": audio},
        directions={"v2a": ("seg/video", "seg/audio"), "a2v": ("seg/audio", "seg/video")},
    )


def single_thread():
    """Tiny heads run fastest on one thread; a shared test machine makes more threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
