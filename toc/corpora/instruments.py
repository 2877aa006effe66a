"""Instrument notes + drawn shapes: ten synthesised timbres paired with ten geometric shapes.

Audio: notes of ten instrument families made by additive synthesis in numpy (no sound files, no
external program). A family is a recipe of partials (frequency ratios, amplitudes, decays), an
attack, vibrato and a noise part (breath, bow, hammer, snare). A *maker* is one concrete set of
ten instruments, each drawn from its family's recipe (its own partial amplitudes, brightness,
decay, attack, vibrato, noise), played in its own room (a random reverberation). Every event
second plays a fresh note: a random pitch in the family's register (registers overlap), a random
length, position and gain.

Images: ten shapes (toc.corpora.shapes) drawn in twelve styles at random sizes, angles, aspects
and positions.

Held out for evaluation: 12 of 40 makers (their timbre parameters and rooms are never heard in
pretraining) and a seeded third of the drawing styles (every image of an evaluation style is an
evaluation image). The writer (toc.corpora.real_signals) does the rest; docs/real-corpora.md
describes the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from toc.corpora import shapes
from toc.corpora.extractors import SAMPLE_RATE
from toc.corpora.real_signals import ImagePool, RealSignalCorpus

INSTRUMENTS = ("flute", "clarinet", "violin", "trumpet", "guitar", "piano", "marimba", "bell", "organ", "drum")
MAKERS = 40
EVAL_MAKERS = 12
IMAGE_SIDE = 32
IMAGES_PER_STYLE_AND_SHAPE = 15
EVAL_STYLES = 4  # of shapes.STYLES
# Each family's register, in MIDI notes: about an octave and a half, overlapping its neighbours'.
REGISTERS = {
    "flute": (67, 84), "clarinet": (55, 72), "violin": (60, 79), "trumpet": (58, 74), "guitar": (45, 64),
    "piano": (48, 72), "marimba": (55, 76), "bell": (64, 84), "organ": (43, 62), "drum": (40, 55),
}  # fmt: skip
NOTE_LENGTH_RANGE = (0.35, 0.85)  # seconds
GAIN_RANGE = (0.3, 0.8)  # the note's peak, as a spoken word's
RELEASE = 0.04  # seconds of fade at the note's end
NYQUIST_MARGIN = 7800.0  # Hz: partials above are left out (no aliasing)
ROOM_T60_RANGE = (0.1, 0.8)  # seconds
ROOM_WET_RANGE = (0.05, 0.35)
FORMANT_GAIN = 2.0
FORMANT_WIDTH = 600.0  # Hz


@dataclass(frozen=True, eq=False)
class Timbre:
    """One instrument: what every note it plays shares."""

    ratios: np.ndarray  # partial frequencies / the note's fundamental [K]
    amplitudes: np.ndarray  # [K]
    decays: np.ndarray  # exponential decay rate of each partial, 1/s [K]
    attack: float  # seconds
    vibrato_rate: float  # Hz
    vibrato_depth: float  # fraction of the frequency
    noise_level: float  # of the noise part, relative to the partials' peak
    noise_band: tuple[float, float]  # Hz
    noise_decay: float  # 1/s (0: as long as the note)
    formant: float | None = None  # Hz: a body resonance that lifts the partials near it (violin)


def _brightness(rng: np.random.Generator, ratios: np.ndarray, amplitudes: np.ndarray, spread: float = 0.3) -> np.ndarray:
    """A maker's own partial balance: a random spectral tilt and per-partial jitter."""
    tilt = ratios ** rng.normal(0.0, 0.25)
    return amplitudes * tilt * np.exp(rng.normal(0.0, spread, size=len(ratios)))


def _harmonics(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64)


def _flute(rng: np.random.Generator) -> Timbre:
    k = _harmonics(6)
    return Timbre(k, _brightness(rng, k, np.array([1.0, 0.35, 0.12, 0.06, 0.03, 0.02])), np.full(6, 0.3),
                  rng.uniform(0.06, 0.15), rng.uniform(4.5, 5.5), rng.uniform(0.004, 0.01),
                  rng.uniform(0.05, 0.12), (1500.0, 6000.0), 0.0)  # fmt: skip


def _clarinet(rng: np.random.Generator) -> Timbre:
    k = _harmonics(15)
    amplitudes = np.where(k % 2 == 1, 1.0 / k, 0.05 / k)
    return Timbre(k, _brightness(rng, k, amplitudes), np.full(15, 0.3), rng.uniform(0.03, 0.07),
                  rng.uniform(4.0, 6.0), rng.uniform(0.0, 0.003), rng.uniform(0.02, 0.05), (2000.0, 6000.0), 0.0)  # fmt: skip


