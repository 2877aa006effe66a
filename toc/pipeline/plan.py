"""Comparison plans: which checkpoints, tasks, variants, heads and seeds to evaluate, and the TOC
settings per task and family — read from a `toc compare` TOML file or built in code."""

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
from hdcid.families import DTYPES
from toc.codebook.presets import PRESET_NAMES, preset_settings
from toc.codebook.scoring import SCORE_VARIANTS, score_weights
from toc.codebook.selection import TocSettings
from toc.data.files import read_toml
from toc.errors import ConfigError, SettingsError
from toc.eval.cache import FINGERPRINTS
from toc.eval.heads import HEADS
from toc.eval.overlap import OVERLAP_POLICIES
from toc.eval.protocols import DIRECTIONS, PROTOCOLS
from toc.eval.tasks import TASKS
from toc.eval.variants import FAMILIES, VARIANT_NAMES, VARIANTS


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
_INLINE_KEYS = ("channels", "max_num", "min_num")  # required in every TOC table
_OPTIONAL_TOC_KEYS = ("exact_budget", "sim_weight", "var_weight", "score", "reference_topk")
# `preset = "published"`: the task's published TOC setting (FCID), instead of the keys above.
_PRESET_KEY = "preset"


# The comparison the toolkit was built for; FCID's variants join when the plan names its checkpoint.
_ALWAYS_COMPARED = ("dcid", "hdcid")


def default_variants(checkpoint_families: Sequence[str] | Mapping[str, Any]) -> tuple[str, ...]:
    """A plan's variants when it names none: every dcid and hdcid variant (a missing checkpoint
    is then an error), and the fcid ones when an fcid checkpoint is given."""
    wanted = set(_ALWAYS_COMPARED) | set(checkpoint_families)
    return tuple(v for v in VARIANT_NAMES if VARIANTS[v].family in wanted)


@dataclass(frozen=True)
class EvalJob:
    """One call of the evaluation library: one task, one checkpoint, its variants × the rest."""

    task: str
    family: str  # "dcid" or "hdcid": which checkpoint
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
    selection: TocSettings | Path | None  # inline settings or a selection file; None without +toc
    # Which pretraining run of the family the checkpoint is (its place in the plan's list of
    # checkpoints); None when the family has one checkpoint. Runs pair across families by it.
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
    pretrain_overlap: str = "report"
    cache_fingerprint: str = "stat"


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


