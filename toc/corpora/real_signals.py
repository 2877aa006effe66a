"""The real-signal corpora's one writer: layouts, splits, event placement, text prompts, summary.

A real-signal corpus pairs real audio (speech from espeak-ng, synthesised instruments) with real
images (handwritten digits, words in fonts, drawn shapes) of the same class, in the layouts of
the published data, so `toc train` and `toc eval ave` read it with the real loaders. Each corpus
defines only what is its own, as a `RealSignalCorpus`: its 10 classes, where its sounds come from
(sources: speakers, instrument makers) and where its images come from (an `ImagePool`), with the
evaluation sources and images disjoint from the pretraining ones. This module does the rest, the
same for every corpus:

* the clip plan: balanced classes, one source and one image per clip, an event interval;
* rendering: background noise, the event's sound in each event second, the image in each event
  frame, through the fixed extractors (toc.corpora.extractors);
* writing: a pretraining set in the VGGSound-AVEL layout (csv + per-video zips + a text-feature
  h5 of the category prompts), an AVE-layout task set (h5 features, labels, train/val/test
  orders), a clip table and a marker file with the provenance, all or nothing.

docs/real-corpora.md describes the corpora and the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import h5py
import numpy as np

from cmg_base.files import staged_directory, write_text_atomic
from toc.corpora.extractors import SAMPLE_RATE, VideoLifter, audio_segment_features
from toc.data.archives import pkl_zip_bytes
from toc.data.base import AUDIO_DIM, T_SEGMENTS, VIDEO_CHANNELS, VIDEO_GRID
from toc.data.layout import relative_path
from toc.errors import ConfigError, TocError
from toc.progress import ProgressFactory, no_progress

N_SEGMENTS = T_SEGMENTS
AVE_LABEL_COLUMNS = 29  # the real AVE labels: 28 foreground columns + background last
AVE_BACKGROUND_COLUMN = 28
TEXT_TOKENS = 10
EVENT_LENGTH_RANGE = (3, 10)  # segments, inclusive
AVE_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test
PRETRAIN_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # the csv's split column (all rows are pretraining)
ID_LENGTH = 11  # pretraining video ids look like YouTube ids
AVE_CLIPS_PER_PRETRAIN_CLIP = 0.6  # the default AVE size: 0.6 x the pretraining clips

# Layout, relative to the corpus root.
PRETRAIN_CSV = relative_path("pretrain", "csv")
CATEGORIES_TXT = relative_path("pretrain", "categories")
PROMPTS_CSV = relative_path("pretrain", "prompts")
PRETRAIN_AUDIO_DIR = relative_path("pretrain", "audio_dir")
PRETRAIN_VIDEO_DIR = relative_path("pretrain", "video_dir")
PRETRAIN_LABEL_DIR = relative_path("pretrain", "label_dir")
TEXT_FEATURES_FILE = relative_path("pretrain", "text_features")
AVE_DIR = str(PurePosixPath(relative_path("ave", "labels")).parent)


class MissingToolError(TocError):
    """An optional tool a real-signal corpus needs (espeak-ng, scikit-learn, Pillow, fonts) is missing."""


@dataclass(frozen=True)
class RealCorpusConfig:
    """What to build: clip counts, the seed, and the width of the text word features."""

    pretrain_clips: int = 500
    ave_clips: int = 300
    seed: int = 0
    text_width: int = 768

    def validate(self, n_classes: int = 10) -> None:
        if self.pretrain_clips < n_classes:
            raise ConfigError(f"pretraining clips must be at least {n_classes} (one per class), got {self.pretrain_clips}")
        if self.ave_clips < n_classes:
            raise ConfigError(f"AVE clips must be at least {n_classes} (one per class), got {self.ave_clips}")
        if self.text_width < 1:
            raise ConfigError(f"text width must be positive, got {self.text_width}")


def default_ave_clips(pretrain_clips: int, n_classes: int = 10) -> int:
    """The AVE set's default size: 0.6 x the pretraining clips, at least one per class."""
    return max(n_classes, round(AVE_CLIPS_PER_PRETRAIN_CLIP * pretrain_clips))


