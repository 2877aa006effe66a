"""An evaluation session: one checkpoint, loaded once, whose codes are encoded once per feature
set and dtype and read by every variant, head and seed — the chain behind `toc eval`,
`toc compare` and `toc demo`. Also `toc eval`'s rules for which options go together."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from toc.codebook.checkpoint import ENCODING_READS, Checkpoint, load_checkpoint
from toc.codebook.presets import preset_settings
from toc.codebook.scoring import score_weights
from toc.codebook.selection import SelectionFile, TocSettings, read_selection, selection_for
from toc.data.base import TaskData
from toc.errors import SettingsError
from toc.eval.cache import FINGERPRINTS, CheckpointCodeSource, CodeCache
from toc.eval.loop import EvalRequest, run_evaluation
from toc.eval.overlap import OVERLAP_POLICIES, find_pretraining_list
from toc.eval.protocols import DIRECTIONS, checkpoint_reads
from toc.eval.records import ResultRecord
from toc.eval.tasks import load_task
from toc.eval.variants import VARIANTS, default_variants, family_of_checkpoint
from toc.progress import LogFn, ProgressFactory, no_log, no_progress


@dataclass
class EvalSession:
    """A checkpoint and its encode-once code cache."""

    checkpoint: Checkpoint
    cache: CodeCache

    @staticmethod
    def open(
        path: str | Path, *, trust_checkpoint: bool = False, device: str = "cpu",
        cache_dir: str | Path | None = None, encode_batch_size: int = 64,
        progress: ProgressFactory = no_progress, cache_fingerprint: str = "stat",
        reads: Collection[str] = ENCODING_READS, staged_cache: bool = False,
    ) -> EvalSession:
        """`reads`: the checkpoint fields the caller's results depend on (load_checkpoint);
        `staged_cache`: cache files are put in place only by `cache.commit()` (CodeCache)."""
        checkpoint = load_checkpoint(path, trust_checkpoint=trust_checkpoint, reads=reads)
        source = CheckpointCodeSource(checkpoint, device=device)
        cache = CodeCache(
            source, cache_dir, batch_size=encode_batch_size, progress=progress, fingerprint=cache_fingerprint,
            staged=staged_cache,
        )
        return EvalSession(checkpoint, cache)

    def select(self, settings: TocSettings) -> SelectionFile:
        """TOC on this checkpoint's codebooks (every level), in memory."""
        return selection_for(self.checkpoint, settings)

    @property
    def variant_family(self) -> str:
        """dcid, hdcid or fcid: which variants read this checkpoint (toc.eval.variants)."""
        return family_of_checkpoint(self.checkpoint.family, self.checkpoint.levels)

    def evaluate(self, data: TaskData, request: EvalRequest, *, log: LogFn = no_log) -> Iterator[ResultRecord]:
        return run_evaluation(data, self.cache, request, log=log)


@dataclass(frozen=True)
class TocOptions:
    """TOC as `toc eval` is asked for it: a selection file, inline settings, or a named preset of
    published settings (toc.codebook.presets; None = not given)."""

    selection: str | Path | None = None
    channels: int | None = None
    max_num: int | None = None
    min_num: int | None = None
    exact_budget: bool = False
    sim_weight: float | None = None
    var_weight: float | None = None
    score: str | None = None  # a named (sim_weight, var_weight) pair: sim_var, sim_only
    preset: str | None = None  # "published": the task's published setting for this checkpoint

    @property
    def inline_extras(self) -> tuple[str, ...]:
        """The inline settings given besides `channels`."""
        given = {"max_num": self.max_num, "min_num": self.min_num, "sim_weight": self.sim_weight,
                 "var_weight": self.var_weight, "score": self.score, "exact_budget": self.exact_budget or None}
        return tuple(name for name, value in given.items() if value is not None)

    @property
    def given(self) -> bool:
        return self.selection is not None or self.channels is not None or self.preset is not None

    def settings(self) -> TocSettings:
        if self.score is not None and (self.sim_weight is not None or self.var_weight is not None):
            raise SettingsError("{} sets both weights; drop {} / {}", settings=("score", "sim_weight", "var_weight"))
        weights = dict(zip(("sim_weight", "var_weight"), score_weights(self.score), strict=True)) if self.score else {}
        weights.update({k: v for k, v in (("sim_weight", self.sim_weight), ("var_weight", self.var_weight)) if v is not None})
        return TocSettings(
            channels=int(self.channels), max_num=1 if self.max_num is None else self.max_num,
            min_num=1 if self.min_num is None else self.min_num, exact_budget=self.exact_budget, **weights,
        )


