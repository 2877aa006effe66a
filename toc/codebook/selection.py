"""TOC channel selection: the settings, the reference order, the exact-budget option, and the
selection file — one artifact with save / load and a version check (and, for a budget chosen
on validation, the choice and its provenance: toc.codebook.budget)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmg_base.files import atomic_path
from cmg_base.inputs import read_input_text
from toc.codebook.budget import BudgetChoice
from toc.codebook.scoring import ChannelScores, reference_score, score_channels
from toc.codebook.settings import TocSettings
from toc.documents import TOOL_NAME, dumps_document, parse_json, tool_version, version_tuple
from toc.errors import ConfigError, DataError, SettingsError

# A selection of a few thousand channels is tens of KB; anything near this bound is not one.
MAX_SELECTION_BYTES = 16 << 20


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


def plan_budget(channels: int, max_num: int, min_num: int, n_channels: int, exact_budget: bool = False) -> Budget:
    """Split `channels` into top/bottom counts; validates every argument against D = n_channels."""
    return _budget(TocSettings(channels, max_num, min_num, exact_budget), n_channels)


def _budget(settings: TocSettings, n_channels: int) -> Budget:
    if settings.channels > n_channels and not settings.reference_topk:
        raise ConfigError(
            f"{{}} must not exceed the codebook width (expected <= {n_channels}, got {settings.channels}); "
            "{} reproduces the published routine's overlapping blocks",
            settings=("channels", "reference_topk"),
        )
    top, bottom = settings.groups * settings.max_num, settings.groups * settings.min_num
    if settings.exact_budget:
        # The remainder goes to the top block unless the caller asked for no top block at all.
        remainder = settings.channels - top - bottom
        if settings.max_num > 0:
            top += remainder
        else:
            bottom += remainder
    if settings.reference_topk and max(top, bottom) > n_channels:
        raise ConfigError(
            f"a TOC block exceeds the codebook width (expected top and bottom blocks <= {n_channels}, "
            f"got {top} and {bottom}); the published routine fails here too"
        )
    return Budget(channels=int(settings.channels), top=int(top), bottom=int(bottom))


def order_channels(score: torch.Tensor, budget: Budget, allow_nonfinite: bool = False) -> torch.Tensor:
    """Top block (highest first) then bottom block (lowest first); ties go to the lower index.

    Stable sorts give the tie rule. The bottom block skips channels already in the top block, so
    indices are always distinct (ties straddling both blocks are the only case where this matters;
    the reference leaves it to torch.topk; `reference_order` is the published rule). Non-finite
    scores are never selected.
    """
    candidates = _finite_channels(score, allow_nonfinite)
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


def _finite_channels(score: torch.Tensor, allow_nonfinite: bool) -> torch.Tensor:
    """The channels with a finite score; non-finite ones are an error unless `allow_nonfinite`."""
    finite = torch.isfinite(score)
    if not bool(finite.all()) and not allow_nonfinite:
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ConfigError(f"non-finite scores in channel(s) {bad[:8]}; pass {{}} to skip them", settings=("allow_nonfinite",))
    return torch.nonzero(finite).flatten()


def reference_order(score: torch.Tensor, budget: Budget, allow_nonfinite: bool = False) -> torch.Tensor:
    """The published routine's blocks: topk(score, top) then topk(score, bottom, largest=False),
    each in torch.topk's order; they may repeat channels. Non-finite scores are never selected."""
    candidates = _finite_channels(score, allow_nonfinite)
    values = score[candidates]
    if max(budget.top, budget.bottom) > values.numel():
        raise ConfigError(f"a TOC block needs {max(budget.top, budget.bottom)} channels; {values.numel()} have finite scores")
    top = candidates[torch.topk(values, budget.top).indices] if budget.top else candidates[:0]
    bottom = candidates[torch.topk(values, budget.bottom, largest=False).indices] if budget.bottom else candidates[:0]
    return torch.cat([top, bottom])


