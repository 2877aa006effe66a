"""What a codebook file holds, as `toc inspect` and `toc score` report it: code usage per level,
and per-channel TOC statistics as a JSON document, a CSV table or a text table."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import torch

from toc.codebook.checkpoint import LoadedCodebooks
from toc.codebook.scoring import ChannelScores, score_channels
from toc.documents import TOOL_NAME, tool_version

# A code counts as active when its EMA assignment count exceeds this. The Laplace smoothing in
# the EMA leaves a never-chosen code near 1e-5, and a fresh (never updated) buffer is exactly 0.
ACTIVE_THRESHOLD = 1e-3


def code_usage(ema_count: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Active / dead codes and the usage perplexity exp(H(p)) of the normalised ema_count."""
    counts = ema_count.detach().to(torch.float64).flatten()
    active = int((counts > threshold).sum())
    total = float(counts.clamp_min(0).sum())
    perplexity = None
    if total > 0 and bool(torch.isfinite(counts).all()):
        p = counts.clamp_min(0) / total
        nonzero = p[p > 0]
        perplexity = float(torch.exp(-(nonzero * nonzero.log()).sum()))
    return {
        "active_codes": active,
        "dead_codes": int(counts.numel()) - active,
        "active_threshold": threshold,
        "usage_perplexity": perplexity,
        "ema_count_total": total,
    }


def checkpoint_block(loaded: LoadedCodebooks) -> dict[str, Any]:
    return {"path": str(loaded.path), "sha256": loaded.sha256, "family": loaded.family}


def inspect_document(loaded: LoadedCodebooks) -> dict[str, Any]:
    """`toc inspect --format json`: family, sizes, and per level the codebook shape, dtype, usage."""
    levels = []
    for level, codebook in enumerate(loaded.codebooks):
        levels.append({
            "level": level,
            "codebook_shape": [int(s) for s in codebook.shape],
            "dtype": str(codebook.dtype).replace("torch.", ""),
            "usage": code_usage(loaded.ema_counts[level]) if loaded.ema_counts is not None else None,
        })
    return {
        "tool": TOOL_NAME,
        "version": tool_version(),
        "checkpoint": checkpoint_block(loaded),
        "epoch": loaded.epoch,
        "sizes": dict(loaded.sizes),
        "levels": levels,
    }


def inspect_table(loaded: LoadedCodebooks) -> str:
    """`toc inspect` for people: the same facts as a few aligned lines."""
    document = inspect_document(loaded)
    lines = [
        f"checkpoint  {loaded.path}",
        f"sha256      {loaded.sha256}",
        f"family      {loaded.family}",
        f"epoch       {loaded.epoch if loaded.epoch is not None else '-'}",
        "sizes       " + ", ".join(f"{k}={v}" for k, v in sorted(loaded.sizes.items())),
        "",
        f"{'level':>5}  {'shape':>12}  {'dtype':>8}  {'active':>6}  {'dead':>6}  {'perplexity':>10}",
    ]
    for entry in document["levels"]:
        shape = "x".join(map(str, entry["codebook_shape"]))
        usage = entry["usage"]
        if usage is None:
            active = dead = perplexity = "-"
        else:
            active, dead = str(usage["active_codes"]), str(usage["dead_codes"])
            perplexity = "-" if usage["usage_perplexity"] is None else f"{usage['usage_perplexity']:.2f}"
        lines.append(f"{entry['level']:>5}  {shape:>12}  {entry['dtype']:>8}  {active:>6}  {dead:>6}  {perplexity:>10}")
    return "\n".join(lines) + "\n"


def score_levels(
    loaded: LoadedCodebooks, levels: Sequence[int], sim_weight: float, var_weight: float, allow_nonfinite: bool,
) -> list[ChannelScores]:
    return [
        score_channels(
            loaded.codebooks[level], sim_weight=sim_weight, var_weight=var_weight,
            allow_nonfinite=allow_nonfinite, where=f"{loaded.path}: level {level}",
        )
        for level in levels
    ]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def channel_ranks(score: torch.Tensor) -> list[int]:
    """1 = highest score; ties go to the lower channel index (the selection's tie rule)."""
    order = torch.sort(score, descending=True, stable=True).indices.tolist()
    ranks = [0] * len(order)
    for rank, channel in enumerate(order, start=1):
        ranks[channel] = rank
    return ranks


def scores_document(
    loaded: LoadedCodebooks, levels: Sequence[int], scored: Sequence[ChannelScores], parameters: dict[str, Any],
) -> dict[str, Any]:
    """`toc score --format json`: similarity, variance and score of every channel, per level."""
    return {
        "tool": TOOL_NAME,
        "version": tool_version(),
        "checkpoint": checkpoint_block(loaded),
        "parameters": dict(parameters),
        "levels": [
            {
                "level": lvl,
                "codebook_shape": [int(s) for s in loaded.codebooks[lvl].shape],
                "similarity": [_json_float(v) for v in s.similarity.tolist()],
                "variance": [_json_float(v) for v in s.variance.tolist()],
                "score": [_json_float(v) for v in s.score.tolist()],
            }
            for lvl, s in zip(levels, scored, strict=True)
        ],
    }


def _rows(levels: Sequence[int], scored: Sequence[ChannelScores]):
    for lvl, s in zip(levels, scored, strict=True):
        ranks = channel_ranks(s.score)
        values = zip(s.similarity.tolist(), s.variance.tolist(), s.score.tolist(), strict=True)
        for channel, (sim, var, sc) in enumerate(values):
            yield lvl, channel, ranks[channel], sim, var, sc


def scores_csv(levels: Sequence[int], scored: Sequence[ChannelScores]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["level", "channel", "similarity", "variance", "score", "rank"])
    for lvl, channel, rank, sim, var, sc in _rows(levels, scored):
        writer.writerow([lvl, channel, repr(sim), repr(var), repr(sc), rank])
    return buffer.getvalue()


def scores_table(levels: Sequence[int], scored: Sequence[ChannelScores]) -> str:
    lines = [f"{'level':>5}  {'channel':>7}  {'rank':>5}  {'similarity':>14}  {'variance':>14}  {'score':>14}"]
    for lvl, channel, rank, sim, var, sc in _rows(levels, scored):
        lines.append(f"{lvl:>5}  {channel:>7}  {rank:>5}  {sim:>14.6g}  {var:>14.6g}  {sc:>14.6g}")
    return "\n".join(lines) + "\n"
