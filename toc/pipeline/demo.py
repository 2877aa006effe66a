"""The main job on built-in data: synthesise → train DCID and H-DCID → TOC → evaluate → report."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from hdcid.diagnostics import AUDIO_VIDEO, LevelDiagnostics
from hdcid.training import RECIPES, TrainConfig, train
from toc.codebook.checkpoint import file_sha256
from toc.codebook.selection import TocSettings
from toc.corpora.synthetic import synthesize
from toc.data.layout import resolve_paths
from toc.data.vggsound import PairedClips, load_pretrain
from toc.errors import ConfigError
from toc.eval.tasks import REFERENCE_TASKS, chance_level
from toc.pipeline.compare import run_plan, selection_file_name, write_comparison
from toc.pipeline.plan import make_plan
from toc.progress import LogFn, no_log
from toc.report.results import HealthRecord
from toc.vocabulary import DEMO_RECIPE


@dataclass(frozen=True)
class DemoSettings:
    """CPU-sized defaults: the whole demo fits in minutes on 2 cores."""

    scale: float = 1.0
    seed: int = 0  # of the corpus, and of the first pretraining run
    # Pretraining runs per family (training seeds seed, seed + 1, ...): the report shows the
    # spread across them and resamples them; DCID run k pairs with H-DCID run k.
    pretrain_runs: int = 2
    epochs: int = 6  # the published DCID n_epoch
    batch_size: int = 16
    seeds: tuple[int, ...] = (0, 1, 2)
    heads: tuple[str, ...] = ("prototype", "linear", "codes")  # codes: transfer through code ids
    head_epochs: int = 30
    recipe: str = DEMO_RECIPE  # remedies only: the demo keeps its own sizes below
    output_dims: int = 32  # audio / video / text specific widths (published: 256 / 2048 / 256)
    n_embeddings: int = 64
    hdcid_width: int = 64
    dcid_channels: int = 128  # of 256 (DCID's code width is fixed at 256)
    hdcid_channels: int = 32  # per level, of hdcid_width
    tasks: tuple[str, ...] = REFERENCE_TASKS

    @staticmethod
    def quick() -> DemoSettings:
        return DemoSettings(scale=0.25, epochs=2, seeds=(0, 1), head_epochs=10, pretrain_runs=1)


@dataclass
class DemoResult:
    out_dir: Path
    report_files: list[Path]
    checkpoints: dict[str, list[Path]]  # per family, one per pretraining run
    seconds: dict[str, float] = field(default_factory=dict)


def _train_config(settings: DemoSettings, levels: int, run: int) -> TrainConfig:
    return TrainConfig(
        levels=levels,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed + run,
        # The recipe's level-2 start (shared-codes: 0, see docs/training.md), but within the run.
        level2_start=min(RECIPES[settings.recipe].level2_start, max(1, settings.epochs // 2)) if levels == 2 else 3,
        n_embeddings=settings.n_embeddings,
        embedding_dim=256 if levels == 1 else settings.hdcid_width,
        audio_output_dim=settings.output_dims,
        video_output_dim=settings.output_dims,
        text_output_dim=settings.output_dims,
        diagnostics_clips=256,
        remedies=RECIPES[settings.recipe].remedies,
        recipe=settings.recipe,
    )


def _health_lines(family: str, checkpoint: Path, diagnostics) -> list[HealthRecord]:
    sha = file_sha256(checkpoint)
    lines = []
    for level in diagnostics:
        lines.append(HealthRecord(
            fields={
                "family": family,
                "checkpoint": str(checkpoint),
                "checkpoint_sha256": sha,
                "level": level.level,
                "n_codes": level.n_codes,
                "codes_used": level.codes_used_any,
                "codes_used_common": level.audio_video_codes_shared,  # used by both audio and video
                "perplexity": round(level.perplexity_all, 4),
                # The audio–video pair only (text positions are prompt tokens, not seconds).
                "agreement": round(100.0 * level.audio_video_agreement, 4),
                **_pair_fields(level),
                "probe_accuracy": {k: round(100.0 * v, 4) for k, v in sorted(level.probe_accuracy.items())},
            },
            source="",
        ))
    return lines


def _pair_fields(level: LevelDiagnostics) -> dict:
    """Chance-corrected audio–video sharing of a health line (None where not measured)."""
    pair = level.pairs.get(AUDIO_VIDEO)
    kappa = None if pair is None or pair.kappa is None else round(pair.kappa, 4)
    nmi = None if pair is None or pair.nmi is None else round(pair.nmi, 4)
    return {"kappa_audio_video": kappa, "nmi_audio_video": nmi}


def demo_plan(settings: DemoSettings, data_root: Path, checkpoints: Mapping[str, Path | Sequence[Path]]):
    """The demo's comparison: every task, direction and variant, the demo's heads (prototype, linear
    and code-id), strict protocol, with the demo's TOC budget per family, over every pretraining run."""
    budgets = {"dcid": settings.dcid_channels, "hdcid": settings.hdcid_channels}
    return make_plan(
        source="toc demo", data_root=data_root, checkpoints=checkpoints, tasks=settings.tasks,
        heads=settings.heads, seeds=settings.seeds, protocol="strict",
        epochs=settings.head_epochs, toc=lambda _task, family: TocSettings(channels=budgets[family]),
    )