class Source(Protocol):
    """Where a clip's sounds come from (a speaker, an instrument maker): named uniquely."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ImagePool:
    """A corpus' images and which of them pretraining and evaluation clips may show (disjoint).

    Images are drawn when a clip shows them (`draw(row)`), so a pool may describe more images
    than a small corpus uses at no cost; everything random about an image is fixed when the
    pool is made.
    """

    labels: np.ndarray  # int64 [K], the class of each image
    pretrain: np.ndarray  # int64 rows for pretraining clips
    evaluation: np.ndarray  # int64 rows for AVE clips
    side: int  # images are [side, side], float64 in [0, 1]
    draw: Callable[[int], np.ndarray]
    names: Sequence[str] | None = None  # the clip table's image column per row (default: the row)

    def name(self, row: int) -> str:
        return str(row) if self.names is None else self.names[int(row)]

    @staticmethod
    def of_drawings(labels: Sequence[int], held_out: Sequence[bool], names: Sequence[str], side: int,
                    draw: Callable[[int], np.ndarray]) -> ImagePool:
        """A pool of drawings described row by row: class, whether evaluation clips alone may show
        it, and a name "GROUP#ROW" (GROUP: the font or style it was drawn in)."""
        rows = np.arange(len(labels), dtype=np.int64)
        evaluation = np.asarray(held_out, dtype=bool)
        return ImagePool(np.asarray(labels, dtype=np.int64), rows[~evaluation], rows[evaluation], side, draw, names)

    def groups(self, rows: np.ndarray) -> list[str]:
        """The sorted groups ("GROUP#ROW" names) of these rows: which fonts or styles they show."""
        return sorted({self.name(row).split("#")[0] for row in rows})


class RealSignalCorpus(ABC):
    """One real-signal corpus: its classes, its sound source and its image source.

    Every random draw goes through the generator the writer passes, in the writer's order
    (sources, image pool, clip plans, rendering, splits), so a seed fixes the whole corpus.
    """

    kind: str  # the `toc synth-real --kind` name; the marker and clip-table files are named after it
    class_names: tuple[str, ...]
    id_prefix: str  # pretraining video ids are this + a 5-digit row number (11 characters)
    prompt_template: str  # the category prompt, "{}" standing for the class name
    class_column: str  # the clip table's column names for the class, the source and the image
    source_column: str
    image_column: str
    sources_noun: str  # the summary's pretrain_<noun> / eval_<noun> lists of source names

    @property
    def marker_file(self) -> str:
        return f"{self.kind}.json"

    @property
    def clips_file(self) -> str:
        return f"{self.kind}-clips.csv"

    def prompt(self, name: str) -> str:
        return self.prompt_template.format(name)

    @abstractmethod
    def check_tools(self) -> dict[str, str]:
        """Check what the corpus needs is installed (MissingToolError); return provenance lines."""

    @abstractmethod
    def choose_sources(self, rng: np.random.Generator) -> tuple[list[Source], list[Source]]:
        """Pretraining and evaluation sources, disjoint."""

    @abstractmethod
    def image_pool(self, rng: np.random.Generator) -> ImagePool:
        """The images and their pretraining / evaluation rows."""

    @abstractmethod
    def prepare_sounds(self, jobs: Sequence[tuple[Source, int]], workdir: Path) -> dict[tuple[str, int], Any]:
        """What `event_second` needs per (source name, class) used, made once each."""

    @abstractmethod
    def event_second(self, sound: Any, rng: np.random.Generator) -> np.ndarray:
        """One second [SAMPLE_RATE] of the event's sound, with a fresh draw of its variation."""

    def image_details(self, pool: ImagePool) -> dict[str, Any]:
        """Extra summary fields about the images (e.g. the fonts of each side)."""
        return {}


@dataclass
class ClipSet:
    """Generated clips of one split: audio features and ground truth (row i = clip i).

    Video features (1 MB per clip) are not kept: they go to a sink as each clip is made.
    """

    audio: np.ndarray  # float32 [N,10,128]
    classes: np.ndarray  # int64 [N]
    onsets: np.ndarray  # int64 [N], first event segment
    offsets: np.ndarray  # int64 [N], one past the last event segment
    sources: list[str]  # source name per clip
    image_rows: np.ndarray  # int64 [N], row of the image pool

    def __len__(self) -> int:
        return len(self.classes)

    def event_mask(self) -> np.ndarray:
        """Boolean [N,10]: True on the event's segments."""
        steps = np.arange(N_SEGMENTS)
        return (steps >= self.onsets[:, None]) & (steps < self.offsets[:, None])


