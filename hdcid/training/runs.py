"""One training request from a front end, start to end: which run directory, new run or
resumption, the overwrite rule, the settings the user gave; then the run itself.

The rules live here, not in the command line: a new run refuses a RUN_DIR that already holds
checkpoints unless forced; a resumption continues in its own folder, cannot warm-start, and
keeps the saved settings except those it may change (TrainConfig.resumed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hdcid.diagnostics import LevelDiagnostics
from hdcid.errors import ModelError, OutputExistsError, SettingsError, literal
from hdcid.recipes import TrainConfig, new_run_default
from hdcid.training.data import PretrainData, probe_shapes
from hdcid.training.distributed import Collective
from hdcid.training.tensorboard_log import TensorBoardLog, require_tensorboard
from hdcid.training.trainer import SavedRun, Trainer, TrainResult


@dataclass(frozen=True)
class TrainRequest:
    """What one training command asks for. Settings and paths are the ones the user gave."""

    output: Path | None = None  # RUN_DIR of a new run
    resume: Path | None = None  # RUN_DIR of a run to continue
    init_from: Path | None = None  # DCID checkpoint to warm-start H-DCID level 1 from
    force: bool = False  # a new run may replace the checkpoints already in RUN_DIR
    settings: Mapping[str, Any] = field(default_factory=dict)  # flat setting names, given ones only
    tensorboard: Path | None = None  # also mirror metrics.jsonl as TensorBoard scalars into this folder

    def run_dir(self) -> Path:
        """The folder the run lives in; SettingsError when the request names none or two."""
        if self.resume is None and self.output is None:
            raise SettingsError("give {} RUN_DIR (or {} RUN_DIR)", settings=("output", "resume"))
        if self.resume is None:
            return Path(self.output)
        if self.output is not None and Path(self.output).resolve() != Path(self.resume).resolve():
            raise SettingsError(
                "{} continues in its own RUN_DIR; drop {} or give the same folder", settings=("resume", "output"),
            )
        return Path(self.resume)


def check_new_run_dir(run_dir: Path, *, force: bool) -> None:
    """A new run does not silently mix with the checkpoints of an earlier one."""
    if run_dir.exists() and any(run_dir.glob("*.pt")) and not force:
        target = literal(run_dir)
        raise OutputExistsError(
            f"{target}: already holds a run; pass {{}} {target} to continue or {{}}", settings=("resume", "force"),
        )


def check_device(device: str) -> None:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"{{}} {literal(device)}: no CUDA device is available", settings=("device",))


def open_training(
    request: TrainRequest,
    load_data: Callable[[], PretrainData],
    *,
    on_step: Callable[[dict], None] | None = None,
    on_epoch: Callable[[dict, list[LevelDiagnostics]], None] | None = None,
) -> Trainer:
    """The trainer for a request, set up and ready to run. Every rule that needs no data is
    checked before `load_data()` reads the corpus. Under torchrun the process joins its group
    (hdcid.training.distributed) before the trainer is built."""
    run_dir = request.run_dir()
    if request.resume is not None:
        if request.init_from is not None:
            raise SettingsError("{} starts a new run; it cannot be combined with {}", settings=("init_from", "resume"))
        # Read and checked before the corpus is loaded, so a refused change fails fast.
        saved = SavedRun.read(run_dir)
        config = TrainConfig.resumed(saved.config, request.settings)
        config.validate()
        check_device(config.device)
        data = load_data()
        collective = Collective.join(config.device)
        try:
            return Trainer(config, data, run_dir, saved=saved, on_step=on_step, on_epoch=on_epoch, collective=collective)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            # The checkpoint parsed but its states do not fit the model it describes.
            text = str(exc).strip().splitlines()
            raise ModelError(
                f"{saved.path}: cannot resume: the saved states are damaged "
                f"({type(exc).__name__}: {text[0][:200] if text else ''})"
            ) from None
    check_new_run_dir(run_dir, force=request.force)
    check_device(request.settings.get("device") or new_run_default("device"))
    # Settings that need no data (NaN rates, absurd sizes) are refused before the corpus is read.
    TrainConfig.from_settings(request.settings, n_clips=1).validate()
    data = load_data()
    config = TrainConfig.from_settings(request.settings, n_clips=len(data), has_text="text" in probe_shapes(data))
    return Trainer(
        config, data, run_dir, init_from=request.init_from, on_step=on_step, on_epoch=on_epoch,
        collective=Collective.join(config.device),
    )


def run_training(
    request: TrainRequest,
    load_data: Callable[[], PretrainData],
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_epoch: Callable[[dict, list[LevelDiagnostics]], None] | None = None,
) -> TrainResult:
    """Set up (open_training) and run a training request. `on_start(planned_steps, done_steps)`
    is called once before the first step, e.g. to size a progress bar. With `request.tensorboard`
    every metrics.jsonl line is also written as TensorBoard scalars (tensorboard_log)."""
    if request.tensorboard is None:
        trainer = open_training(request, load_data, on_step=on_step, on_epoch=on_epoch)
        if on_start and trainer.is_main:
            on_start(trainer.planned_steps, trainer.total_step)
        return _run(trainer)
    require_tensorboard()  # before the corpus is read
    log: list[TensorBoardLog] = []

    def step(record: dict) -> None:
        log[0].step(record)
        if on_step:
            on_step(record)

    def epoch(record: dict, diagnostics: list[LevelDiagnostics]) -> None:
        log[0].epoch(record)
        if on_epoch:
            on_epoch(record, diagnostics)

    trainer = open_training(request, load_data, on_step=step, on_epoch=epoch)
    if not trainer.is_main:  # only rank 0 writes
        return _run(trainer)
    log.append(TensorBoardLog(request.tensorboard, purge_step=trainer.total_step + 1 if trainer.resumed else None))
    try:
        if on_start and trainer.is_main:
            on_start(trainer.planned_steps, trainer.total_step)
        return _run(trainer)
    finally:
        log[0].close()


def _run(trainer: Trainer) -> TrainResult:
    """Run the trainer; a distributed run's process group ends with it."""
    try:
        result = trainer.run()
    except BaseException:
        if trainer.collective is not None:
            trainer.collective.close(finished=False)
        raise
    if trainer.collective is not None:
        trainer.collective.close()
    return result
