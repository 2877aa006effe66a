"""TensorBoard scalars that mirror metrics.jsonl: the optional `tensorboard` extra.

Every number of a step line goes to `step/NAME` at its `total_step`; every number of an epoch
line's diagnostics goes to `epoch/level{L}/FIELD` (per-modality and per-pair fields to
`epoch/level{L}/FIELD/PART`, a pair's measures to `epoch/level{L}/pairs/PAIR/MEASURE`) at the epoch's last `total_step`, with `epoch/epoch` the epoch
index, so both kinds share one x axis. Names are exactly metrics.jsonl's keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hdcid.errors import ModelError, literal

STEP_PREFIX = "step"
EPOCH_PREFIX = "epoch"
# Fields of a step line that say where it is, not what was measured.
POSITION_FIELDS = ("kind", "epoch", "total_step")
INSTALL_HINT = "pip install 'cmg-toc[tensorboard]'"


def _summary_writer_class():
    # An optional dependency (the tensorboard extra), imported where it is needed.
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ModelError(
            f"{{}} needs the tensorboard package, which is not installed ({literal(INSTALL_HINT)})",
            settings=("tensorboard",),
        ) from exc
    return SummaryWriter


def require_tensorboard() -> None:
    """Fail with the install hint before any work when the tensorboard package is missing."""
    _summary_writer_class()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


class TensorBoardLog:
    """One run's event file in LOG_DIR. `purge_step`: a resumed run's first new step, so that
    TensorBoard drops what an interrupted run wrote after the checkpoint it resumed from (as
    metrics.jsonl is trimmed)."""

    def __init__(self, log_dir: str | Path, *, purge_step: int | None = None):
        writer_class = _summary_writer_class()
        try:
            self.writer = writer_class(log_dir=str(log_dir), purge_step=purge_step)
        except OSError as exc:
            raise ModelError(f"{literal(log_dir)}: cannot write TensorBoard logs ({literal(exc.strerror or exc)})") from exc

    def step(self, record: Mapping[str, Any]) -> None:
        """A metrics.jsonl step line."""
        position = int(record["total_step"])
        for name, value in record.items():
            number = _number(value)
            if name not in POSITION_FIELDS and number is not None:
                self.writer.add_scalar(f"{STEP_PREFIX}/{name}", number, position)

    def epoch(self, record: Mapping[str, Any]) -> None:
        """A metrics.jsonl epoch line (its `diagnostics`: one dict per codebook level)."""
        position = int(record["total_step"])
        self.writer.add_scalar(f"{EPOCH_PREFIX}/epoch", float(record["epoch"]), position)
        for level in record.get("diagnostics", ()):
            prefix = f"{EPOCH_PREFIX}/level{int(level['level']) + 1}"
            for field, value in level.items():
                if field != "level":
                    self._scalars(f"{prefix}/{field}", value, position)
        self.writer.flush()

    def _scalars(self, name: str, value: Any, position: int) -> None:
        # Nested fields (per modality, per pair, a pair's measures) go one name part per level.
        if isinstance(value, Mapping):
            for part, inner in value.items():
                self._scalars(f"{name}/{part}", inner, position)
        elif (number := _number(value)) is not None:
            self.writer.add_scalar(name, number, position)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
