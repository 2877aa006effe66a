"""Figures: the one place that uses matplotlib (an optional dependency, the `plot` extra).

The object-oriented API with an explicit Agg canvas: no pyplot global state, no display, and
no Software/date metadata, so reruns give byte-identical PNGs. Here: the TOC figure (sorted
channel scores with the selection marked, code-by-code cosine heatmaps before and after);
the report's charts (toc.report.charts) are drawn with the same helpers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch

from toc.codebook.scoring import ChannelScores
from toc.codebook.selection import Selection
from toc.errors import TocError

DEFAULT_MAX_CODES = 512


def require_matplotlib() -> None:
    """Fail with the install hint before any work when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401 - optional dependency, imported where it is needed
    except ImportError as exc:
        raise TocError("plotting needs matplotlib, which is not installed: pip install 'cmg-toc[plot]'") from exc


def have_matplotlib() -> bool:
    try:
        require_matplotlib()
    except TocError:
        return False
    return True


def new_figure(width: float, height: float):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional dependency
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def code_cosine_similarity(codebook: torch.Tensor, channels: torch.Tensor | None = None) -> torch.Tensor:
    """[N, N] cosine similarity between codes, over all channels or only `channels`."""
    codes = codebook.detach().to("cpu", torch.float64)
    if channels is not None:
        codes = codes[:, channels]
    norms = codes.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    unit = codes / norms
    return unit @ unit.T


def toc_figure(
    codebooks: Sequence[torch.Tensor],
    scores: Sequence[ChannelScores],
    selections: Sequence[Selection],
    *,
    max_codes: int = DEFAULT_MAX_CODES,
    title: str | None = None,
) -> bytes:
    """PNG bytes with one row per selected level: scores, heatmap before, heatmap after.

    Heatmaps use the first `max_codes` codes so the figure stays readable for large codebooks.
    """
    if len(scores) != len(selections):
        raise TocError("toc_figure: one ChannelScores per selection is needed")
    if not selections:
        raise TocError("nothing to plot")
    rows = len(selections)
    fig = new_figure(15, 4.2 * rows)
    axes = fig.subplots(rows, 3, squeeze=False)
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
    return png_bytes(fig)