def _as_scores(scores_or_codebook: Any, settings: TocSettings) -> torch.Tensor:
    if isinstance(scores_or_codebook, ChannelScores):
        return scores_or_codebook.score
    shape = getattr(scores_or_codebook, "shape", None)
    if shape is not None and len(shape) == 2:
        return score_channels(
            scores_or_codebook, sim_weight=settings.sim_weight, var_weight=settings.var_weight,
            allow_nonfinite=settings.allow_nonfinite,
        ).score
    if shape is not None and len(shape) == 1:
        score = torch.as_tensor(np.asarray(scores_or_codebook) if not torch.is_tensor(scores_or_codebook) else scores_or_codebook)
        return score.detach().to(device="cpu", dtype=torch.float64)
    raise ConfigError(
        "expected ChannelScores, a 1-D score vector or a 2-D [N, D] codebook, "
        f"got {type(scores_or_codebook).__name__} of shape {list(shape) if shape is not None else None}"
    )


def select_channels(
    scores_or_codebook: Any,
    channels: int,
    max_num: int | None = None,
    min_num: int | None = None,
    exact_budget: bool | None = None,
    *,
    sim_weight: float | None = None,
    var_weight: float | None = None,
    score: str | None = None,
    allow_nonfinite: bool | None = None,
    reference_topk: bool | None = None,
) -> torch.Tensor:
    """Indices (LongTensor) of the TOC channels in the reference order.

    With k = channels // (max_num + min_num): the k*max_num highest scores descending, then the
    k*min_num lowest ascending. When that is fewer than `channels`, a ShortSelectionWarning is
    issued (warnings module, never printed here); exact_budget=True fills the remainder instead.
    A setting left at None takes TocSettings' default (max_num 1, min_num 1, weights 0.7 / 0.3).
    """
    settings = TocSettings.from_given(
        channels, max_num=max_num, min_num=min_num, exact_budget=exact_budget, sim_weight=sim_weight,
        var_weight=var_weight, score=score, allow_nonfinite=allow_nonfinite, reference_topk=reference_topk,
    )
    sim_weight, var_weight, allow_nonfinite = settings.sim_weight, settings.var_weight, settings.allow_nonfinite
    score = _as_scores(scores_or_codebook, settings)
    budget = _budget(settings, int(score.shape[0]))
    if settings.reference_topk:
        # From a codebook: the published arithmetic; from given scores: those, ranked by topk.
        shape = getattr(scores_or_codebook, "shape", ())
        if not isinstance(scores_or_codebook, ChannelScores) and len(shape) == 2:
            score = reference_score(scores_or_codebook, sim_weight, var_weight)
        indices = reference_order(score, budget, allow_nonfinite)
    else:
        indices = order_channels(score, budget, allow_nonfinite)
    if indices.numel() < channels:
        warnings.warn(
            f"TOC returns {indices.numel()} of {channels} channels "
            f"(channels // (max_num + min_num) = {settings.groups} groups); "
            "use exact_budget to get exactly `channels`",
            ShortSelectionWarning,
            stacklevel=2,
        )
    return indices


