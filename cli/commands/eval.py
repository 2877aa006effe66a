"""`toc eval`: cross-modal downstream evaluation of DCID / H-DCID variants, one JSON line per run."""

from __future__ import annotations

import json
import sys

import click

from cli.options import device_option, force_option, trust_option
from cli.progress import progress_bar
from toc.atomic import atomic_path, prepare_output
from toc.protocols import DEFAULT_EPOCHS

TASKS = ("ave", "avvp", "ave-avvp", "ucf-vggsound")
VARIANT_NAMES = ("dcid", "dcid+toc", "hdcid", "hdcid+toc")


def _split_names(values: tuple[str, ...], allowed: tuple[str, ...], option: str) -> list[str]:
    names: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name not in allowed:
                raise click.BadParameter(f"{name!r} is not one of {', '.join(allowed)}", param_hint=option)
            if name not in names:
                names.append(name)
    return names


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--seeds") from None
    if not seeds:
        raise click.BadParameter("give at least one seed", param_hint="--seeds")
    return list(dict.fromkeys(seeds))


@click.command("eval")
@click.argument("task", type=click.Choice(TASKS))
@click.option("--checkpoint", type=click.Path(dir_okay=False), required=True, help="DCID / H-DCID checkpoint.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Root of the reference data layout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="TOML file with data paths.")
@click.option(
    "--variant", "variants", multiple=True,
    help=f"One of {', '.join(VARIANT_NAMES)}; repeat or comma-separate to compare several on one cache "
    "[default: the checkpoint's own: dcid for one codebook level, hdcid for two; +toc with --selection / --channels].",
)
@click.option("--selection", "selection_path", type=click.Path(dir_okay=False), default=None, help="`toc select` JSON for the +toc variants.")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="Inline TOC: channels to keep per level.")
@click.option("--max-num", type=click.IntRange(min=0), default=None, help="Inline TOC: top-block weight (default 1).")
@click.option("--min-num", type=click.IntRange(min=0), default=None, help="Inline TOC: bottom-block weight (default 1).")
@click.option("--direction", type=click.Choice(["v2a", "a2v", "both"]), default="both", help="v2a: train on video, test on audio.")
@click.option("--head", "heads", multiple=True, default=("linear",), help="linear and/or prototype (repeat or comma-separate).")
@click.option("--protocol", type=click.Choice(["strict", "reference"]), default="strict", help="strict: held-out evaluation; reference: the published quirks.")
@click.option("--seeds", default="0", help="Comma-separated seeds; one output line per seed.")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None,
    help="Linear-head n_epoch [default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()) + "].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=80, help="Head training and evaluation batch size.")
@click.option("--head-threads", type=click.IntRange(min=1), default=None, help="Torch threads for linear-head training (default: torch's own; 1 is often fastest for these small heads).")
@click.option("--split-seed", type=int, default=0, help="Seed of the strict video-level split.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Keep encoded codes here across runs (default: in memory only).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", help="Encoder compute dtype (float64 is bit-faithful to the reference).")
@click.option("--encode-batch-size", type=click.IntRange(min=1), default=64, help="Clips per encoder forward pass.")
@device_option
@trust_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the JSON lines to FILE instead of stdout.")
@force_option
def eval_command(
    task, checkpoint, data_root, config_path, variants, selection_path, channels, max_num, min_num, direction,
    heads, protocol, seeds, epochs, batch_size, head_threads, split_seed, cache_dir, dtype, encode_batch_size, device,
    trust_checkpoint, output, force,
):
    """Train heads on one modality's codes and test them on the other's.

    Writes one JSON object per line for every (direction, variant, head, seed): `metrics`
    (accuracy for AVE / UCF-VGGSound; precision, recall, f1, macro_f1 for AVVP / AVE-AVVP, in %),
    `same_modality`, `val_metrics`, sizes, channels and the checkpoint's sha256. Each feature set
    is encoded once and reused by every variant, head and seed. See docs/evaluation.md.
    """
    from toc.cache import CheckpointCodeSource, CodeCache
    from toc.checkpoint import load_checkpoint
    from toc.data.registry import load_task
    from toc.evaluate import EvalRequest, run_evaluation
    from toc.variants import InlineSelection, load_selection_file

    if data_root is None and config_path is None:
        raise click.UsageError("give --data-root DIR or --config FILE (or both)")
    variant_names = _split_names(variants, VARIANT_NAMES, "--variant")
    head_names = _split_names(heads, ("linear", "prototype"), "--head")
    seed_list = _parse_seeds(seeds)
    wants_toc = any(name.endswith("+toc") for name in variant_names) or (
        not variant_names and (selection_path is not None or channels is not None)
    )
    if selection_path is not None and channels is not None:
        raise click.UsageError("--selection and --channels are alternatives; give one")
    if channels is None and (max_num is not None or min_num is not None):
        raise click.UsageError("--max-num / --min-num need --channels")
    if (selection_path is not None or channels is not None) and not wants_toc:
        raise click.UsageError("--selection / --channels apply only to the +toc variants; none was requested")
    if wants_toc and selection_path is None and channels is None:
        raise click.UsageError("the +toc variants need --selection FILE or --channels C [--max-num A --min-num B]")
    if channels is not None:
        max_num = 1 if max_num is None else max_num
        min_num = 1 if min_num is None else min_num
        if max_num + min_num == 0:
            raise click.UsageError("--max-num + --min-num must be at least 1")
    if "linear" not in head_names and epochs is not None:
        raise click.UsageError("--epochs applies only to --head linear")
    target = prepare_output(output, force=force) if output else None

    selection = None
    if selection_path is not None:
        selection = load_selection_file(selection_path)
    elif channels is not None:
        selection = InlineSelection(channels, max_num, min_num)
    loaded = load_checkpoint(checkpoint, trust_checkpoint=trust_checkpoint)
    if not variant_names:
        variant_names = ["hdcid" if loaded.levels == 2 else "dcid"]
        if wants_toc:
            variant_names = [variant_names[0] + "+toc"]
    data = load_task(task, data_root=data_root, config=config_path)
    source = CheckpointCodeSource(loaded, device=device)
    cache = CodeCache(
        source, cache_dir, batch_size=encode_batch_size,
        progress=lambda description, total: progress_bar(total, description, unit="clip", min_total=64),
    )
    request = EvalRequest(
        variants=variant_names, directions=("v2a", "a2v") if direction == "both" else (direction,),
        heads=head_names, protocol=protocol, seeds=seed_list, epochs=epochs, batch_size=batch_size,
        dtype=dtype, selection=selection, split_seed=split_seed, head_threads=head_threads,
    )

    def log(message: str) -> None:
        click.echo(message, err=True)

    lines = []
    for record in run_evaluation(data, cache, request, log=log):
        line = json.dumps(record.to_json(), sort_keys=True)
        if target is None:
            click.echo(line)
            sys.stdout.flush()
        else:
            lines.append(line)
    if target is not None:
        with atomic_path(target) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        log(f"wrote {len(lines)} result line(s) to {target}")


COMMANDS = [eval_command]
