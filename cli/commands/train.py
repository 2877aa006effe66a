"""`toc train`: DCID / H-DCID / FCID pretraining on own paired features or on
VGGSound-AVEL-layout features plus text features.

The command only reads options and shows progress: which settings were given, the resume and
overwrite rules and every default live in `hdcid.training` (`run_training`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.options import SettingOption, command
from hdcid.errors import ModelError
from hdcid.recipes import RECIPES, new_run_default, parse_reset_patience
from hdcid.vocabulary import (
    ALIGN_DISTANCES,
    CODEBOOK_INITS,
    DEVICES,
    DTYPES,
    METHODS,
    RESET_SOURCES,
    SWAP_TARGETS,
)


def _setting(name: str) -> dict:
    """Keyword arguments of a click option for a setting with a fixed new-run default."""
    return {"cls": SettingOption, "shown_default": new_run_default(name)}


def _recipe_setting(name: str | None = None) -> dict:
    """Keyword arguments of a click option for a setting whose default comes from --recipe;
    with the remedy's `name`, --help shows its value in each recipe (one value if they agree)."""
    if name is None:
        return {"cls": SettingOption}
    values = {recipe: getattr(RECIPES[recipe].remedies, name) for recipe in sorted(RECIPES)}
    if len(set(values.values())) == 1:
        return {"cls": SettingOption, "shown_default": next(iter(values.values()))}
    return {"cls": SettingOption, "shown_default": "from --recipe: " + ", ".join(f"{k} {v}" for k, v in values.items())}


class ResetPatienceType(click.ParamType):
    name = "text"

    def convert(self, value, param, ctx):
        try:
            return parse_reset_patience(value)
        except ModelError:
            raise click.BadParameter("reference, auto, off or a positive integer", ctx, param_hint="--reset-patience") from None


def _per_recipe(field: str) -> str:
    return "[default: from --recipe: " + ", ".join(
        f"{name} {getattr(RECIPES[name], field)}" for name in sorted(RECIPES)
    ) + "]"


def _epochs_help() -> str:
    parts = []
    for name in sorted(RECIPES):
        r = RECIPES[name]
        if r.step_budget is None:
            fcid = f" / {r.epochs['fcid']} FCID" if "fcid" in r.epochs else ""
            parts.append(f"{name} {r.epochs[1]} DCID / {r.epochs[2]} H-DCID{fcid}")
        else:
            parts.append(f"{name}: enough for {r.step_budget} steps, {r.epochs[1]} to {r.max_epochs}")
    return "Epochs [default: from --recipe: " + "; ".join(parts) + "]."