@dataclass
class Selection:
    """The channels chosen for one codebook level, in the order the downstream head sees them."""

    level: int
    codebook_shape: tuple[int, int]
    indices: torch.Tensor  # int64 [K]: top block (descending score), then bottom block (ascending)
    scores: torch.Tensor  # float64 [K]: the score of each selected channel, same order
    settings: TocSettings
    short_by: int = 0  # channels requested but not returned (integer-division budget)
    channel_scores: ChannelScores | None = field(default=None, repr=False)  # every channel's scores

    def shortfall(self, name_of: Callable[[str], str] = str) -> str | None:
        """The note for a short selection (None when it is not short), settings spelt by `name_of`."""
        if not self.short_by:
            return None
        s = self.settings
        return (
            f"level {self.level}: {self.indices.numel()} of {s.channels} channels returned "
            f"({s.channels} // ({s.max_num} + {s.min_num}) groups, as the reference does); "
            f"pass {name_of('exact_budget')} to get exactly {name_of('channels')}"
        )


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
    budget = _budget(settings, d)
    if budget.total == 0:
        # An empty selection is no selection: a +toc head would see no channel at all.
        raise SettingsError(
            f"{{}} {settings.channels} with {{}} {settings.max_num} and {{}} {settings.min_num} selects no channel "
            f"on level {level} (k = {settings.channels} // ({settings.max_num} + {settings.min_num}) = 0); "
            f"give at least {settings.max_num + settings.min_num} channels or pass {{}}",
            settings=("channels", "max_num", "min_num", "exact_budget"),
        )
    if settings.reference_topk:
        published = reference_score(codebook, settings.sim_weight, settings.var_weight)
        indices = reference_order(published, budget, settings.allow_nonfinite)
    else:
        indices = order_channels(scores.score, budget, settings.allow_nonfinite)
    return Selection(
        level=level,
        codebook_shape=(n, d),
        indices=indices,
        scores=scores.score[indices],
        settings=settings,
        short_by=settings.channels - int(indices.numel()),
        channel_scores=scores,
    )


def select_levels(
    codebooks: Sequence[Any],
    settings: TocSettings | Mapping[int, TocSettings],
    levels: Sequence[int] | None = None,
    source: Any = None,
) -> list[Selection]:
    """Per-level selections (H-DCID: one per codebook level), in level order 0, 1, ...

    `settings` is one TocSettings for every level, or a mapping level -> TocSettings; `source`
    (the codebooks' file) is named in errors.
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
        where = f"{source}: level {level}" if source is not None else None
        result.append(select_level(codebooks[level], level_settings, level, where))
    return result


# ---------------------------------------------------------------------- the selection file


@dataclass(frozen=True)
class LevelSelection:
    """One level of a selection file: which channels, in the head's column order, and their scores."""

    level: int
    codebook_shape: tuple[int, int]
    indices: list[int]
    scores: list[float]
    short_by: int = 0  # channels requested but not returned (integer-division budget)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level, "codebook_shape": list(self.codebook_shape),
            "indices": list(self.indices), "scores": list(self.scores), "short_by": self.short_by,
        }