@dataclass(frozen=True)
class CorpusSummary:
    """What was written where, and the provenance needed to rebuild or audit it.

    `details` are the corpus' own fields (tool versions, its sources, image counts); `to_dict`
    puts them beside the common ones, as the marker file and the command's JSON show them.
    """

    root: str
    seed: int
    pretrain_clips: int
    ave_clips: int
    ave_split_sizes: dict[str, int]
    text_width: int
    files: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        fields = asdict(self)
        return {**fields.pop("details"), **fields}


# ----------------------------------------------------------------------------------------------
# Clips


def _balanced_classes(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


def _draw_images(classes: np.ndarray, pool: np.ndarray, image_labels: np.ndarray, n_classes: int,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """One image per clip from `pool`, of the clip's class; without replacement while they last."""
    chosen = np.empty(len(classes), dtype=np.int64)
    for label in range(n_classes):
        clips = np.flatnonzero(classes == label)
        candidates = pool[image_labels[pool] == label]
        if len(clips) and not len(candidates):
            raise TocError(f"the image pool has no image of class {label} for these clips")
        repeats = int(np.ceil(len(clips) / max(1, len(candidates))))
        sequence = np.concatenate([rng.permutation(candidates) for _ in range(repeats)])
        chosen[clips] = sequence[: len(clips)]
    return chosen


@dataclass(frozen=True)
class ClipPlan:
    """What each clip shows, drawn before any signal is made (so only needed sounds are made)."""

    classes: np.ndarray  # int64 [N]
    source_rows: np.ndarray  # int64 [N], index into the split's sources
    image_rows: np.ndarray  # int64 [N], row of the image pool
    onsets: np.ndarray  # int64 [N]
    offsets: np.ndarray  # int64 [N]

    def sounds_needed(self, sources: Sequence[Source]) -> set[tuple[Source, int]]:
        return {(sources[s], int(c)) for s, c in zip(self.source_rows, self.classes, strict=True)}


def plan_clips(n: int, n_sources: int, image_rows: np.ndarray, image_labels: np.ndarray, n_classes: int,
               rng: np.random.Generator) -> ClipPlan:  # fmt: skip
    """Draw `n` clips: a balanced class, a source, an image of that class, an event interval."""
    classes = _balanced_classes(n, n_classes, rng)
    chosen_images = _draw_images(classes, image_rows, image_labels, n_classes, rng)
    source_rows = rng.integers(0, n_sources, size=n).astype(np.int64)
    lengths = rng.integers(EVENT_LENGTH_RANGE[0], EVENT_LENGTH_RANGE[1] + 1, size=n)
    onsets = np.array([rng.integers(0, N_SEGMENTS - length + 1) for length in lengths], dtype=np.int64)
    return ClipPlan(classes, source_rows, chosen_images, onsets, onsets + lengths)


VideoSink = Callable[[int, np.ndarray, np.ndarray], None]  # (row, audio [10,128], video [10,7,7,512])


def render_clips(corpus: RealSignalCorpus, plan: ClipPlan, sources: Sequence[Source],
                 sounds: dict[tuple[str, int], Any], pool: ImagePool, lifter: VideoLifter,
                 rng: np.random.Generator, sink: VideoSink,
                 progress: Callable[[int], None] | None = None) -> ClipSet:  # fmt: skip
    """Make the signals of planned clips (event sounds, image jitter, noise), compute features,
    pass them to `sink`."""
    n = len(plan.classes)
    side = pool.side
    audio = np.empty((n, N_SEGMENTS, AUDIO_DIM), dtype=np.float32)
    for clip in range(n):
        source = sources[plan.source_rows[clip]]
        sound = sounds[(source.name, int(plan.classes[clip]))]
        noise_level = np.exp(rng.uniform(np.log(0.003), np.log(0.03)))
        seconds = rng.normal(0.0, noise_level, size=(N_SEGMENTS, SAMPLE_RATE))
        frames = np.clip(rng.normal(0.0, 0.05, size=(N_SEGMENTS, side, side)), 0.0, None)  # blank + noise
        image = pool.draw(int(plan.image_rows[clip]))
        for step in range(plan.onsets[clip], plan.offsets[clip]):
            seconds[step] += corpus.event_second(sound, rng)
            frames[step] = np.clip(image * rng.uniform(0.8, 1.2) + rng.normal(0.0, 0.05, size=(side, side)), 0.0, 1.0)
        audio[clip] = audio_segment_features(seconds)
        sink(clip, audio[clip], lifter(frames))
        if progress is not None:
            progress(1)
    return ClipSet(
        audio=audio, classes=plan.classes, onsets=plan.onsets, offsets=plan.offsets,
        sources=[sources[i].name for i in plan.source_rows], image_rows=plan.image_rows,
    )  # fmt: skip


def text_word_features(prompts: Sequence[str], width: int) -> np.ndarray:
    """[classes, 10 tokens, width] word features of the category prompts.

    Stand-in for BERT token embeddings (not available offline): each token gets a fixed
    pseudo-random N(0, 0.5²) vector derived from a hash of the token, so only the tokens that
    differ between prompts carry the class; slots past the prompt are zero, as the reference pads
    to 10 tokens.
    """
    features = np.zeros((len(prompts), TEXT_TOKENS, width), dtype=np.float32)
    for row, prompt in enumerate(prompts):
        for slot, token in enumerate(prompt.split()[:TEXT_TOKENS]):
            seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
            features[row, slot] = np.random.default_rng(seed).normal(0.0, 0.5, size=width)
    return features


# ----------------------------------------------------------------------------------------------
# Writing


def _split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    return n - n_val - n_test, n_val, n_test


def _zip_array(path: Path, key: str, array: np.ndarray) -> None:
    path.write_bytes(pkl_zip_bytes(key, array))


def _write_order(path: Path, rows: np.ndarray) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("order", data=np.asarray(rows, dtype=np.int64))


def _open_ave_video(folder: Path, n: int) -> tuple[h5py.File, VideoSink]:
    """Create visual_feature.h5 and return it with a sink writing one clip per row."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = h5py.File(folder / "visual_feature.h5", "w")
    shape = (n, N_SEGMENTS, VIDEO_GRID, VIDEO_GRID, VIDEO_CHANNELS)
    dataset = handle.create_dataset(
        "avadataset", shape=shape, dtype=np.float64, chunks=(1, *shape[1:]),
        compression="gzip", compression_opts=1, shuffle=True,
    )  # fmt: skip

    def sink(row: int, audio: np.ndarray, video: np.ndarray) -> None:
        dataset[row] = video.astype(np.float64)

    return handle, sink


def _write_ave(folder: Path, clips: ClipSet, rng: np.random.Generator) -> dict[str, int]:
    """Everything of the AVE set but the video features (written by the sink while rendering)."""
    n = len(clips)
    with h5py.File(folder / "audio_feature.h5", "w") as handle:
        handle.create_dataset("avadataset", data=clips.audio.astype(np.float64))
    labels = np.zeros((n, N_SEGMENTS, AVE_LABEL_COLUMNS), dtype=np.float64)
    mask = clips.event_mask()
    for clip in range(n):
        labels[clip, mask[clip], clips.classes[clip]] = 1.0
        labels[clip, ~mask[clip], AVE_BACKGROUND_COLUMN] = 1.0
    with h5py.File(folder / "labels.h5", "w") as handle:
        handle.create_dataset("avadataset", data=labels)
    n_train, n_val, _ = _split_sizes(n, AVE_SPLIT_FRACTIONS)
    rows = rng.permutation(n).astype(np.int64)
    splits = {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}
    for split, split_rows in splits.items():
        _write_order(folder / f"{split}_order.h5", split_rows)
    return {split: len(split_rows) for split, split_rows in splits.items()}


def pretrain_video_id(corpus: RealSignalCorpus, index: int) -> str:
    """An 11-character id like a YouTube id, the zip stem of a pretraining clip."""
    return f"{corpus.id_prefix}{index:05d}"


def _pretraining_sink(root: Path, corpus: RealSignalCorpus) -> VideoSink:
    """Write a pretraining clip's audio and video zips as soon as it is made."""
    for sub in (PRETRAIN_AUDIO_DIR, PRETRAIN_VIDEO_DIR, PRETRAIN_LABEL_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)

    def sink(row: int, audio: np.ndarray, video: np.ndarray) -> None:
        video_id = pretrain_video_id(corpus, row)
        _zip_array(root / PRETRAIN_AUDIO_DIR / f"{video_id}.zip", video_id, audio)
        _zip_array(root / PRETRAIN_VIDEO_DIR / f"{video_id}.zip", video_id, video)

    return sink


def _write_pretraining(root: Path, corpus: RealSignalCorpus, clips: ClipSet, rng: np.random.Generator) -> list[str]:
    """The csv, category / prompt lists and event-flag zips (features were written by the sink)."""
    names = corpus.class_names
    ids = [pretrain_video_id(corpus, i) for i in range(len(clips))]
    n_train, n_val, _ = _split_sizes(len(clips), PRETRAIN_SPLIT_FRACTIONS)
    split_of = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * (len(clips) - n_train - n_val))
    split_of = split_of[rng.permutation(len(clips))]
    mask = clips.event_mask()
    lines = ["category,video_id,split"]
    for row, video_id in enumerate(ids):
        lines.append(f"{names[clips.classes[row]]},{video_id},{split_of[row]}")
        _zip_array(root / PRETRAIN_LABEL_DIR / f"{video_id}.zip", video_id, mask[row].astype(np.int64))
    (root / PRETRAIN_CSV).parent.mkdir(parents=True, exist_ok=True)
    (root / PRETRAIN_CSV).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / CATEGORIES_TXT).write_text("".join(name + "\n" for name in names), encoding="utf-8")
    prompts = ["label,prompt"] + [f"{name},{corpus.prompt(name)}" for name in names]
    (root / PROMPTS_CSV).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return ids


