"""Speech from espeak-ng for the real-signal corpora: speakers, spoken words, their placement.

A speaker is an espeak-ng accent + voice variant at a fixed speed and pitch. Pretraining and
evaluation speakers take disjoint voice variants, so an evaluation voice is never heard in
pretraining. Each word is synthesised once per (speaker, word) actually used, then resampled to
16 kHz, trimmed and peak-normalised; every event segment replays it with a fresh jitter.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from toc.corpora.extractors import SAMPLE_RATE
from toc.corpora.real_signals import MissingToolError
from toc.errors import TocError

ESPEAK_RATE = 22_050

# espeak-ng voice variants that sound like distinct human speakers (robotic, whispering and
# joke variants are left out). Pretraining and evaluation speakers take disjoint variants.
VOICE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "Annie", "Denis", "Lee", "Michael", "Mike", "david", "edward", "john",
    "linda", "max", "paul", "quincy", "rob", "robert", "steph", "zac", "belinda", "benjamin",
    "boris", "caleb", "gustave", "iven", "grandma", "grandpa", "aunty",
)  # fmt: skip
ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd", "en-gb-x-gbclan")
EVAL_VARIANTS = 12  # the rest of VOICE_VARIANTS speak the pretraining clips
SPEED_RANGE = (130, 200)  # espeak-ng -s, words per minute
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99


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


def espeak_executable(corpus: str) -> str:
    """The espeak-ng program on PATH, or a one-line MissingToolError naming the corpus."""
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise MissingToolError(
            f"{corpus} corpus needs espeak-ng, which is not on PATH "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    return executable


def espeak_version(executable: str) -> str:
    """espeak-ng's version line (recorded in a corpus' marker: its output can change between versions)."""
    try:
        done = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingToolError(f"espeak-ng at {executable} does not run ({exc})") from exc
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/..." → keep the version, not the path.
    first_line = done.stdout.strip().splitlines()[0] if done.stdout.strip() else "espeak-ng (unknown version)"
    return first_line.split("  Data at:")[0].strip()


def choose_speakers(rng: np.random.Generator, accents: Sequence[str] = ENGLISH_ACCENTS
                    ) -> tuple[list[Speaker], list[Speaker]]:  # fmt: skip
    """Split the voice variants into pretraining and evaluation speakers (disjoint variants)."""
    order = rng.permutation(len(VOICE_VARIANTS))
    speakers = []
    for index in order:
        speakers.append(
            Speaker(
                accent=accents[int(rng.integers(len(accents)))],
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


def synthesise_words(jobs: Sequence[tuple[Speaker, int]], words: Sequence[str], workdir: Path,
                     corpus: str) -> dict[tuple[str, int], np.ndarray]:  # fmt: skip
    """Run espeak-ng once per (speaker, word row): trimmed, peak-normalised 16 kHz waveforms."""
    executable = espeak_executable(corpus)

    def one(job: tuple[Speaker, int]) -> np.ndarray:
        speaker, row = job
        path = workdir / f"{hashlib.sha1(speaker.name.encode()).hexdigest()[:12]}_{row}.wav"
        command = [executable, "-v", speaker.voice, "-s", str(speaker.speed), "-p", str(speaker.pitch),
                   "-w", str(path), words[row]]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise TocError(f"espeak-ng failed for voice {speaker.voice} ({exc})") from exc
        wave_16k = resample_poly(_read_wav(path), SAMPLE_RATE // 50, ESPEAK_RATE // 50)
        return _trim_and_normalise(wave_16k, f"{speaker.name} '{words[row]}'")

    with ThreadPoolExecutor(max_workers=2) as pool:
        waves = list(pool.map(one, jobs))
    return {(speaker.name, row): w for (speaker, row), w in zip(jobs, waves, strict=True)}


def place_word(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One second holding the word with a random tempo jitter, gain and position."""
    stretch = rng.uniform(0.9, 1.1)
    length = min(int(round(len(word) / stretch)), int(0.95 * SAMPLE_RATE))
    jittered = np.interp(np.linspace(0, len(word) - 1, length), np.arange(len(word)), word)
    second = np.zeros(SAMPLE_RATE)
    start = int(rng.integers(0, SAMPLE_RATE - length + 1))
    second[start : start + length] = jittered * rng.uniform(0.3, 0.8)
    return second
