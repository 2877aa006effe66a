"""The trainer: sets a run up (fresh, warm-started or resumed), runs its epochs on the schedule,
writes checkpoints and metrics atomically, and keeps what an exact resumption needs (positions,
optimizer states, every RNG)."""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmg_base.files import append_text, atomic_path, check_space, write_text_atomic
from cmg_base.inputs import check_regular_file, read_input_bytes
from cmg_base.torch_archive import check_torch_archive
from hdcid.checkpoint_keys import (
    CONFIG_KEY,
    EPOCH_KEY,
    OPTIMIZER_KEY,
    SCHEDULER_KEY,
    TOTAL_STEP_KEY,
    TRAINER_KEY,
    mi_optimizer_key,
)
from hdcid.diagnostics import LevelDiagnostics, level_diagnostics
from hdcid.errors import CmgError
from hdcid.normalization import NORMALIZATION_KEY
from hdcid.quantizer import quantize
from hdcid.recipes import TrainConfig
from hdcid.training import initialisation
from hdcid.training.data import (
    DIAGNOSTICS_SUBSET,
    PretrainData,
    batches,
    check_batch,
    epoch_order,
    probe_shapes,
    video_has_grid,
)
from hdcid.training.distributed import Collective
from hdcid.training.fcid_step import (
    PUBLISHED_FILE,
    FcidPretrainModel,
    build_fcid_optimizers,
    fcid_training_step,
)
from hdcid.training.step import (
    PretrainModel,
    StepResult,
    build_optimizers,
    model_inputs,
    training_step,
)
from hdcid.vocabulary import MODALITIES

# MultiStepLR([10, 20, 30], 0.5) per epoch, as the reference.
MILESTONES = (10, 20, 30)
GAMMA = 0.5
LAST_CHECKPOINT = "last.pt"
MAX_METRICS_BYTES = 1 << 30  # one line per step: a million steps is a few hundred MB
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


def epoch_checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch}.pt"


@dataclass
class TrainResult:
    """Where a run ended and what it wrote."""

    run_dir: Path
    total_step: int
    epoch: int  # the epoch the run stopped in (or the last completed one)
    finished: bool  # all epochs done
    last_checkpoint: Path
    epoch_checkpoints: list[Path]
    last_losses: dict[str, float]
    diagnostics: list[LevelDiagnostics]
    config: TrainConfig | None = None  # the config the run ran with
    published_checkpoint: Path | None = None  # FCID: the file in the published layout
    is_main: bool = True  # False on the ranks >= 1 of a distributed run (they write nothing)

    def summary(self) -> dict[str, Any]:
        """The run in one JSON-able dict: position, files and the last step's loss totals."""
        return {
            "run_dir": str(self.run_dir),
            "total_step": self.total_step,
            "epoch": self.epoch,
            "epochs": self.config.epochs if self.config else None,
            "recipe": self.config.recipe if self.config else None,
            "finished": self.finished,
            "last_checkpoint": str(self.last_checkpoint),
            "epoch_checkpoints": [str(p) for p in self.epoch_checkpoints],
            **({"published_checkpoint": str(self.published_checkpoint)} if self.published_checkpoint else {}),
            "last_losses": {k: self.last_losses[k] for k in sorted(self.last_losses) if k.startswith("loss")},
        }


# ---------------------------------------------------------------------- saved runs


