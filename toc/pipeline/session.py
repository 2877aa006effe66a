"""An evaluation session: one checkpoint, loaded once, whose codes are encoded once per feature
set and dtype and read by every variant, head and seed — the chain behind `toc eval`,
`toc compare` and `toc demo`. Also `toc eval`'s rules for which options go together, and
`--channels auto` (the budget chosen on validation, toc.pipeline.budget) on the way."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from hdcid.vocabulary import DEFAULT_DEVICE, DEFAULT_DTYPE
from toc.codebook.checkpoint import ENCODING_READS, Checkpoint, load_checkpoint
from toc.codebook.presets import preset_settings
from toc.codebook.selection import SelectionFile, read_selection, selection_for
from toc.codebook.settings import TOC_SOURCES, TocRequest, TocSettings, check_auto
from toc.data.base import TaskData
from toc.errors import SettingsError
from toc.eval.cache import CheckpointCodeSource, CodeCache
from toc.eval.loop import EvalRequest, run_evaluation
from toc.eval.overlap import find_pretraining_list
from toc.eval.protocols import checkpoint_reads
from toc.eval.records import ResultRecord
from toc.eval.tasks import load_task
from toc.eval.variants import VARIANTS, default_variants, method_of_checkpoint
from toc.pipeline.budget import choose_budgets, with_choices, with_file_choice
from toc.progress import LogFn, ProgressFactory, no_log, no_progress
from toc.vocabulary import (
    DEFAULT_HEAD_ENGINE,
    DEFAULT_HEADS,
    DEFAULT_PROTOCOL,
    DEFAULT_SEEDS,
    DIRECTIONS,
    ENCODE_BATCH_SIZE,
    FINGERPRINTS,
    HEAD_BATCH_SIZE,
    OVERLAP_POLICIES,
)


@dataclass
class EvalSession:
    """A checkpoint and its encode-once code cache."""

    checkpoint: Checkpoint
    cache: CodeCache

    @staticmethod
    def open(
        path: str | Path, *, trust_checkpoint: bool = False, device: str = DEFAULT_DEVICE,
        cache_dir: str | Path | None = None, encode_batch_size: int = ENCODE_BATCH_SIZE,
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

    def selection(self, toc: TocRequest | TocSettings | Path | None, task: str) -> SelectionFile | None:
        """The selection TOC was asked for, for this checkpoint: read from a file (refused when
        it was made for another checkpoint), selected from inline settings or from the task's
        published preset; None without TOC."""
        if isinstance(toc, TocSettings):
            return self.select(toc)
        if isinstance(toc, Path):
            return read_selection(toc, made_for=self.checkpoint)
        if toc is None or not toc.given:
            return None
        if toc.channels is not None:
            return self.select(toc.settings())
        if toc.preset is not None:
            return self.select(preset_settings(toc.preset, task, self.method))
        if toc.auto:
            raise SettingsError(
                "{} auto is chosen per direction on a validation split, not once per checkpoint "
                "(toc.pipeline.budget.choose_budgets)", settings=("channels",),
            )
        return read_selection(toc.selection, made_for=self.checkpoint)

    @property
    def method(self) -> str:
        """dcid, hdcid or fcid: which variants read this checkpoint (toc.eval.variants)."""
        return method_of_checkpoint(self.checkpoint.family, self.checkpoint.levels)

    def evaluate(self, data: TaskData, request: EvalRequest, *, log: LogFn = no_log) -> Iterator[ResultRecord]:
        return run_evaluation(data, self.cache, request, log=log)


@dataclass(frozen=True)
class EvalOptions:
    """Everything `toc eval` is asked: one task, one checkpoint, variants × directions × heads × seeds."""

    task: str
    checkpoint: str | Path
    data_root: str | Path | None = None
    config: str | Path | None = None
    variants: Sequence[str] = ()  # empty: the checkpoint's own variant
    toc: TocRequest = field(default_factory=TocRequest)
    directions: Sequence[str] = DIRECTIONS
    heads: Sequence[str] = DEFAULT_HEADS
    protocol: str = DEFAULT_PROTOCOL
    seeds: Sequence[int] = DEFAULT_SEEDS
    epochs: int | None = None
    batch_size: int = HEAD_BATCH_SIZE
    head_threads: int | None = None
    head_engine: str = DEFAULT_HEAD_ENGINE
    head_workers: int | None = None  # grouped heads: worker processes (None: the usable CPU cores)
    split_seed: int = 0
    split_seeds: Sequence[int] | None = None  # several strict video-level splits
    pretrain_csv: str | Path | None = None  # None: the data layout's pretraining CSV, if present
    pretrain_overlap: str = OVERLAP_POLICIES[0]
    cache_dir: str | Path | None = None
    cache_fingerprint: str = FINGERPRINTS[0]
    dtype: str = DEFAULT_DTYPE
    encode_batch_size: int = ENCODE_BATCH_SIZE
    device: str = DEFAULT_DEVICE
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
        toc.check(TOC_SOURCES, auto=True)
        if toc.auto:
            check_auto(self.protocol, self.heads)
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
    session = EvalSession.open(
        options.checkpoint, trust_checkpoint=options.trust_checkpoint, device=options.device,
        cache_dir=options.cache_dir, encode_batch_size=options.encode_batch_size, progress=progress,
        cache_fingerprint=options.cache_fingerprint, staged_cache=True,
        reads=checkpoint_reads(options.protocol, options.heads),
    )
    with session.cache.kept_on_success():
        yield from _evaluate_opened(session, options, log)


def _evaluate_opened(session: EvalSession, options: EvalOptions, log: LogFn) -> Iterator[ResultRecord]:
    """evaluate_task's work once the checkpoint is open: selection (or the budgets chosen on
    validation), task, records."""
    selection = None if options.toc.auto else session.selection(options.toc, options.task)
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
    if not options.toc.auto:
        yield from with_file_choice(session.evaluate(data, request, log=log), selection)
        return
    search = options.toc.search()
    outcomes = choose_budgets(session, data, request, search, log=log)
    request = replace(request, selections={key: outcome.selection for key, outcome in outcomes.items()})
    yield from with_choices(session.evaluate(data, request, log=log), outcomes, data, session, request, search)