def _inline_toc(table: dict, key: str, path: Path, task: str, family: str) -> TocSettings:
    known = (*_INLINE_KEYS, *_OPTIONAL_TOC_KEYS, _PRESET_KEY)
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
            return preset_settings(name, task, family, reference_topk=table.get("reference_topk") is True)
        except ConfigError as exc:
            raise ConfigError(f"{path}: key '{key}.{_PRESET_KEY}': {exc}") from None
    missing = [k for k in _INLINE_KEYS if k not in table]
    if missing:
        raise ConfigError(f"{path}: missing key '{key}.{missing[0]}' (TOC settings need {', '.join(_INLINE_KEYS)})")
    values: dict[str, Any] = {}
    for name in _INLINE_KEYS:
        v = table[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _plan_error(path, f"{key}.{name}", "an integer >= 0", v)
        values[name] = v
    if "exact_budget" in table:
        if not isinstance(table["exact_budget"], bool):
            raise _plan_error(path, f"{key}.exact_budget", "true or false", table["exact_budget"])
        values["exact_budget"] = table["exact_budget"]
    if "reference_topk" in table:
        if not isinstance(table["reference_topk"], bool):
            raise _plan_error(path, f"{key}.reference_topk", "true or false", table["reference_topk"])
        values["reference_topk"] = table["reference_topk"]
    if "score" in table:
        if table["score"] not in SCORE_VARIANTS:
            raise _plan_error(path, f"{key}.score", " or ".join(SCORE_VARIANTS), table["score"])
        if "sim_weight" in table or "var_weight" in table:
            raise _plan_error(path, f"{key}.score", "score or sim_weight / var_weight, not both", table["score"])
        values["sim_weight"], values["var_weight"] = score_weights(table["score"])
    for name in ("sim_weight", "var_weight"):
        if name in table:
            v = table[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _plan_error(path, f"{key}.{name}", "a finite number", v)
            values[name] = float(v)
    try:
        return TocSettings(**values)
    except SettingsError as exc:
        raise _plan_error(path, key, f"valid TOC settings: {exc}", table) from None


def _selection_for(
    section: Any, task: str, family: str, base: Path, path: Path
) -> TocSettings | Path | None:
    """TOC settings of one (task, family): [selection] < [selection.TASK] < [selection.TASK.FAMILY].

    Inline keys (channels, max_num, min_num) are merged from the outer to the inner table; a
    string at [selection.TASK] FAMILY = "file.json" names a `toc select` file instead.
    """
    if section is None:
        return None
    if not isinstance(section, dict):
        raise _plan_error(path, "selection", "a table", section)
    merged: dict[str, Any] = {}
    table, where = section, "selection"
    toc_keys = (*_INLINE_KEYS, *_OPTIONAL_TOC_KEYS, _PRESET_KEY)
    steps: tuple[tuple[str | None, Sequence[str]], ...] = ((task, TASKS), (family, FAMILIES), (None, ()))
    for depth, (nested, allowed) in enumerate(steps):
        for name in table:
            if name not in toc_keys and name not in allowed:
                expected = ", ".join([*_INLINE_KEYS, *allowed])
                raise _plan_error(path, f"{where}.{name}", f"one of {expected}", name)
        if _PRESET_KEY in table:  # a preset replaces the settings of the outer tables
            merged = {k: v for k, v in merged.items() if k == "reference_topk"}
        elif any(k in table for k in _INLINE_KEYS):  # and explicit settings replace an outer preset
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
    return _inline_toc(merged, where, path, task, family) if merged else None


def load_plan(path: str | os.PathLike) -> ComparisonPlan:
    """Parse and validate a comparison plan (TOML) and expand it into evaluation jobs."""
    plan_path = Path(path)
    raw = read_toml(plan_path, "plan file")
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
    base = plan_path.resolve().parent
    data_root = _plan_path(raw["data_root"], "data_root", base, plan_path) if "data_root" in raw else None
    data_config = _plan_path(raw["data_config"], "data_config", base, plan_path) if "data_config" in raw else None
    if data_root is None and data_config is None:
        raise ConfigError(f"{plan_path}: give 'data_root' or 'data_config' (where the task files are)")
    cache_dir = _plan_path(raw["cache_dir"], "cache_dir", base, plan_path) if "cache_dir" in raw else None
    tasks = _plan_list(raw, "tasks", TASKS, None, plan_path)
    directions = _plan_list(raw, "directions", DIRECTIONS, DIRECTIONS, plan_path)
    checkpoints_raw = raw.get("checkpoints")
    if not isinstance(checkpoints_raw, dict):
        raise _plan_error(plan_path, "checkpoints", "a table: dcid = PATH, hdcid = PATH, fcid = PATH", checkpoints_raw)
    variants = _plan_list(raw, "variants", VARIANT_NAMES, default_variants(checkpoints_raw), plan_path)
    heads = _plan_list(raw, "heads", HEADS, ("linear",), plan_path)
    protocol = raw.get("protocol", "strict")
    if protocol not in PROTOCOLS:
        raise _plan_error(plan_path, "protocol", " or ".join(PROTOCOLS), protocol)
    seeds_raw = raw.get("seeds", [0, 1, 2])
    if (
        not isinstance(seeds_raw, list) or not seeds_raw
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds_raw)
        or len(set(seeds_raw)) != len(seeds_raw)
    ):
        raise _plan_error(plan_path, "seeds", "a non-empty list of distinct integers >= 0", seeds_raw)
    dtype = raw.get("dtype", "float32")
    if dtype not in tuple(DTYPES):
        raise _plan_error(plan_path, "dtype", " or ".join(tuple(DTYPES)), dtype)
    device = raw.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise _plan_error(plan_path, "device", "cpu or cuda", device)
    epochs = _plan_int(raw, "epochs", None, plan_path, minimum=1)
    batch_size = _plan_int(raw, "batch_size", 80, plan_path, minimum=1)
    split_seed = _plan_int(raw, "split_seed", 0, plan_path)
    split_seeds = None
    if "split_seeds" in raw:
        value = raw["split_seeds"]
        if "split_seed" in raw:
            raise ConfigError(f"{plan_path}: give 'split_seed' or 'split_seeds', not both")
        if (
            not isinstance(value, list) or not value
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value)
            or len(set(value)) != len(value)
        ):
            raise _plan_error(plan_path, "split_seeds", "a non-empty list of distinct integers >= 0", value)
        split_seeds = tuple(value)
    pretrain_csv = _plan_path(raw["pretrain_csv"], "pretrain_csv", base, plan_path) if "pretrain_csv" in raw else None
    pretrain_overlap = raw.get("pretrain_overlap", "report")
    if pretrain_overlap not in OVERLAP_POLICIES:
        raise _plan_error(plan_path, "pretrain_overlap", " or ".join(OVERLAP_POLICIES), pretrain_overlap)
    cache_fingerprint = raw.get("cache_fingerprint", "stat")
    if cache_fingerprint not in FINGERPRINTS:
        raise _plan_error(plan_path, "cache_fingerprint", " or ".join(FINGERPRINTS), cache_fingerprint)
    for name in checkpoints_raw:
        if name not in FAMILIES:
            raise _plan_error(plan_path, f"checkpoints.{name}", " or ".join(FAMILIES), name)
    checkpoints: dict[str, Path | tuple[Path, ...]] = {}
    for family, value in checkpoints_raw.items():
        key = f"checkpoints.{family}"
        if isinstance(value, list):
            if not value:
                raise _plan_error(plan_path, key, "a path or a non-empty list of paths (one per pretraining run)", value)
            checkpoints[family] = tuple(_plan_path(v, f"{key}[{i}]", base, plan_path) for i, v in enumerate(value))
        else:
            checkpoints[family] = _plan_path(value, key, base, plan_path)
    return make_plan(
        source=str(plan_path), data_root=data_root, data_config=data_config, cache_dir=cache_dir,
        checkpoints=checkpoints, tasks=tasks, directions=directions, variants=variants, heads=heads,
        seeds=tuple(seeds_raw), protocol=protocol, epochs=epochs, batch_size=batch_size or 80, dtype=dtype,
        split_seed=split_seed or 0, device=device,
        toc=lambda task, family: _selection_for(raw.get("selection"), task, family, base, plan_path),
        split_seeds=split_seeds, pretrain_csv=pretrain_csv, pretrain_overlap=pretrain_overlap,
        cache_fingerprint=cache_fingerprint,
    )


