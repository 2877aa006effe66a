"""cmg-toc: TOC channel selection, encoding and cross-modal evaluation for CMG / DCID / H-DCID codebooks."""

from toc.checkpoint import Checkpoint, LoadedCodebooks, load_checkpoint, load_codebooks
from toc.encode import EncodingSession, encode_file, encode_rows
from toc.scoring import ChannelScores, score_channels
from toc.selection import Selection, TocSettings, read_selection, select_channels, select_levels

__all__ = [
    "ChannelScores",
    "Checkpoint",
    "EncodingSession",
    "LoadedCodebooks",
    "Selection",
    "TocSettings",
    "encode_file",
    "encode_rows",
    "load_checkpoint",
    "load_codebooks",
    "read_selection",
    "score_channels",
    "select_channels",
    "select_levels",
]
