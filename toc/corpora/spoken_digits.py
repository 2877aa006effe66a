"""Spoken digits + handwritten digits: espeak-ng speech paired with scikit-learn's digit images.

The words "zero".."nine" spoken by 40 espeak-ng voices (toc.corpora.speech), paired with the
1,797 8x8 handwritten digits shipped with scikit-learn. Held out for evaluation: 12 of the voice
variants and a seeded 40% of each digit's images. The writer (toc.corpora.real_signals) does the
rest; docs/real-corpora.md describes the corpus.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from toc.corpora import speech
from toc.corpora.real_signals import (
    CorpusSummary,
    ImagePool,
    MissingToolError,
    RealCorpusConfig,
    RealSignalCorpus,
    build_real_corpus,
)
from toc.progress import ProgressFactory, no_progress

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
EVAL_IMAGE_FRACTION = 0.4  # of each class' sklearn images, reserved for the AVE set



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


class SpokenDigits(RealSignalCorpus):
    kind = "spoken-digits"
    class_names = DIGIT_NAMES
    id_prefix = "spkdig"
    prompt_template = "a voice says {}"
    class_column, source_column, image_column = "digit", "speaker", "image_index"
    sources_noun = "speakers"

    def check_tools(self) -> dict[str, str]:
        executable = speech.espeak_executable(self.kind)
        try:
            import sklearn.datasets  # noqa: F401
        except ImportError as exc:
            raise MissingToolError(
                "spoken-digits corpus needs scikit-learn, which is not installed "
                "(pip install 'cmg-toc[corpus]')"
            ) from exc
        return {"espeak_version": speech.espeak_version(executable)}

    def choose_sources(self, rng: np.random.Generator) -> tuple[list[speech.Speaker], list[speech.Speaker]]:
        return speech.choose_speakers(rng)

    def image_pool(self, rng: np.random.Generator) -> ImagePool:
        images, labels = load_digit_images()
        pretrain, evaluation = split_images(labels, rng)
        return ImagePool(labels, pretrain, evaluation, images.shape[-1], images.__getitem__)

    def prepare_sounds(self, jobs: Sequence[tuple[speech.Speaker, int]], workdir: Path) -> dict[tuple[str, int], np.ndarray]:
        return speech.synthesise_words(jobs, DIGIT_NAMES, workdir, self.kind)

    def event_second(self, sound: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return speech.place_word(sound, rng)


CORPUS = SpokenDigits()
MARKER_FILE = CORPUS.marker_file
CLIPS_FILE = CORPUS.clips_file


def build_spoken_digits(root: str | os.PathLike, config: RealCorpusConfig = RealCorpusConfig(), *,
                        force: bool = False, progress: ProgressFactory = no_progress) -> CorpusSummary:  # fmt: skip
    """Build the spoken-digits corpus under `root` (toc.corpora.real_signals.build_real_corpus)."""
    return build_real_corpus(CORPUS, root, config, force=force, progress=progress)