def run_demo(out_dir: str | Path, settings: DemoSettings = DemoSettings(), *, force: bool = False, log: LogFn = no_log) -> DemoResult:
    """Run the whole pipeline into `out_dir` (data/, runs/, report files)."""
    say = log
    out = Path(out_dir)
    if settings.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {settings.recipe!r}; choose from {', '.join(RECIPES)}")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out}: output folder is not empty; pass {{}} to replace the demo in it", settings=("force",))
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    start = time.monotonic()
    say(f"demo: synthesising the corpus (scale {settings.scale}, seed {settings.seed})")
    data_root = out / "data"
    synthesize(data_root, scale=settings.scale, seed=settings.seed, force=True)
    seconds["synth"] = time.monotonic() - start

    corpus = PairedClips(load_pretrain(resolve_paths("pretrain", data_root=data_root)))
    if settings.pretrain_runs < 1:
        raise ConfigError(f"the demo needs at least one pretraining run, got {settings.pretrain_runs}")
    checkpoints: dict[str, list[Path]] = {}
    health: list[HealthRecord] = []
    for family, levels in (("dcid", 1), ("hdcid", 2)):
        start = time.monotonic()
        for run in range(settings.pretrain_runs):
            say(
                f"demo: training {family.upper()} run {run} (seed {settings.seed + run}, {settings.epochs} epochs, "
                f"{len(corpus)} clips, recipe {settings.recipe})"
            )
            run_dir = out / "runs" / (family if settings.pretrain_runs == 1 else f"{family}-p{run}")
            result = train(
                _train_config(settings, levels, run), corpus, run_dir,
                on_epoch=lambda metrics, diagnostics, family=family: say(
                    f"demo: {family} epoch {metrics.get('epoch')}: "
                    + "; ".join(f"level {d.level}: {d.codes_used_any}/{d.n_codes} codes, audio-video agreement {100 * d.audio_video_agreement:.1f}%" for d in diagnostics)
                ),
            )
            checkpoints.setdefault(family, []).append(result.last_checkpoint)
            health += _health_lines(family, result.last_checkpoint, result.diagnostics)
        seconds[f"train_{family}"] = time.monotonic() - start

    start = time.monotonic()
    resolved = {k: [p.resolve() for p in v] for k, v in checkpoints.items()}
    # One pretraining run: plain paths, so the records carry no pretraining-run label.
    plan = demo_plan(
        settings, data_root.resolve(),
        {k: (v[0] if settings.pretrain_runs == 1 else v) for k, v in resolved.items()},
    )
    run = run_plan(plan, out, log=say)
    run.records[:] = [replace(r, chance=chance_level(run.tasks[r.task])) for r in run.records]
    seconds["evaluate"] = time.monotonic() - start

    say("demo: writing the report")
    # The TOC figures of the first pretraining run (one per task and family).
    first_run = {
        selection_file_name(task, family, None if settings.pretrain_runs == 1 else 0)
        for task in settings.tasks for family in ("dcid", "hdcid")
    }
    selection_files = sorted(
        m.selection.path for m in run.made_selections if Path(m.selection.path).name in first_run
    )
    # The demo owns its folder (refused above unless empty or forced): replace its earlier report.
    written = write_comparison(run, out, health=health, selection_files=selection_files, source=plan.source, force=True)
    return DemoResult(out_dir=out, report_files=list(written.files), checkpoints=checkpoints, seconds=seconds)