def pretraining_runs(source: str, checkpoints: Mapping[str, Path | Sequence[Path]]) -> dict[str, list[tuple[int | None, Path]]]:
    """Per family its checkpoints with their pretraining-run labels: (None, path) for one
    checkpoint, (0, path0), (1, path1), ... for a list. Lists pair across families by position,
    so every family given as a list must have the same length (and none may be a single path)."""
    runs: dict[str, list[tuple[int | None, Path]]] = {}
    lengths = set()
    for family, value in checkpoints.items():
        if isinstance(value, (str, Path)):
            runs[family] = [(None, Path(value))]
        else:
            paths = [Path(p) for p in value]
            runs[family] = list(enumerate(paths))
            lengths.add(len(paths))
    singles = [f for f, r in runs.items() if r[0][0] is None]
    if len(lengths) > 1 or (lengths and singles):
        counts = {f: (1 if r[0][0] is None else len(r)) for f, r in runs.items()}
        raise ConfigError(
            f"{source}: checkpoints of several pretraining runs pair by position, so every family "
            f"needs a list of the same length (got {counts})"
        )
    return runs


def make_plan(
    *, source: str, checkpoints: Mapping[str, Path | Sequence[Path]], tasks: Sequence[str],
    toc: Callable[[str, str], TocSettings | Path | None], data_root: Path | None = None,
    data_config: Path | None = None, cache_dir: Path | None = None,
    directions: Sequence[str] = DIRECTIONS, variants: Sequence[str] | None = None,
    heads: Sequence[str] = ("linear",), seeds: Sequence[int] = (0, 1, 2), protocol: str = "strict",
    epochs: int | None = None, batch_size: int = 80, dtype: str = "float32", split_seed: int = 0,
    device: str = "cpu", trust_checkpoint: bool = False, split_seeds: Sequence[int] | None = None,
    pretrain_csv: Path | None = None, pretrain_overlap: str = "report", cache_fingerprint: str = "stat",
) -> ComparisonPlan:
    """Expand a comparison into its jobs: one per task, checkpoint family and pretraining run
    (a family may list several checkpoints), each with that family's variants (default:
    `default_variants`); `toc(task, family)` gives the TOC settings (or selection file) of a job."""
    if variants is None:
        variants = default_variants(checkpoints)
    runs = pretraining_runs(source, checkpoints)
    jobs: list[EvalJob] = []
    for task in tasks:
        for family in FAMILIES:
            family_variants = tuple(v for v in variants if VARIANTS[v].family == family)
            if not family_variants:
                continue
            if family not in checkpoints:
                raise ConfigError(
                    f"{source}: variants {', '.join(family_variants)} need 'checkpoints.{family}'"
                )
            needs_toc = any(VARIANTS[v].uses_selection for v in family_variants)
            selection = toc(task, family)
            if needs_toc and selection is None:
                raise ConfigError(
                    f"{source}: variant {family}+toc on task {task} needs TOC settings "
                    f"([selection], [selection.{task}] or [selection.{task}.{family}])"
                )
            for pretrain_run, checkpoint in runs[family]:
                jobs.append(
                    EvalJob(
                        task=task, family=family, checkpoint=checkpoint, variants=family_variants,
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
