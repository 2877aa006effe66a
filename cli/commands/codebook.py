"""`toc inspect`, `toc score`, `toc select`, `toc plot`: look at a codebook and pick TOC channels."""

from __future__ import annotations

import csv
import io
import json
import math

import click
import torch

from cli.options import force_option, output_option, trust_option
from toc.atomic import prepare_output, write_text_atomic
from toc.checkpoint import LoadedCodebooks, load_codebooks
from toc.errors import ConfigError
from toc.scoring import DEFAULT_SIM_WEIGHT, DEFAULT_VAR_WEIGHT, ChannelScores, score_channels
from toc.selection import (
    TOOL_NAME,
    TocSettings,
    dumps_document,
    select_levels,
    selection_document,
    tool_version,
)

# A code counts as active when its EMA assignment count exceeds this. The Laplace smoothing in
# the EMA leaves a never-chosen code near 1e-5, and a fresh (never updated) buffer is exactly 0.
ACTIVE_THRESHOLD = 1e-3

sim_weight_option = click.option("--sim-weight", type=float, default=DEFAULT_SIM_WEIGHT, help="Weight of the mean pairwise similarity (subtracted).")
var_weight_option = click.option("--var-weight", type=float, default=DEFAULT_VAR_WEIGHT, help="Weight of the channel variance (added).")


def _levels_to_use(loaded: LoadedCodebooks, level: str) -> list[int]:
    count = len(loaded.codebooks)
    if level == "all":
        return list(range(count))
    try:
        value = int(level)
    except ValueError as exc:
        raise click.BadParameter(f"expected 'all' or a level number, got {level!r}", param_hint="--level") from exc
    if not 0 <= value < count:
        raise click.BadParameter(
            f"level {value} does not exist in {loaded.path} (it has {count} level(s): 0..{count - 1})",
            param_hint="--level",
        )
    return [value]


def _emit(text: str, output: str | None, force: bool) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    write_text_atomic(prepare_output(output, force=force), text)


def _checkpoint_block(loaded: LoadedCodebooks) -> dict:
    return {"path": str(loaded.path), "sha256": loaded.sha256, "family": loaded.family}


def code_usage(ema_count: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> dict:
    """Active / dead codes and the usage perplexity exp(H(p)) of the normalised ema_count."""
    counts = ema_count.detach().to(torch.float64).flatten()
    active = int((counts > threshold).sum())
    total = float(counts.clamp_min(0).sum())
    perplexity = None
    if total > 0 and bool(torch.isfinite(counts).all()):
        p = counts.clamp_min(0) / total
        nonzero = p[p > 0]
        perplexity = float(torch.exp(-(nonzero * nonzero.log()).sum()))
    return {
        "active_codes": active,
        "dead_codes": int(counts.numel()) - active,
        "active_threshold": threshold,
        "usage_perplexity": perplexity,
        "ema_count_total": total,
    }


@click.command("inspect")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@trust_option
def inspect_command(checkpoint, fmt, trust_checkpoint):
    """Show the family, sizes, codebook levels and code usage of a checkpoint or codebook file.

    Code usage comes from ema_count: a code is active when its count exceeds 1e-3; the usage
    perplexity is exp(entropy) of the counts normalised to sum 1 (null when all counts are 0).
    """
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint)
    levels = []
    for level, codebook in enumerate(loaded.codebooks):
        entry = {
            "level": level,
            "codebook_shape": [int(s) for s in codebook.shape],
            "dtype": str(codebook.dtype).replace("torch.", ""),
            "usage": code_usage(loaded.ema_counts[level]) if loaded.ema_counts is not None else None,
        }
        levels.append(entry)
    report = {
        "tool": TOOL_NAME,
        "version": tool_version(),
        "checkpoint": _checkpoint_block(loaded),
        "epoch": loaded.epoch,
        "sizes": dict(loaded.sizes),
        "levels": levels,
    }
    if fmt == "json":
        click.echo(dumps_document(report), nl=False)
        return
    lines = [
        f"checkpoint  {loaded.path}",
        f"sha256      {loaded.sha256}",
        f"family      {loaded.family}",
        f"epoch       {loaded.epoch if loaded.epoch is not None else '-'}",
        "sizes       " + ", ".join(f"{k}={v}" for k, v in sorted(loaded.sizes.items())),
        "",
        f"{'level':>5}  {'shape':>12}  {'dtype':>8}  {'active':>6}  {'dead':>6}  {'perplexity':>10}",
    ]
    for entry in levels:
        shape = "x".join(map(str, entry["codebook_shape"]))
        usage = entry["usage"]
        if usage is None:
            active = dead = perplexity = "-"
        else:
            active, dead = str(usage["active_codes"]), str(usage["dead_codes"])
            perplexity = "-" if usage["usage_perplexity"] is None else f"{usage['usage_perplexity']:.2f}"
        lines.append(f"{entry['level']:>5}  {shape:>12}  {entry['dtype']:>8}  {active:>6}  {dead:>6}  {perplexity:>10}")
    click.echo("\n".join(lines))


