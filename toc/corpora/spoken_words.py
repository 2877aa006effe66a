"""Spoken words + written words: espeak-ng speech paired with the same word drawn in fonts.

Ten English words spoken by 40 espeak-ng voices (toc.corpora.speech), paired with 32x32 images
of the word written in the machine's DejaVu fonts (toc.corpora.fonts) at a random width, angle,
position and ink. Held out for evaluation: 12 of the voice variants and a seeded third of the
fonts (every image of an evaluation font is an evaluation image). The writer
(toc.corpora.real_signals) does the rest; docs/real-corpora.md describes the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from toc.corpora import fonts as font_tools
from toc.corpora import speech
from toc.corpora.real_signals import ImagePool, RealSignalCorpus

WORDS = ("apple", "bridge", "candle", "dragon", "garden", "lemon", "monkey", "pencil", "river", "window")
IMAGE_SIDE = 32
IMAGES_PER_FONT_AND_WORD = 8
EVAL_FONT_FRACTION = 1 / 3
MIN_FONTS = 6  # at least 4 pretraining and 2 evaluation fonts
WIDTH_RANGE = (0.85, 0.95)  # of the image side: every word is about as wide, whatever its length
HEIGHT_RANGE = (0.45, 0.65)  # of the image side
ANGLE_RANGE = (-6.0, 6.0)  # degrees
OFFSET_RANGE = (-1.5, 1.5)  # pixels, each axis
INK_RANGE = (0.7, 1.0)


def _text_style(rng: np.random.Generator) -> font_tools.TextStyle:
    return font_tools.TextStyle(
        width=rng.uniform(*WIDTH_RANGE), height=rng.uniform(*HEIGHT_RANGE), angle=rng.uniform(*ANGLE_RANGE),
        offset=(rng.uniform(*OFFSET_RANGE), rng.uniform(*OFFSET_RANGE)), ink=rng.uniform(*INK_RANGE),
    )  # fmt: skip


class SpokenWords(RealSignalCorpus):
    kind = "spoken-words"
    class_names = WORDS
    id_prefix = "spword"
    prompt_template = "someone says the word {}"
    class_column, source_column, image_column = "word", "speaker", "image"
    sources_noun = "speakers"

    def check_tools(self) -> dict[str, str]:
        executable = speech.espeak_executable(self.kind)
        versions = font_tools.pillow_versions(self.kind)
        font_tools.find_fonts(self.kind, MIN_FONTS)
        return {"espeak_version": speech.espeak_version(executable), **versions}

    def choose_sources(self, rng: np.random.Generator) -> tuple[list[speech.Speaker], list[speech.Speaker]]:
        return speech.choose_speakers(rng)

    def image_pool(self, rng: np.random.Generator) -> ImagePool:
        """IMAGES_PER_FONT_AND_WORD drawings of each word in each font; fonts split by the seed."""
        fonts = font_tools.find_fonts(self.kind, MIN_FONTS)
        return font_tools.written_pool(WORDS, fonts, IMAGES_PER_FONT_AND_WORD, EVAL_FONT_FRACTION, _text_style, IMAGE_SIDE, rng)

    def image_details(self, pool: ImagePool) -> dict[str, list[str]]:
        return {"pretrain_fonts": pool.groups(pool.pretrain), "eval_fonts": pool.groups(pool.evaluation)}

    def prepare_sounds(self, jobs: Sequence[tuple[speech.Speaker, int]], workdir: Path) -> dict[tuple[str, int], np.ndarray]:
        return speech.synthesise_words(jobs, WORDS, workdir, self.kind)

    def event_second(self, sound: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return speech.place_word(sound, rng)


CORPUS = SpokenWords()
