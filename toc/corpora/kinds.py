"""The real-signal corpora by name, without numpy: the CLI's `--kind` choices and where each lives.

Each kind's module defines `CORPUS`, a `toc.corpora.real_signals.RealSignalCorpus`; it is
imported only when that corpus is built.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple


class CorpusKind(NamedTuple):
    module: str
    description: str


KINDS = {
    "spoken-digits": CorpusKind(
        "toc.corpora.spoken_digits",
        "the digits zero..nine spoken by espeak-ng voices + scikit-learn's handwritten digits "
        "(held out: voices, images)",
    ),
    "spoken-words": CorpusKind(
        "toc.corpora.spoken_words",
        "ten English words spoken by espeak-ng voices + the words written in the machine's "
        "DejaVu fonts (held out: voices, fonts)",
    ),
    "instruments": CorpusKind(
        "toc.corpora.instruments",
        "notes of ten synthesised instrument timbres + ten drawn shapes (held out: instrument "
        "makers' timbre parameters and rooms, drawing styles)",
    ),
    "vowels": CorpusKind(
        "toc.corpora.vowels",
        "ten vowels sung by a source-filter synthesiser + their IPA symbols in the machine's "
        "DejaVu fonts (held out: singers' vocal tracts, voices and rooms, fonts)",
    ),
}
DEFAULT_KIND = "spoken-digits"


def corpus_for(kind: str):
    """The `RealSignalCorpus` of `kind` (its module is imported now)."""
    return importlib.import_module(KINDS[kind].module).CORPUS