def _score_levels(loaded: LoadedCodebooks, levels: list[int], sim_weight: float, var_weight: float, allow_nonfinite: bool) -> list[ChannelScores]:
    return [
        score_channels(
            loaded.codebooks[level], sim_weight=sim_weight, var_weight=var_weight,
            allow_nonfinite=allow_nonfinite, where=f"{loaded.path}: level {level}",
        )
        for level in levels
    ]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@click.command("score")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--level", default="all", help="Codebook level to score: 'all' or a number.")
@sim_weight_option
@var_weight_option
@click.option("--allow-nonfinite", is_flag=True, default=False, help="Score channels holding NaN/Inf as NaN instead of failing.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "table"]), default="json", help="Output format.")
@output_option()
@force_option
@trust_option
def score_command(checkpoint, level, sim_weight, var_weight, allow_nonfinite, fmt, output, force, trust_checkpoint):
    """Per-channel TOC statistics: similarity, variance and score = -w_sim*sim + w_var*var."""
    if output is not None:
        prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint)
    levels = _levels_to_use(loaded, level)
    scored = _score_levels(loaded, levels, sim_weight, var_weight, allow_nonfinite)
    if fmt == "json":
        document = {
            "tool": TOOL_NAME,
            "version": tool_version(),
            "checkpoint": _checkpoint_block(loaded),
            "parameters": {"sim_weight": sim_weight, "var_weight": var_weight, "level": level, "allow_nonfinite": allow_nonfinite},
            "levels": [
                {
                    "level": lvl,
                    "codebook_shape": [int(s) for s in loaded.codebooks[lvl].shape],
                    "similarity": [_json_float(v) for v in s.similarity.tolist()],
                    "variance": [_json_float(v) for v in s.variance.tolist()],
                    "score": [_json_float(v) for v in s.score.tolist()],
                }
                for lvl, s in zip(levels, scored, strict=True)
            ],
        }
        text = dumps_document(document)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["level", "channel", "similarity", "variance", "score", "rank"])
        for lvl, s in zip(levels, scored, strict=True):
            ranks = _ranks(s.score)
            for channel, (sim, var, sc) in enumerate(zip(s.similarity.tolist(), s.variance.tolist(), s.score.tolist(), strict=True)):
                writer.writerow([lvl, channel, repr(sim), repr(var), repr(sc), ranks[channel]])
        text = buffer.getvalue()
    else:
        lines = [f"{'level':>5}  {'channel':>7}  {'rank':>5}  {'similarity':>14}  {'variance':>14}  {'score':>14}"]
        for lvl, s in zip(levels, scored, strict=True):
            ranks = _ranks(s.score)
            for channel, (sim, var, sc) in enumerate(zip(s.similarity.tolist(), s.variance.tolist(), s.score.tolist(), strict=True)):
                lines.append(f"{lvl:>5}  {channel:>7}  {ranks[channel]:>5}  {sim:>14.6g}  {var:>14.6g}  {sc:>14.6g}")
        text = "\n".join(lines) + "\n"
    _emit(text, output, force)


def _ranks(score: torch.Tensor) -> list[int]:
    """1 = highest score; ties go to the lower channel index (the selection's tie rule)."""
    order = torch.sort(score, descending=True, stable=True).indices.tolist()
    ranks = [0] * len(order)
    for rank, channel in enumerate(order, start=1):
        ranks[channel] = rank
    return ranks


