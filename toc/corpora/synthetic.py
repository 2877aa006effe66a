"""The built-in synthetic corpus: pretraining and downstream task sets in the real on-disk layouts."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from cmg_base.files import staged_directory
from toc.data.archives import pkl_zip_bytes
from toc.data.base import AUDIO_DIM, T_SEGMENTS, VIDEO_CHANNELS, VIDEO_GRID
from toc.data.layout import relative_path
from toc.errors import ConfigError
from toc.progress import ProgressFactory, no_progress
from toc.vocabulary import SYNTHETIC_TEXT_DIM

GENERATOR_VERSION = 1

LATENT_DIM = 16  # the shared semantic space: one factor z_c per class
NUISANCE_DIM = 8  # per-clip, per-modality nuisance (recording channel, scene)
HIDDEN_DIM = 96
GRID = VIDEO_GRID
TEXT_WORDS = 10
MAX_EVENTS = 3  # event slots per clip

# Feature statistics (documented in docs/synthetic-data.md).
AUDIO_RANGE = 2.0  # VGGish post-processing clips to [-2, 2] and quantises to 8 bits
AUDIO_LEVELS = 255
VIDEO_THRESHOLD = 0.55  # ReLU threshold on the standardised pre-activation: ~75% zeros
VIDEO_GAIN = 2.0
VIDEO_EVENT_GAIN = 1.5  # peak amplitude of an event's object blob
VIDEO_STEP = 1.0 / 16.0  # pool5 values are stored on a 1/16 grid so that the files compress
SEGMENT_JITTER = 0.3  # per-segment wobble of the semantic latent
BACKGROUND_STD = 0.5  # background "scene" latents sit near the origin of the semantic space
H5_GZIP_LEVEL = 1

StageReport = Callable[[str, int, int], None]  # (stage, done so far, stage total)


# --------------------------------------------------------------------------------------------
# The class pool: one latent concept, several dataset-specific names.


@dataclass(frozen=True)
class Concept:
    """One latent event class and its name in each dataset that contains it."""

    key: str
    vggsound: str  # pretraining category name (VGGSound style, no commas)
    ave: str | None = None
    avvp: str | None = None
    ucf: str | None = None


CONCEPTS: tuple[Concept, ...] = (
    # The 28 AVE classes, in AVE label-column order.
    Concept("church_bell", "church bell ringing", ave="Church bell"),
    Concept("male_speech", "male speech man speaking", ave="Male speech/man speaking"),
    Concept("bark", "dog barking", ave="Bark", avvp="Dog"),
    Concept("airplane", "airplane flyby", ave="Fixed-wing aircraft/airplane"),
    Concept("race_car", "race car auto racing", ave="Race car/auto racing", avvp="Car"),
    Concept("female_speech", "female speech woman speaking", ave="Female speech/woman speaking"),
    Concept("helicopter", "helicopter flying", ave="Helicopter", avvp="Helicopter"),
    Concept("violin", "playing violin fiddle", ave="Violin/fiddle", avvp="Violin_fiddle",
            ucf="PlayingViolin"),
    Concept("flute", "playing flute", ave="Flute", ucf="PlayingFlute"),
    Concept("ukulele", "playing ukulele", ave="Ukulele"),
    Concept("frying", "frying food", ave="Frying (food)", avvp="Frying_(food)"),
    Concept("truck", "truck engine running", ave="Truck"),
    Concept("shofar", "playing shofar", ave="Shofar"),
    Concept("motorcycle", "motorcycle engine", ave="Motorcycle", avvp="Motorcycle"),
    Concept("acoustic_guitar", "playing acoustic guitar", ave="Acoustic guitar",
            avvp="Acoustic_guitar", ucf="PlayingGuitar"),
    Concept("train_horn", "train horning", ave="Train horn"),
    Concept("clock", "clock ticking", ave="Clock"),
    Concept("banjo", "playing banjo", ave="Banjo", avvp="Banjo"),
    Concept("goat", "goat bleating", ave="Goat"),
    Concept("baby_cry", "baby crying", ave="Baby cry/infant cry", avvp="Baby_cry_infant_cry"),
    Concept("bus", "bus driving", ave="Bus"),
    Concept("chainsaw", "chainsawing trees", ave="Chainsaw", avvp="Chainsaw"),
    Concept("cat", "cat meowing", ave="Cat", avvp="Cat"),
    Concept("horse", "horse clip-clop", ave="Horse"),
    Concept("toilet_flush", "toilet flushing", ave="Toilet flush"),
    Concept("rodents", "mouse squeaking", ave="Rodents/rats/mouse"),
    Concept("accordion", "playing accordion", ave="Accordion", avvp="Accordion"),
    Concept("mandolin", "playing mandolin", ave="Mandolin"),
    # The AVVP (LLP) classes without an AVE counterpart.
    Concept("speech", "people speaking", avvp="Speech"),
    Concept("cheering", "people cheering", avvp="Cheering"),
    Concept("basketball", "basketball bounce", avvp="Basketball_bounce", ucf="Basketball"),
    Concept("fire_alarm", "fire alarm ringing", avvp="Fire_alarm"),
    Concept("cello", "playing cello", avvp="Cello", ucf="PlayingCello"),
    Concept("singing", "people singing", avvp="Singing"),
    Concept("rooster", "chicken crowing", avvp="Chicken_rooster"),
    Concept("vacuum", "vacuum cleaner cleaning floors", avvp="Vacuum_cleaner"),
    Concept("baby_laughter", "baby laughter", avvp="Baby_laughter"),
    Concept("lawn_mower", "lawn mowing", avvp="Lawn_mower"),
    Concept("telephone", "telephone bell ringing", avvp="Telephone_bell_ringing"),
    Concept("blender", "blender whirring", avvp="Blender"),
    Concept("clapping", "people clapping", avvp="Clapping"),
    # The UCF101 <-> VGGSound classes not seen above (partners of FrisbeeCatch, PlayingViolin,
    # Drumming, Hammering and BlowDryHair are invented).
    Concept("piano", "playing piano", ucf="PlayingPiano"),
    Concept("sitar", "playing sitar", ucf="PlayingSitar"),
    Concept("skiing", "skiing", ucf="Skiing"),
    Concept("table_tennis", "playing table tennis", ucf="TableTennisShot"),
    Concept("typing", "typing on typewriter", ucf="Typing"),
    Concept("rope_skipping", "rope skipping", ucf="JumpRope"),
    Concept("frisbee", "playing frisbee", ucf="FrisbeeCatch"),
    Concept("bowling", "bowling impact", ucf="Bowling"),
    Concept("drums", "playing drum kit", ucf="Drumming"),
    Concept("hammering", "hammering nails", ucf="Hammering"),
    Concept("hair_dryer", "hair dryer drying", ucf="BlowDryHair"),
)
CONCEPT_INDEX = {c.key: i for i, c in enumerate(CONCEPTS)}

AVE_KEYS: tuple[str, ...] = tuple(c.key for c in CONCEPTS if c.ave is not None)
# The LLP order of the 25 AVVP classes.
AVVP_KEYS: tuple[str, ...] = (
    "speech", "race_car", "cheering", "bark", "cat", "frying", "basketball", "fire_alarm",
    "chainsaw", "cello", "banjo", "singing", "rooster", "violin", "vacuum", "baby_laughter",
    "accordion", "lawn_mower", "motorcycle", "helicopter", "acoustic_guitar", "telephone",
    "baby_cry", "blender", "clapping",
)
# The 12 AVE->AVVP classes: the 13 candidate classes of AVE→AVVP (docs/data.md) without Speech (which would merge two AVE
# classes), in AVVP order.
AVE_AVVP_KEYS: tuple[str, ...] = tuple(
    k for k in AVVP_KEYS if CONCEPTS[CONCEPT_INDEX[k]].ave is not None
)
UCF_VGG_KEYS: tuple[str, ...] = (
    "acoustic_guitar", "cello", "flute", "piano", "sitar", "skiing", "table_tennis", "typing",
    "rope_skipping", "basketball", "frisbee", "bowling", "violin", "drums", "hammering",
    "hair_dryer",
)

# Relative paths of the layout.
AVE_DIR = str(PurePosixPath(relative_path("ave", "labels")).parent)
AVE_AVVP_DIR = str(PurePosixPath(relative_path("ave-avvp", "labels")).parent)
AVVP_DATA_DIR = str(PurePosixPath(relative_path("avvp", "categories")).parent)
AVVP_AUDIO_ZIPS = relative_path("avvp", "audio_dir")
AVVP_VIDEO_ZIPS = relative_path("avvp", "video_dir")
FEATURE_EXTRACTOR_DIR = str(PurePosixPath(relative_path("pretrain", "csv")).parent)
VGGSOUND_AUDIO_ZIPS = relative_path("pretrain", "audio_dir")
VGGSOUND_VIDEO_ZIPS = relative_path("pretrain", "video_dir")
VGGSOUND_LABEL_ZIPS = relative_path("pretrain", "label_dir")
UCF_VIDEO_ZIPS = relative_path("ucf-vggsound", "ucf_video_dir")
# Not part of the reference layout (BERT is not available offline): the loaders and `toc train`
# read precomputed per-category word features from here.
TEXT_FEATURES = relative_path("pretrain", "text_features")
# The retrieval set: the VALOR-32K layout (test split) and the same clips in the paired layout.
VALOR_ANNOTATIONS = relative_path("valor32k", "annotations_dir") + "/desc_test.json"
VALOR_VIDEO_ZIPS = relative_path("valor32k", "video_dir")
VALOR_AUDIO_ZIPS = relative_path("valor32k", "audio_dir")
VALOR_TEXT_FEATURES = relative_path("valor32k", "text_features")
RETRIEVAL_PAIRS = "retrieval/pairs.h5"
MANIFEST = "synth.json"

# Clip counts at scale 1.0, and the floor every scale keeps.
BASE_COUNTS = {
    "pretrain": 400, "ave": 300, "avvp": 120, "ave_avvp_test": 80, "ucf": 150, "vggsound": 150,
    "retrieval": 40,
}
MIN_COUNTS = {
    "pretrain": 12, "ave": 12, "avvp": 4, "ave_avvp_test": 4, "ucf": 8, "vggsound": 8, "retrieval": 8,
}


# --------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote: parameters, clip counts, the layout's paths (relative to root)."""

    root: str
    seed: int
    scale: float
    text_dim: int
    generator_version: int
    counts: dict[str, int]
    paths: dict[str, str]
    n_files: int
    n_bytes: int
    class_names: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# The generative model.


