"""`toc train`: DCID / H-DCID pretraining on VGGSound-AVEL-layout features plus text features."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from hdcid.diagnostics import format_summary
from hdcid.train import DEFAULT_RECIPE, RECIPES, Remedies, TrainConfig, Trainer
from toc.data.layout import resolve_paths
from toc.data.vggsound import PairedClips, load_pretrain
from toc.errors import ConfigError, OutputExistsError

# Options that define the model / recipe; they may not change when resuming.
_FIXED_ON_RESUME = (
    "levels", "batch_size", "seed", "dtype", "reference_forwards", "level2_start", "level2_weight",
    "n_embeddings", "embedding_dim", "audio_output_dim", "video_output_dim", "text_output_dim",
    "lr", "mi_lr", "clip", "recipe", "standardize_inputs", "codebook_init", "reset_patience",
    "ema_consistent", "align_weight", "align_distance", "gap_weight", "warmup_steps",
)


def _remedies(recipe: str, **overrides) -> Remedies:
    base = RECIPES[recipe].remedies
    given = {k: v for k, v in overrides.items() if v is not None}
    return Remedies(**{**base.__dict__, **given})


def _per_recipe(field: str) -> str:
    return "[default: from --recipe: " + ", ".join(
        f"{name} {getattr(RECIPES[name], field)}" for name in sorted(RECIPES)
    ) + "]"


def _epochs_help() -> str:
    parts = []
    for name in sorted(RECIPES):
        r = RECIPES[name]
        if r.step_budget is None:
            parts.append(f"{name} {r.epochs[1]} DCID / {r.epochs[2]} H-DCID")
        else:
            parts.append(f"{name}: enough for {r.step_budget} steps, {r.epochs[1]} to {r.max_epochs}")
    return "Epochs [default: from --recipe: " + "; ".join(parts) + "]."


@click.command("train")
@click.option("--levels", type=click.Choice(["1", "2"]), default="2", help="1 = DCID (one codebook, width 256), 2 = H-DCID.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Root of the reference data layout (vggsound40k/...).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="vggsound-avel40k.csv (category,video_id,split); overrides --data-root.")
@click.option("--audio-dir", type=click.Path(file_okay=False), default=None, help="Folder of <video_id>.zip audio features [T,128].")
@click.option("--video-dir", type=click.Path(file_okay=False), default=None, help="Folder of <video_id>.zip video features [10,7,7,512].")
@click.option("--text-features", type=click.Path(dir_okay=False), default=None, help="h5 with 'labels' [K] category names and 'features' [K,10,W] word features.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help=_epochs_help())
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many optimizer steps in total (last.pt is written).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Clips per step " + _per_recipe("batch_size") + ".")
@click.option("--seed", type=int, default=43, help="Seed of every RNG (model init, data order, dropout, resets).")
@click.option("-o", "--output", "run_dir", type=click.Path(file_okay=False), default=None, help="RUN_DIR for checkpoints, metrics.jsonl, config.json (default with --resume: the resumed run).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Where training runs.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", help="Compute dtype (the reference trains in float64).")
@click.option("--reference-forwards", is_flag=True, default=False, help="H-DCID: run the encoder 6x per batch like the published code (5 CLUB iterations + 1); DCID always runs it once.")
@click.option("--save-every", type=click.IntRange(min=0), default=0, help="Also write RUN_DIR/last.pt every N steps (0: epoch ends and run end only).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None, help="Continue RUN_DIR/last.pt exactly (same losses as an uninterrupted run on CPU).")
@click.option("--init-from", type=click.Path(dir_okay=False), default=None, help="Warm-start H-DCID level 1 from a DCID checkpoint.")
@click.option("--level2-start", type=click.IntRange(min=0), default=3, help="H-DCID: first epoch (0-based) whose loss includes level 2.")
@click.option("--level2-weight", type=float, default=0.3, help="H-DCID: weight of the level-2 loss.")
@click.option("--n-embeddings", type=click.IntRange(min=2), default=400, help="Codes per codebook.")
@click.option("--embedding-dim", type=click.IntRange(min=4), default=256, help="Code width (H-DCID; DCID fixes it at 256).")
@click.option("--audio-output-dim", type=click.IntRange(min=1), default=None, help="Audio-specific feature width " + _per_recipe("audio_output_dim") + ".")
@click.option("--video-output-dim", type=click.IntRange(min=2), default=None, help="Video-specific feature width " + _per_recipe("video_output_dim") + ".")
@click.option("--text-output-dim", type=click.IntRange(min=1), default=None, help="Text-specific feature width " + _per_recipe("text_output_dim") + ".")
@click.option("--lr", type=float, default=4e-4, help="Adam learning rate of the main model.")
@click.option("--mi-lr", type=float, default=1e-3, help="Adam learning rate of the CLUB estimators.")
@click.option("--clip", type=float, default=0.5, help="Gradient-norm clip, per module.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default=DEFAULT_RECIPE, show_default=True, help="Training preset: remedies, batch size, specific widths, epochs (docs/training.md); reference = the published recipe. Single options override it.")
@click.option("--standardize-inputs/--no-standardize-inputs", default=None, help="Z-score audio/video channels; statistics stored in the checkpoint (Input_normalization).")
@click.option("--codebook-init", type=click.Choice(["uniform", "sample", "kmeans"]), default=None, help="Codebook initialisation (uniform = reference).")
@click.option("--reset-patience", default=None, help="Dead-code reset patience: reference (300 batches), auto (one epoch) or an integer.")
@click.option("--ema-consistent/--no-ema-consistent", default=None, help="Start EMA counts/weights consistent with the codebook and keep resets.")
@click.option("--align-weight", type=float, default=None, help="Weight of the InfoNCE alignment between modalities' semantic features (0 = off).")
@click.option("--align-distance", type=click.Choice(["cosine", "euclidean"]), default=None, help="Alignment logits: cosine similarity, or squared distance (pulls paired features to one point, so they share a code).")
@click.option("--gap-weight", type=float, default=None, help="Weight of the modality-gap term: squared distance between modalities' semantic-feature centroids relative to their norm (0 = off).")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=None, help="Linear warm-up of the CLUB and commitment loss weights (0 = off).")
@click.option("--diagnostics-clips", type=click.IntRange(min=0), default=1024, help="Clips used for the per-epoch diagnostics (0 = none).")
@click.option("--force", is_flag=True, default=False, help="Train into a RUN_DIR that already holds a run.")
@click.pass_context
def train(ctx: click.Context, levels, data_root, csv_path, audio_dir, video_dir, text_features, epochs,
          max_steps, batch_size, seed, run_dir, device, dtype, reference_forwards, save_every,
          resume_dir, init_from, level2_start, level2_weight, n_embeddings, embedding_dim,
          audio_output_dim, video_output_dim, text_output_dim, lr, mi_lr, clip, recipe,
          standardize_inputs, codebook_init, reset_patience, ema_consistent, align_weight,
          align_distance, gap_weight, warmup_steps, diagnostics_clips, force):
    """Pretrain a DCID (--levels 1) or H-DCID (--levels 2) model.

    Writes RUN_DIR/epoch-{E}.pt after every epoch (E from 0), RUN_DIR/last.pt every --save-every
    steps and at the end of the run, RUN_DIR/metrics.jsonl (one line per step and per epoch) and
    RUN_DIR/config.json. Checkpoints use the published layout; `Encoder_parameters` loads into
    `toc inspect / select / encode` and the reference code. Prints a JSON summary on stdout.
    """
    if resume_dir is None and run_dir is None:
        raise click.UsageError("give -o RUN_DIR (or --resume RUN_DIR)")
    if resume_dir is not None:
        if run_dir is not None and Path(run_dir).resolve() != Path(resume_dir).resolve():
            raise click.UsageError("--resume continues in its own RUN_DIR; drop -o or give the same folder")
        if init_from is not None:
            raise click.UsageError("--init-from starts a new run; it cannot be combined with --resume")
        changed = [
            name for name in _FIXED_ON_RESUME
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if changed:
            raise ConfigError(
                f"--resume continues the saved configuration; these options cannot change: "
                f"{', '.join('--' + n.replace('_', '-') for n in changed)}"
            )
        run_dir = resume_dir
    target = Path(run_dir)
    if resume_dir is None and target.exists() and any(target.glob("*.pt")) and not force:
        raise OutputExistsError(f"{target}: already holds a run; pass --resume {target} to continue or --force")
    if reset_patience is not None and reset_patience not in ("reference", "auto") and not reset_patience.isdigit():
        raise click.BadParameter("reference, auto or a positive integer", param_hint="--reset-patience")
    if (data_root is None) and not (csv_path and audio_dir and video_dir and text_features):
        raise click.UsageError("give --data-root DIR, or all of --csv, --audio-dir, --video-dir and --text-features")
    paths = resolve_paths("pretrain", data_root=data_root, overrides={
        "csv": csv_path, "audio_dir": audio_dir, "video_dir": video_dir, "text_features": text_features,
    })
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
    corpus = PairedClips(load_pretrain(paths))
    keep_saved = ("epochs",) if resume_dir is not None and epochs is None else ()
    config = TrainConfig.from_recipe(
        recipe, n_clips=len(corpus), levels=int(levels), epochs=epochs, max_steps=max_steps, seed=seed,
        device=device, dtype=dtype, reference_forwards=reference_forwards, save_every=save_every,
        level2_start=level2_start, level2_weight=level2_weight, n_embeddings=n_embeddings,
        embedding_dim=embedding_dim, lr=lr, mi_lr=mi_lr, clip=clip, diagnostics_clips=diagnostics_clips,
        batch_size=batch_size, audio_output_dim=audio_output_dim, video_output_dim=video_output_dim,
        text_output_dim=text_output_dim,
        remedies=_remedies(
            recipe, standardize_inputs=standardize_inputs, codebook_init=codebook_init,
            reset_patience=reset_patience, ema_consistent=ema_consistent,
            align_weight=align_weight, align_distance=align_distance, gap_weight=gap_weight,
            warmup_steps=warmup_steps,
        ),
    )
    bar = tqdm(desc="train", unit="step", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)

    def on_step(record: dict) -> None:
        bar.update(1)
        bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.3f}", refresh=False)

    def on_epoch(record: dict, diagnostics) -> None:
        line = f"epoch {record['epoch']} step {record['total_step']}: {format_summary(diagnostics)}"
        bar.write(line, file=sys.stderr)
        for d in diagnostics:
            for warning in d.warnings:
                bar.write(f"warning: {warning}", file=sys.stderr)

    trainer = Trainer(
        config, corpus, target, resume=resume_dir is not None, init_from=init_from,
        on_step=on_step, on_epoch=on_epoch, keep_saved=keep_saved,
    )
    bar.total = trainer.config.epochs * trainer.steps_per_epoch
    if trainer.config.max_steps is not None:
        bar.total = min(bar.total, trainer.config.max_steps)
    bar.n = trainer.total_step
    try:
        result = trainer.run()
    finally:
        bar.close()
    summary = {
        "run_dir": str(result.run_dir),
        "total_step": result.total_step,
        "epoch": result.epoch,
        "epochs": trainer.config.epochs,
        "recipe": trainer.config.recipe,
        "finished": result.finished,
        "last_checkpoint": str(result.last_checkpoint),
        "epoch_checkpoints": [str(p) for p in result.epoch_checkpoints],
        "last_losses": {k: result.last_losses[k] for k in sorted(result.last_losses) if k.startswith("loss")},
    }
    click.echo(json.dumps(summary, sort_keys=True))


COMMANDS = [train]