@dataclass(frozen=True)
class EvalOptions:
    """Everything `toc eval` is asked: one task, one checkpoint, variants × directions × heads × seeds."""

    task: str
    checkpoint: str | Path
    data_root: str | Path | None = None
    config: str | Path | None = None
    variants: Sequence[str] = ()  # empty: the checkpoint's own variant
    toc: TocOptions = field(default_factory=TocOptions)
    directions: Sequence[str] = DIRECTIONS
    heads: Sequence[str] = ("linear",)
    protocol: str = "strict"
    seeds: Sequence[int] = (0,)
    epochs: int | None = None
    batch_size: int = 80
    head_threads: int | None = None
    head_engine: str = "grouped"  # toc.eval.head_groups.HEAD_ENGINES
    head_workers: int | None = None  # grouped heads: worker processes (None: the usable CPU cores)
    split_seed: int = 0
    split_seeds: Sequence[int] | None = None  # several strict video-level splits
    pretrain_csv: str | Path | None = None  # None: the data layout's pretraining CSV, if present
    pretrain_overlap: str = "report"  # or "exclude" (toc.eval.overlap)
    cache_dir: str | Path | None = None
    cache_fingerprint: str = "stat"
    dtype: str = "float32"
    encode_batch_size: int = 64
    device: str = "cpu"
    trust_checkpoint: bool = False

    @property
    def wants_toc(self) -> bool:
        if self.variants:
            return any(VARIANTS[name].uses_selection for name in self.variants if name in VARIANTS)
        return self.toc.given

    def check(self) -> None:
        """The rules for options that only make sense together (SettingsError names them)."""
        toc = self.toc
        if self.data_root is None and self.config is None:
            raise SettingsError("give {} DIR or {} FILE (or both)", settings=("data_root", "config"))
        chosen = [name for name, value in (("selection", toc.selection), ("channels", toc.channels), ("toc_preset", toc.preset)) if value is not None]
        if len(chosen) > 1:
            raise SettingsError(" and ".join(["{}"] * len(chosen)) + " are alternatives; give one", settings=tuple(chosen))
        if toc.channels is None and toc.inline_extras:
            names = toc.inline_extras
            if set(names) <= {"max_num", "min_num"}:
                names = ("max_num", "min_num")
            raise SettingsError(" / ".join(["{}"] * len(names)) + " need {}", settings=(*names, "channels"))
        if toc.given and not self.wants_toc:
            raise SettingsError(
                "{} / {} / {} apply only to the +toc variants; none was requested",
                settings=("selection", "channels", "toc_preset"),
            )
        if self.wants_toc and not toc.given:
            raise SettingsError(
                "the +toc variants need {} FILE, {} C [{} A {} B] or {} published",
                settings=("selection", "channels", "max_num", "min_num", "toc_preset"),
            )
        if toc.channels is not None:
            toc.settings()  # validates the inline settings before any work
        if "linear" not in self.heads and self.epochs is not None:
            raise SettingsError("{} applies only to {} linear", settings=("epochs", "head"))
        if self.split_seeds is not None and self.split_seed != 0:
            raise SettingsError("{} and {} are alternatives; give one", settings=("split_seed", "split_seeds"))
        if self.pretrain_overlap not in OVERLAP_POLICIES:
            raise SettingsError(
                f"{{}} must be one of {', '.join(OVERLAP_POLICIES)}", settings=("pretrain_overlap",),
            )
        if self.cache_fingerprint not in FINGERPRINTS:
            raise SettingsError(
                f"{{}} must be one of {', '.join(FINGERPRINTS)}", settings=("cache_fingerprint",),
            )


def evaluate_task(
    options: EvalOptions, *, progress: ProgressFactory = no_progress, log: LogFn = no_log,
) -> Iterator[ResultRecord]:
    """`toc eval`: check the options, load the checkpoint and task, and yield one record per
    (direction, variant, head, seed). Inline TOC settings are selected once, in memory. Cache
    files are put in place when the last record has been yielded: an evaluation that fails
    leaves none."""
    options.check()
    selection = read_selection(options.toc.selection) if options.toc.selection is not None else None
    session = EvalSession.open(
        options.checkpoint, trust_checkpoint=options.trust_checkpoint, device=options.device,
        cache_dir=options.cache_dir, encode_batch_size=options.encode_batch_size, progress=progress,
        cache_fingerprint=options.cache_fingerprint, staged_cache=True,
        reads=checkpoint_reads(options.protocol, options.heads),
    )
    with session.cache.kept_on_success():
        yield from _evaluate_opened(session, options, selection, log)


def _evaluate_opened(
    session: EvalSession, options: EvalOptions, selection: SelectionFile | None, log: LogFn,
) -> Iterator[ResultRecord]:
    """evaluate_task's work once the checkpoint is open: selection, task, records."""
    if options.toc.channels is not None:
        selection = session.select(options.toc.settings())
    elif options.toc.preset is not None:
        settings = preset_settings(options.toc.preset, options.task, session.variant_family)
        selection = session.select(settings)
    elif selection is not None:
        selection.check_made_for(session.checkpoint)  # never apply another checkpoint's channels
    variants = list(options.variants) or default_variants(
        session.checkpoint.levels, options.wants_toc, session.checkpoint.family,
    )
    data = load_task(options.task, data_root=options.data_root, config=options.config)
    pretraining = None
    if options.protocol == "strict":
        pretraining = find_pretraining_list(
            options.pretrain_csv, data_root=options.data_root, config=options.config,
            policy=options.pretrain_overlap,
        )
    request = EvalRequest(
        variants=variants, directions=tuple(options.directions), heads=tuple(options.heads),
        protocol=options.protocol, seeds=tuple(options.seeds), epochs=options.epochs,
        batch_size=options.batch_size, dtype=options.dtype, selection=selection,
        split_seed=options.split_seed, head_threads=options.head_threads,
        split_seeds=None if options.split_seeds is None else tuple(options.split_seeds),
        pretraining=pretraining, head_engine=options.head_engine, head_workers=options.head_workers,
    )
    yield from session.evaluate(data, request, log=log)