def _violin(rng: np.random.Generator) -> Timbre:
    k = _harmonics(20)
    return Timbre(k, _brightness(rng, k, 1.0 / k), np.full(20, 0.4), rng.uniform(0.08, 0.2),
                  rng.uniform(5.0, 7.0), rng.uniform(0.008, 0.02), rng.uniform(0.03, 0.06), (3000.0, 7000.0), 0.0,
                  formant=rng.uniform(2500.0, 3500.0))  # fmt: skip


def _trumpet(rng: np.random.Generator) -> Timbre:
    k = _harmonics(16)
    amplitudes = k**2 * np.exp(-k / rng.uniform(1.2, 2.0))
    return Timbre(k, _brightness(rng, k, amplitudes / amplitudes.max()), np.full(16, 0.2), rng.uniform(0.02, 0.05),
                  rng.uniform(4.5, 6.0), rng.uniform(0.0, 0.006), 0.01, (1000.0, 5000.0), 0.0)  # fmt: skip


def _guitar(rng: np.random.Generator) -> Timbre:
    k = _harmonics(20)
    pluck = rng.uniform(0.1, 0.25)  # where the string is plucked, as a fraction of its length
    amplitudes = np.abs(np.sin(np.pi * k * pluck)) / k**1.2
    return Timbre(k, _brightness(rng, k, amplitudes), rng.uniform(1.5, 3.0) * (1.0 + 0.25 * (k - 1)), 0.003,
                  0.0, 0.0, 0.1, (2000.0, 7000.0), 60.0)  # fmt: skip


def _piano(rng: np.random.Generator) -> Timbre:
    k = _harmonics(16)
    stiffness = rng.uniform(2e-4, 8e-4)
    return Timbre(k * np.sqrt(1.0 + stiffness * k**2), _brightness(rng, k, 1.0 / k**1.6),
                  rng.uniform(0.8, 1.8) * (1.0 + 0.4 * (k - 1)), 0.004, 0.0, 0.0, 0.15, (200.0, 3000.0), 40.0)  # fmt: skip


def _marimba(rng: np.random.Generator) -> Timbre:
    ratios = np.array([1.0, 3.93, 9.2]) * (1.0 + rng.normal(0.0, 0.01, size=3))
    return Timbre(ratios, _brightness(rng, ratios, np.array([1.0, 0.35, 0.12])),
                  rng.uniform(4.0, 8.0) * np.array([1.0, 3.0, 6.0]), 0.002, 0.0, 0.0, 0.2, (1000.0, 5000.0), 120.0)  # fmt: skip


def _bell(rng: np.random.Generator) -> Timbre:
    ratios = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 2.66, 3.01, 4.1]) * (1.0 + rng.normal(0.0, 0.015, size=9))
    amplitudes = np.array([0.6, 1.0, 0.7, 0.5, 0.8, 0.4, 0.3, 0.25, 0.2])
    return Timbre(ratios, _brightness(rng, ratios, amplitudes), rng.uniform(0.4, 1.5) * (0.6 + 0.4 * ratios),
                  0.002, 0.0, 0.0, 0.05, (2000.0, 7000.0), 100.0)  # fmt: skip


def _organ(rng: np.random.Generator) -> Timbre:
    ratios = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0])
    drawbars = np.array([0.6, 1.0, 0.6, 0.8, 0.4, 0.5, 0.2, 0.3, 0.3]) * np.exp(rng.normal(0.0, 0.4, size=9))
    return Timbre(ratios, drawbars, np.zeros(9), 0.01, rng.uniform(6.0, 7.0), rng.uniform(0.0, 0.003),
                  0.05, (1000.0, 6000.0), 200.0)  # fmt: skip


def _drum(rng: np.random.Generator) -> Timbre:
    ratios = np.array([1.0, 1.59, 2.14, 2.3, 2.65, 2.92])
    return Timbre(ratios, _brightness(rng, ratios, np.array([1.0, 0.6, 0.45, 0.35, 0.25, 0.2])),
                  rng.uniform(8.0, 15.0) * ratios, 0.001, 0.0, 0.0, rng.uniform(0.3, 0.8), (1500.0, 7500.0),
                  rng.uniform(15.0, 30.0))  # fmt: skip


