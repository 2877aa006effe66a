"""cmg-toc: TOC channel selection, encoding and cross-modal evaluation for CMG / DCID / H-DCID codebooks.

Subpackages: `codebook` (checkpoints, scoring, selection, encoding), `data` (on-disk formats),
`corpora` (built-in data), `eval` (cache, variants, heads, protocols, metrics, the loop),
`report` (model-selection reports), `pipeline` (sessions, comparison plans, the demo).
`toc.vocabulary` names every choice and default without importing torch.

The names below are the public Python API. They are imported when first used (PEP 562), so that
`import toc.vocabulary` (and `toc --help`) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name → the module that defines it.
_PUBLIC = {
    "Checkpoint": "toc.codebook.checkpoint",
    "LoadedCodebooks": "toc.codebook.checkpoint",
    "UnusedFieldWarning": "toc.codebook.checkpoint",
    "load_checkpoint": "toc.codebook.checkpoint",
    "load_codebooks": "toc.codebook.checkpoint",
    "EncodingSession": "toc.codebook.encode",
    "encode_file": "toc.codebook.encode",
    "encode_rows": "toc.codebook.encode",
    "ChannelScores": "toc.codebook.scoring",
    "score_channels": "toc.codebook.scoring",
    "TocSettings": "toc.codebook.settings",
    "Selection": "toc.codebook.selection",
    "SelectionFile": "toc.codebook.selection",
    "read_selection": "toc.codebook.selection",
    "select_channels": "toc.codebook.selection",
    "select_levels": "toc.codebook.selection",
    "selection_for": "toc.codebook.selection",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'toc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

