"""TOC channel selection: the reference order, the exact-budget option, and the selection file."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toc.errors import ConfigError, DataError
from toc.scoring import DEFAULT_SIM_WEIGHT, DEFAULT_VAR_WEIGHT, ChannelScores, score_channels

TOOL_NAME = "cmg-toc"


class ShortSelectionWarning(UserWarning):
    """Fewer channels than requested: the reference splits the budget with integer division."""


@dataclass(frozen=True)
class Budget:
    """How many channels come from the top block and from the bottom block."""

    channels: int
    top: int
    bottom: int

    @property
    def total(self) -> int:
        return self.top + self.bottom

    @property
    def short_by(self) -> int:
        return self.channels - self.total


@dataclass(frozen=True)
class TocSettings:
    """Everything that decides one level's selection."""

    channels: int
    max_num: int = 1
    min_num: int = 1
    exact_budget: bool = False
    sim_weight: float = DEFAULT_SIM_WEIGHT
    var_weight: float = DEFAULT_VAR_WEIGHT
    allow_nonfinite: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "max_num": self.max_num,
            "min_num": self.min_num,
            "exact_budget": self.exact_budget,
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "allow_nonfinite": self.allow_nonfinite,
        }


@dataclass
class Selection:
    """The channels chosen for one codebook level, in the order the downstream head sees them."""

    level: int
    codebook_shape: tuple[int, int]
    indices: torch.Tensor  # int64 [K]: top block (descending score), then bottom block (ascending)
    scores: torch.Tensor  # float64 [K]: the score of each selected channel, same order
    settings: TocSettings
    short_by: int = 0  # channels requested but not returned (integer-division budget)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "codebook_shape": list(self.codebook_shape),
            "indices": [int(i) for i in self.indices.tolist()],
            "scores": [float(s) for s in self.scores.tolist()],
            "parameters": self.settings.as_dict(),
            "short_by": self.short_by,
        }