FAMILIES: tuple[Callable[[np.random.Generator], Timbre], ...] = (
    _flute, _clarinet, _violin, _trumpet, _guitar, _piano, _marimba, _bell, _organ, _drum,
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Maker:
    """One maker's ten instruments and the room they are played in."""

    name: str
    timbres: tuple[Timbre, ...]  # one per class
    room: np.ndarray  # impulse response of the room's reverberation (wet part)
    wet: float


def _room(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    t60 = rng.uniform(*ROOM_T60_RANGE)
    n = int(t60 * SAMPLE_RATE)
    response = rng.normal(size=n) * np.exp(-6.9 * np.arange(n) / n)
    return response / np.sqrt((response**2).sum()), rng.uniform(*ROOM_WET_RANGE)


def _band_noise(n: int, band: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise / max(np.abs(noise).max(), 1e-12)


def play_note(timbre: Timbre, frequency: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """One dry note of `length` seconds at `frequency` Hz."""
    f0 = frequency
    n = int(length * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    keep = timbre.ratios * f0 < NYQUIST_MARGIN
    vibrato = 1.0 + timbre.vibrato_depth * np.sin(2 * np.pi * timbre.vibrato_rate * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(vibrato) / SAMPLE_RATE  # [n]
    partials = np.sin(timbre.ratios[keep, None] * phase[None] + rng.uniform(0, 2 * np.pi, size=(int(keep.sum()), 1)))
    amplitudes = timbre.amplitudes[keep]
    if timbre.formant is not None:
        amplitudes = amplitudes * (1.0 + FORMANT_GAIN * np.exp(-0.5 * ((timbre.ratios[keep] * f0 - timbre.formant) / FORMANT_WIDTH) ** 2))
    partials *= amplitudes[:, None] * np.exp(-timbre.decays[keep, None] * t[None])
    tone = partials.sum(axis=0)
    tone /= max(np.abs(tone).max(), 1e-12)
    noise = _band_noise(n, timbre.noise_band, rng) * timbre.noise_level * np.exp(-timbre.noise_decay * t)
    envelope = np.minimum(1.0, t / timbre.attack) * np.clip((length - t) / RELEASE, 0.0, 1.0)
    return (tone + noise) * envelope


class Instruments(RealSignalCorpus):
    kind = "instruments"
    class_names = INSTRUMENTS
    id_prefix = "instru"
    prompt_template = "the sound of a {}"
    class_column, source_column, image_column = "instrument", "maker", "image"
    sources_noun = "makers"

    def check_tools(self) -> dict[str, str]:
        return {"numpy_version": np.__version__}  # nothing outside numpy / scipy is needed

    def choose_sources(self, rng: np.random.Generator) -> tuple[list[Maker], list[Maker]]:
        makers = []
        for index in range(MAKERS):
            room, wet = _room(rng)
            makers.append(Maker(f"maker{index:02d}", tuple(family(rng) for family in FAMILIES), room, wet))
        return makers[EVAL_MAKERS:], makers[:EVAL_MAKERS]

    def image_pool(self, rng: np.random.Generator) -> ImagePool:
        """IMAGES_PER_STYLE_AND_SHAPE drawings of each shape in each style; styles split by the seed."""
        eval_styles = {int(i) for i in rng.permutation(len(shapes.STYLES))[:EVAL_STYLES]}
        drawings, labels, names, evaluation = [], [], [], []
        for style_row, style in enumerate(shapes.STYLES):
            for label, shape in enumerate(shapes.SHAPES):
                for _ in range(IMAGES_PER_STYLE_AND_SHAPE):
                    evaluation.append(style_row in eval_styles)
                    names.append(f"{style}#{len(drawings)}")
                    drawings.append((shape, style, shapes.random_placement(rng)))
                    labels.append(label)

        def draw(row: int) -> np.ndarray:
            shape, style, placement = drawings[row]
            return shapes.draw_shape(shape, style, placement, IMAGE_SIDE)

        return ImagePool.of_drawings(labels, evaluation, names, IMAGE_SIDE, draw)

    def image_details(self, pool: ImagePool) -> dict[str, list[str]]:
        return {"pretrain_styles": pool.groups(pool.pretrain), "eval_styles": pool.groups(pool.evaluation)}

    def prepare_sounds(self, jobs: Sequence[tuple[Maker, int]], workdir: Path) -> dict[tuple[str, int], tuple[Maker, int]]:
        return {(maker.name, label): (maker, label) for maker, label in jobs}

    def event_second(self, sound: tuple[Maker, int], rng: np.random.Generator) -> np.ndarray:
        """A fresh note of the maker's instrument, in its room, placed in one second."""
        maker, label = sound
        frequency = 440.0 * 2.0 ** ((rng.uniform(*REGISTERS[INSTRUMENTS[label]]) - 69.0) / 12.0)
        dry = play_note(maker.timbres[label], frequency, rng.uniform(*NOTE_LENGTH_RANGE), rng)
        return place_in_room(dry, maker.room, maker.wet, rng)


def place_in_room(dry: np.ndarray, room: np.ndarray, wet: float, rng: np.random.Generator) -> np.ndarray:
    """One second holding the dry note heard in the room (its tail cut at the second's end), at a
    random position and a peak gain in GAIN_RANGE."""
    note = wet * fftconvolve(dry, room)
    note[: len(dry)] += (1.0 - wet) * dry
    note = note[: int(0.95 * SAMPLE_RATE)]
    second = np.zeros(SAMPLE_RATE)
    start = int(rng.integers(0, SAMPLE_RATE - len(note) + 1))
    second[start : start + len(note)] = note / max(np.abs(note).max(), 1e-12) * rng.uniform(*GAIN_RANGE)
    return second


CORPUS = Instruments()
