"""Task name → loader: resolve the task's paths (data root, config, overrides) and load it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from toc.data.ave import load_ave
from toc.data.ave_avvp import load_ave_avvp
from toc.data.avvp import load_avvp
from toc.data.base import TaskData
from toc.data.layout import DataConfig, resolve_paths
from toc.data.ucf_vggsound import load_ucf_vggsound
from toc.errors import ConfigError

LOADERS: dict[str, Callable[..., TaskData]] = {
    "ave": load_ave,
    "avvp": load_avvp,
    "ave-avvp": load_ave_avvp,
    "ucf-vggsound": load_ucf_vggsound,
}
TASKS = tuple(LOADERS)


def load_task(
    task: str,
    *,
    data_root: str | Path | None = None,
    config: str | Path | DataConfig | None = None,
    overrides: Mapping[str, str | Path | None] | None = None,
) -> TaskData:
    """Load downstream task `task` from the reference layout and/or a TOML config file."""
    if task not in LOADERS:
        raise ConfigError(f"unknown task '{task}' (expected one of {list(TASKS)})")
    paths = resolve_paths(task, data_root=data_root, config=config, overrides=overrides)
    return LOADERS[task](paths)
