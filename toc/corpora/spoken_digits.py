"""Spoken-digits corpus: espeak-ng speech paired with scikit-learn digit images, in the real layouts.

A small paired corpus of *real signals* that the toolkit builds offline: the words "zero".."nine"
synthesised by espeak-ng with many voices, paired with the 8x8 handwritten digits shipped with
scikit-learn. Each clip has 10 one-second segments with one digit event on an interval of
segments and background elsewhere. Features have the reference shapes (VGGish-like audio
`[10,128]`, VGG19-pool5-like video `[10,7,7,512]`, non-negative) but are computed by fixed,
documented transforms, not by the networks (see docs/spoken-digits.md). The corpus is written as

* a pretraining set in the VGGSound-AVEL layout (csv + per-video zips + a text-feature h5), and
* an AVE-layout task set (h5 features, labels, train/val/test order files),

with the speakers (espeak-ng voice variants) and images of the AVE set disjoint from the
pretraining ones. espeak-ng and scikit-learn are optional extras: missing ones raise
`MissingToolError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
from scipy.signal import resample_poly

from cmg_base.files import staged_directory, write_text_atomic
from toc.data.archives import pkl_zip_bytes
from toc.data.base import AUDIO_DIM, T_SEGMENTS, VIDEO_CHANNELS, VIDEO_GRID
from toc.data.layout import relative_path
from toc.errors import ConfigError, TocError
from toc.progress import ProgressFactory, no_progress

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
N_SEGMENTS = T_SEGMENTS
SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050
AVE_LABEL_COLUMNS = 29  # the real AVE labels: 28 foreground columns + background last
AVE_BACKGROUND_COLUMN = 28
TEXT_TOKENS = 10
MARKER_FILE = "spoken-digits.json"
CLIPS_FILE = "spoken-digits-clips.csv"

# Layout, relative to the corpus root.
PRETRAIN_CSV = relative_path("pretrain", "csv")
CATEGORIES_TXT = relative_path("pretrain", "categories")
PROMPTS_CSV = relative_path("pretrain", "prompts")
PRETRAIN_AUDIO_DIR = relative_path("pretrain", "audio_dir")
PRETRAIN_VIDEO_DIR = relative_path("pretrain", "video_dir")
PRETRAIN_LABEL_DIR = relative_path("pretrain", "label_dir")
TEXT_FEATURES_FILE = relative_path("pretrain", "text_features")
AVE_DIR = str(PurePosixPath(relative_path("ave", "labels")).parent)

# espeak-ng voice variants that sound like distinct human speakers (robotic, whispering and
# joke variants are left out). Pretraining and evaluation speakers take disjoint variants.
VOICE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "Annie", "Denis", "Lee", "Michael", "Mike", "david", "edward", "john",
    "linda", "max", "paul", "quincy", "rob", "robert", "steph", "zac", "belinda", "benjamin",
    "boris", "caleb", "gustave", "iven", "grandma", "grandpa", "aunty",
)  # fmt: skip
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd", "en-gb-x-gbclan")
EVAL_VARIANTS = 12  # the rest of VOICE_VARIANTS speak the pretraining clips
EVAL_IMAGE_FRACTION = 0.4  # of each class' sklearn images, reserved for the AVE set
SPEED_RANGE = (130, 200)  # espeak-ng -s, words per minute
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99
EVENT_LENGTH_RANGE = (3, 10)  # segments, inclusive
AVE_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test
PRETRAIN_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # the csv's split column (all rows are pretraining)
# The "feature extractors" are fixed like VGGish / VGG19 are: independent of the corpus seed.
EXTRACTOR_SEED = 20230926
VIDEO_QUANTUM = 1.0 / 64.0  # video values are multiples of this, exact in float16/32/64
VIDEO_MAX = 31.0


class MissingToolError(TocError):
    """An optional tool (espeak-ng, scikit-learn) the spoken-digits corpus needs is not installed."""


def require_tools() -> str:
    """Check espeak-ng and scikit-learn are available; return the espeak-ng version line."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise MissingToolError(
            "spoken-digits corpus needs espeak-ng, which is not on PATH "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError as exc:
        raise MissingToolError(
            "spoken-digits corpus needs scikit-learn, which is not installed "
            "(pip install 'cmg-toc[corpus]')"
        ) from exc
    try:
        done = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingToolError(f"espeak-ng at {executable} does not run ({exc})") from exc
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/..." → keep the version, not the path.
    first_line = done.stdout.strip().splitlines()[0] if done.stdout.strip() else "espeak-ng (unknown version)"
    return first_line.split("  Data at:")[0].strip()


