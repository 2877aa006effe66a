"""TOC's settings, defined once: the score's weights and their named pairs, the channel budget and
its split, and the ways a user asks for TOC (a selection file, inline settings or a preset).

Every front end builds these types: the flags of `toc select`, `toc plot`, `toc score`, `toc eval`
and `toc eval retrieval` (one option bundle, cli/options.py), a `toc compare` plan's TOC tables
(toc/pipeline/plan.py) and the Python API (toc.codebook.selection). So each default and each
rule between settings is written here and nowhere else. Imports no torch: the command line reads
the defaults for its help text before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from cmg_base.errors import literal
from toc.errors import SettingsError

DEFAULT_SIM_WEIGHT = 0.7
DEFAULT_VAR_WEIGHT = 0.3
# Named (sim_weight, var_weight) pairs. "sim_var" is the TOC score (and FCID's AVE script);
# "sim_only" drops the variance term, as FCID's AVVP, AVE->AVVP and UCF<->VGGSound scripts do.
SCORE_VARIANTS = {"sim_var": (DEFAULT_SIM_WEIGHT, DEFAULT_VAR_WEIGHT), "sim_only": (DEFAULT_SIM_WEIGHT, 0.0)}
CUSTOM_SCORE = "custom"  # any other pair of weights

# Named TOC settings published for a task (toc.codebook.presets): "published" = FCID's table.
PRESET_NAMES = ("published",)

# The ways to ask for TOC; at most one is given (check_toc_source).
TOC_SOURCES = ("selection", "channels", "toc_preset")


def score_weights(variant: str) -> tuple[float, float]:
    """(sim_weight, var_weight) of a named score variant (SCORE_VARIANTS)."""
    if variant not in SCORE_VARIANTS:
        raise SettingsError(
            f"{{}}: unknown score variant {literal(repr(variant))}; expected one of {', '.join(SCORE_VARIANTS)}",
            settings=("score",),
        )
    return SCORE_VARIANTS[variant]


def score_variant(sim_weight: float, var_weight: float) -> str:
    """The name of the variant with these weights, or CUSTOM_SCORE."""
    for name, weights in SCORE_VARIANTS.items():
        if (float(sim_weight), float(var_weight)) == weights:
            return name
    return CUSTOM_SCORE


def resolve_weights(score: str | None, sim_weight: float | None, var_weight: float | None) -> dict[str, float]:
    """The weights asked for, as TocSettings keywords (only those given): a named `score` sets
    both, so it goes with neither explicit weight."""
    if score is not None:
        given = [name for name, value in (("sim_weight", sim_weight), ("var_weight", var_weight)) if value is not None]
        if given:
            raise SettingsError(
                f"{{}} {score} sets both weights; drop " + " and ".join(["{}"] * len(given)), settings=("score", *given),
            )
        return dict(zip(("sim_weight", "var_weight"), score_weights(score), strict=True))
    return {name: value for name, value in (("sim_weight", sim_weight), ("var_weight", var_weight)) if value is not None}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TocSettings:
    """Everything that decides one level's selection (the same settings for every level).

    With k = channels // (max_num + min_num), TOC keeps the k*max_num highest-scoring channels
    (descending) then the k*min_num lowest-scoring ones (ascending); `exact_budget` fills the
    remainder so that exactly `channels` come back. score = -sim_weight*sim + var_weight*var
    (named pairs: SCORE_VARIANTS, e.g. FCID's sim_only).

    `reference_topk` reproduces the published routine: its arithmetic (pairwise products added
    into a float32 buffer; the sim-only score ranked in float32) and its two independent top-k
    calls, so the two blocks may share channels and `channels` may exceed D as long as each block
    fits, and equal scores are ordered as torch.topk orders them. Off by default: float64 closed
    form, ties to the lower index, the blocks never share a channel and channels <= D.
    """

    channels: int
    max_num: int = 1
    min_num: int = 1
    exact_budget: bool = False
    sim_weight: float = DEFAULT_SIM_WEIGHT
    var_weight: float = DEFAULT_VAR_WEIGHT
    allow_nonfinite: bool = False
    reference_topk: bool = False

    def __post_init__(self):
        for name in ("channels", "max_num", "min_num"):
            value = getattr(self, name)
            if not _is_int(value):
                raise SettingsError(f"{{}} must be an integer, got {value!r}", settings=(name,))
            if value < 0:
                raise SettingsError(f"{{}} must not be negative, got {value}", settings=(name,))
        if self.channels < 1:
            raise SettingsError(f"{{}} must be at least 1, got {self.channels}", settings=("channels",))
        if self.max_num + self.min_num == 0:
            raise SettingsError("{} + {} must be at least 1 (both are 0)", settings=("max_num", "min_num"))
        for name in ("sim_weight", "var_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingsError(f"{{}} must be a finite number, got {value!r}", settings=(name,))

    @classmethod
    def from_given(cls, channels: int, *, score: str | None = None, **given: Any) -> TocSettings:
        """Settings from what a front end was given: None (or absent) means the default above;
        `score` names both weights (resolve_weights)."""
        unknown = sorted(set(given) - set(SETTING_DEFAULTS))
        if unknown:
            raise SettingsError(f"unknown TOC setting {unknown[0]!r}; expected one of {', '.join(TOC_SETTINGS)}")
        values = {k: v for k, v in given.items() if v is not None and k not in ("sim_weight", "var_weight")}
        values.update(resolve_weights(score, given.get("sim_weight"), given.get("var_weight")))
        return cls(channels=channels, **values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "max_num": self.max_num,
            "min_num": self.min_num,
            "exact_budget": self.exact_budget,
            "sim_weight": self.sim_weight,
            "var_weight": self.var_weight,
            "allow_nonfinite": self.allow_nonfinite,
            "score": self.score,
            "reference_topk": self.reference_topk,
        }

    @property
    def score(self) -> str:
        """The named score variant these weights are (sim_var, sim_only), or custom."""
        return score_variant(self.sim_weight, self.var_weight)

    @property
    def groups(self) -> int:
        return self.channels // (self.max_num + self.min_num)


# Every setting with a default, and that default: what help texts show and front ends fill in.
SETTING_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TocSettings) if f.default is not MISSING}
# Every name a front end may give inline: the fields, and `score` (both weights by name).
TOC_SETTINGS: tuple[str, ...] = (*(f.name for f in fields(TocSettings)), "score")


@dataclass(frozen=True)
class TocRequest:
    """How TOC was asked for: a selection file, inline settings (`channels` and what else was
    given; None = not given) or a named preset of published settings (toc.codebook.presets)."""

    selection: str | Path | None = None
    channels: int | None = None
    max_num: int | None = None
    min_num: int | None = None
    exact_budget: bool | None = None
    sim_weight: float | None = None
    var_weight: float | None = None
    score: str | None = None
    allow_nonfinite: bool | None = None
    reference_topk: bool | None = None
    preset: str | None = None

    @property
    def given(self) -> bool:
        return self.selection is not None or self.channels is not None or self.preset is not None

    @property
    def inline_extras(self) -> tuple[str, ...]:
        """The inline settings given besides `channels`."""
        return tuple(name for name in TOC_SETTINGS if name != "channels" and getattr(self, name) not in (None, False))

    def check(self, sources: Collection[str] = TOC_SOURCES) -> None:
        """The rules between TOC settings, for a front end that offers `sources` (TOC_SOURCES):
        one source at most, inline settings only with `channels`, and valid inline settings."""
        given = {"selection": self.selection, "channels": self.channels, "toc_preset": self.preset}
        for name, value in given.items():
            if value is not None and name not in sources:
                offered = [s for s in TOC_SOURCES if s in sources]
                raise SettingsError(
                    "{} is not offered here; give " + " or ".join(["{}"] * len(offered)), settings=(name, *offered),
                )
        chosen = [name for name, value in given.items() if value is not None]
        if len(chosen) > 1:
            raise SettingsError(" and ".join(["{}"] * len(chosen)) + " are alternatives; give one", settings=tuple(chosen))
        if self.channels is None and self.inline_extras:
            names = self.inline_extras
            if set(names) <= {"max_num", "min_num"}:
                names = ("max_num", "min_num")
            raise SettingsError(" / ".join(["{}"] * len(names)) + " need {}", settings=(*names, "channels"))
        if self.channels is not None:
            self.settings()  # validates the inline settings before any work

    def weights(self) -> tuple[float, float]:
        """(sim_weight, var_weight): as given (by value or by `score`), defaults filled in."""
        weights = {"sim_weight": DEFAULT_SIM_WEIGHT, "var_weight": DEFAULT_VAR_WEIGHT}
        weights.update(resolve_weights(self.score, self.sim_weight, self.var_weight))
        return weights["sim_weight"], weights["var_weight"]

    def settings(self) -> TocSettings:
        """The inline settings (needs `channels`), defaults filled in."""
        if self.channels is None:
            raise SettingsError("inline TOC needs {}", settings=("channels",))
        return TocSettings.from_given(
            self.channels, score=self.score,
            **{name: getattr(self, name) for name in SETTING_DEFAULTS},
        )
