"""cmg-toc: TOC channel selection, encoding and cross-modal evaluation for CMG / DCID / H-DCID codebooks.

Subpackages: `codebook` (checkpoints, scoring, selection, encoding), `data` (on-disk formats),
`corpora` (built-in data), `eval` (cache, variants, heads, protocols, metrics, the loop),
`report` (model-selection reports), `pipeline` (sessions, comparison plans, the demo).
The names below are the public Python API.
"""

from cmg_base.aliases import install_aliases
from toc.codebook.checkpoint import (
    Checkpoint,
    LoadedCodebooks,
    UnusedFieldWarning,
    load_checkpoint,
    load_codebooks,
)
from toc.codebook.encode import EncodingSession, encode_file, encode_rows
from toc.codebook.scoring import ChannelScores, score_channels
from toc.codebook.selection import (
    Selection,
    SelectionFile,
    TocSettings,
    read_selection,
    select_channels,
    select_levels,
    selection_for,
)

# Where modules of earlier versions moved to; their old names keep importing the new modules.
MOVED_MODULES = {
    "toc.checkpoint": "toc.codebook.checkpoint",
    "toc.scoring": "toc.codebook.scoring",
    "toc.selection": "toc.codebook.selection",
    "toc.encode": "toc.codebook.encode",
    "toc.plot": "toc.figures",
    "toc.synth": "toc.corpora.synthetic",
    "toc.spoken_digits": "toc.corpora.spoken_digits",
    "toc.cache": "toc.eval.cache",
    "toc.variants": "toc.eval.variants",
    "toc.heads": "toc.eval.heads",
    "toc.protocols": "toc.eval.protocols",
    "toc.metrics": "toc.eval.metrics",
    "toc.evaluate": "toc.eval.loop",
    "toc.data.registry": "toc.eval.tasks",
    "toc.stats": "toc.report.stats",
    "toc.demo": "toc.pipeline.demo",
    "toc.atomic": "cmg_base.files",
}
install_aliases(MOVED_MODULES)

__all__ = [
    "ChannelScores",
    "Checkpoint",
    "EncodingSession",
    "LoadedCodebooks",
    "Selection",
    "SelectionFile",
    "TocSettings",
    "UnusedFieldWarning",
    "encode_file",
    "encode_rows",
    "load_checkpoint",
    "load_codebooks",
    "read_selection",
    "score_channels",
    "select_channels",
    "select_levels",
    "selection_for",
]