@dataclass(frozen=True)
class SpokenDigitsConfig:
    """What to build: clip counts, the seed, and the width of the text word features."""

    pretrain_clips: int = 500
    ave_clips: int = 300
    seed: int = 0
    text_width: int = 768

    def validate(self) -> None:
        if self.pretrain_clips < 10:
            raise ConfigError(f"pretraining clips must be at least 10 (one per digit), got {self.pretrain_clips}")
        if self.ave_clips < 10:
            raise ConfigError(f"AVE clips must be at least 10 (one per digit), got {self.ave_clips}")
        if self.text_width < 1:
            raise ConfigError(f"text width must be positive, got {self.text_width}")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak-ng accent + voice variant at a fixed speed and pitch."""

    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def name(self) -> str:
        return f"{self.voice}/s{self.speed}/p{self.pitch}"


@dataclass
class ClipSet:
    """Generated clips of one split: audio features and ground truth (row i = clip i).

    Video features (1 MB per clip) are not kept: they go to a sink as each clip is made.
    """

    audio: np.ndarray  # float32 [N,10,128]
    digits: np.ndarray  # int64 [N]
    onsets: np.ndarray  # int64 [N], first event segment
    offsets: np.ndarray  # int64 [N], one past the last event segment
    speakers: list[str]  # Speaker.name per clip
    image_indices: np.ndarray  # int64 [N], row of sklearn's load_digits

    def __len__(self) -> int:
        return len(self.digits)

    def event_mask(self) -> np.ndarray:
        """Boolean [N,10]: True on the event's segments."""
        steps = np.arange(N_SEGMENTS)
        return (steps >= self.onsets[:, None]) & (steps < self.offsets[:, None])


@dataclass(frozen=True)
class CorpusSummary:
    """What was written where, and the provenance needed to rebuild or audit it."""

    root: str
    seed: int
    espeak_version: str
    pretrain_clips: int
    ave_clips: int
    ave_split_sizes: dict[str, int]
    pretrain_speakers: list[str]
    eval_speakers: list[str]
    pretrain_images: int
    eval_images: int
    text_width: int
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Speech


def choose_speakers(rng: np.random.Generator) -> tuple[list[Speaker], list[Speaker]]:
    """Split the voice variants into pretraining and evaluation speakers (disjoint variants)."""
    order = rng.permutation(len(VOICE_VARIANTS))
    speakers = []
    for index in order:
        speakers.append(
            Speaker(
                accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
                variant=VOICE_VARIANTS[int(index)],
                speed=int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
            )
        )
    return speakers[EVAL_VARIANTS:], speakers[:EVAL_VARIANTS]


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise TocError(f"{path}: espeak-ng wrote an unexpected WAV (expected 16-bit mono)")
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    if rate != ESPEAK_RATE:
        raise TocError(f"{path}: espeak-ng wrote {rate} Hz audio (expected {ESPEAK_RATE} Hz)")
    return samples.astype(np.float64) / 32768.0


def _trim_and_normalise(wave_16k: np.ndarray, source: str) -> np.ndarray:
    level = np.abs(wave_16k)
    if level.max() <= 0:
        raise TocError(f"espeak-ng produced silence for {source}")
    voiced = np.flatnonzero(level > 0.02 * level.max())
    word = wave_16k[voiced[0] : voiced[-1] + 1]
    return word / np.abs(word).max()