@dataclass(frozen=True)
class _Mlp:
    """A fixed random 2-layer map, its output standardised on a calibration sample."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    activation: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = x @ self.w1 + self.b1
        h = np.tanh(h) if self.activation == "tanh" else np.maximum(h, 0.0)
        return ((h @ self.w2 - self.mean) / self.std).astype(np.float32)


def _make_mlp(rng: np.random.Generator, n_in: int, n_out: int, activation: str,
              calibration: np.ndarray) -> _Mlp:
    w1 = (rng.standard_normal((n_in, HIDDEN_DIM)) * (1.5 / np.sqrt(n_in))).astype(np.float32)
    b1 = (rng.standard_normal(HIDDEN_DIM) * 0.5).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN_DIM, n_out)) / np.sqrt(HIDDEN_DIM)).astype(np.float32)
    h = calibration @ w1 + b1
    h = np.tanh(h) if activation == "tanh" else np.maximum(h, 0.0)
    out = h @ w2
    return _Mlp(w1, b1, w2, out.mean(0).astype(np.float32),
                (out.std(0) + 1e-6).astype(np.float32), activation)


@dataclass(frozen=True)
class _World:
    """Every fixed parameter of the generative model, drawn once from the seed."""

    class_factors: np.ndarray  # [K, LATENT_DIM]
    audio_map: _Mlp  # [z, u_audio] -> 128
    video_map: _Mlp  # [z, u_video] -> 512 channel profile
    text_map: _Mlp  # [z, word slot, word identity] -> text_dim
    audio_scale: np.ndarray  # [128] PCA-like decaying spread
    scene_projection: np.ndarray  # [NUISANCE_DIM, 512]
    word_slots: np.ndarray  # [TEXT_WORDS, NUISANCE_DIM]
    domain_shift: dict[str, np.ndarray]  # dataset -> mean of its nuisance latents


DOMAINS = ("vggsound", "ave", "avvp", "ucf")


def _build_world(seed: int, text_dim: int) -> _World:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n_classes = len(CONCEPTS)
    class_factors = rng.standard_normal((n_classes, LATENT_DIM)).astype(np.float32)
    calib_ab = rng.standard_normal((2048, LATENT_DIM + NUISANCE_DIM)).astype(np.float32)
    calib_t = rng.standard_normal((2048, LATENT_DIM + 2 * NUISANCE_DIM)).astype(np.float32)
    audio_map = _make_mlp(rng, LATENT_DIM + NUISANCE_DIM, AUDIO_DIM, "tanh", calib_ab)
    video_map = _make_mlp(rng, LATENT_DIM + NUISANCE_DIM, VIDEO_CHANNELS, "relu", calib_ab)
    text_map = _make_mlp(rng, LATENT_DIM + 2 * NUISANCE_DIM, text_dim, "tanh", calib_t)
    audio_scale = (1.1 * (1.0 + np.arange(AUDIO_DIM)) ** -0.25).astype(np.float32)
    scene_projection = (rng.standard_normal((NUISANCE_DIM, VIDEO_CHANNELS))
                        / np.sqrt(NUISANCE_DIM)).astype(np.float32)
    word_slots = rng.standard_normal((TEXT_WORDS, NUISANCE_DIM)).astype(np.float32)
    domain_shift = {d: (rng.standard_normal(NUISANCE_DIM) * 0.5).astype(np.float32)
                    for d in DOMAINS}
    return _World(class_factors, audio_map, video_map, text_map, audio_scale, scene_projection,
                  word_slots, domain_shift)


@dataclass
class _Clips:
    """The latent description of a set of clips: who is where, audible or visible, when."""

    ids: list[str]
    classes: np.ndarray  # [N, E] concept index, -1 for an empty slot
    audible: np.ndarray  # [N, T, E] bool
    visible: np.ndarray  # [N, T, E] bool
    domain: str

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray) -> _Clips:
        return _Clips([self.ids[i] for i in rows], self.classes[rows], self.audible[rows],
                      self.visible[rows], self.domain)


def _shift_segments(active: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift [N, T, E] activity by shift[n] segments along T, filling with False."""
    out = np.zeros_like(active)
    for s in (-1, 1):
        rows = shift == s
        if s > 0:
            out[rows, s:] = active[rows, :-s]
        else:
            out[rows, :s] = active[rows, -s:]
    out[shift == 0] = active[shift == 0]
    return out


