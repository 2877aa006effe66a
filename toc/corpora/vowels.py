"""Sung vowels + vowel symbols: ten vowels made by a source–filter synthesiser, paired with their
IPA symbols written in the machine's DejaVu fonts.

Audio: a glottal source (a pulse train with a random fundamental, slow pitch drift, jitter and
breath noise) through a cascade of four formant resonators — the classic source–filter model of
a vowel. A vowel's formants are Peterson & Barney's (1952) averages for American English men's
vowels (F1–F3; F4 fixed at 3,500 Hz); a *singer* is one vocal tract and voice: a length factor
that scales every formant (0.85: long tract, low formants; 1.25: a child's short tract), its own
small offset per formant and vowel, a fundamental range, formant bandwidths, a spectral tilt and
breathiness, heard in its own room. Every event second sings a fresh note of the vowel: a random
length, pitch, position and gain.

Images: the vowel's IPA symbol in the DejaVu fonts (toc.corpora.fonts) at a random box, angle,
position and ink.

Held out for evaluation: 12 of 40 singers (their tracts, voices and rooms are never heard in
pretraining) and a seeded third of the fonts (every image of an evaluation font is an evaluation
image). The writer (toc.corpora.real_signals) does the rest; docs/real-corpora.md describes the
corpus. Unlike the spoken corpora, nothing outside numpy, scipy and Pillow is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from toc.corpora import fonts as font_tools
from toc.corpora.extractors import SAMPLE_RATE
from toc.corpora.instruments import place_in_room
from toc.corpora.real_signals import ImagePool, MissingToolError, RealSignalCorpus

# The ten vowels: a name for the prompts, the IPA symbol the images show, and F1–F3 in Hz
# (Peterson & Barney 1952, men's averages).
VOWELS = (
    ("heed", "i", (270, 2290, 3010)), ("hid", "ɪ", (390, 1990, 2550)), ("head", "ɛ", (530, 1840, 2480)),
    ("had", "æ", (660, 1720, 2410)), ("hod", "ɑ", (730, 1090, 2440)), ("hawed", "ɔ", (570, 840, 2410)),
    ("hood", "ʊ", (440, 1020, 2240)), ("who'd", "u", (300, 870, 2240)), ("hud", "ʌ", (640, 1190, 2390)),
    ("heard", "ɝ", (490, 1350, 1690)),
)  # fmt: skip
F4 = 3500.0  # Hz, every vowel
SINGERS = 40
EVAL_SINGERS = 12
IMAGE_SIDE = 32
IMAGES_PER_FONT_AND_VOWEL = 8
EVAL_FONT_FRACTION = 1 / 3
MIN_FONTS = 6  # at least 4 pretraining and 2 evaluation fonts
TRACT_RANGE = (0.85, 1.25)  # formant scale of a singer's vocal tract
FORMANT_JITTER = 0.05  # a singer's own offset of each formant of each vowel, log-normal sd
F0_CENTRE_RANGE = (95.0, 260.0)  # Hz, the middle of a singer's range
F0_SPREAD = 0.25  # a note's pitch is within ±25% of the singer's centre
BANDWIDTH_RANGE = (50.0, 130.0)  # Hz, F1's bandwidth; higher formants get wider ones
TILT_RANGE = (0.9, 0.99)  # the glottal source's one-pole low-pass coefficient (spectral tilt)
BREATH_RANGE = (0.01, 0.15)  # breath noise, relative to the voiced source
NOTE_LENGTH_RANGE = (0.3, 0.85)  # seconds
ATTACK, RELEASE = 0.03, 0.05  # seconds
ROOM_T60_RANGE = (0.1, 0.6)  # seconds
ROOM_WET_RANGE = (0.05, 0.3)
WIDTH_RANGE = (0.45, 0.75)  # of the image side: a symbol's box
HEIGHT_RANGE = (0.55, 0.85)
ANGLE_RANGE = (-8.0, 8.0)  # degrees
OFFSET_RANGE = (-2.0, 2.0)  # pixels, each axis
INK_RANGE = (0.7, 1.0)


@dataclass(frozen=True, eq=False)
class Singer:
    """One vocal tract and voice, and the room it sings in."""

    name: str
    formants: np.ndarray  # [10 vowels, 4] Hz, this singer's
    bandwidths: np.ndarray  # [4] Hz
    f0_centre: float  # Hz
    tilt: float
    breath: float
    room: np.ndarray  # impulse response of the room's reverberation (wet part)
    wet: float


def _singer(index: int, rng: np.random.Generator) -> Singer:
    scale = rng.uniform(*TRACT_RANGE)
    table = np.array([[*f, F4] for _, _, f in VOWELS], dtype=np.float64)
    formants = table * scale * np.exp(rng.normal(0.0, FORMANT_JITTER, size=table.shape))
    bandwidths = rng.uniform(*BANDWIDTH_RANGE) * np.array([1.0, 1.3, 1.8, 2.5])
    t60 = rng.uniform(*ROOM_T60_RANGE)
    n = int(t60 * SAMPLE_RATE)
    response = rng.normal(size=n) * np.exp(-6.9 * np.arange(n) / n)
    return Singer(
        f"singer{index:02d}", formants, bandwidths, rng.uniform(*F0_CENTRE_RANGE), rng.uniform(*TILT_RANGE),
        rng.uniform(*BREATH_RANGE), response / np.sqrt((response**2).sum()), rng.uniform(*ROOM_WET_RANGE),
    )  # fmt: skip


def _resonator(signal: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
    """A two-pole resonance at `frequency` Hz with unit gain at 0 Hz (Klatt's formant filter)."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    c = -(r**2)
    b = 2.0 * r * np.cos(2.0 * np.pi * frequency / SAMPLE_RATE)
    a = 1.0 - b - c
    return lfilter([a], [1.0, -b, -c], signal)


def sing(singer: Singer, vowel: int, length: float, rng: np.random.Generator) -> np.ndarray:
    """One dry note of `vowel` by `singer`, `length` seconds."""
    n = int(length * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = singer.f0_centre * (1.0 + rng.uniform(-F0_SPREAD, F0_SPREAD))
    drift = 1.0 + rng.uniform(-0.04, 0.04) * t / max(length, 1e-9) + 0.004 * rng.normal(size=n).cumsum() / np.sqrt(n)
    phase = np.cumsum(f0 * drift) / SAMPLE_RATE
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    source = lfilter([1.0], [1.0, -singer.tilt], pulses)  # the pulses' spectral tilt
    source = source / max(np.abs(source).max(), 1e-12) + singer.breath * rng.normal(size=n)
    voice = source
    for frequency, bandwidth in zip(singer.formants[vowel], singer.bandwidths, strict=True):
        if frequency < 0.45 * SAMPLE_RATE:
            voice = _resonator(voice, frequency, bandwidth)
    voice = voice - voice.mean()
    envelope = np.minimum(1.0, t / ATTACK) * np.clip((length - t) / RELEASE, 0.0, 1.0)
    return voice / max(np.abs(voice).max(), 1e-12) * envelope


def _fonts_with_symbols(corpus: str) -> list[font_tools.Font]:
    """The DejaVu fonts that draw all ten symbols (ExtraLight lacks ɝ, MathTeXGyre most of them)."""
    symbols = "".join(symbol for _, symbol, _ in VOWELS)
    fonts = [font for font in font_tools.find_fonts(corpus, MIN_FONTS) if font_tools.has_glyphs(font, symbols)]
    if len(fonts) < MIN_FONTS:
        raise MissingToolError(f"{corpus} corpus needs at least {MIN_FONTS} DejaVu fonts with IPA symbols, found {len(fonts)}")
    return fonts


def _text_style(rng: np.random.Generator) -> font_tools.TextStyle:
    return font_tools.TextStyle(
        width=rng.uniform(*WIDTH_RANGE), height=rng.uniform(*HEIGHT_RANGE), angle=rng.uniform(*ANGLE_RANGE),
        offset=(rng.uniform(*OFFSET_RANGE), rng.uniform(*OFFSET_RANGE)), ink=rng.uniform(*INK_RANGE),
    )  # fmt: skip


class Vowels(RealSignalCorpus):
    kind = "vowels"
    class_names = tuple(name for name, _, _ in VOWELS)
    id_prefix = "vowels"
    prompt_template = "someone sings the vowel of {}"
    class_column, source_column, image_column = "vowel", "singer", "image"
    sources_noun = "singers"

    def check_tools(self) -> dict[str, str]:
        versions = font_tools.pillow_versions(self.kind)
        _fonts_with_symbols(self.kind)
        return {"numpy_version": np.__version__, **versions}

    def choose_sources(self, rng: np.random.Generator) -> tuple[list[Singer], list[Singer]]:
        singers = [_singer(index, rng) for index in range(SINGERS)]
        return singers[EVAL_SINGERS:], singers[:EVAL_SINGERS]

    def image_pool(self, rng: np.random.Generator) -> ImagePool:
        """IMAGES_PER_FONT_AND_VOWEL drawings of each symbol in each font; fonts split by the seed."""
        fonts = _fonts_with_symbols(self.kind)
        return font_tools.written_pool([symbol for _, symbol, _ in VOWELS], fonts, IMAGES_PER_FONT_AND_VOWEL, EVAL_FONT_FRACTION, _text_style, IMAGE_SIDE, rng)

    def image_details(self, pool: ImagePool) -> dict[str, list[str]]:
        return {"pretrain_fonts": pool.groups(pool.pretrain), "eval_fonts": pool.groups(pool.evaluation)}

    def prepare_sounds(self, jobs: Sequence[tuple[Singer, int]], workdir: Path) -> dict[tuple[str, int], tuple[Singer, int]]:
        return {(singer.name, label): (singer, label) for singer, label in jobs}

    def event_second(self, sound: tuple[Singer, int], rng: np.random.Generator) -> np.ndarray:
        """A fresh note of the singer's vowel, in its room, placed in one second."""
        singer, label = sound
        dry = sing(singer, label, rng.uniform(*NOTE_LENGTH_RANGE), rng)
        return place_in_room(dry, singer.room, singer.wet, rng)


CORPUS = Vowels()