def plan_budget(channels: int, max_num: int, min_num: int, n_channels: int, exact_budget: bool = False) -> Budget:
    """Split `channels` into top/bottom counts; validates every argument against D = n_channels."""
    for name, value in (("channels", channels), ("max_num", max_num), ("min_num", min_num)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
    if max_num + min_num == 0:
        raise ConfigError("max_num + min_num must be at least 1 (both are 0)")
    if channels < 1:
        raise ConfigError(f"channels must be at least 1, got {channels}")
    if channels > n_channels:
        raise ConfigError(
            f"channels must not exceed the codebook width (expected <= {n_channels}, got {channels})"
        )
    groups = channels // (max_num + min_num)
    top, bottom = groups * max_num, groups * min_num
    if exact_budget:
        # The remainder goes to the top block unless the caller asked for no top block at all.
        remainder = channels - top - bottom
        if max_num > 0:
            top += remainder
        else:
            bottom += remainder
    return Budget(channels=int(channels), top=int(top), bottom=int(bottom))


def _as_scores(scores_or_codebook: Any, sim_weight: float, var_weight: float, allow_nonfinite: bool) -> torch.Tensor:
    if isinstance(scores_or_codebook, ChannelScores):
        return scores_or_codebook.score
    shape = getattr(scores_or_codebook, "shape", None)
    if shape is not None and len(shape) == 2:
        return score_channels(
            scores_or_codebook, sim_weight=sim_weight, var_weight=var_weight, allow_nonfinite=allow_nonfinite
        ).score
    if shape is not None and len(shape) == 1:
        score = torch.as_tensor(np.asarray(scores_or_codebook) if not torch.is_tensor(scores_or_codebook) else scores_or_codebook)
        return score.detach().to(device="cpu", dtype=torch.float64)
    raise ConfigError(
        "expected ChannelScores, a 1-D score vector or a 2-D [N, D] codebook, "
        f"got {type(scores_or_codebook).__name__} of shape {list(shape) if shape is not None else None}"
    )


def order_channels(score: torch.Tensor, budget: Budget, allow_nonfinite: bool = False) -> torch.Tensor:
    """Top block (highest first) then bottom block (lowest first); ties go to the lower index.

    Stable sorts give the tie rule. The bottom block skips channels already in the top block, so
    indices are always distinct (ties straddling both blocks are the only case where this matters;
    the reference leaves it to torch.topk). Non-finite scores are never selected.
    """
    finite = torch.isfinite(score)
    if not bool(finite.all()) and not allow_nonfinite:
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ConfigError(f"non-finite scores in channel(s) {bad[:8]}; pass allow_nonfinite to skip them")
    candidates = torch.nonzero(finite).flatten()
    values = score[candidates]
    descending = candidates[torch.sort(values, descending=True, stable=True).indices]
    top = descending[: budget.top]
    if budget.bottom == 0:
        return top.clone()
    ascending = candidates[torch.sort(values, stable=True).indices]
    taken = torch.zeros(score.shape[0], dtype=torch.bool)
    taken[top] = True
    bottom = ascending[~taken[ascending]][: budget.bottom]
    return torch.cat([top, bottom])


def select_channels(
    scores_or_codebook: Any,
    channels: int,
    max_num: int = 1,
    min_num: int = 1,
    exact_budget: bool = False,
    *,
    sim_weight: float = DEFAULT_SIM_WEIGHT,
    var_weight: float = DEFAULT_VAR_WEIGHT,
    allow_nonfinite: bool = False,
) -> torch.Tensor:
    """Indices (LongTensor) of the TOC channels in the reference order.

    With k = channels // (max_num + min_num): the k*max_num highest scores descending, then the
    k*min_num lowest ascending. When that is fewer than `channels`, a ShortSelectionWarning is
    issued (warnings module, never printed here); exact_budget=True fills the remainder instead.
    """
    score = _as_scores(scores_or_codebook, sim_weight, var_weight, allow_nonfinite)
    budget = plan_budget(channels, max_num, min_num, int(score.shape[0]), exact_budget)
    indices = order_channels(score, budget, allow_nonfinite)
    if indices.numel() < channels:
        warnings.warn(
            f"TOC returns {indices.numel()} of {channels} channels "
            f"(channels // (max_num + min_num) = {channels // (max_num + min_num)} groups); "
            "use exact_budget to get exactly `channels`",
            ShortSelectionWarning,
            stacklevel=2,
        )
    return indices


def select_level(codebook: Any, settings: TocSettings, level: int = 0, where: str | None = None) -> Selection:
    """Score one codebook and select its channels; the shortfall is reported in `short_by`."""
    scores = score_channels(
        codebook,
        sim_weight=settings.sim_weight,
        var_weight=settings.var_weight,
        allow_nonfinite=settings.allow_nonfinite,
        where=where or f"level {level}",
    )
    n, d = (int(s) for s in codebook.shape)
    budget = plan_budget(settings.channels, settings.max_num, settings.min_num, d, settings.exact_budget)
    indices = order_channels(scores.score, budget, settings.allow_nonfinite)
    return Selection(
        level=level,
        codebook_shape=(n, d),
        indices=indices,
        scores=scores.score[indices],
        settings=settings,
        short_by=settings.channels - int(indices.numel()),
    )


def select_levels(
    codebooks: Sequence[Any],
    settings: TocSettings | Mapping[int, TocSettings],
    levels: Sequence[int] | None = None,
) -> list[Selection]:
    """Per-level selections (H-DCID: one per codebook level), in level order 0, 1, ...

    `settings` is one TocSettings for every level, or a mapping level -> TocSettings.
    """
    chosen = list(range(len(codebooks))) if levels is None else sorted(set(levels))
    for level in chosen:
        if not 0 <= level < len(codebooks):
            raise ConfigError(f"level {level} does not exist (expected 0..{len(codebooks) - 1})")
    result = []
    for level in chosen:
        if isinstance(settings, TocSettings):
            level_settings = settings
        else:
            if level not in settings:
                raise ConfigError(f"no TOC settings given for level {level}")
            level_settings = settings[level]
        result.append(select_level(codebooks[level], level_settings, level))
    return result


def apply_selections(features: Sequence[torch.Tensor], selections: Sequence[Selection]) -> torch.Tensor:
    """cat(features[L][..., indices_L] for each selection) along the last axis, level 0 first."""
    ordered = sorted(selections, key=lambda s: s.level)
    parts = []
    for selection in ordered:
        if selection.level >= len(features):
            raise ConfigError(f"selection for level {selection.level} but only {len(features)} feature levels")
        feature = features[selection.level]
        if feature.shape[-1] != selection.codebook_shape[1]:
            raise ConfigError(
                f"level {selection.level}: feature width does not match the codebook "
                f"(expected {selection.codebook_shape[1]}, got {feature.shape[-1]})"
            )
        parts.append(feature[..., selection.indices.to(feature.device)])
    return torch.cat(parts, dim=-1)


# ---------------------------------------------------------------------- the selection file


def tool_version() -> str:
    try:
        return importlib.metadata.version(TOOL_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def selection_document(
    selections: Sequence[Selection],
    *,
    checkpoint_path: str | os.PathLike,
    checkpoint_sha256: str,
    family: str,
    parameters: Mapping[str, Any],
) -> dict[str, Any]:
    """The selection artifact as a JSON-ready dict (level order 0, 1, ...)."""
    return {
        "tool": TOOL_NAME,
        "version": tool_version(),
        "checkpoint": {"path": str(checkpoint_path), "sha256": checkpoint_sha256, "family": family},
        "parameters": dict(parameters),
        "levels": [s.as_dict() for s in sorted(selections, key=lambda s: s.level)],
    }


def dumps_document(document: Mapping[str, Any]) -> str:
    """Sorted keys, two-space indent, shortest round-trip floats (repr): reruns are byte-identical."""
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


@dataclass(frozen=True)
class SelectedLevel:
    level: int
    codebook_shape: tuple[int, int]
    indices: list[int]
    scores: list[float]


@dataclass(frozen=True)
class SelectionDocument:
    """A selection file read back: which channels of which checkpoint, per level."""

    path: Path
    version: str
    checkpoint_path: str
    checkpoint_sha256: str
    family: str
    parameters: dict[str, Any]
    levels: list[SelectedLevel] = field(default_factory=list)

    def indices_for(self, level: int) -> torch.Tensor:
        for entry in self.levels:
            if entry.level == level:
                return torch.tensor(entry.indices, dtype=torch.long)
        raise ConfigError(f"{self.path}: no selection for level {level} (has {[e.level for e in self.levels]})")


def _require(mapping: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise DataError("missing key", file=path, key=f"{where}{key}")
    value = mapping[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise DataError("wrong type", file=path, key=f"{where}{key}", expected=_kind_name(kind), actual="bool")
    if not isinstance(value, kind):
        raise DataError("wrong type", file=path, key=f"{where}{key}", expected=_kind_name(kind), actual=type(value).__name__)
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def read_selection(path: str | os.PathLike) -> SelectionDocument:
    """Read and validate a selection file written by `toc select`; one-line DataError otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError("selection file not found", file=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read selection file ({exc})", file=path) from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON (line {exc.lineno}: {exc.msg})", file=path) from exc
    if not isinstance(raw, dict):
        raise DataError("not a selection document", file=path, expected="a JSON object", actual=type(raw).__name__)
    tool = _require(raw, "tool", str, path, "")
    if tool != TOOL_NAME:
        raise DataError("not a cmg-toc selection file", file=path, key="tool", expected=TOOL_NAME, actual=tool)
    version = _require(raw, "version", str, path, "")
    checkpoint = _require(raw, "checkpoint", dict, path, "")
    checkpoint_path = _require(checkpoint, "path", str, path, "checkpoint.")
    sha256 = _require(checkpoint, "sha256", str, path, "checkpoint.")
    family = _require(checkpoint, "family", str, path, "checkpoint.")
    parameters = _require(raw, "parameters", dict, path, "")
    entries = _require(raw, "levels", list, path, "")
    if not entries:
        raise DataError("no levels", file=path, key="levels", expected="at least one level", actual="[]")
    levels: list[SelectedLevel] = []
    for position, entry in enumerate(entries):
        where = f"levels[{position}]."
        if not isinstance(entry, dict):
            raise DataError("wrong type", file=path, key=f"levels[{position}]", expected="object", actual=type(entry).__name__)
        level = _require(entry, "level", int, path, where)
        shape = _require(entry, "codebook_shape", list, path, where)
        if len(shape) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise DataError("bad codebook shape", file=path, key=f"{where}codebook_shape", expected="[N, D] positive integers", actual=shape)
        indices = _require(entry, "indices", list, path, where)
        scores = _require(entry, "scores", list, path, where)
        width = shape[1]
        if not indices:
            raise DataError("empty index list", file=path, key=f"{where}indices", expected="at least one index", actual="[]")
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < width:
                raise DataError("index out of range", file=path, key=f"{where}indices", expected=f"integers in [0, {width})", actual=i)
        if len(set(indices)) != len(indices):
            raise DataError("duplicate indices", file=path, key=f"{where}indices", expected="distinct indices", actual=f"{len(indices) - len(set(indices))} duplicates")
        if len(scores) != len(indices):
            raise DataError("scores and indices differ in length", file=path, key=f"{where}scores", expected=len(indices), actual=len(scores))
        for s in scores:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
                raise DataError("bad score", file=path, key=f"{where}scores", expected="finite numbers", actual=s)
        levels.append(SelectedLevel(level=level, codebook_shape=(shape[0], shape[1]), indices=list(indices), scores=[float(s) for s in scores]))
    seen = [e.level for e in levels]
    if len(set(seen)) != len(seen) or seen != sorted(seen):
        raise DataError("levels must be distinct and in increasing order", file=path, key="levels", expected="increasing levels", actual=seen)
    return SelectionDocument(
        path=path,
        version=version,
        checkpoint_path=checkpoint_path,
        checkpoint_sha256=sha256,
        family=family,
        parameters=dict(parameters),
        levels=levels,
    )