@dataclass(frozen=True)
class SelectionFile:
    """The selection artifact: which channels of which checkpoint, per level (`toc select` JSON).

    The same object is what `toc select` writes, what `toc eval --selection` reads, and what
    inline TOC settings produce in memory. `save` writes byte-stable JSON; `load` validates every
    field and refuses files written by a newer cmg-toc. `choice` is set when the budget was
    chosen on a validation split (`--channels auto`); files without it read as before.
    """

    checkpoint_path: str
    checkpoint_sha256: str
    family: str
    parameters: dict[str, Any]
    levels: tuple[LevelSelection, ...]
    version: str = field(default_factory=tool_version)
    path: Path | None = None  # where it was read from or written to (for messages)
    selections: tuple[Selection, ...] = field(default=(), repr=False, compare=False)  # in-memory results, with scores
    choice: BudgetChoice | None = None  # the budget chosen on validation, with its provenance

    @staticmethod
    def from_selections(
        selections: Sequence[Selection], *, checkpoint_path: str | os.PathLike, checkpoint_sha256: str,
        family: str, parameters: Mapping[str, Any],
    ) -> SelectionFile:
        ordered = sorted(selections, key=lambda s: s.level)
        levels = tuple(
            LevelSelection(
                level=s.level, codebook_shape=tuple(s.codebook_shape),
                indices=[int(i) for i in s.indices.tolist()],
                scores=[float(x) for x in s.scores.tolist()], short_by=int(s.short_by),
            )
            for s in ordered
        )
        return SelectionFile(
            checkpoint_path=str(checkpoint_path), checkpoint_sha256=checkpoint_sha256, family=family,
            parameters=dict(parameters), levels=levels, selections=tuple(ordered),
        )

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else "inline TOC settings"

    def level_indices(self) -> dict[int, tuple[int, ...]]:
        return {entry.level: tuple(entry.indices) for entry in self.levels}

    def indices_for(self, level: int) -> torch.Tensor:
        for entry in self.levels:
            if entry.level == level:
                return torch.tensor(entry.indices, dtype=torch.long)
        raise ConfigError(f"{self.source}: no selection for level {level} (has {[e.level for e in self.levels]})")

    def to_json(self) -> dict[str, Any]:
        """The JSON document (level order 0, 1, ...). Per level `parameters` and `short_by` repeat
        the settings for readers of a single level."""
        levels = []
        settings = {k: v for k, v in self.parameters.items() if k != "level"}
        for entry in self.levels:
            levels.append({**entry.as_dict(), "parameters": dict(settings)})
        document = {
            "tool": TOOL_NAME,
            "version": self.version,
            "checkpoint": {"path": self.checkpoint_path, "sha256": self.checkpoint_sha256, "family": self.family},
            "parameters": dict(self.parameters),
            "levels": levels,
        }
        if self.choice is not None:
            document["choice"] = self.choice.to_json()
        return document

    def dumps(self) -> str:
        return dumps_document(self.to_json())

    def save(self, path: str | os.PathLike) -> SelectionFile:
        """Write the JSON atomically; returns the artifact with `path` set."""
        target = Path(path)
        with atomic_path(target) as tmp:
            tmp.write_text(self.dumps(), encoding="utf-8")
        return SelectionFile(
            self.checkpoint_path, self.checkpoint_sha256, self.family, self.parameters, self.levels,
            self.version, target, self.selections, self.choice,
        )

    @staticmethod
    def load(path: str | os.PathLike, *, made_for: Any = None) -> SelectionFile:
        return read_selection(path, made_for=made_for)

    def check_made_for(self, checkpoint: Any) -> None:
        """Refuse a selection made for another checkpoint (anything with path, sha256, family,
        codebooks): its sha256 must be the checkpoint's, and every level's codebook shape must
        match. A selection of a bare codebook file (family "codebook") names no checkpoint, so
        only its shapes are compared; an empty sha256 is accepted only there."""
        where = checkpoint.path
        if self.family != "codebook":
            if not self.checkpoint_sha256:
                raise ConfigError(
                    f"{self.source}: the selection names no checkpoint (empty sha256), so it cannot be "
                    f"checked against {where}; make it with `toc select` on that checkpoint"
                )
            if self.checkpoint_sha256 != checkpoint.sha256:
                raise ConfigError(
                    f"{self.source}: selection was made for checkpoint {self.checkpoint_sha256[:12]} "
                    f"({self.checkpoint_path}), not {where} ({checkpoint.sha256[:12]})"
                )
        codebooks = list(checkpoint.codebooks)
        for entry in self.levels:
            if entry.level >= len(codebooks):
                raise ConfigError(
                    f"{self.source}: selection for level {entry.level}, but {where} has {len(codebooks)} level(s)"
                )
            actual = tuple(int(x) for x in codebooks[entry.level].shape)
            if tuple(entry.codebook_shape) != actual:
                raise ConfigError(
                    f"{self.source}: level {entry.level} was selected on a codebook of shape "
                    f"{list(entry.codebook_shape)}, but {where} has {list(actual)} there"
                )


def selection_for(checkpoint: Any, settings: TocSettings, levels: Sequence[int] | None = None,
                  level: str | None = None) -> SelectionFile:
    """TOC on a loaded checkpoint's codebooks (anything with path, sha256, family, codebooks): the
    one builder of the selection document, in memory (`.save()` writes it, `.selections` keeps
    every channel's scores). `levels`: which levels (default every one); `level`: how they were
    asked for on the command line ("all", a number, a name), recorded in the parameters."""
    selections = select_levels(checkpoint.codebooks, settings, levels, source=checkpoint.path)
    parameters = settings.as_dict() if level is None else dict(settings.as_dict(), level=level)
    return SelectionFile.from_selections(
        selections, checkpoint_path=checkpoint.path, checkpoint_sha256=checkpoint.sha256,
        family=checkpoint.family, parameters=parameters,
    )


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