def selection_options(func):
    for decorator in reversed(
        [
            click.option("--channels", type=click.IntRange(min=1), required=True, help="Channel budget C per level."),
            click.option("--max-num", type=click.IntRange(min=0), default=1, help="Top-block share a: k*a highest-scoring channels, k = C // (a+b)."),
            click.option("--min-num", type=click.IntRange(min=0), default=1, help="Bottom-block share b: k*b lowest-scoring channels."),
            click.option("--level", default="all", help="Codebook level: 'all' or a number."),
            click.option("--exact-budget", is_flag=True, default=False, help="Return exactly C channels (the remainder goes to the top block)."),
            sim_weight_option,
            var_weight_option,
            click.option("--allow-nonfinite", is_flag=True, default=False, help="Skip channels holding NaN/Inf instead of failing."),
        ]
    ):
        func = decorator(func)
    return func


def _settings(channels, max_num, min_num, exact_budget, sim_weight, var_weight, allow_nonfinite) -> TocSettings:
    if max_num + min_num == 0:
        raise click.BadParameter("--max-num and --min-num cannot both be 0", param_hint="--max-num/--min-num")
    return TocSettings(
        channels=channels, max_num=max_num, min_num=min_num, exact_budget=exact_budget,
        sim_weight=sim_weight, var_weight=var_weight, allow_nonfinite=allow_nonfinite,
    )


def _warn_short(selections) -> None:
    for selection in selections:
        if selection.short_by:
            s = selection.settings
            click.echo(
                f"Warning: level {selection.level}: {selection.indices.numel()} of {s.channels} channels returned "
                f"({s.channels} // ({s.max_num} + {s.min_num}) groups, as the reference does); "
                "pass --exact-budget to get exactly --channels",
                err=True,
            )


@click.command("select")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@selection_options
@output_option("Write the selection JSON to FILE instead of stdout.")
@force_option
@trust_option
def select_command(checkpoint, channels, max_num, min_num, level, exact_budget, sim_weight, var_weight, allow_nonfinite, output, force, trust_checkpoint):
    """Pick TOC channels per codebook level and print the selection JSON.

    Order per level: the k*a highest scores descending, then the k*b lowest ascending, with
    k = C // (a + b); ties go to the lower channel index. H-DCID levels are listed 0 then 1, the
    order in which downstream features are concatenated.
    """
    settings = _settings(channels, max_num, min_num, exact_budget, sim_weight, var_weight, allow_nonfinite)
    if output is not None:
        prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint)
    levels = _levels_to_use(loaded, level)
    selections = select_levels(loaded.codebooks, settings, levels)
    _warn_short(selections)
    parameters = dict(settings.as_dict(), level=level)
    document = selection_document(
        selections, checkpoint_path=loaded.path, checkpoint_sha256=loaded.sha256,
        family=loaded.family, parameters=parameters,
    )
    _emit(dumps_document(document), output, force)


@click.command("plot")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@selection_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output figure (.png).")
@click.option("--max-codes", type=click.IntRange(min=2), default=512, help="Codes shown in the heatmaps (the first ones).")
@force_option
@trust_option
def plot_command(checkpoint, channels, max_num, min_num, level, exact_budget, sim_weight, var_weight, allow_nonfinite, output, max_codes, force, trust_checkpoint):
    """Figure: sorted channel scores with the selected ones marked, and code-by-code cosine
    similarity heatmaps before and after selection (needs the optional `plot` extra)."""
    from toc.plot import _pyplot, plot_selection

    _pyplot()  # fail with the install hint before any work
    settings = _settings(channels, max_num, min_num, exact_budget, sim_weight, var_weight, allow_nonfinite)
    target = prepare_output(output, force=force)
    loaded = load_codebooks(checkpoint, trust_checkpoint=trust_checkpoint)
    levels = _levels_to_use(loaded, level)
    selections = select_levels(loaded.codebooks, settings, levels)
    _warn_short(selections)
    scored = _score_levels(loaded, levels, sim_weight, var_weight, allow_nonfinite)
    if not selections:
        raise ConfigError("nothing to plot")
    plot_selection(loaded.codebooks, scored, selections, target, max_codes=max_codes, title=f"TOC: {loaded.path.name}")
    click.echo(json.dumps({"figure": str(target), "levels": levels}, sort_keys=True))


COMMANDS = [inspect_command, score_command, select_command, plot_command]
