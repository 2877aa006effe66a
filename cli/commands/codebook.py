"""`toc inspect`, `toc score`, `toc select`, `toc plot`: look at a codebook and pick TOC channels."""

from __future__ import annotations

import json

import click

from cli.options import (
    WEIGHTS,
    codebook_key_option,
    command,
    emit_output,
    flag,
    force_option,
    level_option,
    output_option,
    toc_options,
    trust_option,
)
from cmg_base.files import prepare_output, write_bytes_atomic


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


@command("select")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@toc_options(("channels",), channels_required=True)
@level_option
@codebook_key_option
@output_option("Write the selection JSON to FILE instead of stdout.")
@force_option
@trust_option
def select_command(checkpoint, toc, level, codebook_key, output, force, trust_checkpoint):
    """Pick TOC channels per codebook level and print the selection JSON.

    Order per level: the k*a highest scores descending, then the k*b lowest ascending, with
    k = C // (a + b); ties go to the lower channel index. H-DCID levels are listed 0 then 1, the
    order in which downstream features are concatenated.
    """
    from toc.codebook.selection import selection_for
    from toc.codebook.summary import with_level_names
    from toc.documents import dumps_document

    if output is not None:
        prepare_output(output, force=force)
    loaded, levels = _open_levels(checkpoint, level, toc, codebook_key, trust_checkpoint)
    document = selection_for(loaded, toc.settings(), levels, level=level)
    _warn_short(document.selections)
    emit_output(dumps_document(with_level_names(document.to_json(), loaded)), output, force)


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