def _draw_shift(rng: np.random.Generator, n: int) -> np.ndarray:
    """Video lags or leads audio by one segment in half of the clips."""
    return rng.choice(np.array([-1, 0, 0, 1]), size=n)


def _draw_interval(rng: np.random.Generator, full_prob: float, min_len: int = 2) -> tuple[int, int]:
    if rng.random() < full_prob:
        return 0, T_SEGMENTS
    length = int(rng.integers(min_len, T_SEGMENTS))
    onset = int(rng.integers(0, T_SEGMENTS - length + 1))
    return onset, onset + length


def _single_event_clips(rng: np.random.Generator, ids: list[str], classes: np.ndarray,
                        domain: str, *, full_prob: float, distractor_prob: float,
                        distractor_pool: Sequence[int]) -> _Clips:
    """AVE / VGGSound-AVEL style: one audio-visual event per clip, optionally a one-modality
    distractor event of another class."""
    n = len(ids)
    cls = np.full((n, 2), -1, dtype=np.int64)
    audible = np.zeros((n, T_SEGMENTS, 2), dtype=bool)
    cls[:, 0] = classes
    for i in range(n):
        on, off = _draw_interval(rng, full_prob)
        audible[i, on:off, 0] = True
    visible = _shift_segments(audible, _draw_shift(rng, n))
    for i in range(n):
        if distractor_prob > 0 and rng.random() < distractor_prob:
            choices = [c for c in distractor_pool if c != classes[i]]
            cls[i, 1] = int(rng.choice(choices))
            on, off = _draw_interval(rng, 0.0)
            target = audible if rng.random() < 0.5 else visible
            target[i, on:off, 1] = True
    return _Clips(ids, cls, audible, visible, domain)


def _multi_event_clips(rng: np.random.Generator, ids: list[str], pool: Sequence[int],
                       domain: str) -> _Clips:
    """AVVP style: 1-3 events per video, each audio-visual, audio-only or video-only, each
    with one or two intervals; the first event is always audio-visual so that both label files
    list every video, and video 0 always has two audio-visual events (a multi-event row in both
    label files: pandas then keeps the onset columns as strings)."""
    n = len(ids)
    cls = np.full((n, MAX_EVENTS), -1, dtype=np.int64)
    audible = np.zeros((n, T_SEGMENTS, MAX_EVENTS), dtype=bool)
    visible = np.zeros_like(audible)
    shift = _draw_shift(rng, n)
    for i in range(n):
        n_events = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
        if i == 0:
            n_events = max(n_events, 2)
        n_events = min(n_events, len(pool))
        cls[i, :n_events] = rng.choice(np.asarray(pool), size=n_events, replace=False)
        for e in range(n_events):
            kind = str(rng.choice(["av", "audio", "video"], p=[0.4, 0.3, 0.3]))
            if e == 0 or (i == 0 and e == 1):
                kind = "av"
            track = np.zeros(T_SEGMENTS, dtype=bool)
            on, off = _draw_interval(rng, 0.15)
            track[on:off] = True
            if rng.random() < 0.25:
                on2, off2 = _draw_interval(rng, 0.0)
                track[on2:off2] = True
            if kind in ("av", "audio"):
                audible[i, :, e] = track
            if kind == "av":
                visible[i, :, e] = _shift_segments(track[None, :, None], shift[i:i + 1])[0, :, 0]
                if not visible[i, :, e].any():
                    visible[i, :, e] = track
            elif kind == "video":
                visible[i, :, e] = track
    return _Clips(ids, cls, audible, visible, domain)


def _whole_clip(ids: list[str], classes: np.ndarray, domain: str) -> _Clips:
    """UCF101 style: the action fills the whole clip in both modalities."""
    n = len(ids)
    cls = np.asarray(classes, dtype=np.int64)[:, None]
    active = np.ones((n, T_SEGMENTS, 1), dtype=bool)
    return _Clips(ids, cls, active, active.copy(), domain)