def synthesise_words(jobs: Sequence[tuple[Speaker, int]], workdir: Path) -> dict[tuple[str, int], np.ndarray]:
    """Run espeak-ng once per (speaker, digit): trimmed, peak-normalised 16 kHz waveforms."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise MissingToolError("spoken-digits corpus needs espeak-ng, which is not on PATH")

    def one(job: tuple[Speaker, int]) -> np.ndarray:
        speaker, digit = job
        path = workdir / f"{hashlib.sha1(speaker.name.encode()).hexdigest()[:12]}_{digit}.wav"
        command = [executable, "-v", speaker.voice, "-s", str(speaker.speed), "-p", str(speaker.pitch),
                   "-w", str(path), DIGIT_NAMES[digit]]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise TocError(f"espeak-ng failed for voice {speaker.voice} ({exc})") from exc
        wave_16k = resample_poly(_read_wav(path), SAMPLE_RATE // 50, ESPEAK_RATE // 50)
        return _trim_and_normalise(wave_16k, f"{speaker.name} '{DIGIT_NAMES[digit]}'")

    with ThreadPoolExecutor(max_workers=2) as pool:
        waves = list(pool.map(one, jobs))
    return {(speaker.name, digit): w for (speaker, digit), w in zip(jobs, waves, strict=True)}


def _mel_filterbank(n_mels: int, n_fft: int, low_hz: float = 125.0, high_hz: float = 7500.0) -> np.ndarray:
    """HTK-style triangular mel filters [n_fft//2+1, n_mels] (VGGish's 125–7500 Hz range)."""

    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * np.expm1(np.asarray(mel) / 1127.0)

    edges = to_hz(np.linspace(to_mel(low_hz), to_mel(high_hz), n_mels + 2))
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    bank = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m : m + 3]
        bank[:, m] = np.maximum(0.0, np.minimum((freqs - left) / (centre - left), (right - freqs) / (right - centre)))
    return bank


_WINDOW = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms
_N_FFT = 512
_N_MELS = AUDIO_DIM // 2
_MEL_BANK = _mel_filterbank(_N_MELS, _N_FFT)
_HANN = np.hanning(_WINDOW)


def audio_segment_features(segments: np.ndarray) -> np.ndarray:
    """[S,16000] one-second waveforms → [S,128]: energy-gated mean and std of a 64-band log-mel.

    The frames whose energy is at or above the segment's median are kept (the word, or the
    loudest half of background noise); the descriptor is their per-band mean (64) followed by
    their per-band standard deviation (64). Shift-invariant within the second, like VGGish's
    one-second patches are roughly.
    """
    frames = np.lib.stride_tricks.sliding_window_view(segments, _WINDOW, axis=1)[:, ::_HOP] * _HANN
    power = np.abs(np.fft.rfft(frames, _N_FFT, axis=-1)) ** 2
    log_mel = np.log(power @ _MEL_BANK + 1e-4)  # [S,F,64]
    energy = log_mel.mean(axis=2)
    keep = energy >= np.median(energy, axis=1, keepdims=True)  # [S,F]
    weights = keep / keep.sum(axis=1, keepdims=True)
    mean = np.einsum("sf,sfm->sm", weights, log_mel)
    var = np.einsum("sf,sfm->sm", weights, (log_mel - mean[:, None, :]) ** 2)
    return np.concatenate([mean, np.sqrt(var)], axis=1)


