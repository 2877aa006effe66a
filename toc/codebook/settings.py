"""TOC's settings, defined once: the score's weights and their named pairs, the channel budget and
its split, the budget search of `--channels auto` (its grid and its rule), and the ways a user
asks for TOC (a selection file, inline settings, a budget search or a preset).

Every front end builds these types: the flags of `toc select`, `toc plot`, `toc score`, `toc eval`
and `toc eval retrieval` (one option bundle, cli/options.py), a `toc compare` plan's TOC tables
(toc/pipeline/plan.py) and the Python API (toc.codebook.selection). So each default and each
rule between settings is written here and nowhere else. Imports no torch: the command line reads
the defaults for its help text before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from cmg_base.errors import literal
from toc.errors import SettingsError
from toc.vocabulary import CODE_HEAD

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

# `--channels auto` / `channels = "auto"`: the budget is chosen per task and direction on the
# task's validation split (toc.eval.budget sweeps, toc.report.budget chooses).
AUTO_CHANNELS = "auto"
# The default grid: every AUTO_STEP channels up to the codebook width (and the width itself, the
# no-selection point), each with the (max_num, min_num) block patterns the published TOC / H-DCID
# scripts use (docs/toc.md).
AUTO_STEP = 32
PUBLISHED_PATTERNS: tuple[tuple[int, int], ...] = ((1, 0), (1, 1), (3, 1))
# The rule: the smallest budget whose validation score is within one standard error of the best
# one's, the standard error that of the paired score difference over a seeded clip bootstrap
# ("one-se", the default). "one-se-marginal" is the textbook form, the standard error of the
# best point's own score, kept for comparison (benchmarks/toc_auto.py; docs/toc.md says why
# the paired one is the default).
AUTO_RULE = "one-se"
AUTO_RULES = {
    "one-se": (
        "the fewest channels whose validation score is within one standard error of the best "
        "grid point's (the standard error of the paired difference, from a bootstrap over the "
        "validation units and head seeds); ties: higher validation score, then grid order"
    ),
    "one-se-marginal": (
        "the fewest channels whose validation score is within one standard error of the best "
        "grid point's (the standard error of the best point's own score, from a bootstrap over "
        "the validation units and head seeds); ties: higher validation score, then grid order"
    ),
}
AUTO_RULE_TEXT = AUTO_RULES[AUTO_RULE]
AUTO_RESAMPLES = 2000
AUTO_SEED = 0
# Which validation clips score a grid point (the heads always train on the training modality
# and keep their epoch by its validation clips, as the protocol says): "cross-modal", the
# evaluated modality's clips of the validation videos (what the evaluation measures, on videos
# it never evaluates; it reads those clips' labels), falling back to "same-modality" where the
# two sets share no video (UCF<->VGGSound); or "same-modality", the training modality's held-out
# clips (no label of the evaluated modality at all).
AUTO_SPLITS = ("cross-modal", "same-modality")
# Inline settings that go only with channels "auto".
AUTO_SETTINGS = ("auto_grid", "auto_patterns", "auto_split")


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


def _parse_ints(text: str, name: str) -> tuple[int, ...]:
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            values.append(int(part))
        except ValueError:
            raise SettingsError(f"{{}} expects comma-separated integers, got {part!r}", settings=(name,)) from None
    return tuple(values)


def parse_grid(given: str | Sequence[int] | None) -> tuple[tuple[int, ...] | None, int]:
    """`auto_grid` as given (`"32,64,128"`, `"step:16"` or a list of integers) → (budgets or None
    for every step up to the width, the step)."""
    if given is None:
        return None, AUTO_STEP
    if isinstance(given, str):
        text = given.strip()
        if text.startswith("step:"):
            step = _parse_ints(text[len("step:"):], "auto_grid")
            if len(step) != 1 or step[0] < 1:
                raise SettingsError(f"{{}} step:N needs one integer N >= 1, got {given!r}", settings=("auto_grid",))
            return None, step[0]
        budgets = _parse_ints(text, "auto_grid")
    else:
        if not all(_is_int(v) for v in given):
            raise SettingsError(f"{{}} expects integers, got {list(given)!r}", settings=("auto_grid",))
        budgets = tuple(int(v) for v in given)
    if not budgets:
        raise SettingsError("{} lists no channel budget", settings=("auto_grid",))
    bad = [c for c in budgets if c < 1]
    if bad:
        raise SettingsError(f"{{}} entries must be at least 1, got {bad[0]}", settings=("auto_grid",))
    if len(set(budgets)) != len(budgets):
        raise SettingsError(f"{{}} lists a budget twice: {list(budgets)}", settings=("auto_grid",))
    return tuple(sorted(budgets)), AUTO_STEP


def parse_patterns(given: str | Sequence[str] | None) -> tuple[tuple[int, int], ...]:
    """`auto_patterns` as given (`"1/0,1/1,3/1"` or a list of "A/B" strings) → (max_num, min_num) pairs."""
    if given is None:
        return PUBLISHED_PATTERNS
    parts = [p.strip() for p in given.split(",")] if isinstance(given, str) else list(given)
    patterns: list[tuple[int, int]] = []
    for part in parts:
        if isinstance(part, str) and not part:
            continue
        pieces = part.split("/") if isinstance(part, str) else []
        try:
            a, b = (int(x) for x in pieces) if len(pieces) == 2 else (None, None)
        except ValueError:
            a, b = None, None
        if a is None or b is None or a < 0 or b < 0 or a + b == 0:
            raise SettingsError(
                f"{{}} entries are A/B with max_num A and min_num B (integers >= 0, not both 0), got {part!r}",
                settings=("auto_patterns",),
            )
        patterns.append((a, b))
    if not patterns:
        raise SettingsError("{} lists no block pattern", settings=("auto_patterns",))
    if len(set(patterns)) != len(patterns):
        raise SettingsError("{} lists a pattern twice", settings=("auto_patterns",))
    return tuple(patterns)


@dataclass(frozen=True)
class BudgetGrid:
    """The (channels, max_num, min_num) points `--channels auto` compares.

    `channels` None: every `step` channels up to the codebook width, and the width itself (all
    channels: what the variant without TOC sees, re-ordered). A point whose budget gives no
    channel (channels // (max_num + min_num) = 0) is left out.
    """

    channels: tuple[int, ...] | None = None
    patterns: tuple[tuple[int, int], ...] = PUBLISHED_PATTERNS
    step: int = AUTO_STEP

    def budgets(self, width: int) -> tuple[int, ...]:
        """The channel budgets for a codebook `width` channels wide (every level of the variant)."""
        if self.channels is None:
            return tuple(sorted({*range(self.step, width, self.step), width}))
        above = [c for c in self.channels if c > width]
        if above:
            raise SettingsError(
                f"{{}} entry {above[0]} exceeds the codebook width (expected <= {width})", settings=("auto_grid",),
            )
        return self.channels

    def points(self, width: int) -> tuple[tuple[int, int, int], ...]:
        return tuple(
            (c, a, b) for c in self.budgets(width) for a, b in self.patterns if c // (a + b) > 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels) if self.channels is not None else f"every {self.step} up to the width",
            "patterns": [f"{a}/{b}" for a, b in self.patterns],
        }


@dataclass(frozen=True)
class BudgetSearch:
    """`--channels auto`: which budgets to compare, the settings every one of them shares (score
    weights, exact budget, ...) and the rule that picks one on the validation split."""

    grid: BudgetGrid = BudgetGrid()
    exact_budget: bool = False
    sim_weight: float = DEFAULT_SIM_WEIGHT
    var_weight: float = DEFAULT_VAR_WEIGHT
    allow_nonfinite: bool = False
    reference_topk: bool = False
    split: str = AUTO_SPLITS[0]
    rule: str = AUTO_RULE
    resamples: int = AUTO_RESAMPLES
    seed: int = AUTO_SEED

    def __post_init__(self):
        self.settings(1, 1, 0)  # the shared settings are valid TOC settings
        if self.split not in AUTO_SPLITS:
            raise SettingsError(
                f"{{}} must be one of {', '.join(AUTO_SPLITS)}, got {literal(repr(self.split))}", settings=("auto_split",),
            )
        if self.rule not in AUTO_RULES:
            raise SettingsError(f"unknown budget rule {self.rule!r}; expected one of {', '.join(AUTO_RULES)}")
        if not _is_int(self.resamples) or self.resamples < 100:
            raise SettingsError(f"the budget rule needs at least 100 bootstrap resamples, got {self.resamples!r}")

    @classmethod
    def from_given(cls, *, auto_grid=None, auto_patterns=None, auto_split=None, score: str | None = None,
                   **given: Any) -> BudgetSearch:
        """A search from what a front end was given (None: the default); max_num / min_num are
        the grid's, so they are refused here."""
        fixed = {"max_num", "min_num"} & {k for k, v in given.items() if v is not None}
        if fixed:
            raise SettingsError(
                "{} / {} come from {} under {} auto", settings=("max_num", "min_num", "auto_patterns", "channels"),
            )
        unknown = sorted(set(given) - {"exact_budget", "sim_weight", "var_weight", "allow_nonfinite", "reference_topk",
                                       "max_num", "min_num"})
        if unknown:
            raise SettingsError(f"unknown TOC setting {unknown[0]!r} under channels auto")
        values = {k: v for k, v in given.items() if v is not None and k not in ("sim_weight", "var_weight", "max_num", "min_num")}
        values.update(resolve_weights(score, given.get("sim_weight"), given.get("var_weight")))
        channels, step = parse_grid(auto_grid)
        if auto_split is not None:
            values["split"] = auto_split
        return cls(grid=BudgetGrid(channels, parse_patterns(auto_patterns), step), **values)

    def settings(self, channels: int, max_num: int, min_num: int) -> TocSettings:
        """The TOC settings of one grid point."""
        return TocSettings(
            channels=channels, max_num=max_num, min_num=min_num, exact_budget=self.exact_budget,
            sim_weight=self.sim_weight, var_weight=self.var_weight, allow_nonfinite=self.allow_nonfinite,
            reference_topk=self.reference_topk,
        )

    def as_dict(self) -> dict[str, Any]:
        """The search as TOC parameters: `channels` "auto", the grid, the shared settings, the rule."""
        shared = self.settings(1, 1, 0).as_dict()
        shared.update(channels=AUTO_CHANNELS, max_num=None, min_num=None)
        return {
            **shared, "auto_grid": self.grid.as_dict(), "auto_split": self.split, "auto_rule": self.rule,
            "auto_resamples": self.resamples, "auto_seed": self.seed,
        }


def check_auto(protocol: str, heads: Sequence[str]) -> None:
    """What `--channels auto` needs: a validation split (strict) and a head that reads channels."""
    if protocol != "strict":
        raise SettingsError(
            f"{{}} {AUTO_CHANNELS} chooses the budget on the validation split; {{}} {protocol} has none "
            "(it picks epochs on the evaluated rows)",
            settings=("channels", "protocol"),
        )
    if all(head == CODE_HEAD for head in heads):
        raise SettingsError(
            f"{{}} {AUTO_CHANNELS}: the {CODE_HEAD} head reads code ids, which TOC does not change, so there is "
            "nothing to choose; add {} linear or prototype",
            settings=("channels", "head"),
        )


@dataclass(frozen=True)
class TocRequest:
    """How TOC was asked for: a selection file, inline settings (`channels` and what else was
    given; None = not given), a budget search (`channels` = "auto", with `auto_grid` /
    `auto_patterns`) or a named preset of published settings (toc.codebook.presets)."""

    selection: str | Path | None = None
    channels: int | str | None = None
    max_num: int | None = None
    min_num: int | None = None
    exact_budget: bool | None = None
    sim_weight: float | None = None
    var_weight: float | None = None
    score: str | None = None
    allow_nonfinite: bool | None = None
    reference_topk: bool | None = None
    preset: str | None = None
    auto_grid: str | Sequence[int] | None = None
    auto_patterns: str | Sequence[str] | None = None
    auto_split: str | None = None

    @property
    def given(self) -> bool:
        return self.selection is not None or self.channels is not None or self.preset is not None

    @property
    def auto(self) -> bool:
        """Whether the budget is to be chosen on validation (`channels` = "auto")."""
        return self.channels == AUTO_CHANNELS

    @property
    def inline_extras(self) -> tuple[str, ...]:
        """The inline settings given besides `channels`."""
        return tuple(
            name for name in (*TOC_SETTINGS, *AUTO_SETTINGS)
            if name != "channels" and getattr(self, name) not in (None, False)
        )

    def check(self, sources: Collection[str] = TOC_SOURCES, *, auto: bool = False) -> None:
        """The rules between TOC settings, for a front end that offers `sources` (TOC_SOURCES):
        one source at most, inline settings only with `channels`, and valid inline settings.
        `auto`: whether the front end can choose a budget on a validation split (`channels`
        "auto", which needs a task with one)."""
        if isinstance(self.channels, str) and not self.auto:
            raise SettingsError(f"{{}} must be an integer or {AUTO_CHANNELS}, got {self.channels!r}", settings=("channels",))
        if self.auto and not auto:
            raise SettingsError(
                f"{{}} {AUTO_CHANNELS} chooses the budget on a task's validation split, which this command does "
                "not read; give a number of channels",
                settings=("channels",),
            )
        if not self.auto:
            given_auto = [name for name in AUTO_SETTINGS if getattr(self, name) is not None]
            if given_auto:
                verb = "needs" if len(given_auto) == 1 else "need"
                raise SettingsError(
                    " / ".join(["{}"] * len(given_auto)) + f" {verb} {{}} {AUTO_CHANNELS}", settings=(*given_auto, "channels"),
                )
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
        if self.auto:
            self.search()  # validates the grid and the shared settings before any work
        elif self.channels is not None:
            self.settings()  # validates the inline settings before any work

    def weights(self) -> tuple[float, float]:
        """(sim_weight, var_weight): as given (by value or by `score`), defaults filled in."""
        weights = {"sim_weight": DEFAULT_SIM_WEIGHT, "var_weight": DEFAULT_VAR_WEIGHT}
        weights.update(resolve_weights(self.score, self.sim_weight, self.var_weight))
        return weights["sim_weight"], weights["var_weight"]

    def search(self) -> BudgetSearch:
        """The budget search of `channels` = "auto", defaults filled in."""
        if not self.auto:
            raise SettingsError(f"a budget search needs {{}} {AUTO_CHANNELS}", settings=("channels",))
        return BudgetSearch.from_given(
            auto_grid=self.auto_grid, auto_patterns=self.auto_patterns, auto_split=self.auto_split, score=self.score,
            **{name: getattr(self, name) for name in SETTING_DEFAULTS},
        )

    def settings(self) -> TocSettings:
        """The inline settings (needs `channels`), defaults filled in."""
        if self.channels is None:
            raise SettingsError("inline TOC needs {}", settings=("channels",))
        if self.auto:
            raise SettingsError(
                f"{{}} {AUTO_CHANNELS} has no fixed settings: the budget is chosen on a validation split",
                settings=("channels",),
            )
        return TocSettings.from_given(
            self.channels, score=self.score,
            **{name: getattr(self, name) for name in SETTING_DEFAULTS},
        )