def _semantic_inputs(world: _World, rng: np.random.Generator, clips: _Clips,
                     nuisance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map inputs [z_c + jitter, u] per (clip, segment, slot), and for the background."""
    n, e = clips.classes.shape
    z = world.class_factors[np.maximum(clips.classes, 0)]  # [N, E, L]
    z = z[:, None, :, :] + SEGMENT_JITTER * rng.standard_normal(
        (n, T_SEGMENTS, e, LATENT_DIM), dtype=np.float32)
    u = np.broadcast_to(nuisance[:, None, None, :], (n, T_SEGMENTS, e, NUISANCE_DIM))
    background = rng.standard_normal((n, 1, LATENT_DIM), dtype=np.float32) * BACKGROUND_STD
    background = background + SEGMENT_JITTER * rng.standard_normal(
        (n, T_SEGMENTS, LATENT_DIM), dtype=np.float32)
    u_bg = np.broadcast_to(nuisance[:, None, :], (n, T_SEGMENTS, NUISANCE_DIM))
    return np.concatenate([z, u], -1), np.concatenate([background, u_bg], -1)


def _render_audio(world: _World, rng: np.random.Generator, clips: _Clips) -> np.ndarray:
    """VGGish-like [N, 10, 128] float32: mean of the audible events' embeddings (background
    where none is audible), PCA-like spread, clipped to [-2, 2], 8-bit quantised."""
    n = len(clips)
    nuisance = (world.domain_shift[clips.domain]
                + rng.standard_normal((n, NUISANCE_DIM), dtype=np.float32))
    event_in, background_in = _semantic_inputs(world, rng, clips, nuisance)
    events = world.audio_map(event_in)  # [N, T, E, 128]
    background = world.audio_map(background_in)  # [N, T, 128]
    weight = clips.audible.astype(np.float32)
    count = weight.sum(-1, keepdims=True)
    mixed = (events * weight[..., None]).sum(2) / np.maximum(count, 1.0)
    feat = np.where(count > 0, mixed, background) * world.audio_scale
    feat = feat + 0.1 * rng.standard_normal(feat.shape, dtype=np.float32)
    feat = np.clip(feat, -AUDIO_RANGE, AUDIO_RANGE)
    step = 2 * AUDIO_RANGE / AUDIO_LEVELS
    return (np.round((feat + AUDIO_RANGE) / step) * step - AUDIO_RANGE).astype(np.float32)


def _blob_masks(rng: np.random.Generator, n: int, e: int, sigma_range: tuple[float, float],
                center_range: tuple[float, float]) -> np.ndarray:
    """Gaussian spatial masks [N, E, 49]: where on the 7x7 grid each event's object sits."""
    centers = rng.uniform(*center_range, size=(n, e, 2)).astype(np.float32)
    sigma = rng.uniform(*sigma_range, size=(n, e, 1)).astype(np.float32)
    grid = np.stack(np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij"), -1)
    grid = grid.reshape(1, 1, GRID * GRID, 2).astype(np.float32)
    d2 = ((grid - centers[:, :, None, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


def _render_video(world: _World, rng: np.random.Generator, clips: _Clips) -> np.ndarray:
    """VGG19-pool5-like [N, 10, 7, 7, 512] float32, non-negative and sparse: each visible
    event adds its channel profile inside a Gaussian blob; a per-clip scene fills the grid."""
    n = len(clips)
    e = clips.classes.shape[1]
    nuisance = (world.domain_shift[clips.domain]
                + rng.standard_normal((n, NUISANCE_DIM), dtype=np.float32))
    event_in, background_in = _semantic_inputs(world, rng, clips, nuisance)
    profiles = world.video_map(event_in) * clips.visible[..., None]  # [N, T, E, C]
    masks = VIDEO_EVENT_GAIN * _blob_masks(rng, n, e, (0.9, 1.5), (1.0, 5.0))  # [N, E, 49]
    hidden = ~clips.visible.any(-1)  # [N, T]: nothing visible -> background scene object
    bg_profile = world.video_map(background_in) * hidden[..., None]  # [N, T, C]
    bg_mask = 0.8 * _blob_masks(rng, n, 1, (2.0, 3.0), (2.0, 4.0))  # [N, 1, 49]
    scene = nuisance @ world.scene_projection  # [N, C]
    texture = rng.uniform(0.2, 0.7, size=(n, 1, GRID * GRID)).astype(np.float32)
    # One matmul places every event blob, the background object and the scene texture.
    spatial = np.concatenate([masks, bg_mask, texture], 1).transpose(0, 2, 1)  # [N, 49, E+2]
    channel = np.concatenate([profiles, bg_profile[:, :, None],
                              np.broadcast_to(scene[:, None, None], (n, T_SEGMENTS, 1,
                                                                     VIDEO_CHANNELS))], 2)
    pre = np.matmul(spatial[:, None], channel)  # [N, T, 49, C]
    noise = rng.standard_normal(pre.shape, dtype=np.float32)
    noise *= 0.45
    pre += noise
    del noise
    # In place: these arrays are tens of MB and fresh allocations dominate the cost.
    pre -= VIDEO_THRESHOLD
    np.maximum(pre, 0.0, out=pre)
    pre *= VIDEO_GAIN / VIDEO_STEP
    np.rint(pre, out=pre)
    pre *= VIDEO_STEP
    return pre.reshape(n, T_SEGMENTS, GRID, GRID, VIDEO_CHANNELS)


def _text_features(world: _World, rng: np.random.Generator, prompts: Sequence[str],
                   text_dim: int) -> np.ndarray:
    """[K, 10, W] float32: one row per word of the class prompt, zero-padded like BERT queries."""
    k = len(prompts)
    z = np.broadcast_to(world.class_factors[:k, None, :], (k, TEXT_WORDS, LATENT_DIM))
    feat = _word_vectors(world, rng, z, prompts)
    assert feat.shape == (k, TEXT_WORDS, text_dim)
    return feat


def _caption_features(world: _World, rng: np.random.Generator, classes: np.ndarray,
                      captions: Sequence[str], text_dim: int) -> np.ndarray:
    """[N, 10, W] float32 word vectors of one caption per clip: the clip's class factor, the word
    slots, and word identities of its own (so two captions of one class differ)."""
    n = len(captions)
    z = world.class_factors[classes][:, None, :] + SEGMENT_JITTER * rng.standard_normal(
        (n, TEXT_WORDS, LATENT_DIM), dtype=np.float32)
    return _word_vectors(world, rng, z, captions)


def _word_vectors(world: _World, rng: np.random.Generator, z: np.ndarray,
                  texts: Sequence[str]) -> np.ndarray:
    """[N, 10, W] float32: the text map of (semantic latent z [N, 10, L], word slot, a fresh word
    identity) per word; rows past a text's word count are zero, as BERT pads its queries."""
    n = len(texts)
    slots = np.broadcast_to(world.word_slots[None], (n, TEXT_WORDS, NUISANCE_DIM))
    words = rng.standard_normal((n, TEXT_WORDS, NUISANCE_DIM), dtype=np.float32)
    feat = world.text_map(np.concatenate([z, slots, words], -1)) * 0.5
    n_words = np.array([min(TEXT_WORDS, len(t.split())) for t in texts])
    feat[np.arange(TEXT_WORDS)[None, :] >= n_words[:, None]] = 0.0
    return feat.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Writers (deterministic bytes).


class _Writer:
    """Writes under a staging root and counts what it wrote."""

    def __init__(self, root: Path, pool: ThreadPoolExecutor):
        self.root = root
        self.pool = pool
        self.n_files = 0
        self.n_bytes = 0

    def path(self, relative: str) -> Path:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _count(self, target: Path) -> None:
        self.n_files += 1
        self.n_bytes += target.stat().st_size

    def bytes(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        target.write_bytes(data)
        self._count(target)

    def text(self, relative: str, text: str) -> None:
        self.bytes(relative, text.encode("utf-8"))

    def lines(self, relative: str, lines: Sequence[str]) -> None:
        self.text(relative, "".join(f"{line}\n" for line in lines))

    def csv(self, relative: str, header: Sequence[str], rows: Sequence[Sequence[object]],
            delimiter: str = ",") -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        self.text(relative, buffer.getvalue())

    def pkl_zips(self, directory: str, keys: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
        """One zip per (key, array); deflate releases the GIL, so archives compress in parallel."""
        for key, data in zip(keys, self.pool.map(pkl_zip_bytes, keys, arrays), strict=True):
            self.bytes(f"{directory}/{key}.zip", data)

    def h5(self, relative: str, datasets: dict[str, np.ndarray], compress: bool = True) -> None:
        target = self.path(relative)
        with h5py.File(target, "w", libver="earliest") as handle:
            for key, data in datasets.items():
                _create_dataset(handle, key, data, compress)
        self._count(target)

    def count(self, relative: str) -> None:
        self._count(self.root / relative)


def _create_dataset(handle: h5py.File, key: str, data: np.ndarray, compress: bool) -> h5py.Dataset:
    options: dict = {"track_times": False}
    if compress and data.ndim > 0 and data.size > 0:
        options.update(compression="gzip", compression_opts=H5_GZIP_LEVEL, shuffle=True,
                       chunks=(1, *data.shape[1:]) if data.ndim > 1 else True)
    return handle.create_dataset(key, data=data, **options)


# --------------------------------------------------------------------------------------------
# Identifiers and sizes.

_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


class _IdFactory:
    """Unique 11-character YouTube-like ids across the whole corpus."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def youtube(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            candidate = "".join(self.rng.choice(_ID_ALPHABET, size=11))
            if candidate not in self.used:
                self.used.add(candidate)
                out.append(candidate)
        return out


def scaled_counts(scale: float) -> dict[str, int]:
    """Clip counts per set at a scale (never below the floor a set needs to be usable)."""
    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"scale must be a positive number, got {scale}")
    return {k: max(MIN_COUNTS[k], int(round(v * scale))) for k, v in BASE_COUNTS.items()}


def _balanced_classes(rng: np.random.Generator, n: int, pool: Sequence[int]) -> np.ndarray:
    """n class indices covering the pool as evenly as possible, in random order."""
    tiled = np.resize(np.asarray(pool), n)
    return tiled[rng.permutation(n)]


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    sizes = [max(1, int(round(n * f))) for f in fractions[1:]]
    return [n - sum(sizes), *sizes]


def _runs(track: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [on, off) intervals of the True runs of a [T] bool track."""
    padded = np.concatenate([[False], track, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _combined_rows(clips: _Clips, filenames: Sequence[str], modality: str,
                   names: dict[int, str]) -> list[list[str]]:
    """AVVP 'combined' rows: filename, onsets, offsets, labels (parallel comma lists)."""
    activity = clips.audible if modality == "audio" else clips.visible
    rows = []
    for i, filename in enumerate(filenames):
        onsets, offsets, labels = [], [], []
        for e in range(clips.classes.shape[1]):
            if clips.classes[i, e] < 0:
                continue
            for on, off in _runs(activity[i, :, e]):
                onsets.append(str(on))
                offsets.append(str(off))
                labels.append(names[int(clips.classes[i, e])])
        if labels:
            rows.append([filename, ",".join(onsets), ",".join(offsets), ",".join(labels)])
    return rows


def segment_labels(classes: np.ndarray, activity: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """[N, T, C+1] float64 one-/multi-hot labels over `columns` (concept indices), background
    last: a segment is background when none of the listed classes is active in it."""
    n = classes.shape[0]
    labels = np.zeros((n, T_SEGMENTS, len(columns) + 1), dtype=np.float64)
    for j, concept in enumerate(columns):
        hit = (classes == concept)[:, None, :] & activity  # [N, T, E]
        labels[:, :, j] = hit.any(-1)
    labels[:, :, -1] = labels[:, :, :-1].sum(-1) == 0
    return labels


def _variable_length(rng: np.random.Generator, features: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Per-clip arrays of T rows: the first T of 10, or 10 plus repeats of the last row."""
    out = []
    for i in range(len(features)):
        t = int(lengths[i])
        if t <= T_SEGMENTS:
            out.append(features[i, :t])
        else:
            extra = np.repeat(features[i, -1:], t - T_SEGMENTS, axis=0)
            out.append(np.concatenate([features[i], extra], 0))
    return out


# --------------------------------------------------------------------------------------------
# The corpus.

CHUNK = 8  # clips rendered at once (bounds memory: ~8 MB per clip-batch array)


def _rendered(world: _World, rng: np.random.Generator, clips: _Clips, modality: str):
    """Yield (row offset, features) chunk by chunk."""
    render = _render_audio if modality == "audio" else _render_video
    for start in range(0, len(clips), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(clips)))
        yield start, render(world, rng, clips.subset(rows))


def _stream(name: str, seed: int) -> np.random.Generator:
    """An independent random stream per part of the corpus, so parts do not shift each other."""
    streams = {"ids": 2, "pretrain": 3, "ave": 4, "avvp": 5, "ave_avvp": 6, "ucf": 7,
               "vggsound": 8, "text": 9, "retrieval": 10}
    return np.random.default_rng(np.random.SeedSequence([seed, streams[name]]))


def synthesize(root: str | os.PathLike, *, scale: float = 1.0, seed: int = 0,
               text_dim: int = SYNTHETIC_TEXT_DIM, force: bool = False,
               progress: ProgressFactory = no_progress) -> SynthSummary:
    """Write the synthetic corpus under `root` in the real layouts; deterministic for a seed.

    `root` must be absent or empty unless `force`, and then it must hold an earlier synthetic
    corpus (its synth.json): the corpus' own top-level entries are replaced and anything else
    in `root` is left alone. The corpus is written to a staging folder first, so a failure
    leaves `root` as it was.
    """
    counts = scaled_counts(scale)
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    if text_dim < 1:
        raise ConfigError(f"text_dim must be positive, got {text_dim}")
    target = Path(root)
    report = _StageProgress(progress)
    with staged_directory(target, force=force, marker=MANIFEST) as staging:
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                summary = _write_corpus(_Writer(staging, pool), counts, scale=scale, seed=seed,
                                        text_dim=text_dim, report=report)
        finally:
            report.close()
    return SynthSummary(root=str(target), **summary)


class _StageProgress:
    """Feeds (stage, done, total) counts of the generator to the caller's progress factory."""

    def __init__(self, factory: ProgressFactory):
        self.factory = factory
        self.stage: str | None = None
        self.context = None
        self.advance = None
        self.done = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            self.context = self.factory(stage, total)
            self.advance = self.context.__enter__()
        self.advance(done - self.done)
        self.done = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.context is not None:
            self.context.__exit__(None, None, None)
        self.stage, self.context, self.advance = None, None, None


def _write_corpus(out: _Writer, counts: dict[str, int], *, scale: float, seed: int,
                  text_dim: int, report: StageReport) -> dict:
    world = _build_world(seed, text_dim)
    # One id factory for the whole corpus keeps YouTube ids unique across sets; the parts draw
    # from it in this order, so the order of the calls below is part of the corpus' bytes.
    ids = _IdFactory(_stream("ids", seed))
    paths: dict[str, str] = {}
    pretrain_splits = _write_pretraining(out, world, ids, counts["pretrain"], seed=seed,
                                         text_dim=text_dim, paths=paths, report=report)
    ave_counts = _write_ave(out, world, counts["ave"], seed=seed, paths=paths, report=report)
    for part, keys, n_videos, data_dir, prefix in (
        ("avvp", AVVP_KEYS, counts["avvp"], AVVP_DATA_DIR, "AVVP"),
        ("ave_avvp", AVE_AVVP_KEYS, counts["ave_avvp_test"], AVE_AVVP_DIR, "AVE_AVVP"),
    ):
        _write_multi_event_set(out, world, ids, part, keys, n_videos, data_dir, prefix, seed=seed,
                               paths=paths, report=report)
    paths.update(ave_avvp_labels=f"{AVE_AVVP_DIR}/ave_avvp_labels.h5",
                 ave_avvp_order=f"{AVE_AVVP_DIR}/ave_avvp_order.h5",
                 avvp_audio=AVVP_AUDIO_ZIPS, avvp_video=AVVP_VIDEO_ZIPS)
    _write_ucf(out, world, counts["ucf"], seed=seed, report=report)
    _write_vggsound(out, world, ids, counts["vggsound"], seed=seed, report=report)
    paths.update(ucf_classes=f"{FEATURE_EXTRACTOR_DIR}/UCF101sameVGGSound.txt",
                 vggsound_classes=f"{FEATURE_EXTRACTOR_DIR}/VGGSoundsameUCF101.txt",
                 ucf2vggsound_csv=f"{FEATURE_EXTRACTOR_DIR}/ucf2vggsound.csv",
                 vggsound2ucf_csv=f"{FEATURE_EXTRACTOR_DIR}/vggsound2ucf.csv",
                 ucf_video=UCF_VIDEO_ZIPS)
    _write_retrieval(out, world, ids, counts["retrieval"], seed=seed, text_dim=text_dim,
                     report=report)
    paths.update(retrieval_pairs=RETRIEVAL_PAIRS, valor32k_annotations=VALOR_ANNOTATIONS,
                 valor32k_video=VALOR_VIDEO_ZIPS, valor32k_audio=VALOR_AUDIO_ZIPS,
                 valor32k_text_features=VALOR_TEXT_FEATURES)

    final_counts = dict(counts)
    final_counts.update(ave_counts, classes=len(CONCEPTS),
                        pretrain_train=int((pretrain_splits == "train").sum()))
    class_names = _class_names()
    manifest = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "scale": scale,
        "text_dim": text_dim, "counts": final_counts, "paths": dict(sorted(paths.items())),
        "class_names": class_names,
    }
    out.text(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {
        "seed": seed, "scale": scale, "text_dim": text_dim,
        "generator_version": GENERATOR_VERSION, "counts": final_counts,
        "paths": dict(sorted(paths.items())), "n_files": out.n_files, "n_bytes": out.n_bytes,
        "class_names": class_names,
    }


def _columns(keys: Sequence[str]) -> list[int]:
    """Concept indices of a dataset's classes, in that dataset's label order."""
    return [CONCEPT_INDEX[k] for k in keys]


def _class_names() -> dict[str, list[str]]:
    """Each set's class names as its own files spell them, in label order (for the manifest)."""
    vgg_names = [c.vggsound for c in CONCEPTS]
    ucf_cols = _columns(UCF_VGG_KEYS)
    return {
        "pretrain": vgg_names,
        "ave": [CONCEPTS[c].ave for c in _columns(AVE_KEYS)],
        "avvp": [CONCEPTS[c].avvp for c in _columns(AVVP_KEYS)],
        "ave_avvp": [CONCEPTS[c].avvp for c in _columns(AVE_AVVP_KEYS)],
        "ucf": [CONCEPTS[c].ucf for c in ucf_cols],
        "vggsound": [CONCEPTS[c].vggsound for c in ucf_cols],
        "retrieval": vgg_names,
    }


def _write_feature_zips(out: _Writer, world: _World, rng: np.random.Generator, clips: _Clips,
                        modality: str, directory: str, stage: str, report: StageReport, *,
                        lengths: np.ndarray | None = None,
                        keep: bool = False) -> list[np.ndarray]:
    """Render one modality of `clips` chunk by chunk into one feature zip per clip id.

    With `lengths`, clip i keeps lengths[i] rows (real features vary in length). Returns the
    rendered chunks when `keep` (the retrieval set writes them again); otherwise they are
    dropped as they are written, which bounds memory.
    """
    kept = []
    for start, feats in _rendered(world, rng, clips, modality):
        arrays = list(feats) if lengths is None else _variable_length(rng, feats, lengths[start:])
        out.pkl_zips(directory, clips.ids[start:start + len(feats)], arrays)
        if keep:
            kept.append(feats)
        report(stage, start + len(feats), len(clips))
    return kept


def _write_pretraining(out: _Writer, world: _World, ids: _IdFactory, n: int, *, seed: int,
                       text_dim: int, paths: dict[str, str], report: StageReport) -> np.ndarray:
    """VGGSound-AVEL style pretraining clips of every concept, and the text features per
    category. Returns each clip's split (train / val / test)."""
    fe = FEATURE_EXTRACTOR_DIR
    vgg_names = [c.vggsound for c in CONCEPTS]
    all_classes = list(range(len(CONCEPTS)))
    rng = _stream("pretrain", seed)
    pre_ids = ids.youtube(n)
    pre = _single_event_clips(rng, pre_ids, _balanced_classes(rng, n, all_classes), "vggsound",
                              full_prob=0.4, distractor_prob=0.2, distractor_pool=all_classes)
    splits = np.repeat(np.array(["train", "val", "test"]), _split_counts(n, [0.6, 0.2, 0.2]))
    splits = splits[rng.permutation(n)]
    out.csv(f"{fe}/vggsound-avel40k.csv", ["category", "video_id", "split"],
            [[vgg_names[pre.classes[i, 0]], pre_ids[i], splits[i]] for i in range(n)])
    out.lines(f"{fe}/VggsoundAVEL40kCategories.txt", vgg_names)
    prompts = [f"a video of {name} with its sound" for name in vgg_names]
    out.csv(f"{fe}/vggsoundCategories2Prompts.csv", ["label", "prompt"],
            list(zip(vgg_names, prompts, strict=True)))
    audio_lengths = rng.choice([9, 10, 10, 10, 10, 11], size=n)
    _write_feature_zips(out, world, rng, pre, "audio", VGGSOUND_AUDIO_ZIPS, "pretrain audio",
                        report, lengths=audio_lengths)
    _write_feature_zips(out, world, rng, pre, "video", VGGSOUND_VIDEO_ZIPS, "pretrain video",
                        report)
    av_flags = (pre.audible[:, :, 0] & pre.visible[:, :, 0]).astype(np.float32)
    out.pkl_zips(VGGSOUND_LABEL_ZIPS, pre_ids, list(av_flags))
    text = _text_features(world, _stream("text", seed), prompts, text_dim)
    with h5py.File(out.path(TEXT_FEATURES), "w", libver="earliest") as handle:
        handle.create_dataset("labels", data=np.array(vgg_names, dtype=object),
                              dtype=h5py.string_dtype("utf-8"), track_times=False)
        _create_dataset(handle, "features", text, compress=True)
    out.count(TEXT_FEATURES)
    paths.update(pretrain_csv=f"{fe}/vggsound-avel40k.csv",
                 pretrain_categories=f"{fe}/VggsoundAVEL40kCategories.txt",
                 pretrain_prompts=f"{fe}/vggsoundCategories2Prompts.csv",
                 pretrain_audio=VGGSOUND_AUDIO_ZIPS, pretrain_video=VGGSOUND_VIDEO_ZIPS,
                 pretrain_label=VGGSOUND_LABEL_ZIPS, text_features=TEXT_FEATURES)
    return splits


def _write_ave(out: _Writer, world: _World, n: int, *, seed: int, paths: dict[str, str],
               report: StageReport) -> dict[str, int]:
    """AVE (one audio-visual event per clip; labels are where it is both audible and visible)
    and the training side of AVE -> AVVP, drawn from the same AVE clips. Returns the split
    sizes."""
    ave_cols, ave_avvp_cols = _columns(AVE_KEYS), _columns(AVE_AVVP_KEYS)
    rng = _stream("ave", seed)
    ave_classes = _balanced_classes(rng, n, ave_cols)
    ave = _single_event_clips(rng, [f"ave{i:05d}" for i in range(n)], ave_classes, "ave",
                              full_prob=0.4, distractor_prob=0.0, distractor_pool=())
    av_active = ave.audible & ave.visible
    ave_labels = segment_labels(ave.classes, av_active, ave_cols)
    order = rng.permutation(n).astype(np.int64)
    n_train, n_val, _ = _split_counts(n, [0.7, 0.15, 0.15])
    out.h5(f"{AVE_DIR}/labels.h5", {"avadataset": ave_labels})
    out.h5(f"{AVE_DIR}/train_order.h5", {"order": order[:n_train]}, compress=False)
    out.h5(f"{AVE_DIR}/val_order.h5", {"order": order[n_train:n_train + n_val]}, compress=False)
    out.h5(f"{AVE_DIR}/test_order.h5", {"order": order[n_train + n_val:]}, compress=False)
    for modality, filename, shape in (("audio", "audio_feature.h5", (AUDIO_DIM,)),
                                      ("video", "visual_feature.h5",
                                       (GRID, GRID, VIDEO_CHANNELS))):
        target = out.path(f"{AVE_DIR}/{filename}")
        with h5py.File(target, "w", libver="earliest") as handle:
            dataset = handle.create_dataset(
                "avadataset", shape=(n, T_SEGMENTS, *shape), dtype=np.float64,
                chunks=(1, T_SEGMENTS, *shape), compression="gzip",
                compression_opts=H5_GZIP_LEVEL, shuffle=True, track_times=False)
            for start, feats in _rendered(world, rng, ave, modality):
                dataset[start:start + len(feats)] = feats.astype(np.float64)
                report(f"ave {modality}", start + len(feats), n)
        out.count(f"{AVE_DIR}/{filename}")
    for name in ("audio_feature.h5", "visual_feature.h5", "labels.h5", "train_order.h5",
                 "val_order.h5", "test_order.h5"):
        paths[f"ave_{name.removesuffix('.h5')}"] = f"{AVE_DIR}/{name}"

    # AVE -> AVVP training side: AVE rows of the 12 shared classes, relabelled to 12 + bg.
    shared_rows = np.flatnonzero(np.isin(ave_classes, ave_avvp_cols))
    aa_order = shared_rows[rng.permutation(len(shared_rows))].astype(np.int64)
    aa_labels = segment_labels(ave.classes, av_active, ave_avvp_cols)
    out.h5(f"{AVE_AVVP_DIR}/ave_avvp_labels.h5", {"avadataset": aa_labels})
    out.h5(f"{AVE_AVVP_DIR}/ave_avvp_order.h5", {"order": aa_order}, compress=False)
    return {"ave_train": n_train, "ave_val": n_val, "ave_test": n - n_train - n_val,
            "ave_avvp_train": int(len(aa_order))}


def _write_multi_event_set(out: _Writer, world: _World, ids: _IdFactory, part: str,
                           keys: Sequence[str], n_videos: int, data_dir: str, prefix: str, *,
                           seed: int, paths: dict[str, str], report: StageReport) -> None:
    """AVVP or the AVE -> AVVP test side: multi-event videos, per-modality annotations."""
    pool = _columns(keys)
    avvp_names = {c: CONCEPTS[c].avvp for c in pool}
    rng = _stream(part, seed)
    yt = ids.youtube(n_videos)
    starts = rng.integers(0, 30, size=n_videos) * 10
    filenames = [f"{y}_{s}_{s + 10}" for y, s in zip(yt, starts, strict=True)]
    clips = _multi_event_clips(rng, yt, pool, "avvp")
    out.lines(f"{data_dir}/{prefix}_Categories.txt", [avvp_names[c] for c in pool])
    header = ["filename", "onset", "offset", "event_labels"]
    for modality, word in (("audio", "audio"), ("video", "visual")):
        relative = f"{data_dir}/{prefix}_eval_{word}_checked_combined.csv"
        out.csv(relative, header, _combined_rows(clips, filenames, modality, avvp_names),
                delimiter="\t")
        paths[f"{part}_{word}_csv"] = relative
    paths[f"{part}_categories"] = f"{data_dir}/{prefix}_Categories.txt"
    audio_lengths = rng.choice([8, 9, 10, 10, 10, 10, 11], size=n_videos)
    _write_feature_zips(out, world, rng, clips, "audio", AVVP_AUDIO_ZIPS, f"{part} audio", report,
                        lengths=audio_lengths)
    _write_feature_zips(out, world, rng, clips, "video", AVVP_VIDEO_ZIPS, f"{part} video", report)


def _write_ucf(out: _Writer, world: _World, n: int, *, seed: int, report: StageReport) -> None:
    """UCF101 (video only) side of UCF101 <-> VGGSound, 16 aligned classes."""
    fe = FEATURE_EXTRACTOR_DIR
    ucf_cols = _columns(UCF_VGG_KEYS)
    rng = _stream("ucf", seed)
    ucf_classes = _balanced_classes(rng, n, ucf_cols)
    ucf_ids, seen = [], set()
    for c in ucf_classes:
        while True:
            name = (f"v_{CONCEPTS[c].ucf}_g{int(rng.integers(1, 26)):02d}"
                    f"_c{int(rng.integers(1, 8)):02d}")
            if name not in seen:
                seen.add(name)
                ucf_ids.append(name)
                break
    ucf = _whole_clip(ucf_ids, ucf_classes, "ucf")
    out.lines(f"{fe}/UCF101sameVGGSound.txt", [CONCEPTS[c].ucf for c in ucf_cols])
    out.lines(f"{fe}/VGGSoundsameUCF101.txt", [CONCEPTS[c].vggsound for c in ucf_cols])
    out.csv(f"{fe}/ucf2vggsound.csv", ["category", "video_id"],
            [[CONCEPTS[c].ucf, v] for c, v in zip(ucf_classes, ucf_ids, strict=True)])
    video_lengths = rng.choice([7, 8, 9, 10, 10, 11, 12], size=n)
    _write_feature_zips(out, world, rng, ucf, "video", UCF_VIDEO_ZIPS, "ucf video", report,
                        lengths=video_lengths)


def _write_vggsound(out: _Writer, world: _World, ids: _IdFactory, n: int, *, seed: int,
                    report: StageReport) -> None:
    """VGGSound (audio only) side of UCF101 <-> VGGSound, the same 16 classes."""
    rng = _stream("vggsound", seed)
    vgg_classes = _balanced_classes(rng, n, _columns(UCF_VGG_KEYS))
    vgg_ids = ids.youtube(n)
    vgg = _single_event_clips(rng, vgg_ids, vgg_classes, "vggsound", full_prob=0.7,
                              distractor_prob=0.0, distractor_pool=())
    vgg_splits = rng.choice(np.array(["train", "val", "test"]), size=n, p=[0.6, 0.2, 0.2])
    out.csv(f"{FEATURE_EXTRACTOR_DIR}/vggsound2ucf.csv", ["category", "video_id", "split"],
            [[CONCEPTS[c].vggsound, v, s]
             for c, v, s in zip(vgg_classes, vgg_ids, vgg_splits, strict=True)])
    audio_lengths = rng.choice([9, 10, 10, 10, 11], size=n)
    _write_feature_zips(out, world, rng, vgg, "audio", VGGSOUND_AUDIO_ZIPS, "vggsound audio",
                        report, lengths=audio_lengths)


def _write_retrieval(out: _Writer, world: _World, ids: _IdFactory, n: int, *, seed: int,
                     text_dim: int, report: StageReport) -> None:
    """Retrieval: clips with one caption each, in the VALOR-32K layout and the paired layout."""
    vgg_names = [c.vggsound for c in CONCEPTS]
    rng = _stream("retrieval", seed)
    ret_classes = _balanced_classes(rng, n, list(range(len(CONCEPTS))))
    ret_ids = ids.youtube(n)
    ret = _single_event_clips(rng, ret_ids, ret_classes, "vggsound", full_prob=0.7,
                              distractor_prob=0.0, distractor_pool=())
    captions = [f"{vgg_names[c]} recorded in clip {i}" for i, c in enumerate(ret_classes)]
    caption_features = _caption_features(world, rng, ret_classes, captions, text_dim)
    out.text(VALOR_ANNOTATIONS, json.dumps([{"video_id": v, "desc": c} for v, c in zip(ret_ids, captions, strict=True)], indent=1) + "\n")
    audio_parts = _write_feature_zips(out, world, rng, ret, "audio", VALOR_AUDIO_ZIPS,
                                      "retrieval audio", report, keep=True)
    video_parts = _write_feature_zips(out, world, rng, ret, "video", VALOR_VIDEO_ZIPS,
                                      "retrieval video", report, keep=True)
    with h5py.File(out.path(VALOR_TEXT_FEATURES), "w", libver="earliest") as handle:
        handle.create_dataset("captions", data=np.array(captions, dtype=object),
                              dtype=h5py.string_dtype("utf-8"), track_times=False)
        _create_dataset(handle, "features", caption_features, compress=True)
    out.count(VALOR_TEXT_FEATURES)
    with h5py.File(out.path(RETRIEVAL_PAIRS), "w", libver="earliest") as handle:
        _create_dataset(handle, "audio", np.concatenate(audio_parts), compress=True)
        _create_dataset(handle, "video", np.concatenate(video_parts), compress=True)
        _create_dataset(handle, "text", caption_features, compress=True)
        handle.create_dataset("ids", data=np.array(ret_ids, dtype=object),
                              dtype=h5py.string_dtype("utf-8"), track_times=False)
        handle.create_dataset("classes", data=ret_classes.astype(np.int64), track_times=False)
    out.count(RETRIEVAL_PAIRS)
