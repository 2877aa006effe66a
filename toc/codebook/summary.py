"""What a codebook file holds, as `toc inspect` and `toc score` report it: code usage per level,
and per-channel TOC statistics as a JSON document, a CSV table or a text table. Another VQ
model's levels also carry their names (the keys they were read from), layouts and notes."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import torch

from toc.codebook.checkpoint import USAGE_COUNTS_FIELD, LoadedCodebooks
from toc.codebook.health import ACTIVE_THRESHOLD, usage_from_counts
from toc.codebook.scoring import ChannelScores, score_channels
from toc.documents import TOOL_NAME, tool_version


def code_usage(ema_count: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Active / dead codes and the usage perplexity exp(H(p)) of the normalised ema_count."""
    usage = usage_from_counts(ema_count.detach().to(torch.float64).flatten().numpy(), active_threshold=threshold)
    return {
        "active_codes": usage.used_codes,
        "dead_codes": usage.dead_codes,
        "active_threshold": threshold,
        "usage_perplexity": usage.perplexity,
        "ema_count_total": usage.tokens if math.isfinite(usage.tokens) else None,
    }


def level_notes(loaded: LoadedCodebooks, levels: Sequence[int]) -> list[str]:
    """What a user should know about another VQ model's levels before trusting their scores
    (a never-initialised codebook, identical codes, a shared codebook, ...)."""
    notes = []
    for level in levels:
        info = loaded.foreign[level] if loaded.foreign else None
        for note in info.notes if info else ():
            notes.append(f"level {level} ({info.name}): {note}")
    return notes


def with_level_names(document: dict[str, Any], loaded: LoadedCodebooks) -> dict[str, Any]:
    """Another VQ model's level names (the keys they were read from) and layouts beside the
    level numbers of a `toc score` / `toc select` document."""
    if loaded.foreign:
        for entry in document["levels"]:
            info = loaded.foreign[entry["level"]]
            entry.update(name=info.name, layout=info.layout)
    return document


def checkpoint_block(loaded: LoadedCodebooks) -> dict[str, Any]:
    return {"path": str(loaded.path), "sha256": loaded.sha256, "family": loaded.family}


def inspect_document(loaded: LoadedCodebooks) -> dict[str, Any]:
    """`toc inspect --format json`: family, sizes, and per level the codebook shape, dtype, usage."""
    levels = []
    for level, codebook in enumerate(loaded.codebooks):
        info = loaded.foreign[level] if loaded.foreign else None
        # Another model's levels may keep counts individually even when not all of them do.
        counts = info.usage if info is not None else (
            loaded.ema_counts[level] if loaded.ema_counts is not None else None
        )
        if USAGE_COUNTS_FIELD in loaded.unavailable:
            counts = None  # unusable counts (the loader warned): usage unavailable, not made up
        entry = {
            "level": level,
            "codebook_shape": [int(s) for s in codebook.shape],
            "dtype": str(codebook.dtype).replace("torch.", ""),
            "usage": code_usage(counts) if counts is not None else None,
        }
        if info is not None:
            entry.update(info.describe())
        levels.append(entry)
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
        name = f"  {entry['name']}" if "name" in entry else ""
        lines.append(f"{entry['level']:>5}  {shape:>12}  {entry['dtype']:>8}  {active:>6}  {dead:>6}  {perplexity:>10}{name}")
        lines.extend(f"{'':>7}note: {note}" for note in entry.get("notes", ()))
    if loaded.foreign:
        lines.append("")
        lines.append("active / dead / perplexity come from the stored EMA counts (a proxy); `toc health` measures them on codes")
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
