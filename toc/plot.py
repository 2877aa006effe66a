"""The TOC figure: sorted channel scores with the selection marked, code-by-code cosine heatmaps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from toc.atomic import atomic_path
from toc.errors import TocError
from toc.scoring import ChannelScores
from toc.selection import Selection

DEFAULT_MAX_CODES = 512


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise TocError(
            "plotting needs matplotlib, which is not installed: pip install 'cmg-toc[plot]'"
        ) from exc
    # Agg renders without a display and gives the same bytes on every run.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def code_cosine_similarity(codebook: torch.Tensor, channels: torch.Tensor | None = None) -> torch.Tensor:
    """[N, N] cosine similarity between codes, over all channels or only `channels`."""
    codes = codebook.detach().to("cpu", torch.float64)
    if channels is not None:
        codes = codes[:, channels]
    norms = codes.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    unit = codes / norms
    return unit @ unit.T


def plot_selection(
    codebooks: Sequence[torch.Tensor],
    scores: Sequence[ChannelScores],
    selections: Sequence[Selection],
    path: str | os.PathLike,
    *,
    max_codes: int = DEFAULT_MAX_CODES,
    title: str | None = None,
) -> Path:
    """Write a PNG with one row per selected level: scores, heatmap before, heatmap after.

    Heatmaps use the first `max_codes` codes so the figure stays readable for large codebooks.
    """
    plt = _pyplot()
    if not (len(scores) == len(selections)):
        raise TocError("plot_selection: one ChannelScores per selection is needed")
    rows = len(selections)
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.2 * rows), squeeze=False)
    for row, (channel_scores, selection) in enumerate(zip(scores, selections, strict=True)):
        codebook = codebooks[selection.level]
        score = channel_scores.score
        order = torch.sort(score, descending=True, stable=True).indices
        chosen = torch.zeros(score.shape[0], dtype=torch.bool)
        chosen[selection.indices] = True
        ranks = torch.arange(score.shape[0])
        sorted_scores = score[order].numpy()
        picked = chosen[order].numpy()
        ax = axes[row][0]
        ax.plot(ranks.numpy(), sorted_scores, color="0.6", linewidth=1, label="all channels")
        ax.scatter(ranks.numpy()[picked], sorted_scores[picked], s=8, color="tab:red", label="selected", zorder=3)
        ax.set_xlabel("channel rank (by score, descending)")
        ax.set_ylabel("TOC score")
        ax.set_title(f"level {selection.level}: {int(selection.indices.numel())} of {score.shape[0]} channels")
        ax.legend(loc="upper right", fontsize=8)
        shown = codebook[: max(1, min(max_codes, codebook.shape[0]))]
        for col, (channels, label) in enumerate(((None, "all channels"), (selection.indices, "selected channels")), start=1):
            similarity = code_cosine_similarity(shown, channels).numpy()
            ax = axes[row][col]
            image = ax.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
            ax.set_title(f"level {selection.level}: code cosine similarity, {label}")
            ax.set_xlabel(f"code (first {shown.shape[0]})")
            ax.set_ylabel("code")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            # No Software/date metadata, so reruns give byte-identical files.
            fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    finally:
        plt.close(fig)
    return target