def _place_word(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One second holding the word with a random tempo jitter, gain and position."""
    stretch = rng.uniform(0.9, 1.1)
    length = min(int(round(len(word) / stretch)), int(0.95 * SAMPLE_RATE))
    jittered = np.interp(np.linspace(0, len(word) - 1, length), np.arange(len(word)), word)
    second = np.zeros(SAMPLE_RATE)
    start = int(rng.integers(0, SAMPLE_RATE - length + 1))
    second[start : start + length] = jittered * rng.uniform(0.3, 0.8)
    return second


# ----------------------------------------------------------------------------------------------
# Images


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as float64 in [0, 1], and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise MissingToolError("spoken-digits corpus needs scikit-learn, which is not installed") from exc
    digits = load_digits()
    return digits.images.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def split_images(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a random EVAL_IMAGE_FRACTION of the images for evaluation, the rest pretraining."""
    pretrain, evaluation = [], []
    for digit in range(len(DIGIT_NAMES)):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        n_eval = int(round(EVAL_IMAGE_FRACTION * len(rows)))
        evaluation.append(rows[:n_eval])
        pretrain.append(rows[n_eval:])
    return np.sort(np.concatenate(pretrain)), np.sort(np.concatenate(evaluation))


class VideoLifter:
    """A fixed random non-negative 'pool5': 8x8 image → [7,7,512] by ReLU of random 4x4 filters.

    The image is zero-padded to 10x10; each of the 7x7 positions sees a 4x4 patch. Channel c at
    position p responds `ReLU(gain · (w_c · patch_p + q_c[p]) − θ)`: random filters `w_c`, a
    random position term `q_c[p]` (so position survives the spatial pooling downstream encoders
    apply) and a threshold θ that leaves most responses at zero, as pool5 maps are sparse.
    Values are rounded to multiples of 1/64 so every float format stores them exactly.
    """

    def __init__(self, seed: int = EXTRACTOR_SEED):
        rng = np.random.default_rng(seed)
        filters = rng.normal(size=(16, VIDEO_CHANNELS))
        self.filters = filters / np.linalg.norm(filters, axis=0, keepdims=True)
        self.position = rng.normal(scale=0.5, size=(VIDEO_GRID * VIDEO_GRID, VIDEO_CHANNELS))
        self.gain = 4.0
        self.threshold = 2.0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
        patches = np.lib.stride_tricks.sliding_window_view(padded, (4, 4), axis=(1, 2))
        patches = patches.reshape(len(images), VIDEO_GRID * VIDEO_GRID, 16)
        response = self.gain * (patches @ self.filters + self.position) - self.threshold
        lifted = np.clip(np.round(np.maximum(response, 0.0) / VIDEO_QUANTUM) * VIDEO_QUANTUM, 0.0, VIDEO_MAX)
        return lifted.reshape(len(images), VIDEO_GRID, VIDEO_GRID, VIDEO_CHANNELS).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Clips


def _balanced_digits(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % len(DIGIT_NAMES)).astype(np.int64)


def _draw_images(digits: np.ndarray, pool: np.ndarray, image_labels: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """One image per clip from `pool`, of the clip's digit; without replacement while they last."""
    chosen = np.empty(len(digits), dtype=np.int64)
    for digit in range(len(DIGIT_NAMES)):
        clips = np.flatnonzero(digits == digit)
        candidates = pool[image_labels[pool] == digit]
        repeats = int(np.ceil(len(clips) / len(candidates)))
        sequence = np.concatenate([rng.permutation(candidates) for _ in range(repeats)])
        chosen[clips] = sequence[: len(clips)]
    return chosen


@dataclass(frozen=True)
class ClipPlan:
    """What each clip shows, drawn before any signal is made (so only needed words are spoken)."""

    digits: np.ndarray  # int64 [N]
    speaker_rows: np.ndarray  # int64 [N], index into the split's speakers
    image_rows: np.ndarray  # int64 [N], row of sklearn's load_digits
    onsets: np.ndarray  # int64 [N]
    offsets: np.ndarray  # int64 [N]

    def words_needed(self, speakers: Sequence[Speaker]) -> set[tuple[Speaker, int]]:
        return {(speakers[s], int(d)) for s, d in zip(self.speaker_rows, self.digits, strict=True)}


def plan_clips(n: int, n_speakers: int, image_pool: np.ndarray, image_labels: np.ndarray,
               rng: np.random.Generator) -> ClipPlan:  # fmt: skip
    """Draw `n` clips: a balanced digit, a speaker, an image of that digit, an event interval."""
    digits = _balanced_digits(n, rng)
    image_rows = _draw_images(digits, image_pool, image_labels, rng)
    speaker_rows = rng.integers(0, n_speakers, size=n).astype(np.int64)
    lengths = rng.integers(EVENT_LENGTH_RANGE[0], EVENT_LENGTH_RANGE[1] + 1, size=n)
    onsets = np.array([rng.integers(0, N_SEGMENTS - length + 1) for length in lengths], dtype=np.int64)
    return ClipPlan(digits, speaker_rows, image_rows, onsets, onsets + lengths)


VideoSink = Callable[[int, np.ndarray, np.ndarray], None]  # (row, audio [10,128], video [10,7,7,512])


def render_clips(plan: ClipPlan, speakers: Sequence[Speaker], words: dict[tuple[str, int], np.ndarray],
                 images: np.ndarray, lifter: VideoLifter, rng: np.random.Generator, sink: VideoSink,
                 progress: Callable[[int], None] | None = None) -> ClipSet:  # fmt: skip
    """Make the signals of planned clips (jitter, gain, noise), compute features, pass them to `sink`."""
    n = len(plan.digits)
    audio = np.empty((n, N_SEGMENTS, AUDIO_DIM), dtype=np.float32)
    for clip in range(n):
        speaker = speakers[plan.speaker_rows[clip]]
        word = words[(speaker.name, int(plan.digits[clip]))]
        noise_level = np.exp(rng.uniform(np.log(0.003), np.log(0.03)))
        seconds = rng.normal(0.0, noise_level, size=(N_SEGMENTS, SAMPLE_RATE))
        frames = np.clip(rng.normal(0.0, 0.05, size=(N_SEGMENTS, 8, 8)), 0.0, None)  # blank + noise
        image = images[plan.image_rows[clip]]
        for step in range(plan.onsets[clip], plan.offsets[clip]):
            seconds[step] += _place_word(word, rng)
            frames[step] = np.clip(image * rng.uniform(0.8, 1.2) + rng.normal(0.0, 0.05, size=(8, 8)), 0.0, 1.0)
        audio[clip] = audio_segment_features(seconds)
        sink(clip, audio[clip], lifter(frames))
        if progress is not None:
            progress(1)
    return ClipSet(
        audio=audio, digits=plan.digits, onsets=plan.onsets, offsets=plan.offsets,
        speakers=[speakers[i].name for i in plan.speaker_rows], image_indices=plan.image_rows,
    )  # fmt: skip


def text_word_features(width: int) -> np.ndarray:
    """[10 digits, 10 tokens, width] word features of the prompts "a voice says <digit>".

    Stand-in for BERT token embeddings (not available offline): each token gets a fixed
    pseudo-random N(0, 0.5²) vector derived from a hash of the token, so only the digit-name
    token carries the class; slots past the prompt are zero, as the reference pads to 10 tokens.
    """
    features = np.zeros((len(DIGIT_NAMES), TEXT_TOKENS, width), dtype=np.float32)
    for row, name in enumerate(DIGIT_NAMES):
        for slot, token in enumerate(prompt_for(name).split()[:TEXT_TOKENS]):
            seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
            features[row, slot] = np.random.default_rng(seed).normal(0.0, 0.5, size=width)
    return features


def prompt_for(name: str) -> str:
    return f"a voice says {name}"


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
        labels[clip, mask[clip], clips.digits[clip]] = 1.0
        labels[clip, ~mask[clip], AVE_BACKGROUND_COLUMN] = 1.0
    with h5py.File(folder / "labels.h5", "w") as handle:
        handle.create_dataset("avadataset", data=labels)
    n_train, n_val, _ = _split_sizes(n, AVE_SPLIT_FRACTIONS)
    rows = rng.permutation(n).astype(np.int64)
    splits = {"train": rows[:n_train], "val": rows[n_train : n_train + n_val], "test": rows[n_train + n_val :]}
    for split, split_rows in splits.items():
        _write_order(folder / f"{split}_order.h5", split_rows)
    return {split: len(split_rows) for split, split_rows in splits.items()}


def pretrain_video_id(index: int) -> str:
    """An 11-character id like a YouTube id, the zip stem of a pretraining clip."""
    return f"spkdig{index:05d}"


def _pretraining_sink(root: Path) -> VideoSink:
    """Write a pretraining clip's audio and video zips as soon as it is made."""
    for sub in (PRETRAIN_AUDIO_DIR, PRETRAIN_VIDEO_DIR, PRETRAIN_LABEL_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)

    def sink(row: int, audio: np.ndarray, video: np.ndarray) -> None:
        video_id = pretrain_video_id(row)
        _zip_array(root / PRETRAIN_AUDIO_DIR / f"{video_id}.zip", video_id, audio)
        _zip_array(root / PRETRAIN_VIDEO_DIR / f"{video_id}.zip", video_id, video)

    return sink


def _write_pretraining(root: Path, clips: ClipSet, rng: np.random.Generator) -> list[str]:
    """The csv, category / prompt lists and event-flag zips (features were written by the sink)."""
    ids = [pretrain_video_id(i) for i in range(len(clips))]
    n_train, n_val, _ = _split_sizes(len(clips), PRETRAIN_SPLIT_FRACTIONS)
    split_of = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * (len(clips) - n_train - n_val))
    split_of = split_of[rng.permutation(len(clips))]
    mask = clips.event_mask()
    lines = ["category,video_id,split"]
    for row, video_id in enumerate(ids):
        lines.append(f"{DIGIT_NAMES[clips.digits[row]]},{video_id},{split_of[row]}")
        _zip_array(root / PRETRAIN_LABEL_DIR / f"{video_id}.zip", video_id, mask[row].astype(np.int64))
    (root / PRETRAIN_CSV).parent.mkdir(parents=True, exist_ok=True)
    (root / PRETRAIN_CSV).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / CATEGORIES_TXT).write_text("".join(name + "\n" for name in DIGIT_NAMES), encoding="utf-8")
    prompts = ["label,prompt"] + [f"{name},{prompt_for(name)}" for name in DIGIT_NAMES]
    (root / PROMPTS_CSV).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return ids


