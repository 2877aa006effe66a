"""Comparison plans: which checkpoints, tasks, variants, heads and seeds to evaluate, and the TOC
settings per task and method — read from a `toc compare` TOML file or built in code."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmg_base.errors import literal
from cmg_base.inputs import expand_path
from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE, DEVICES, DTYPES, METHODS
from toc.codebook.presets import preset_settings
from toc.codebook.settings import (
    AUTO_CHANNELS,
    AUTO_SETTINGS,
    AUTO_SPLITS,
    PRESET_NAMES,
    SCORE_VARIANTS,
    TOC_SETTINGS,
    BudgetSearch,
    TocRequest,
    TocSettings,
    check_auto,
)
from toc.data.files import read_toml
from toc.errors import ConfigError, SettingsError
from toc.eval.tasks import TASKS
from toc.eval.variants import VARIANT_NAMES, VARIANTS
from toc.vocabulary import (
    DEFAULT_HEADS,
    DEFAULT_PROTOCOL,
    DEFAULT_SEEDS,
    DIRECTIONS,
    FINGERPRINTS,
    HEAD_BATCH_SIZE,
    HEADS,
    OVERLAP_POLICIES,
    PROTOCOLS,
)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAN_KEYS = {
    "data_root", "data_config", "cache_dir", "checkpoints", "tasks", "directions", "variants", "heads",
    "seeds", "protocol", "epochs", "batch_size", "dtype", "split_seed", "device", "selection",
    "split_seeds", "pretrain_csv", "pretrain_overlap", "cache_fingerprint",
}
# Keys a plan file may not hold at all: a file someone hands you must never grant trust (full
# unpickling runs code); only the person running the command can, with the command-line flag.
_REFUSED_KEYS = {"trust_checkpoint"}
# `preset = "published"`: the task's published TOC setting (FCID), instead of the keys above.
_PRESET_KEY = "preset"


# The comparison the toolkit was built for; FCID's variants join when the plan names its checkpoint.
_ALWAYS_COMPARED = ("dcid", "hdcid")


def default_variants(checkpoint_methods: Sequence[str] | Mapping[str, Any]) -> tuple[str, ...]:
    """A plan's variants when it names none: every dcid and hdcid variant (a missing checkpoint
    is then an error), and the fcid ones when an fcid checkpoint is given."""
    wanted = set(_ALWAYS_COMPARED) | set(checkpoint_methods)
    return tuple(v for v in VARIANT_NAMES if VARIANTS[v].method in wanted)


@dataclass(frozen=True)
class EvalJob:
    """One call of the evaluation library: one task, one checkpoint, its variants × the rest."""

    task: str
    method: str  # "dcid" or "hdcid": which checkpoint
    checkpoint: Path
    variants: tuple[str, ...]
    directions: tuple[str, ...]
    heads: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: str
    epochs: int | None
    batch_size: int
    dtype: str
    split_seed: int
    # Inline settings, a budget search (channels = "auto": chosen per direction on validation) or
    # a selection file; None without +toc.
    selection: TocSettings | BudgetSearch | Path | None
    # Which pretraining run of the method the checkpoint is (its place in the plan's list of
    # checkpoints); None when the method has one checkpoint. Runs pair across methods by it.
    pretrain_run: int | None = None
    split_seeds: tuple[int, ...] | None = None  # several strict splits (None: split_seed)


@dataclass(frozen=True)
class ComparisonPlan:
    """A comparison to run: from a `toc compare` TOML file (relative paths taken from its folder)
    or built in code (`make_plan`, as `toc demo` does)."""

    source: str  # the plan file, or what built the plan (for messages)
    data_root: Path | None
    data_config: Path | None
    cache_dir: Path | None
    device: str
    trust_checkpoint: bool
    jobs: tuple[EvalJob, ...]
    pretrain_csv: Path | None = None  # None: the data layout's pretraining CSV, if present
    pretrain_overlap: str = OVERLAP_POLICIES[0]
    cache_fingerprint: str = FINGERPRINTS[0]


def _plan_error(path: Path, key: str, expected: str, actual: Any) -> ConfigError:
    return ConfigError(f"{path}: key '{key}' (expected {expected}, got {_short(actual)})")


def _plan_list(raw: dict, key: str, allowed: Sequence[str], default: Sequence[str] | None, path: Path) -> tuple[str, ...]:
    if key not in raw:
        if default is None:
            raise ConfigError(f"{path}: missing key '{key}' (expected a list of {', '.join(allowed)})")
        return tuple(default)
    value = raw[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _plan_error(path, key, f"a non-empty list of {', '.join(allowed)}", value)
    for item in value:
        if item not in allowed:
            raise _plan_error(path, key, f"values among {', '.join(allowed)}", item)
    return tuple(dict.fromkeys(value))  # first-seen order, no repeats


def _plan_int(raw: dict, key: str, default: int | None, path: Path, minimum: int = 0) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _plan_error(path, key, f"an integer >= {minimum}", value)
    return value


def _plan_path(value: Any, key: str, base: Path, path: Path) -> Path:
    if not isinstance(value, str) or not value or "\0" in value:
        raise _plan_error(path, key, "a non-empty path string", value)
    candidate = expand_path(value, what=f"key '{key}' of {path}", error=ConfigError)
    return candidate if candidate.is_absolute() else base / candidate


def _inline_toc(table: dict, key: str, path: Path, task: str, method: str) -> TocSettings | BudgetSearch:
    """A plan's TOC table as settings: `preset` alone (with reference_topk), or `channels` and
    whichever other settings it gives (TocSettings fills in the defaults); `channels = "auto"`
    (with `auto_grid` / `auto_patterns`) is a budget search instead."""
    known = (*TOC_SETTINGS, *AUTO_SETTINGS, _PRESET_KEY)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise _plan_error(path, f"{key}.{unknown[0]}", f"one of {', '.join(known)}", unknown[0])
    if _PRESET_KEY in table:
        name = table[_PRESET_KEY]
        if name not in PRESET_NAMES:
            raise _plan_error(path, f"{key}.{_PRESET_KEY}", " or ".join(PRESET_NAMES), name)
        others = sorted(set(table) - {_PRESET_KEY, "reference_topk"})
        if others:
            raise _plan_error(path, f"{key}.{others[0]}", f"no other TOC key beside {_PRESET_KEY}", others[0])
        try:
            return preset_settings(name, task, method, reference_topk=table.get("reference_topk") is True)
        except ConfigError as exc:
            raise ConfigError(f"{path}: key '{key}.{_PRESET_KEY}': {exc}") from None
    if "channels" not in table:
        raise ConfigError(f"{path}: missing key '{key}.channels' (inline TOC settings need the channel budget)")
    for name, value in table.items():
        expected = _TOC_KEY_TYPES[name]
        if not expected[1](value):
            raise _plan_error(path, f"{key}.{name}", expected[0], value)
    try:
        request = TocRequest(**table)
        request.check(("channels",), auto=True)
        return request.search() if request.auto else request.settings()
    except SettingsError as exc:
        raise _plan_error(path, key, f"valid TOC settings: {exc}", table) from None


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# What each TOC key of a plan must hold: (as said in errors, check).
def _is_grid(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and bool(v) and all(_is_count(x) for x in v))


def _is_patterns(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v))


_TOC_KEY_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "channels": (f'an integer >= 0 or "{AUTO_CHANNELS}"', lambda v: _is_count(v) or v == AUTO_CHANNELS),
    "auto_grid": ('a list of channel budgets or "step:N"', _is_grid),
    "auto_patterns": ('a list of "A/B" block patterns', _is_patterns),
    "auto_split": (" or ".join(AUTO_SPLITS), lambda v: v in AUTO_SPLITS),
    "max_num": ("an integer >= 0", _is_count),
    "min_num": ("an integer >= 0", _is_count),
    "exact_budget": ("true or false", lambda v: isinstance(v, bool)),
    "allow_nonfinite": ("true or false", lambda v: isinstance(v, bool)),
    "reference_topk": ("true or false", lambda v: isinstance(v, bool)),
    "score": (" or ".join(SCORE_VARIANTS), lambda v: v in SCORE_VARIANTS),
    "sim_weight": ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    "var_weight": ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
}


def _selection_for(
    section: Any, task: str, method: str, base: Path, path: Path
) -> TocSettings | BudgetSearch | Path | None:
    """TOC settings of one (task, method): [selection] < [selection.TASK] < [selection.TASK.METHOD].

    Inline keys (channels, max_num, ...) are merged from the outer to the inner table; a
    string at [selection.TASK] METHOD = "file.json" names a `toc select` file instead.
    """
    if section is None:
        return None
    if not isinstance(section, dict):
        raise _plan_error(path, "selection", "a table", section)
    merged: dict[str, Any] = {}
    table, where = section, "selection"
    toc_keys = (*TOC_SETTINGS, *AUTO_SETTINGS, _PRESET_KEY)
    steps: tuple[tuple[str | None, Sequence[str]], ...] = ((task, TASKS), (method, METHODS), (None, ()))
    for depth, (nested, allowed) in enumerate(steps):
        for name in table:
            if name not in toc_keys and name not in allowed:
                expected = ", ".join([*TOC_SETTINGS, *AUTO_SETTINGS, *allowed])
                raise _plan_error(path, f"{where}.{name}", f"one of {expected}", name)
        if _PRESET_KEY in table:  # a preset replaces the settings of the outer tables
            merged = {k: v for k, v in merged.items() if k == "reference_topk"}
        elif any(k in table for k in (*TOC_SETTINGS, *AUTO_SETTINGS)):  # and explicit settings replace an outer preset
            merged.pop(_PRESET_KEY, None)
        merged.update({k: table[k] for k in toc_keys if k in table})
        if nested is None or nested not in table:
            break
        inner = table[nested]
        if isinstance(inner, str) and depth == 1:
            return _plan_path(inner, f"{where}.{nested}", base, path)
        if not isinstance(inner, dict):
            kind = "a table of TOC settings or a selection file path" if depth == 1 else "a table"
            raise _plan_error(path, f"{where}.{nested}", kind, inner)
        table, where = inner, f"{where}.{nested}"
    return _inline_toc(merged, where, path, task, method) if merged else None


def _plan_choice(raw: dict, key: str, allowed: Sequence[str], default: str, path: Path) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise _plan_error(path, key, " or ".join(allowed), value)
    return value


def _plan_seeds(raw: dict, key: str, default: Sequence[int], path: Path) -> tuple[int, ...]:
    value = raw.get(key, list(default))
    if (
        not isinstance(value, list) or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
        or len(set(value)) != len(value)
    ):
        raise _plan_error(path, key, "a non-empty list of distinct integers >= 0", value)
    return tuple(value)


def _plan_checkpoints(table: dict, base: Path, path: Path) -> dict[str, Path | tuple[Path, ...]]:
    """[checkpoints]: per method a path, or a list of paths (one per pretraining run)."""
    checkpoints: dict[str, Path | tuple[Path, ...]] = {}
    for method in table:
        if method not in METHODS:
            raise _plan_error(path, f"checkpoints.{method}", " or ".join(METHODS), method)
    for method, value in table.items():
        key = f"checkpoints.{method}"
        if isinstance(value, list):
            if not value:
                raise _plan_error(path, key, "a path or a non-empty list of paths (one per pretraining run)", value)
            checkpoints[method] = tuple(_plan_path(v, f"{key}[{i}]", base, path) for i, v in enumerate(value))
        else:
            checkpoints[method] = _plan_path(value, key, base, path)
    return checkpoints


def _plan_keys(raw: dict, plan_path: Path) -> None:
    """No key a plan file may not hold (trust), and no unknown key."""
    refused = sorted(set(raw) & _REFUSED_KEYS)
    if refused:
        raise ConfigError(
            f"{literal(plan_path)}: key '{refused[0]}' is not allowed in a plan file: a file cannot grant trust "
            "(full unpickling can run code); pass {} on the command line if you trust the checkpoints",
            settings=("trust_checkpoint",),
        )
    unknown = sorted(set(raw) - _PLAN_KEYS)
    if unknown:
        raise ConfigError(f"{plan_path}: unknown key '{unknown[0]}' (expected one of {sorted(_PLAN_KEYS)})")


def load_plan(path: str | os.PathLike) -> ComparisonPlan:
    """Parse and validate a comparison plan (TOML) and expand it into evaluation jobs. A key the
    plan omits takes the default `toc eval` has (toc.vocabulary, hdcid.vocabulary)."""
    plan_path = Path(path)
    raw = read_toml(plan_path, "plan file")
    _plan_keys(raw, plan_path)
    base = plan_path.resolve().parent

    def optional_path(key: str) -> Path | None:
        return _plan_path(raw[key], key, base, plan_path) if key in raw else None

    data_root, data_config = optional_path("data_root"), optional_path("data_config")
    if data_root is None and data_config is None:
        raise ConfigError(f"{plan_path}: give 'data_root' or 'data_config' (where the task files are)")
    tasks = _plan_list(raw, "tasks", TASKS, None, plan_path)
    directions = _plan_list(raw, "directions", DIRECTIONS, DIRECTIONS, plan_path)
    if not isinstance(raw.get("checkpoints"), dict):
        raise _plan_error(plan_path, "checkpoints", "a table: dcid = PATH, hdcid = PATH, fcid = PATH", raw.get("checkpoints"))
    variants = _plan_list(raw, "variants", VARIANT_NAMES, default_variants(raw["checkpoints"]), plan_path)
    heads = _plan_list(raw, "heads", HEADS, DEFAULT_HEADS, plan_path)
    protocol = _plan_choice(raw, "protocol", PROTOCOLS, DEFAULT_PROTOCOL, plan_path)
    seeds = _plan_seeds(raw, "seeds", DEFAULT_SEEDS, plan_path)
    dtype = _plan_choice(raw, "dtype", DTYPES, DEFAULT_DTYPE, plan_path)
    device = _plan_choice(raw, "device", DEVICES, DEFAULT_DEVICE, plan_path)
    epochs = _plan_int(raw, "epochs", None, plan_path, minimum=1)
    batch_size = _plan_int(raw, "batch_size", HEAD_BATCH_SIZE, plan_path, minimum=1)
    split_seed = _plan_int(raw, "split_seed", 0, plan_path)
    if "split_seeds" in raw and "split_seed" in raw:
        raise ConfigError(f"{plan_path}: give 'split_seed' or 'split_seeds', not both")
    split_seeds = _plan_seeds(raw, "split_seeds", (), plan_path) if "split_seeds" in raw else None
    pretrain_overlap = _plan_choice(raw, "pretrain_overlap", OVERLAP_POLICIES, OVERLAP_POLICIES[0], plan_path)
    cache_fingerprint = _plan_choice(raw, "cache_fingerprint", FINGERPRINTS, FINGERPRINTS[0], plan_path)
    checkpoints = _plan_checkpoints(raw["checkpoints"], base, plan_path)
    return make_plan(
        source=str(plan_path), data_root=data_root, data_config=data_config, cache_dir=optional_path("cache_dir"),
        checkpoints=checkpoints, tasks=tasks, directions=directions, variants=variants, heads=heads,
        seeds=seeds, protocol=protocol, epochs=epochs, batch_size=batch_size or HEAD_BATCH_SIZE, dtype=dtype,
        split_seed=split_seed or 0, device=device,
        toc=lambda task, method: _selection_for(raw.get("selection"), task, method, base, plan_path),
        split_seeds=split_seeds, pretrain_csv=optional_path("pretrain_csv"), pretrain_overlap=pretrain_overlap,
        cache_fingerprint=cache_fingerprint,
    )


def pretraining_runs(source: str, checkpoints: Mapping[str, Path | Sequence[Path]]) -> dict[str, list[tuple[int | None, Path]]]:
    """Per method its checkpoints with their pretraining-run labels: (None, path) for one
    checkpoint, (0, path0), (1, path1), ... for a list. Lists pair across methods by position,
    so every method given as a list must have the same length (and none may be a single path)."""
    runs: dict[str, list[tuple[int | None, Path]]] = {}
    lengths = set()
    for method, value in checkpoints.items():
        if isinstance(value, (str, Path)):
            runs[method] = [(None, Path(value))]
        else:
            paths = [Path(p) for p in value]
            runs[method] = list(enumerate(paths))
            lengths.add(len(paths))
    singles = [f for f, r in runs.items() if r[0][0] is None]
    if len(lengths) > 1 or (lengths and singles):
        counts = {f: (1 if r[0][0] is None else len(r)) for f, r in runs.items()}
        raise ConfigError(
            f"{source}: checkpoints of several pretraining runs pair by position, so every method "
            f"needs a list of the same length (got {counts})"
        )
    return runs


def make_plan(
    *, source: str, checkpoints: Mapping[str, Path | Sequence[Path]], tasks: Sequence[str],
    toc: Callable[[str, str], TocSettings | BudgetSearch | Path | None], data_root: Path | None = None,
    data_config: Path | None = None, cache_dir: Path | None = None,
    directions: Sequence[str] = DIRECTIONS, variants: Sequence[str] | None = None,
    heads: Sequence[str] = DEFAULT_HEADS, seeds: Sequence[int] = DEFAULT_SEEDS, protocol: str = DEFAULT_PROTOCOL,
    epochs: int | None = None, batch_size: int = HEAD_BATCH_SIZE, dtype: str = DEFAULT_DTYPE, split_seed: int = 0,
    device: str = DEFAULT_DEVICE, trust_checkpoint: bool = False, split_seeds: Sequence[int] | None = None,
    pretrain_csv: Path | None = None, pretrain_overlap: str = OVERLAP_POLICIES[0], cache_fingerprint: str = FINGERPRINTS[0],
) -> ComparisonPlan:
    """Expand a comparison into its jobs: one per task, checkpoint method and pretraining run
    (a method may list several checkpoints), each with that method's variants (default:
    `default_variants`); `toc(task, method)` gives the TOC settings (or selection file) of a job."""
    if variants is None:
        variants = default_variants(checkpoints)
    runs = pretraining_runs(source, checkpoints)
    jobs: list[EvalJob] = []
    for task in tasks:
        for method in METHODS:
            method_variants = tuple(v for v in variants if VARIANTS[v].method == method)
            if not method_variants:
                continue
            if method not in checkpoints:
                raise ConfigError(
                    f"{source}: variants {', '.join(method_variants)} need 'checkpoints.{method}'"
                )
            needs_toc = any(VARIANTS[v].uses_selection for v in method_variants)
            selection = toc(task, method)
            if needs_toc and isinstance(selection, BudgetSearch):
                try:
                    check_auto(protocol, heads)
                except SettingsError as exc:
                    raise ConfigError(f"{source}: task {task}, {method}: {exc}") from None
            if needs_toc and selection is None:
                raise ConfigError(
                    f"{source}: variant {method}+toc on task {task} needs TOC settings "
                    f"([selection], [selection.{task}] or [selection.{task}.{method}])"
                )
            for pretrain_run, checkpoint in runs[method]:
                jobs.append(
                    EvalJob(
                        task=task, method=method, checkpoint=checkpoint, variants=method_variants,
                        directions=tuple(directions), heads=tuple(heads), seeds=tuple(seeds), protocol=protocol,
                        epochs=epochs, batch_size=batch_size, dtype=dtype, split_seed=split_seed,
                        selection=selection if needs_toc else None, pretrain_run=pretrain_run,
                        split_seeds=None if split_seeds is None else tuple(split_seeds),
                    )
                )
    return ComparisonPlan(
        source=source, data_root=data_root, data_config=data_config, cache_dir=cache_dir,
        device=device, trust_checkpoint=trust_checkpoint, jobs=tuple(jobs), pretrain_csv=pretrain_csv,
        pretrain_overlap=pretrain_overlap, cache_fingerprint=cache_fingerprint,
    )
