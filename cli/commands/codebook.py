"""`toc inspect`, `toc score`, `toc select`, `toc plot`: look at a codebook and pick TOC channels."""

from __future__ import annotations

import json

import click

from cli.options import (
    WEIGHTS,
    codebook_key_option,
    command,
    emit_output,
    encoder_options,
    flag,
    force_option,
    level_option,
    output_option,
    parse_seeds,
    toc_options,
    trust_option,
)
from cmg_base.files import prepare_output, write_bytes_atomic
from toc import vocabulary as words
from toc.eval.tasks import TASKS
from toc.eval.variants import VARIANT_NAMES


def _warn(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"Warning: {note}", err=True)


@command("inspect")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@codebook_key_option
@trust_option
def inspect_command(checkpoint, fmt, codebook_key, trust_checkpoint):
    """Show the family, sizes, codebook levels and code usage of a checkpoint or codebook file.

    Code usage comes from ema_count: a code is active when its count exceeds 1e-3; the usage
    perplexity is exp(entropy) of the counts normalised to sum 1 (null when all counts are 0).
    Counts or an epoch that cannot be used (NaN, negative) are shown as null, with a warning.
    Other VQ models' files (vector-quantize-pytorch, EnCodec, DAC, Mimi, VQGAN, ...) are read
    from their key layouts, or from the tensors --codebook-key names.
    """
    from toc.codebook.checkpoint import load_codebooks
    from toc.codebook.summary import inspect_document, inspect_table
    from toc.documents import dumps_document

    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key)
    click.echo(dumps_document(inspect_document(loaded)) if fmt == "json" else inspect_table(loaded), nl=False)


@command("score")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@level_option
@toc_options(names=WEIGHTS)
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "table"]), default="json", help="Output format.")
@codebook_key_option
@output_option()
@force_option
@trust_option
def score_command(checkpoint, level, toc, fmt, codebook_key, output, force, trust_checkpoint):
    """Per-channel TOC statistics: similarity, variance and score = -w_sim*sim + w_var*var."""
    from toc.codebook.checkpoint import choose_levels, load_codebooks
    from toc.codebook.settings import score_variant
    from toc.codebook.summary import (
        level_notes,
        score_levels,
        scores_csv,
        scores_document,
        scores_table,
        with_level_names,
    )
    from toc.documents import dumps_document

    sim_weight, var_weight = toc.weights()
    allow_nonfinite = bool(toc.allow_nonfinite)
    if output is not None:
        prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key, allow_nonfinite=allow_nonfinite)
    levels = choose_levels(loaded, level)
    _warn(level_notes(loaded, levels))
    scored = score_levels(loaded, levels, sim_weight, var_weight, allow_nonfinite)
    if fmt == "json":
        parameters = {
            "sim_weight": sim_weight, "var_weight": var_weight, "score": score_variant(sim_weight, var_weight),
            "level": level, "allow_nonfinite": allow_nonfinite,
        }
        text = dumps_document(with_level_names(scores_document(loaded, levels, scored, parameters), loaded))
    else:
        text = (scores_csv if fmt == "csv" else scores_table)(levels, scored)
    emit_output(text, output, force)


def _open_levels(checkpoint, level, toc, codebook_key, trust_checkpoint):
    """The codebooks and the levels `toc select` / `toc plot` work on, with their notes on stderr."""
    from toc.codebook.checkpoint import choose_levels, load_codebooks
    from toc.codebook.summary import level_notes

    loaded = load_codebooks(
        checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key, allow_nonfinite=bool(toc.allow_nonfinite),
    )
    levels = choose_levels(loaded, level)
    _warn(level_notes(loaded, levels))
    return loaded, levels


def _warn_short(selections) -> None:
    for selection in selections:
        note = selection.shortfall(flag)
        if note:
            click.echo(f"Warning: {note}", err=True)


# Options of `toc select --channels auto` only: the task whose validation split chooses the budget.
_AUTO_ONLY = ("task", "data_root", "config_path", "direction", "head", "variant", "seeds", "epochs", "split_seed", "cache_dir")
_AUTO_FLAGS = {"config_path": "--config", "seeds": "--seeds", "split_seed": "--split-seed"}