def _write_text_features(path: Path, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("labels", data=list(DIGIT_NAMES), dtype=h5py.string_dtype("utf-8"))
        handle.create_dataset("features", data=text_word_features(width))


def _write_clip_table(path: Path, pretrain_ids: list[str], pretrain: ClipSet, ave: ClipSet) -> None:
    lines = ["set,key,digit,speaker,image_index,onset,offset"]
    for name, keys, clips in (("pretrain", pretrain_ids, pretrain), ("ave", [str(i) for i in range(len(ave))], ave)):
        for row, key in enumerate(keys):
            lines.append(
                f"{name},{key},{DIGIT_NAMES[clips.digits[row]]},{clips.speakers[row]},"
                f"{clips.image_indices[row]},{clips.onsets[row]},{clips.offsets[row]}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_spoken_digits(root: str | os.PathLike, config: SpokenDigitsConfig = SpokenDigitsConfig(), *,
                        force: bool = False, progress: ProgressFactory = no_progress) -> CorpusSummary:
    """Build the corpus under `root` (the reference layout, docs/data.md); all or nothing.

    `root` must be absent or empty, or `force` given and `root` an earlier corpus of this command
    (it holds the marker file); the corpus' own entries are replaced. Progress counts clips
    generated (pretraining then AVE).
    """
    config.validate()
    espeak_version = require_tools()
    with staged_directory(Path(root), force=force, marker=MARKER_FILE) as staging:
        with progress("spoken digits", config.pretrain_clips + config.ave_clips) as advance:
            summary = _build_into(staging, Path(root), config, espeak_version, advance)
        write_text_atomic(staging / MARKER_FILE, json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n")
    return summary


def _build_into(staging: Path, target: Path, config: SpokenDigitsConfig, espeak_version: str,
                progress: Callable[[int], None] | None) -> CorpusSummary:  # fmt: skip
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # The matrices here are small: multithreaded BLAS only spins, 10x slower on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        return _generate_and_write(staging, target, config, espeak_version, progress)


def _generate_and_write(staging: Path, target: Path, config: SpokenDigitsConfig, espeak_version: str,
                        progress: Callable[[int], None] | None) -> CorpusSummary:  # fmt: skip
    rng = np.random.default_rng(config.seed)
    pretrain_speakers, eval_speakers = choose_speakers(rng)
    images, image_labels = load_digit_images()
    pretrain_images, eval_images = split_images(image_labels, rng)
    pretrain_plan = plan_clips(config.pretrain_clips, len(pretrain_speakers), pretrain_images, image_labels, rng)
    ave_plan = plan_clips(config.ave_clips, len(eval_speakers), eval_images, image_labels, rng)
    needed = pretrain_plan.words_needed(pretrain_speakers) | ave_plan.words_needed(eval_speakers)
    jobs = sorted(needed, key=lambda job: (job[0].name, job[1]))
    with tempfile.TemporaryDirectory(prefix="spoken-digits-wav-") as wav_dir:
        words = synthesise_words(jobs, Path(wav_dir))
    lifter = VideoLifter()
    pretrain = render_clips(pretrain_plan, pretrain_speakers, words, images, lifter, rng,
                            _pretraining_sink(staging), progress)  # fmt: skip
    handle, ave_sink = _open_ave_video(staging / AVE_DIR, config.ave_clips)
    with handle:
        ave = render_clips(ave_plan, eval_speakers, words, images, lifter, rng, ave_sink, progress)
    ids = _write_pretraining(staging, pretrain, rng)
    split_sizes = _write_ave(staging / AVE_DIR, ave, rng)
    _write_text_features(staging / TEXT_FEATURES_FILE, config.text_width)
    _write_clip_table(staging / CLIPS_FILE, ids, pretrain, ave)
    return CorpusSummary(
        root=str(target), seed=config.seed, espeak_version=espeak_version,
        pretrain_clips=len(pretrain), ave_clips=len(ave), ave_split_sizes=split_sizes,
        pretrain_speakers=[s.name for s in pretrain_speakers],
        eval_speakers=[s.name for s in eval_speakers],
        pretrain_images=len(pretrain_images), eval_images=len(eval_images), text_width=config.text_width,
        files={
            "pretrain_csv": PRETRAIN_CSV, "audio_dir": PRETRAIN_AUDIO_DIR, "video_dir": PRETRAIN_VIDEO_DIR,
            "label_dir": PRETRAIN_LABEL_DIR, "text_features": TEXT_FEATURES_FILE, "ave_dir": AVE_DIR,
            "clips": CLIPS_FILE, "marker": MARKER_FILE,
        },
    )  # fmt: skip
