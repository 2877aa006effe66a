"""`toc eval`: cross-modal downstream evaluation of DCID / H-DCID / FCID variants (`toc eval TASK`)
and zero-shot retrieval through the codes (`toc eval retrieval`), one JSON line per result."""

from __future__ import annotations

import functools
import json
import sys

import click

from cli.options import (
    command,
    encoder_options,
    force_option,
    output_option,
    parse_seeds,
    toc_options,
    trust_option,
)
from cli.progress import bars, log
from cmg_base.files import atomic_path, prepare_output
from toc import vocabulary as words
from toc.codebook.presets import FCID_TOC_PRESETS
from toc.codebook.settings import TOC_SOURCES
from toc.eval.tasks import TASK_REGISTRY, TASKS
from toc.eval.variants import VARIANT_NAMES

JSON_LINES_OUTPUT = "Write the JSON lines to FILE instead of stdout."


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


@command("eval")
@click.argument("task", type=click.Choice(TASKS))
@click.option("--checkpoint", type=click.Path(dir_okay=False), required=True, help="DCID / H-DCID / FCID checkpoint.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Root of the reference data layout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="TOML file with data paths.")
@click.option(
    "--variant", "variants", multiple=True,
    help=f"One of {', '.join(VARIANT_NAMES)}; repeat or comma-separate to compare several on one cache "
    "[default: the checkpoint's own: dcid for one codebook level, hdcid for two, fcid for FCID; "
    "+toc with --selection / --channels / --toc-preset].",
)
@toc_options(TOC_SOURCES, auto=True)
@click.option("--direction", type=click.Choice([*words.DIRECTIONS, "both"]), default="both", help="v2a: train on video, test on audio.")
@click.option("--head", "heads", multiple=True, default=words.DEFAULT_HEADS, help=f"{' and/or '.join(words.HEADS)} (repeat or comma-separate).")
@click.option("--protocol", type=click.Choice(words.PROTOCOLS), default=words.DEFAULT_PROTOCOL, help="strict: held-out evaluation; reference: the published quirks.")
@click.option("--seeds", default=",".join(map(str, words.DEFAULT_SEEDS)), help="Comma-separated head seeds; one output line per seed.")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None,
    help="Linear-head n_epoch [default: " + ", ".join(f"{k} {t.default_epochs}" for k, t in TASK_REGISTRY.items())
    + "; with --protocol reference and an FCID checkpoint, the FCID scripts' "
    + ", ".join(f"{k} {p.n_epoch}" for k, p in FCID_TOC_PRESETS.items()) + "].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=words.HEAD_BATCH_SIZE, help="Head training and evaluation batch size.")
@click.option("--head-threads", type=click.IntRange(min=1), default=None, help="Torch threads for linear-head training (default: torch's own; 1 is often fastest for these small heads).")
@click.option("--head-engine", type=click.Choice(words.HEAD_ENGINES), default=words.DEFAULT_HEAD_ENGINE, help="Linear heads: grouped (all heads of a direction together), single (the same code one head at a time; identical records), autograd (the per-head nn.Module loop).")
@click.option("--head-workers", type=click.IntRange(min=1), default=None, help="Worker processes training grouped heads (default: the usable CPU cores); does not change the numbers.")
@click.option("--split-seed", type=int, default=0, help="Seed of the strict video-level split.")
@click.option("--split-seeds", default=None, help="Comma-separated seeds of several strict video-level splits (instead of --split-seed); the report resamples them.")
@click.option("--pretrain-csv", type=click.Path(dir_okay=False), default=None, help="Pretraining CSV (video_id column) to check evaluated clips against [default: the data root's, when present].")
@click.option("--pretrain-overlap", type=click.Choice(words.OVERLAP_POLICIES), default=words.OVERLAP_POLICIES[0], help="Strict protocol: what to do with evaluated clips that are in the pretraining list.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Keep encoded codes here across runs (default: in memory only).")
@click.option("--cache-fingerprint", type=click.Choice(words.FINGERPRINTS), default=words.FINGERPRINTS[0], help="How the cache recognises changed input files: path, size and mtime, or their content hash too.")
@click.option("--encode-batch-size", type=click.IntRange(min=1), default=words.ENCODE_BATCH_SIZE, help="Clips per encoder forward pass.")
@encoder_options
@trust_option
@output_option(JSON_LINES_OUTPUT)
@force_option
def eval_command(
    task, checkpoint, data_root, config_path, variants, toc, direction, heads, protocol, seeds, epochs, batch_size,
    head_threads, head_engine, head_workers, split_seed, split_seeds, pretrain_csv, pretrain_overlap, cache_dir,
    cache_fingerprint, dtype, encode_batch_size, device, trust_checkpoint, output, force,
):
    """Train heads on one modality's codes and test them on the other's.

    Writes one JSON object per line for every (split seed, direction, variant, head, seed):
    `metrics` (accuracy for AVE / UCF-VGGSound; precision, recall, f1, macro_f1 and the LLP
    scores for AVVP / AVE-AVVP, in %), `same_modality`, `val_metrics`, the per-clip (per-video)
    outcomes `toc report` bootstraps, sizes, channels and the checkpoint's sha256. Each feature
    set is encoded once and reused by every variant, head and seed. See docs/evaluation.md.

    With --channels auto the budget of each direction (and head) is chosen first on the validation
    split, from a grid of budgets (--auto-grid, --auto-patterns); the lines of the +toc variants
    carry the choice and its whole validation curve (`budget_choice`). See docs/toc.md.
    """
    from toc.pipeline.session import EvalOptions, evaluate_task

    options = EvalOptions(
        task=task, checkpoint=checkpoint, data_root=data_root, config=config_path,
        variants=_split_names(variants, VARIANT_NAMES, "--variant"), toc=toc,
        directions=words.DIRECTIONS if direction == "both" else (direction,),
        heads=_split_names(heads, words.HEADS, "--head"), protocol=protocol, seeds=parse_seeds(seeds),
        epochs=epochs, batch_size=batch_size, head_threads=head_threads, head_engine=head_engine,
        head_workers=head_workers, split_seed=split_seed,
        split_seeds=None if split_seeds is None else parse_seeds(split_seeds, "--split-seeds"),
        pretrain_csv=pretrain_csv, pretrain_overlap=pretrain_overlap, cache_dir=cache_dir,
        cache_fingerprint=cache_fingerprint, dtype=dtype, encode_batch_size=encode_batch_size,
        device=device, trust_checkpoint=trust_checkpoint,
    )
    options.check()
    _emit(evaluate_task(options, progress=bars(unit="clip", min_total=64), log=log), output, force)


def _emit(records, output, force) -> None:
    """Each record as a JSON line on stdout as it comes, or all of them into FILE at the end."""
    target = prepare_output(output, force=force) if output else None
    lines = []
    for record in records:
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


@command("retrieval")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="DCID / H-DCID / FCID checkpoint (not needed with --encoded unless TOC selects).")
@click.option("--layout", type=click.Choice(words.RETRIEVAL_LAYOUTS), default="paired", help="paired: one h5 of paired features (--pairs); the others: the FCID release's loaders under --data-root.")
@click.option("--pairs", type=click.Path(dir_okay=False), default=None, help="The paired layout's h5: audio [N,T,A], video [N,T,7,7,C], text [N,L,W] (two or three), optional ids.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Root of the retrieval sets' reference layout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="TOML file with data paths.")
@click.option("--captions", type=click.Path(dir_okay=False), default=None, help="Clotho / MSVD captions CSV (overrides the layout's place).")
@click.option("--annotations", type=click.Path(), default=None, help="MSCOCO annotations JSON, FlickrSoundNet CSV or VALOR-32K annotation folder.")
@click.option("--text-features", type=click.Path(dir_okay=False), default=None, help="h5: captions [K] strings, features [K,L,W] word vectors.")
@click.option("--split", type=click.Choice(list(words.VALOR_SPLITS)), default="test", help="VALOR-32K annotation file.")
@click.option("--encoded", multiple=True, type=click.Path(dir_okay=False), help="Instead of a layout: two `toc encode` outputs, row i of each a pair (query side first).")
@click.option("--direction", "directions", multiple=True, help="a2t, t2a, v2t, t2v, a2v, v2a (repeat or comma-separate) [default: every one the set allows].")
@click.option("--vectors", multiple=True, default=words.VECTOR_KINDS, help="Clip vectors: codewords and/or histogram (code-id counts).")
@click.option("--variant", default=None, type=click.Choice(VARIANT_NAMES), help="Levels to read [default: the checkpoint's own, +toc with --selection / --channels].")
@toc_options(words.RETRIEVAL_TOC_SOURCES)
@click.option("--protocol", type=click.Choice(words.PROTOCOLS), default=words.DEFAULT_PROTOCOL, help="reference: Clotho's published dataset length (quirk Q9).")
@click.option("--batch-size", type=click.IntRange(min=1), default=words.ENCODE_BATCH_SIZE, help="Items per encoder forward pass.")
@encoder_options
@trust_option
@output_option(JSON_LINES_OUTPUT)
@force_option
def retrieval_command(
    checkpoint, layout, pairs, data_root, config_path, captions, annotations, text_features, split, encoded,
    directions, vectors, variant, toc, protocol, dtype, batch_size, device, trust_checkpoint, output, force,
):
    """Zero-shot cross-modal retrieval through the unified codes: every query's clip vector
    (mean codeword, or code-id histogram) against every gallery item by cosine similarity.

    One JSON line per (direction, vectors): R@1, R@5, R@10, median and mean rank, mAP@10, the
    number of queries whose best match ties with a wrong item (ties count against the query).
    See docs/evaluation.md for what is and is not comparable to published numbers.
    """
    overrides = {
        "clotho": {"captions_csv": captions, "text_features": text_features},
        "msvd": {"captions_csv": captions, "text_features": text_features},
        "mscoco": {"annotations": annotations, "text_features": text_features},
        "flickrsoundnet": {"csv": annotations},
        "valor32k": {"annotations_dir": annotations, "text_features": text_features},
    }.get(layout, {})
    for name, value in (("--captions", captions), ("--annotations", annotations), ("--text-features", text_features)):
        wanted = {"--captions": "captions_csv", "--annotations": ("annotations", "csv", "annotations_dir"),
                  "--text-features": "text_features"}[name]
        keys = wanted if isinstance(wanted, tuple) else (wanted,)
        if value is not None and not any(k in overrides for k in keys):
            raise click.BadParameter(f"the {layout} layout has no such file", param_hint=name)
    from toc.pipeline.retrieval import RetrievalOptions, evaluate_retrieval

    options = RetrievalOptions(
        checkpoint=checkpoint, layout=layout, pairs=pairs, data_root=data_root, config=config_path,
        overrides={k: v for k, v in overrides.items() if v is not None}, split=split, encoded=tuple(encoded),
        directions=_split_names(directions, words.RETRIEVAL_DIRECTIONS, "--direction"),
        vectors=_split_names(vectors, words.VECTOR_KINDS, "--vectors"), variant=variant,
        toc=toc,
        protocol=protocol, dtype=dtype, batch_size=batch_size, device=device, trust_checkpoint=trust_checkpoint,
    )
    options.check()
    _emit(evaluate_retrieval(options, progress=bars(unit="item", min_total=64)), output, force)


class EvalGroup(click.Group):
    """`toc eval TASK [OPTIONS]` (one command per downstream task) and `toc eval retrieval`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*TASKS, "retrieval"]

    def get_command(self, ctx: click.Context, name: str):
        if name == "retrieval":
            return retrieval_command
        if name in TASKS:
            return _task_command(name)
        return None


@functools.cache
def _task_command(task: str) -> click.Command:
    """`eval_command` with its TASK argument fixed."""
    params = [p for p in eval_command.params if p.name != "task"]
    return command(task, params=params, help=eval_command.help, short_help=TASK_REGISTRY[task].description)(
        functools.partial(eval_command.callback, task)
    )


@click.group("eval", cls=EvalGroup)
def eval_group():
    """Cross-modal evaluation: `toc eval TASK` trains heads on one modality's codes and tests them
    on the other's (TASK: ave, avvp, ave-avvp, ucf-vggsound, paired); `toc eval retrieval` ranks one
    modality's clips against another's through the codes."""


COMMANDS = [eval_group]