def read_selection(path: str | os.PathLike, *, made_for: Any = None) -> SelectionFile:
    """Read and validate a selection file written by `toc select`; one-line DataError otherwise.

    `made_for`: the checkpoint the selection will be applied to (anything with path, sha256,
    family, codebooks); every reader that applies channels passes it, so another checkpoint's
    selection is refused (SelectionFile.check_made_for)."""
    selection = _read_selection(Path(path))
    if made_for is not None:
        selection.check_made_for(made_for)
    return selection


def _read_selection(path: Path) -> SelectionFile:
    text = read_input_text(path, what="selection file", error=DataError, max_bytes=MAX_SELECTION_BYTES)
    raw = parse_json(text, file=path, what="selection file")
    if not isinstance(raw, dict):
        raise DataError("not a selection document", file=path, expected="a JSON object", actual=type(raw).__name__)
    tool = _require(raw, "tool", str, path, "")
    if tool != TOOL_NAME:
        raise DataError("not a cmg-toc selection file", file=path, key="tool", expected=TOOL_NAME, actual=tool)
    version = _require(raw, "version", str, path, "")
    if version_tuple(version)[:2] > version_tuple(tool_version())[:2]:
        raise DataError(
            "written by a newer cmg-toc; upgrade to read it", file=path, key="version",
            expected=f"<= {tool_version()}", actual=version,
        )
    checkpoint = _require(raw, "checkpoint", dict, path, "")
    checkpoint_path = _require(checkpoint, "path", str, path, "checkpoint.")
    sha256 = _require(checkpoint, "sha256", str, path, "checkpoint.")
    family = _require(checkpoint, "family", str, path, "checkpoint.")
    parameters = _require(raw, "parameters", dict, path, "")
    entries = _require(raw, "levels", list, path, "")
    if not entries:
        raise DataError("no levels", file=path, key="levels", expected="at least one level", actual="[]")
    levels: list[LevelSelection] = []
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
        # Repeats are legitimate only when the file says the published overlapping blocks were used.
        if len(set(indices)) != len(indices) and parameters.get("reference_topk") is not True:
            raise DataError("duplicate indices", file=path, key=f"{where}indices", expected="distinct indices", actual=f"{len(indices) - len(set(indices))} duplicates")
        if len(scores) != len(indices):
            raise DataError("scores and indices differ in length", file=path, key=f"{where}scores", expected=len(indices), actual=len(scores))
        for s in scores:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
                raise DataError("bad score", file=path, key=f"{where}scores", expected="finite numbers", actual=s)
        short_by = entry.get("short_by", 0)
        if isinstance(short_by, bool) or not isinstance(short_by, int) or short_by < 0:
            raise DataError("wrong type", file=path, key=f"{where}short_by", expected="an integer >= 0", actual=short_by)
        levels.append(LevelSelection(
            level=level, codebook_shape=(shape[0], shape[1]), indices=list(indices),
            scores=[float(s) for s in scores], short_by=short_by,
        ))
    seen = [e.level for e in levels]
    if len(set(seen)) != len(seen) or seen != sorted(seen):
        raise DataError("levels must be distinct and in increasing order", file=path, key="levels", expected="increasing levels", actual=seen)
    choice = None
    if raw.get("choice") is not None:
        choice = BudgetChoice.from_json(raw["choice"], str(path))
        kept = tuple(len(e.indices) for e in levels)
        if choice.point.n_channels != kept:
            raise DataError(
                "the chosen budget does not match the levels' indices", file=path, key="choice.curve",
                expected=f"{list(choice.point.n_channels)} channels per level", actual=list(kept),
            )
    return SelectionFile(
        checkpoint_path=checkpoint_path, checkpoint_sha256=sha256, family=family,
        parameters=dict(parameters), levels=tuple(levels), version=version, path=path, choice=choice,
    )