@dataclass
class SavedRun:
    """The last checkpoint of a run directory, as written by this trainer."""

    path: Path
    state: dict[str, Any]

    @property
    def config(self) -> TrainConfig:
        try:
            return TrainConfig.from_dict(self.state[CONFIG_KEY])
        except (TypeError, ValueError, KeyError, CmgError) as exc:
            raise CmgError(f"{self.path}: cannot resume: the saved settings are damaged ({_first_line(exc)})") from None

    @staticmethod
    def read(run_dir: str | Path) -> SavedRun:
        path = Path(run_dir) / LAST_CHECKPOINT
        if not path.exists():
            raise CmgError(f"{path}: cannot resume: no {LAST_CHECKPOINT} in the run directory")
        check_regular_file(path, what="checkpoint to resume", missing=f"cannot resume: no {LAST_CHECKPOINT}")
        check_torch_archive(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file
            raise CmgError(f"{path}: cannot resume: unreadable checkpoint ({_first_line(exc)})") from exc
        if not isinstance(state, dict) or CONFIG_KEY not in state or TRAINER_KEY not in state:
            raise CmgError(f"{path}: cannot resume: not a checkpoint written by this trainer (no {TRAINER_KEY})")
        trainer = state[TRAINER_KEY]
        if not isinstance(state[CONFIG_KEY], dict) or not isinstance(trainer, dict) or not all(
            isinstance(trainer.get(k), int) and trainer[k] >= 0 for k in ("next_epoch", "next_batch", "total_step")
        ) or not isinstance(trainer.get("rng"), dict):
            raise CmgError(f"{path}: cannot resume: the trainer state in {TRAINER_KEY} is damaged")
        return SavedRun(path, state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _tensor_bytes(value: Any) -> int:
    if torch.is_tensor(value):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _save_checkpoint(state: dict, path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it. A full disk or
    a file-size limit is refused before writing (torch's own message would be 'unexpected pos')."""
    size = _tensor_bytes(state)
    check_space(path, size + size // 16 + (1 << 20))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # Through a file handle, torch names the archive's records "archive/..." instead of after
        # the (random) temporary file name, so the same run writes byte-identical checkpoints.
        torch.save(state, handle)


# ---------------------------------------------------------------------- RNG state


def rng_state(quantizer_random: random.Random, device: torch.device) -> dict:
    """Every RNG a step draws from, in plain types so weights-only loading accepts the file."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "quantizer_python": quantizer_random.getstate(),
        "numpy": {
            "name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4]),
        },
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, quantizer_random: random.Random, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    quantizer_random.setstate(_as_tuple(state["quantizer_python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------- trainer


class Trainer:
    """Runs (or resumes) one pretraining run into RUN_DIR."""

    def __init__(
        self,
        config: TrainConfig,
        data: PretrainData,
        run_dir: str | Path,
        *,
        resume: bool = False,
        saved: SavedRun | None = None,
        init_from: str | Path | None = None,
        on_step: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict, list[LevelDiagnostics]], None] | None = None,
        collective: Collective | None = None,
    ):
        """A fresh run from `config` (warm-started from the DCID checkpoint `init_from`, if
        given), or, with `resume`, the continuation of RUN_DIR/last.pt: `config` must then match
        the saved run except in the resumable settings (TrainConfig.resumed). `saved`: the run
        to continue, already read, with `config` already resolved against it (Trainer.resume_run).
        `collective`: this process' place in a distributed run (hdcid.training.distributed).
        """
        self.collective = collective
        self.run_dir = Path(run_dir)
        self.data = data
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.init_from = Path(init_from) if init_from else None
        if resume and saved is None:
            saved = SavedRun.read(self.run_dir)
            config = TrainConfig.resumed(saved.config, config.settings())
        self.resumed = saved is not None
        config.validate()
        self.config = config
        if collective is not None:
            collective.check_run(len(data), config.batch_size, config.method)
        self.device = torch.device(config.device) if collective is None else collective.device
        self.dtype = config.torch_dtype
        self.shapes = probe_shapes(data)
        self.modalities = tuple(m for m in MODALITIES if m in self.shapes)  # text is optional
        self.steps_per_epoch = math.ceil(len(data) / config.batch_size)
        self._build_model()
        self.normalization: dict[str, torch.Tensor] | None = None
        self.epoch = 0
        self.batch_in_epoch = 0
        self.total_step = 0
        self.last_step: StepResult | None = None
        # Run files wait for the run's first checkpoint (`_publish_run_files`): config.json (so a
        # resume that fails keeps the old one), and in a fresh run its metrics lines too, so that
        # a fresh run failing before then leaves no run file (`_discard_unpublished`).
        self._pending_config: str | None = None
        self._pending_lines: list[str] | None = None if self.resumed else []
        self._new_checkpoints: list[Path] | None = None if self.resumed else []
        initialisation.configure_quantizer(self.model, config, self.steps_per_epoch)
        if saved is not None:
            self._restore(saved.state)
        else:
            self._fresh_start()
        if collective is not None:
            self.normalization = collective.attach(self.model, self.normalization)

    @classmethod
    def resume_run(
        cls,
        run_dir: str | Path,
        data: PretrainData,
        given: Mapping[str, Any] | None = None,
        *,
        on_step: Callable[[dict], None] | None = None,
        on_epoch: Callable[[dict, list[LevelDiagnostics]], None] | None = None,
        collective: Collective | None = None,
    ) -> Trainer:
        """Continue RUN_DIR/last.pt; `given` holds only the settings the user gave
        (TrainConfig.resumed decides what they may change). Any number of processes may
        continue a run, whatever number wrote it (the batch is the same)."""
        saved = SavedRun.read(run_dir)
        config = TrainConfig.resumed(saved.config, given or {})
        return cls(config, data, run_dir, saved=saved, on_step=on_step, on_epoch=on_epoch, collective=collective)

    @property
    def planned_steps(self) -> int:
        """Optimizer steps the whole run takes (epochs × steps per epoch, or the step cap)."""
        total = self.config.epochs * self.steps_per_epoch
        return total if self.config.max_steps is None else min(total, self.config.max_steps)

    # -------------------------------------------------------------- setup
    def _build_model(self) -> None:
        """Seed, build every network and the optimizers (the seeds fix the initial weights)."""
        c = self.config
        initialisation.seed_everything(c.seed)
        fcid = c.method == "fcid"
        self._step = fcid_training_step if fcid else training_step
        text = self.shapes.get("text")
        if fcid:
            if text is None:
                raise CmgError("FCID trains on audio, video and text; this corpus has no text features",
                               expected="a text modality", actual="audio and video only")
            self.model = FcidPretrainModel(c, self.shapes["audio"][-1], self.shapes["video"][-1], text[-1])
        else:
            self.model = PretrainModel(
                c, self.shapes["audio"][-1], self.shapes["video"][-1], text[-1] if text else None,
                video_grid=video_has_grid(self.shapes),
            )
        self.model.quantizer.python_random.seed(c.seed)
        self.model.to(device=self.device, dtype=self.dtype)
        optimizers = (build_fcid_optimizers if fcid else build_optimizers)(self.model, c)
        self.optimizers = optimizers
        self.optimizer = optimizers.main
        self.mi_optimizers = optimizers.mi

    def _fresh_start(self) -> None:
        remedies = self.config.remedies
        if self.init_from is not None:
            self.normalization = initialisation.warm_start(self.model, self.init_from, self.config.levels)
        if remedies.standardize_inputs and self.normalization is None:
            self.normalization = initialisation.input_statistics(self.data, self.config)
        # A warm start brings level 1's codebook; only the others are initialised from data.
        levels_to_init = [lv for lv in range(self.config.levels) if not (self.init_from is not None and lv == 0)]
        # Distributed: rank 0's codebooks are broadcast (Collective.attach).
        if remedies.codebook_init != "uniform" and levels_to_init and self.is_main:
            initialisation.init_codebooks(
                self.model, self._semantic_sample(), self.config, levels_to_init, device=self.device, dtype=self.dtype,
            )
        if remedies.cosine_codes:
            initialisation.unit_codebooks(self.model, self.config.levels)
        if remedies.ema_consistent:
            initialisation.sync_ema_counts(self.model, self.config, self.model.codes_per_clip(self.shapes["audio"][0]))

    def _semantic_sample(self, max_clips: int = initialisation.SAMPLE_CLIPS) -> list[torch.Tensor]:
        return initialisation.semantic_sample(self.model, self.data, self.config, self._tensors, max_clips)

    def _restore(self, saved: dict) -> None:
        self.model.load_checkpoint_states(saved)
        self.model.to(device=self.device, dtype=self.dtype)
        self.optimizer.load_state_dict(saved[OPTIMIZER_KEY])
        for level, optimizers in enumerate(self.mi_optimizers):
            for m, optimizer in optimizers.items():
                optimizer.load_state_dict(saved[mi_optimizer_key(m, level)])
        if NORMALIZATION_KEY in saved:
            self.normalization = {k: v.float() for k, v in saved[NORMALIZATION_KEY].items()}
        state = saved[TRAINER_KEY]
        self.epoch, self.batch_in_epoch, self.total_step = state["next_epoch"], state["next_batch"], state["total_step"]
        set_rng_state(state["rng"], self.model.quantizer.python_random, self.device)
        if self.is_main:
            self._trim_metrics()

    @property
    def is_main(self) -> bool:
        """The process that writes (every process of a one-process run)."""
        return self.collective is None or self.collective.is_main

    def _trim_metrics(self) -> None:
        """Drop metrics lines written after the checkpoint we resume from (a crash after last.pt)."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        kept = []
        data = read_input_bytes(path, what="metrics file", max_bytes=MAX_METRICS_BYTES, allow_empty=True)
        lines = data.decode("utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                if number == len(lines):
                    continue  # the last line, cut by a crash
                raise CmgError(
                    f"{path}:{number}: cannot resume: not a metrics line (expected one JSON object per line; "
                    f"delete or fix the line)"
                ) from None
            position = record.get("epoch" if record.get("kind") == "epoch" else "total_step", 0) if isinstance(record, dict) else None
            if isinstance(position, bool) or not isinstance(position, int):
                raise CmgError(
                    f"{path}:{number}: cannot resume: not a metrics line (expected an object with an integer "
                    "epoch / total_step; delete or fix the line)"
                )
            if record.get("kind") == "epoch":
                if position < self.epoch:
                    kept.append(line)
            elif position <= self.total_step:
                kept.append(line)
        write_text_atomic(path, "".join(k + "\n" for k in kept))

    # -------------------------------------------------------------- one step
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return model_inputs(batch, dtype=self.dtype, device=self.device, stats=self.normalization)

    def train_step(self, rows: list[int]) -> dict[str, float]:
        """One optimizer step on the given corpus rows; returns every loss term and batch statistic.
        Distributed: `rows` is the whole batch; this process reads its shard, and the metrics
        returned are the batch's."""
        options = {}
        if self.collective is not None:
            rows = self.collective.shard(rows)
            self.collective.seed_step(self.config.seed, self.total_step)
            options["collective"] = self.collective
        raw = self.data.read(rows)
        check_batch(raw, len(rows), self.shapes)
        self.last_step = self._step(
            self.model, self.optimizers, self._tensors(raw), self.config, epoch=self.epoch, total_step=self.total_step,
            **options,
        )
        if self.collective is not None:
            self.last_step.metrics = self.collective.reduce_metrics(self.last_step.metrics)
        self.total_step += 1
        return self.last_step.metrics

    # -------------------------------------------------------------- schedule
    def _set_learning_rate(self) -> None:
        # MultiStepLR computed from the epoch (nothing to restore).
        factor = GAMMA ** sum(1 for m in MILESTONES if self.epoch >= m)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    @torch.no_grad()
    def diagnose(self) -> list[LevelDiagnostics]:
        """Codebook health on a fixed subset of the corpus, eval mode, no state change."""
        limit = self.config.diagnostics_clips
        if limit <= 0:
            return []
        rows = sorted(epoch_order(len(self.data), self.config.seed, DIAGNOSTICS_SUBSET)[:limit].tolist())
        indices: list[dict[str, list[torch.Tensor]]] = [{m: [] for m in self.modalities} for _ in range(self.config.levels)]
        semantic: list[dict[str, list[torch.Tensor]]] = [{m: [] for m in self.modalities} for _ in range(self.config.levels)]
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(rows), self.config.batch_size):
                inputs = self._tensors(self.data.read(rows[start : start + self.config.batch_size]))
                if "text" in inputs:
                    inputs["text"] = self.model.prepare_text(inputs["text"])
                for m in self.modalities:
                    features = self.model.encoder.semantic_features(m, inputs[m])
                    for level, feature in enumerate(features):
                        _, idx = quantize(feature, self.model.encoder.codebook(level))
                        indices[level][m].append(idx.reshape(feature.shape[:2]).cpu())
                        semantic[level][m].append(feature.double().cpu())
        finally:
            self.model.train(was_training)
        labels = getattr(self.data, "labels", None)
        label_tensor = torch.as_tensor(np.asarray(labels)[rows]) if labels is not None else None
        # A corpus that knows its event seconds limits the audio–video measures to them.
        events = getattr(self.data, "event_mask", None)
        event_tensor = torch.as_tensor(np.asarray(events)[rows]).bool() if events is not None else None
        return [
            level_diagnostics(
                level, self.config.n_embeddings,
                {m: torch.cat(v) for m, v in indices[level].items()},
                {m: torch.cat(v) for m, v in semantic[level].items()},
                label_tensor, event_tensor,
            )
            for level in range(self.config.levels)
        ]

    # -------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        """The checkpoint dict: the published keys plus trainer state for exact resumption."""
        out: dict[str, Any] = dict(self.model.checkpoint_states())
        out[OPTIMIZER_KEY] = self.optimizer.state_dict()
        for level, optimizers in enumerate(self.mi_optimizers):
            for m, optimizer in optimizers.items():
                out[mi_optimizer_key(m, level)] = optimizer.state_dict()
        out[EPOCH_KEY] = int(self.epoch if self.batch_in_epoch else max(self.epoch - 1, 0))
        out[TOTAL_STEP_KEY] = int(self.total_step)
        if self.normalization is not None:
            out[NORMALIZATION_KEY] = {k: v.clone() for k, v in self.normalization.items()}
        out[SCHEDULER_KEY] = {"milestones": list(MILESTONES), "gamma": GAMMA, "last_epoch": int(self.epoch)}
        out[CONFIG_KEY] = self.config.as_dict()
        out[TRAINER_KEY] = {
            "next_epoch": int(self.epoch),
            "next_batch": int(self.batch_in_epoch),
            "total_step": int(self.total_step),
            "rng": rng_state(self.model.quantizer.python_random, self.device),  # rank 0's streams
            "world_size": 1 if self.collective is None else self.collective.size,  # informational
        }
        return out

    def _save(self, path: Path) -> Path:
        if self.is_main:
            self._write_checkpoint(self.checkpoint(), path)
            self._publish_run_files()
        return path

    def _write_checkpoint(self, state: dict, path: Path) -> None:
        _save_checkpoint(state, path)
        if self._new_checkpoints is not None:
            self._new_checkpoints.append(path)

    def _save_published(self, epoch: int) -> Path | None:
        """Families whose published files hold less than ours (FCID) also get that file."""
        if not hasattr(self.model, "published_checkpoint") or not self.is_main:
            return None
        path = self.run_dir / PUBLISHED_FILE
        self._write_checkpoint(self.model.published_checkpoint(epoch, self.total_step), path)
        return path

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        line = json.dumps(record, sort_keys=True) + "\n"
        if self._pending_lines is not None:
            self._pending_lines.append(line)
        else:
            # Whole lines only: a failed append is cut back, so the metrics file stays as it was.
            append_text(self.run_dir / METRICS_FILE, line)

    def _publish_run_files(self) -> None:
        """After the run's first checkpoint: config.json, and a fresh run's metrics lines so far,
        each written whole; from then on metrics lines are appended as they come."""
        if not self.is_main:
            return
        if self._pending_config is not None:
            write_text_atomic(self.run_dir / CONFIG_FILE, self._pending_config)
            self._pending_config = None
        if self._pending_lines is not None:
            write_text_atomic(self.run_dir / METRICS_FILE, "".join(self._pending_lines))
            self._pending_lines = None
        self._new_checkpoints = None  # the run exists now: its checkpoints stay

    def _discard_unpublished(self, created: bool) -> None:
        """A fresh run that failed before its run files were written: remove the checkpoints it
        wrote so far, and its run folder when it made it and nothing else is there."""
        if self._new_checkpoints is None or not self.is_main:
            return
        for path in self._new_checkpoints:
            path.unlink(missing_ok=True)
        self._new_checkpoints = None
        if created:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only when empty

    def _write_config(self) -> None:
        c = self.config
        record = {
            **c.as_dict(),
            "encoder_sizes": self.model.sizes.as_dict(),
            "data": {"clips": len(self.data), "shapes": {k: list(v) for k, v in self.shapes.items()}},
            "steps_per_epoch": self.steps_per_epoch,
            "reset_after": self.model.quantizer.reset_after,
            "world_size": 1 if self.collective is None else self.collective.size,
        }
        if not self.is_main:
            return
        self._pending_config = json.dumps(record, indent=2, sort_keys=True) + "\n"

    # -------------------------------------------------------------- run
    def run(self) -> TrainResult:
        """Train to the end of the schedule (or the step cap). A fresh run that fails before its
        first checkpoint leaves no run files (and no run folder it made); a resumed run that fails
        keeps its config.json and checkpoints, and its metrics file gains whole lines only (those
        after its last checkpoint, which the next resume drops)."""
        created = not self.run_dir.exists()
        if self.is_main:  # only the writing process makes the folder
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._run()
        except BaseException:
            self._discard_unpublished(created)
            raise

    def _run(self) -> TrainResult:
        c = self.config
        self._write_config()
        self.model.train()
        epoch_paths: list[Path] = []
        last_metrics: dict[str, float] = {}
        diagnostics: list[LevelDiagnostics] = []
        stopped = False
        while self.epoch < c.epochs and not stopped:
            self._set_learning_rate()
            epoch_batches = batches(epoch_order(len(self.data), c.seed, self.epoch), c.batch_size)
            while self.batch_in_epoch < len(epoch_batches):
                if c.max_steps is not None and self.total_step >= c.max_steps:
                    stopped = True
                    break
                last_metrics = self.train_step(epoch_batches[self.batch_in_epoch])
                self.batch_in_epoch += 1
                record = {"kind": "step", "epoch": self.epoch, "total_step": self.total_step, **last_metrics}
                self._log(record)
                if self.on_step and self.is_main:
                    self.on_step(record)
                if c.save_every and self.total_step % c.save_every == 0:
                    self._save(self.run_dir / LAST_CHECKPOINT)
            if stopped:
                break
            diagnostics = self.diagnose() if self.is_main else []
            record = {
                "kind": "epoch", "epoch": self.epoch, "total_step": self.total_step,
                "diagnostics": [d.as_dict() for d in diagnostics],
            }
            self._log(record)
            if self.on_epoch and self.is_main:
                self.on_epoch(record, diagnostics)
            finished_epoch = self.epoch
            self.epoch += 1
            self.batch_in_epoch = 0
            if self.is_main:
                state = self.checkpoint()
                state[EPOCH_KEY] = finished_epoch
                self._write_checkpoint(state, self.run_dir / epoch_checkpoint_name(finished_epoch))
                self._write_checkpoint(state, self.run_dir / LAST_CHECKPOINT)
            epoch_paths.append(self.run_dir / epoch_checkpoint_name(finished_epoch))
            self._save_published(finished_epoch)
            self._publish_run_files()
        last = self._save(self.run_dir / LAST_CHECKPOINT)
        return TrainResult(
            run_dir=self.run_dir, total_step=self.total_step, epoch=self.epoch,
            finished=self.epoch >= c.epochs, last_checkpoint=last, epoch_checkpoints=epoch_paths,
            last_losses=last_metrics, diagnostics=diagnostics, config=c,
            published_checkpoint=self._save_published(self.epoch if self.batch_in_epoch else max(self.epoch - 1, 0)),
            is_main=self.is_main,
        )


def train(config: TrainConfig, data: PretrainData, run_dir: str | Path, **options: Any) -> TrainResult:
    """Train (or resume) a DCID / H-DCID model into RUN_DIR; `options` are `Trainer`'s keywords."""
    return Trainer(config, data, run_dir, **options).run()
