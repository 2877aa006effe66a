"""The downstream tasks: one registry entry per task — its loader, label kind and metrics.

Every other module (the CLI's choices, the demo, the report's order, the protocols' epoch
counts) reads the task vocabulary from here. The loaders are named, not imported, so that the
vocabulary costs no torch or h5py: the command line offers the tasks before any work starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toc.data.base import LabelKind, TaskData
from toc.errors import ConfigError

if TYPE_CHECKING:
    from toc.data.layout import DataConfig


@dataclass(frozen=True)
class Task:
    """A downstream task: cross-modal classification (clip labels) or localisation (segments)."""

    name: str
    kind: LabelKind
    loader: str  # "module:function" taking the resolved paths and returning TaskData
    default_epochs: int  # the published TOC scripts' n_epoch for the linear head
    # The metric the published scripts keep their best epoch by (AVE has no rule: accuracy).
    reference_selection_metric: str
    description: str
    own_data: bool = False  # read from the own-data format (toc.data.paired), not a published layout

    def load(self, paths) -> TaskData:
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)(paths)

    @property
    def primary_metric(self) -> str:
        """What the report compares on by default: accuracy for clip tasks, f1 for segment tasks."""
        return "accuracy" if self.kind == "clip" else "f1"


TASK_REGISTRY: dict[str, Task] = {
    t.name: t
    for t in (
        Task("ave", "clip", "toc.data.ave:load_ave", 50, "accuracy", "AVE cross-modal event classification"),
        Task("avvp", "segment", "toc.data.avvp:load_avvp", 100, "precision", "AVVP cross-modal event localisation"),
        Task("ave-avvp", "segment", "toc.data.ave_avvp:load_ave_avvp", 100, "f1", "AVE → AVVP cross-dataset localisation"),
        Task("ucf-vggsound", "clip", "toc.data.ucf_vggsound:load_ucf_vggsound", 100, "accuracy",
             "UCF101 ↔ VGGSound-AVEL classification"),
        Task("paired", "clip", "toc.data.paired:load_paired_task", 50, "accuracy",
             "own paired features: cross-modal classification", own_data=True),
    )
}
TASKS: tuple[str, ...] = tuple(TASK_REGISTRY)  # the task names, in display order
# The tasks of the published layouts (what the built-in synthetic corpus and the demo cover).
REFERENCE_TASKS: tuple[str, ...] = tuple(name for name, task in TASK_REGISTRY.items() if not task.own_data)


def get_task(name: str) -> Task:
    if name not in TASK_REGISTRY:
        raise ConfigError(f"unknown task '{name}' (expected one of {list(TASKS)})")
    return TASK_REGISTRY[name]


def load_task(
    task: str,
    *,
    data_root: str | Path | None = None,
    config: str | Path | DataConfig | None = None,
    overrides: Mapping[str, str | Path | None] | None = None,
) -> TaskData:
    """Load downstream task `task` from the reference layout and/or a TOML config file."""
    from toc.data.layout import resolve_paths  # reads h5 layouts: only when a task is loaded

    entry = get_task(task)
    paths = resolve_paths(task, data_root=data_root, config=config, overrides=overrides)
    return entry.load(paths)


def chance_level(data: TaskData) -> float | None:
    """A uniform guess's accuracy in % (clip tasks); segment F1 has no single chance level."""
    if data.kind != "clip" or not data.class_names:
        return None
    return round(100.0 / len(data.class_names), 4)
