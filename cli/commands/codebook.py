"""`toc inspect`, `toc score`, `toc select`, `toc plot`: look at a codebook and pick TOC channels."""

from __future__ import annotations

import json

import click

from cli.options import (
    codebook_key_option,
    command,
    emit_output,
    flag,
    force_option,
    output_option,
    score_option,
    score_weights_given,
    sim_weight_option,
    toc_selection_options,
    trust_option,
    var_weight_option,
)
from cmg_base.files import prepare_output, write_bytes_atomic
from toc.codebook.checkpoint import choose_levels, load_codebooks
from toc.codebook.scoring import score_variant as score_variant_of
from toc.codebook.selection import SelectionFile, TocSettings, select_levels
from toc.codebook.summary import (
    inspect_document,
    inspect_table,
    level_notes,
    score_levels,
    scores_csv,
    scores_document,
    scores_table,
    with_level_names,
)
from toc.documents import dumps_document
from toc.figures import require_matplotlib, toc_figure


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
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key)
    click.echo(dumps_document(inspect_document(loaded)) if fmt == "json" else inspect_table(loaded), nl=False)


@command("score")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--level", default="all", help="Codebook level to score: 'all', a number, or (another VQ model's file) a level name.")
@sim_weight_option
@var_weight_option
@score_option
@click.option("--allow-nonfinite", is_flag=True, default=False, help="Score channels holding NaN/Inf as NaN instead of failing.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "table"]), default="json", help="Output format.")
@codebook_key_option
@output_option()
@force_option
@trust_option
def score_command(checkpoint, level, sim_weight, var_weight, score_variant, allow_nonfinite, fmt, codebook_key, output, force, trust_checkpoint):
    """Per-channel TOC statistics: similarity, variance and score = -w_sim*sim + w_var*var."""
    sim_weight, var_weight = score_weights_given(score_variant, sim_weight, var_weight)
    if output is not None:
        prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key, allow_nonfinite=allow_nonfinite)
    levels = choose_levels(loaded, level)
    _warn(level_notes(loaded, levels))
    scored = score_levels(loaded, levels, sim_weight, var_weight, allow_nonfinite)
    if fmt == "json":
        parameters = {
            "sim_weight": sim_weight, "var_weight": var_weight, "score": score_variant_of(sim_weight, var_weight),
            "level": level, "allow_nonfinite": allow_nonfinite,
        }
        text = dumps_document(with_level_names(scores_document(loaded, levels, scored, parameters), loaded))
    else:
        text = (scores_csv if fmt == "csv" else scores_table)(levels, scored)
    emit_output(text, output, force)


def _warn_short(selections) -> None:
    for selection in selections:
        note = selection.shortfall(flag)
        if note:
            click.echo(f"Warning: {note}", err=True)


@command("select")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@toc_selection_options
@output_option("Write the selection JSON to FILE instead of stdout.")
@force_option
@trust_option
def select_command(checkpoint, channels, max_num, min_num, level, exact_budget, sim_weight, var_weight, score_variant, allow_nonfinite, codebook_key, reference_topk, output, force, trust_checkpoint):
    """Pick TOC channels per codebook level and print the selection JSON.

    Order per level: the k*a highest scores descending, then the k*b lowest ascending, with
    k = C // (a + b); ties go to the lower channel index. H-DCID levels are listed 0 then 1, the
    order in which downstream features are concatenated.
    """
    sim_weight, var_weight = score_weights_given(score_variant, sim_weight, var_weight)
    settings = TocSettings(channels, max_num, min_num, exact_budget, sim_weight, var_weight, allow_nonfinite, reference_topk)
    if output is not None:
        prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key, allow_nonfinite=allow_nonfinite)
    levels = choose_levels(loaded, level)
    _warn(level_notes(loaded, levels))
    selections = select_levels(loaded.codebooks, settings, levels, source=loaded.path)
    _warn_short(selections)
    document = SelectionFile.from_selections(
        selections, checkpoint_path=loaded.path, checkpoint_sha256=loaded.sha256,
        family=loaded.family, parameters=dict(settings.as_dict(), level=level),
    )
    emit_output(dumps_document(with_level_names(document.to_json(), loaded)), output, force)


@command("plot")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@toc_selection_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output figure (.png).")
@click.option("--max-codes", type=click.IntRange(min=2), default=512, help="Codes shown in the heatmaps (the first ones).")
@force_option
@trust_option
def plot_command(checkpoint, channels, max_num, min_num, level, exact_budget, sim_weight, var_weight, score_variant, allow_nonfinite, codebook_key, reference_topk, output, max_codes, force, trust_checkpoint):
    """Figure: sorted channel scores with the selected ones marked, and code-by-code cosine
    similarity heatmaps before and after selection (needs the optional `plot` extra)."""
    require_matplotlib()  # fail with the install hint before any work
    sim_weight, var_weight = score_weights_given(score_variant, sim_weight, var_weight)
    settings = TocSettings(channels, max_num, min_num, exact_budget, sim_weight, var_weight, allow_nonfinite, reference_topk)
    target = prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint, codebook_key=codebook_key, allow_nonfinite=allow_nonfinite)
    levels = choose_levels(loaded, level)
    _warn(level_notes(loaded, levels))
    selections = select_levels(loaded.codebooks, settings, levels, source=loaded.path)
    _warn_short(selections)
    png = toc_figure(
        loaded.codebooks, [s.channel_scores for s in selections], selections,
        max_codes=max_codes, title=f"TOC: {loaded.path.name}",
    )
    write_bytes_atomic(target, png)
    click.echo(json.dumps({"figure": str(target), "levels": levels}, sort_keys=True))


COMMANDS = [inspect_command, score_command, select_command, plot_command]