@command("select")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@toc_options(("channels",), channels_required=True, auto=True)
@level_option
@click.option("--task", type=click.Choice(TASKS), default=None, help="With --channels auto: the task whose validation split chooses the budget.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help="With --channels auto: root of the task's data layout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="With --channels auto: TOML file with data paths.")
@click.option("--direction", type=click.Choice(words.DIRECTIONS), default=None, help="With --channels auto: the direction the budget is chosen for (one per file).")
@click.option("--head", type=click.Choice([h for h in words.HEADS if h != words.CODE_HEAD]), default=None, help="With --channels auto: the head scored on validation [default: linear].")
@click.option("--variant", type=click.Choice([v for v in VARIANT_NAMES if v.endswith("+toc")]), default=None, help="With --channels auto: the +toc variant [default: the checkpoint's own].")
@click.option("--seeds", default=None, help="With --channels auto: comma-separated head seeds averaged per grid point [default: 0].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="With --channels auto: linear-head n_epoch [default: the task's].")
@click.option("--split-seed", type=int, default=None, help="With --channels auto: seed of the strict video-level split [default: 0].")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="With --channels auto: keep encoded codes here (shared with toc eval).")
@encoder_options
@codebook_key_option
@output_option("Write the selection JSON to FILE instead of stdout.")
@force_option
@trust_option
def select_command(checkpoint, toc, level, task, data_root, config_path, direction, head, variant, seeds, epochs,
                   split_seed, cache_dir, dtype, device, codebook_key, output, force, trust_checkpoint):
    """Pick TOC channels per codebook level and print the selection JSON.

    Order per level: the k*a highest scores descending, then the k*b lowest ascending, with
    k = C // (a + b); ties go to the lower channel index. H-DCID levels are listed 0 then 1, the
    order in which downstream features are concatenated.

    With --channels auto (and --task, --data-root or --config, --direction) the budget is chosen on
    the task's validation split: every grid point is scored with the head, and the file records
    the choice, the rule and the whole validation curve (`choice`); `toc eval --selection FILE`
    reuses it. No evaluated clip is scored and no evaluated label is read.
    """
    from toc.codebook.selection import selection_for
    from toc.codebook.summary import with_level_names
    from toc.documents import dumps_document

    given = {name: value for name, value in (
        ("task", task), ("data_root", data_root), ("config_path", config_path), ("direction", direction), ("head", head),
        ("variant", variant), ("seeds", seeds), ("epochs", epochs), ("split_seed", split_seed), ("cache_dir", cache_dir),
    ) if value is not None}
    if toc.auto:
        _select_auto(checkpoint, toc, level, given, dtype, device, codebook_key, output, force, trust_checkpoint)
        return
    if given:
        name = next(iter(given))
        raise click.UsageError(f"{_AUTO_FLAGS.get(name, flag(name))} applies only with --channels auto")
    if output is not None:
        prepare_output(output, force=force)
    loaded, levels = _open_levels(checkpoint, level, toc, codebook_key, trust_checkpoint)
    document = selection_for(loaded, toc.settings(), levels, level=level)
    _warn_short(document.selections)
    emit_output(dumps_document(with_level_names(document.to_json(), loaded)), output, force)


def _select_auto(checkpoint, toc, level, given, dtype, device, codebook_key, output, force, trust_checkpoint) -> None:
    """`toc select --channels auto`: choose on the task's validation split, write the selection."""
    for name in ("task", "direction"):
        if name not in given:
            raise click.UsageError(f"--channels auto needs --{name}: a budget is chosen for one task and direction")
    if level != "all":
        raise click.UsageError("--level applies to a fixed budget; with --channels auto the variant's levels are used")
    if codebook_key:
        raise click.UsageError("--codebook-key applies to a fixed budget; --channels auto needs a CMG checkpoint to encode the task")
    from cli.progress import bars, log
    from toc.pipeline.budget import BudgetSelectOptions, select_budget

    options = BudgetSelectOptions(
        checkpoint=checkpoint, task=given["task"], direction=given["direction"], search=toc.search(),
        head=given.get("head", "linear"), variant=given.get("variant"), data_root=given.get("data_root"),
        config=given.get("config_path"), seeds=parse_seeds(given.get("seeds", "0")), epochs=given.get("epochs"),
        split_seed=given.get("split_seed", 0), cache_dir=given.get("cache_dir"), dtype=dtype, device=device,
        trust_checkpoint=trust_checkpoint,
    )
    options.check()
    if output is not None:
        prepare_output(output, force=force)
    selection = select_budget(options, progress=bars(unit="clip", min_total=64), log=log)
    emit_output(selection.dumps(), output, force)


@command("plot")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@toc_options(("channels",), channels_required=True)
@level_option
@codebook_key_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output figure (.png).")
@click.option("--max-codes", type=click.IntRange(min=2), default=512, help="Codes shown in the heatmaps (the first ones).")
@force_option
@trust_option
def plot_command(checkpoint, toc, level, codebook_key, output, max_codes, force, trust_checkpoint):
    """Figure: sorted channel scores with the selected ones marked, and code-by-code cosine
    similarity heatmaps before and after selection (needs the optional `plot` extra)."""
    from toc.codebook.selection import selection_for
    from toc.figures import require_matplotlib, toc_figure

    require_matplotlib()  # fail with the install hint before any work
    target = prepare_output(output, force=force)
    loaded, levels = _open_levels(checkpoint, level, toc, codebook_key, trust_checkpoint)
    selections = selection_for(loaded, toc.settings(), levels, level=level).selections
    _warn_short(selections)
    png = toc_figure(
        loaded.codebooks, [s.channel_scores for s in selections], selections,
        max_codes=max_codes, title=f"TOC: {loaded.path.name}",
    )
    write_bytes_atomic(target, png)
    click.echo(json.dumps({"figure": str(target), "levels": levels}, sort_keys=True))


COMMANDS = [inspect_command, score_command, select_command, plot_command]