@command("train")
@click.option("--levels", type=click.Choice(["1", "2"]), **_setting("levels"), help="1 = DCID (one codebook, width 256), 2 = H-DCID.")
@click.option(
    "--method", type=click.Choice(METHODS), cls=SettingOption,
    help="What to train: dcid (= --levels 1), hdcid (= --levels 2) or fcid (ACL 2025 FCID: one coarse codebook; "
    "text features are read as they are, e.g. 768-d word vectors; needs text) [default: from --levels].",
)
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Data root: own data (DIR/paired.h5 or DIR/paired/) or the reference layout (vggsound40k/...).")
@click.option("--paired", "paired", type=click.Path(), default=None, help="Own paired features: an h5 file or a folder of .npy files (audio, video, optional text, labels, split; docs/data.md).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="vggsound-avel40k.csv (category,video_id,split); overrides --data-root.")
@click.option("--audio-dir", type=click.Path(file_okay=False), default=None, help="Folder of <video_id>.zip audio features [T,128].")
@click.option("--video-dir", type=click.Path(file_okay=False), default=None, help="Folder of <video_id>.zip video features [10,7,7,512].")
@click.option("--text-features", type=click.Path(dir_okay=False), default=None, help="h5 with 'labels' [K] category names and 'features' [K,10,W] word features.")
@click.option("--epochs", type=click.IntRange(min=1), **_recipe_setting(), help=_epochs_help())
@click.option("--max-steps", type=click.IntRange(min=1), **_setting("max_steps"), help="Stop after this many optimizer steps in total (last.pt is written).")
@click.option("--batch-size", type=click.IntRange(min=1), **_recipe_setting(), help="Clips per step " + _per_recipe("batch_size") + ".")
@click.option("--seed", type=int, **_setting("seed"), help="Seed of every RNG (model init, data order, dropout, resets).")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), default=None, help="RUN_DIR for checkpoints, metrics.jsonl, config.json (default with --resume: the resumed run).")
@click.option("--device", type=click.Choice(DEVICES), **_setting("device"), help="Where training runs.")
@click.option("--dtype", type=click.Choice(DTYPES), **_setting("dtype"), help="Compute dtype (the reference trains in float64).")
@click.option("--reference-forwards", is_flag=True, cls=SettingOption, help="H-DCID: run the encoder 6x per batch like the published code (5 CLUB iterations + 1); DCID always runs it once.")
@click.option("--save-every", type=click.IntRange(min=0), **_setting("save_every"), help="Also write RUN_DIR/last.pt every N steps (0: epoch ends and run end only).")
@click.option("--resume", "resume", type=click.Path(file_okay=False), default=None, help="Continue RUN_DIR/last.pt exactly (same losses as an uninterrupted run on CPU).")
@click.option("--init-from", type=click.Path(dir_okay=False), default=None, help="Warm-start H-DCID level 1 from a DCID checkpoint.")
@click.option("--level2-start", type=click.IntRange(min=0), **_recipe_setting(), help="H-DCID: first epoch (0-based) whose loss includes level 2 " + _per_recipe("level2_start") + ".")
@click.option("--level2-weight", type=float, **_setting("level2_weight"), help="H-DCID: weight of the level-2 loss.")
@click.option("--n-embeddings", type=click.IntRange(min=2), **_setting("n_embeddings"), help="Codes per codebook.")
@click.option("--embedding-dim", type=click.IntRange(min=4), **_setting("embedding_dim"), help="Code width (H-DCID; DCID fixes it at 256).")
@click.option("--audio-output-dim", type=click.IntRange(min=1), **_recipe_setting(), help="Audio-specific feature width " + _per_recipe("audio_output_dim") + ".")
@click.option("--video-output-dim", type=click.IntRange(min=2), **_recipe_setting(), help="Video-specific feature width " + _per_recipe("video_output_dim") + ".")
@click.option("--text-output-dim", type=click.IntRange(min=1), **_recipe_setting(), help="Text-specific feature width " + _per_recipe("text_output_dim") + ".")
@click.option("--lr", type=float, **_setting("lr"), help="Adam learning rate of the main model.")
@click.option("--mi-lr", type=float, **_setting("mi_lr"), help="Adam learning rate of the CLUB estimators.")
@click.option("--clip", type=float, **_setting("clip"), help="Gradient-norm clip, per module.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), **_setting("recipe"), help="Training preset: remedies, batch size, specific widths, epochs (docs/training.md); reference = the published recipe; shared-codes trains a corpus without text as small-corpus (its usage floor counts text prompts); swapped-codes = small-corpus + the swapped code prediction, no dead-code resets (needs no text; on trial). Single options override it.")
@click.option("--standardize-inputs/--no-standardize-inputs", **_recipe_setting(), help="Z-score audio/video channels; statistics stored in the checkpoint (Input_normalization).")
@click.option("--codebook-init", type=click.Choice(CODEBOOK_INITS), **_recipe_setting(), help="Codebook initialisation (uniform = reference).")
@click.option("--reset-patience", type=ResetPatienceType(), **_recipe_setting(), help="Dead-code reset patience: reference (300 batches), auto (one epoch), off (never reset) or an integer.")
@click.option("--ema-consistent/--no-ema-consistent", **_recipe_setting(), help="Start EMA counts/weights consistent with the codebook and keep resets.")
@click.option("--align-weight", type=float, **_recipe_setting(), help="Weight of the InfoNCE alignment between modalities' semantic features (0 = off).")
@click.option("--align-distance", type=click.Choice(ALIGN_DISTANCES), **_recipe_setting(), help="Alignment logits: cosine similarity, or squared distance (pulls paired features to one point, so they share a code).")
@click.option("--gap-weight", type=float, **_recipe_setting(), help="Weight of the modality-gap term: squared distance between modalities' semantic-feature centroids relative to their norm (0 = off).")
@click.option("--warmup-steps", type=click.IntRange(min=0), **_recipe_setting(), help="Linear warm-up of the CLUB and commitment loss weights (0 = off).")
@click.option("--code-match-weight", type=click.FloatRange(min=0), **_recipe_setting(), help="Weight of the code-matching term: symmetric cross-entropy between paired audio and video seconds' soft code assignments (0 = off).")
@click.option("--code-match-temperature", type=click.FloatRange(min=0, min_open=True), **_recipe_setting(), help="Temperature of the code-matching soft assignments (cosine / T, or -distance^2 / (T x mean squared norm)).")
@click.option("--code-usage-weight", type=click.FloatRange(min=0), **_recipe_setting(), help="Part of the code-matching term, so matching cannot collapse the codebook: minus this x the entropy of the batch's mean soft assignment, or with --code-usage-per-prompt the weight of the usage floor.")
@click.option("--code-usage-per-prompt", type=click.FloatRange(min=0), **_recipe_setting(), help="Make the usage term a floor: no push while the batch's soft assignments spread over at least this many codes per distinct text prompt in the batch (0 = the plain term; without text every clip counts as one prompt).")
@click.option("--cosine-codes/--no-cosine-codes", **_recipe_setting(), help="Keep codebook rows at unit length and pull them with unit-length features (nearest code = most cosine-similar).")
@click.option("--reset-source", type=click.Choice(RESET_SOURCES), **_recipe_setting(), help="Where a dead code restarts: a copy of an active code (reference) or the mean of the worst-served audio-video pair.")
@click.option("--reset-shared-only/--no-reset-shared-only", **_recipe_setting(), help="Count a code as dead unless audio and video both used it (in one batch) within the reset patience.")
@click.option("--reset-limit", type=click.IntRange(min=0), **_recipe_setting(), help="Revive at most N dead codes per batch, longest-unused first (0 = all at once, as the reference).")
@click.option("--detach-level2-targets/--no-detach-level2-targets", **_recipe_setting(), help="H-DCID: no gradient into the level-1 specific features that level 2 rebuilds (the reference trains them, and level 2 can then collapse them to a constant).")
@click.option("--swap-weight", type=click.FloatRange(min=0), **_recipe_setting("swap_weight"), help="Weight of the swapped code prediction (level 1; H-DCID level 2 with --swap-level2): each modality's soft code assignment predicts the other's balanced assignment (paired audio and video seconds; FCID: clips); needs no text (0 = off).")
@click.option("--swap-level2/--no-swap-level2", **_recipe_setting("swap_level2"), help="H-DCID: also apply the swapped code prediction to level 2 (the modality-specific rest).")
@click.option("--swap-temperature", type=click.FloatRange(min=0, min_open=True), **_recipe_setting("swap_temperature"), help="Temperature of the predicted assignments (cosine / T, or -distance^2 / (T x mean squared norm)).")
@click.option("--swap-target-temperature", type=click.FloatRange(min=0, min_open=True), **_recipe_setting("swap_target_temperature"), help="Temperature of the targets (sharper than the predictions).")
@click.option("--swap-iterations", type=click.IntRange(min=1, max=1000), **_recipe_setting("swap_iterations"), help="Sinkhorn-Knopp iterations of the balanced targets.")
@click.option("--swap-queue", type=click.IntRange(min=0), **_recipe_setting("swap_queue"), help="Paired positions of earlier batches (detached) kept to join the balanced targets, for batches smaller than the codebook (0 = the batch alone).")
@click.option("--swap-prior-power", type=click.FloatRange(min=0), **_recipe_setting("swap_prior_power"), help="Code prior of the balanced targets: 0 = every code equally used; A > 0 = the codebook's running usage^A mixed with uniform (--swap-prior-uniform).")
@click.option("--swap-prior-uniform", type=click.FloatRange(min=0, max=1), **_recipe_setting("swap_prior_uniform"), help="The uniform share of the usage prior (with --swap-prior-power > 0).")
@click.option("--swap-targets", type=click.Choice(SWAP_TARGETS), **_recipe_setting("swap_targets"), help="Targets: sinkhorn (balanced over the codes by Sinkhorn-Knopp) or centring (the other modality's scores minus their running mean, sharpened).")
@click.option("--diagnostics-clips", type=click.IntRange(min=0), **_setting("diagnostics_clips"), help="Clips used for the per-epoch diagnostics (0 = none).")
@click.option("--force", is_flag=True, default=False, help="Train into a RUN_DIR that already holds a run.")
@click.option(
    "--nproc", type=click.IntRange(min=1), default=None,
    help="Train in N processes on this machine (gloo on CPU, nccl on GPU; one GPU each), started through torchrun's "
    "launcher; the same as `torchrun --standalone --nproc-per-node N -m cli train ...`. --batch-size stays the batch "
    "of one step; each process reads its share (docs/training.md).",
)
@click.option("--tensorboard", "tensorboard", type=click.Path(file_okay=False), default=None, help="Also write metrics.jsonl's step losses and per-epoch diagnostics as TensorBoard scalars into this folder (needs the tensorboard extra).")
def train(data_root, paired, csv_path, audio_dir, video_dir, text_features, output, resume,
          init_from, force, tensorboard, nproc, **options):
    """Pretrain a DCID (--levels 1), H-DCID (--levels 2) or FCID (--method fcid) model.

    Writes RUN_DIR/epoch-{E}.pt after every epoch (E from 0), RUN_DIR/last.pt every --save-every
    steps and at the end of the run, RUN_DIR/metrics.jsonl (one line per step and per epoch) and
    RUN_DIR/config.json. Checkpoints use the published layout; `Encoder_parameters` loads into
    `toc inspect / select / encode` and the reference code. FCID runs also write RUN_DIR/FCID.pt,
    exactly what the published FCID pretraining saves ({Encoder_parameters (float64), epoch,
    total_step}), after every epoch. Prints a JSON summary on stdout.
    """
    from tqdm import tqdm

    from hdcid.diagnostics import format_summary
    from hdcid.training import TrainRequest, run_training
    from hdcid.training.distributed import launch_local, under_launcher
    from toc.data.pretraining import open_pretraining

    if nproc is not None and nproc > 1 and not under_launcher():
        # Each process runs this same command line under torchrun (where --nproc is ignored).
        sys.exit(launch_local(nproc, sys.argv[1:]))
    # Every option not named in the signature is a training setting (tests/test_train_cli.py).
    given = {name: value for name, value in options.items() if value is not None}
    if "levels" in given:
        given["levels"] = int(given["levels"])
    request = TrainRequest(
        output=Path(output) if output is not None else None,
        resume=Path(resume) if resume is not None else None,
        init_from=Path(init_from) if init_from is not None else None,
        force=force, settings=given, tensorboard=Path(tensorboard) if tensorboard is not None else None,
    )

    def load_corpus():
        return open_pretraining(data_root=data_root, paired=paired, paths={
            "csv": csv_path, "audio_dir": audio_dir, "video_dir": video_dir, "text_features": text_features,
        })

    bars: list[tqdm] = []

    def on_start(planned_steps: int, done_steps: int) -> None:
        bars.append(tqdm(
            desc="train", unit="step", total=planned_steps, initial=done_steps, file=sys.stderr,
            disable=not sys.stderr.isatty(), leave=False,
        ))

    def on_step(record: dict) -> None:
        bars[0].update(1)
        bars[0].set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.3f}", refresh=False)

    def on_epoch(record: dict, diagnostics) -> None:
        bars[0].write(f"epoch {record['epoch']} step {record['total_step']}: {format_summary(diagnostics)}", file=sys.stderr)
        for d in diagnostics:
            for warning in d.warnings:
                bars[0].write(f"warning: {warning}", file=sys.stderr)

    try:
        result = run_training(request, load_corpus, on_start=on_start, on_step=on_step, on_epoch=on_epoch)
    finally:
        for bar in bars:
            bar.close()
    if result.is_main:  # a distributed run prints once
        click.echo(json.dumps(result.summary(), sort_keys=True))


COMMANDS = [train]