def _write_text_features(path: Path, corpus: RealSignalCorpus, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("labels", data=list(corpus.class_names), dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("features", data=text_word_features([corpus.prompt(n) for n in corpus.class_names], width))


def _write_clip_table(path: Path, corpus: RealSignalCorpus, pool: ImagePool, pretrain_ids: list[str],
                      pretrain: ClipSet, ave: ClipSet) -> None:  # fmt: skip
    lines = [f"set,key,{corpus.class_column},{corpus.source_column},{corpus.image_column},onset,offset"]
    for name, keys, clips in (("pretrain", pretrain_ids, pretrain), ("ave", [str(i) for i in range(len(ave))], ave)):
        for row, key in enumerate(keys):
            lines.append(
                f"{name},{key},{corpus.class_names[clips.classes[row]]},{clips.sources[row]},"
                f"{pool.name(clips.image_rows[row])},{clips.onsets[row]},{clips.offsets[row]}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_real_corpus(corpus: RealSignalCorpus, root: str | os.PathLike,
                      config: RealCorpusConfig = RealCorpusConfig(), *, force: bool = False,
                      progress: ProgressFactory = no_progress) -> CorpusSummary:  # fmt: skip
    """Build `corpus` under `root` (the reference layout, docs/data.md); all or nothing.

    `root` must be absent or empty, or `force` given and `root` an earlier corpus of the same
    kind (it holds that kind's marker file); the corpus' own entries are replaced. Progress
    counts clips generated (pretraining then AVE).
    """
    if len(corpus.class_names) > AVE_BACKGROUND_COLUMN:
        raise ConfigError(f"{corpus.kind}: at most {AVE_BACKGROUND_COLUMN} classes fit the AVE labels, got {len(corpus.class_names)}")
    if len(corpus.id_prefix) != ID_LENGTH - 5:
        raise ConfigError(f"{corpus.kind}: the id prefix must have {ID_LENGTH - 5} characters, got {corpus.id_prefix!r}")
    config.validate(len(corpus.class_names))
    tools = corpus.check_tools()
    with staged_directory(Path(root), force=force, marker=corpus.marker_file) as staging:
        with progress(corpus.kind.replace("-", " "), config.pretrain_clips + config.ave_clips) as advance:
            with _one_blas_thread():
                summary = _generate_and_write(corpus, staging, Path(root), config, tools, advance)
        write_text_atomic(staging / corpus.marker_file, json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n")
    return summary


def _one_blas_thread() -> contextlib.AbstractContextManager:
    # The matrices here are small: multithreaded BLAS only spins, 10x slower on a busy machine.
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _generate_and_write(corpus: RealSignalCorpus, staging: Path, target: Path, config: RealCorpusConfig,
                        tools: dict[str, str], progress: Callable[[int], None] | None) -> CorpusSummary:  # fmt: skip
    n_classes = len(corpus.class_names)
    rng = np.random.default_rng(config.seed)
    pretrain_sources, eval_sources = corpus.choose_sources(rng)
    pool = corpus.image_pool(rng)
    _check_held_out(corpus, pretrain_sources, eval_sources, pool)
    pretrain_plan = plan_clips(config.pretrain_clips, len(pretrain_sources), pool.pretrain, pool.labels, n_classes, rng)
    ave_plan = plan_clips(config.ave_clips, len(eval_sources), pool.evaluation, pool.labels, n_classes, rng)
    needed = pretrain_plan.sounds_needed(pretrain_sources) | ave_plan.sounds_needed(eval_sources)
    jobs = sorted(needed, key=_job_order)
    with tempfile.TemporaryDirectory(prefix=f"{corpus.kind}-sounds-") as workdir:
        sounds = corpus.prepare_sounds(jobs, Path(workdir))
    lifter = VideoLifter(pool.side)
    pretrain = render_clips(corpus, pretrain_plan, pretrain_sources, sounds, pool, lifter, rng,
                            _pretraining_sink(staging, corpus), progress)  # fmt: skip
    handle, ave_sink = _open_ave_video(staging / AVE_DIR, config.ave_clips)
    with handle:
        ave = render_clips(corpus, ave_plan, eval_sources, sounds, pool, lifter, rng, ave_sink, progress)
    ids = _write_pretraining(staging, corpus, pretrain, rng)
    split_sizes = _write_ave(staging / AVE_DIR, ave, rng)
    _write_text_features(staging / TEXT_FEATURES_FILE, corpus, config.text_width)
    _write_clip_table(staging / corpus.clips_file, corpus, pool, ids, pretrain, ave)
    noun = corpus.sources_noun
    details = {
        **tools,
        f"pretrain_{noun}": [s.name for s in pretrain_sources], f"eval_{noun}": [s.name for s in eval_sources],
        "pretrain_images": len(pool.pretrain), "eval_images": len(pool.evaluation),
        **corpus.image_details(pool),
    }  # fmt: skip
    return CorpusSummary(
        root=str(target), seed=config.seed, pretrain_clips=len(pretrain), ave_clips=len(ave),
        ave_split_sizes=split_sizes, text_width=config.text_width,
        files={
            "pretrain_csv": PRETRAIN_CSV, "audio_dir": PRETRAIN_AUDIO_DIR, "video_dir": PRETRAIN_VIDEO_DIR,
            "label_dir": PRETRAIN_LABEL_DIR, "text_features": TEXT_FEATURES_FILE, "ave_dir": AVE_DIR,
            "clips": corpus.clips_file, "marker": corpus.marker_file,
        },
        details=details,
    )  # fmt: skip


def _check_held_out(corpus: RealSignalCorpus, pretrain_sources: Sequence[Source], eval_sources: Sequence[Source],
                    pool: ImagePool) -> None:  # fmt: skip
    """The held-out rule, whatever a corpus' own code does: no shared source, no shared image."""
    names = [s.name for s in (*pretrain_sources, *eval_sources)]
    if len(set(names)) != len(names) or not pretrain_sources or not eval_sources:
        raise TocError(f"{corpus.kind}: pretraining and evaluation sources must be non-empty and distinct")
    if np.intersect1d(pool.pretrain, pool.evaluation).size or not pool.pretrain.size or not pool.evaluation.size:
        raise TocError(f"{corpus.kind}: pretraining and evaluation images must be non-empty and disjoint")


def _job_order(job: tuple[Source, int]) -> tuple[str, int]:
    source, label = job
    return source.name, label

