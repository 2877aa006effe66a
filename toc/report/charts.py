"""The report's charts: one bar chart per task, one TOC figure per selection (toc.figures), and one
curve per budget chosen on validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from toc.codebook.checkpoint import load_codebooks
from toc.codebook.scoring import score_channels
from toc.codebook.selection import Selection, SelectionFile, TocSettings, read_selection
from toc.errors import TocError
from toc.figures import new_figure, png_bytes, toc_figure
from toc.report.analysis import BudgetSweepView, Report, SelectionPlot

CHART_COLUMNS = 4  # panels per row in a task's bar chart


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def render_task_chart(report: Report, task: str) -> bytes:
    """Bar chart of one task: one panel per direction × head × protocol, error bars = the CI."""
    groups = [g for g in report.groups if g.task == task]
    columns = min(len(groups), CHART_COLUMNS)
    rows = -(-len(groups) // columns)
    figure = new_figure(4.0 * columns + 1.0, 3.4 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    for ax, g in zip(axes, groups, strict=False):
        names = [r.variant for r in g.rows]
        means = [r.score for r in g.rows]
        spans = [r.interval or (r.score, r.score) for r in g.rows]
        errors = [[m - s[0] for m, s in zip(means, spans, strict=True)], [s[1] - m for m, s in zip(means, spans, strict=True)]]
        colors = ["#4C72B0" if r.variant == g.recommendation.variant else "#9AA5B1" for r in g.rows]
        ax.bar(range(len(names)), means, yerr=errors, capsize=4, color=colors)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{g.direction} · {g.head} · {g.protocol}", fontsize=9)
        ax.set_ylabel(f"{g.metric} (%)", fontsize=8)
        if g.chance is not None:
            ax.axhline(g.chance, color="#C44E52", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize=7, loc="lower right")
    kind = "bootstrap over units and runs" if all(g.resampled for g in groups) else "see report.md"
    figure.suptitle(f"{task}: score, error bars = {report.confidence * 100:g}% interval ({kind})", fontsize=10)
    figure.tight_layout()
    return png_bytes(figure)


def render_selection_chart(plot: SelectionPlot) -> bytes:
    """The TOC figure of a selection (every channel's score, cosine heat-maps) when its codebooks
    are at hand — made in this run, or the checkpoint named in the file is still there with the
    same sha256 — else a bar chart of the selected channels' scores from the file alone."""
    if plot.selection is not None and plot.codebooks is not None and plot.selection.selections:
        return _toc_figure(plot.selection, [cb.detach().to("cpu", torch.float64) for cb in plot.codebooks])
    document = read_selection(plot.path)
    codebooks = _checkpoint_codebooks(document)
    if codebooks is not None:
        return _toc_figure(_rescored(document, codebooks), codebooks)
    levels = document.levels
    figure = new_figure(7.0, 2.6 * len(levels) + 0.6)
    axes = figure.subplots(len(levels), 1, squeeze=False)[:, 0]
    for ax, level in zip(axes, levels, strict=True):
        scores = level.scores
        ax.bar(range(len(scores)), scores, width=1.0, color="#4C72B0")
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_xlim(-0.5, len(scores) - 0.5)
        ax.set_title(
            f"level {level.level}: {len(level.indices)} of {level.codebook_shape[1]} channels, head order",
            fontsize=9,
        )
        ax.set_ylabel("TOC score", fontsize=8)
        ax.set_xlabel("position in the selection (top block, then bottom block)", fontsize=8)
    figure.suptitle(f"{plot.path.name} ({document.family}, {document.checkpoint_sha256[:12]})", fontsize=10)
    figure.tight_layout()
    return png_bytes(figure)


PATTERN_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3")


def render_budget_chart(view: BudgetSweepView) -> bytes:
    """Score against channels kept, one line per block pattern: the validation curve the budget
    was chosen on (error bars = its interval), the chosen and the published budget marked, and —
    dashed, labelled — the evaluation split, which was not used to choose."""
    choice = view.choice
    figure = new_figure(7.5, 4.4)
    ax = figure.subplots()
    patterns = list(dict.fromkeys((p.max_num, p.min_num) for p in choice.curve))
    evaluation = {(e.channels, e.max_num, e.min_num): e for e in (view.evaluation or ())}
    for k, pattern in enumerate(patterns):
        colour = PATTERN_COLOURS[k % len(PATTERN_COLOURS)]
        points = [p for p in choice.curve if (p.max_num, p.min_num) == pattern]
        # Patterns side by side at each budget, so that their error bars stay apart.
        shift = (k - (len(patterns) - 1) / 2) * 1.5
        x = [sum(p.n_channels) / len(p.n_channels) + shift for p in points]
        y = [p.validation for p in points]
        errors = [[v - p.interval[0] for v, p in zip(y, points, strict=True)],
                  [p.interval[1] - v for v, p in zip(y, points, strict=True)]]
        ax.errorbar(x, y, yerr=errors, color=colour, marker="o", markersize=4, capsize=3, linewidth=1.4,
                    label=f"validation, max/min {pattern[0]}/{pattern[1]}")
        scored = [(xi, evaluation[(p.channels, p.max_num, p.min_num)]) for xi, p in zip(x, points, strict=True)
                  if (p.channels, p.max_num, p.min_num) in evaluation]
        if scored:
            ax.plot([xi for xi, _ in scored], [e.evaluation for _, e in scored], color=colour, linestyle="--",
                    linewidth=1.0, alpha=0.7, label=f"evaluation (not used to choose), {pattern[0]}/{pattern[1]}")
    chosen = choice.point
    shift = (patterns.index((chosen.max_num, chosen.min_num)) - (len(patterns) - 1) / 2) * 1.5
    ax.plot([sum(chosen.n_channels) / len(chosen.n_channels) + shift], [chosen.validation], marker="*", markersize=16,
            color="#C44E52", linestyle="none", label=f"chosen: {chosen.label}")
    published = choice.published
    if published:
        ax.axvline(published["channels"], color="#555555", linestyle=":", linewidth=1.2,
                   label=f"published: {published['channels']} ({published['max_num']}/{published['min_num']})")
    ax.set_xlabel("channels kept per level (patterns drawn side by side)", fontsize=9)
    ax.set_ylabel(f"{choice.metric} (%)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        f"{view.title}\nchosen on validation ({choice.n_units} {choice.unit}s, seeds "
        f"{', '.join(map(str, choice.seeds))}); error bars = {choice.confidence * 100:g}% bootstrap interval",
        fontsize=9,
    )
    figure.tight_layout()
    return png_bytes(figure)


def _toc_figure(selection: SelectionFile, codebooks: list[torch.Tensor]) -> bytes:
    chosen = list(selection.selections)
    return toc_figure(
        codebooks, [s.channel_scores for s in chosen], chosen,
        title=f"{Path(str(selection.path)).name} ({selection.family})",
    )


def _checkpoint_codebooks(document: SelectionFile) -> list[torch.Tensor] | None:
    """The codebooks of the checkpoint a selection file names, if it is there unchanged."""
    checkpoint = Path(document.checkpoint_path)
    if not checkpoint.is_file():
        return None
    try:
        loaded = load_codebooks(checkpoint)  # weights-only: an untrusted file is never unpickled
    except TocError:
        return None
    if loaded.sha256 != document.checkpoint_sha256:
        return None
    codebooks = [cb.detach().to("cpu", torch.float64) for cb in loaded.codebooks]
    for level in document.levels:
        if level.level >= len(codebooks) or tuple(codebooks[level.level].shape) != level.codebook_shape:
            return None
    return codebooks


def _rescored(document: SelectionFile, codebooks: list[torch.Tensor]) -> SelectionFile:
    """The file's selections with every channel's scores, computed with the file's weights."""
    params = document.parameters
    weights = {k: float(params[k]) for k in ("sim_weight", "var_weight") if _is_number(params.get(k))}
    selections = []
    for level in document.levels:
        channel_scores = score_channels(codebooks[level.level], **weights)
        indices = torch.tensor(level.indices, dtype=torch.long)
        selections.append(
            Selection(
                level=level.level, codebook_shape=level.codebook_shape, indices=indices,
                scores=channel_scores.score[indices], settings=TocSettings(channels=len(level.indices)),
                channel_scores=channel_scores,
            )
        )
    return replace(document, selections=tuple(selections))
