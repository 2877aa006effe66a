"""`toc synth`: write the built-in synthetic corpus in the real on-disk layouts."""

from __future__ import annotations

import json

import click

from cli.options import command
from cli.progress import stage_lines
from toc.corpora.synthetic import DEFAULT_TEXT_DIM, synthesize


@command("synth")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--scale", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              help="Size multiplier: 1.0 is demo-sized (~1.2k clips, ~170 MB), 0.1 is a tiny CI set.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Random seed: the same seed gives byte-identical files.")
@click.option("--text-dim", type=click.IntRange(min=1), default=DEFAULT_TEXT_DIM,
              help="Width W of the per-category text features in text_features.h5 [K, 10, W].")
@click.option("--force", is_flag=True, default=False,
              help="Write into a non-empty DIR, replacing the corpus' own top-level entries there.")
def synth(directory: str, scale: float, seed: int, text_dim: int, force: bool) -> None:
    """Write a synthetic corpus to DIR: VGGSound-AVEL-style pretraining data with text features,
    and the AVE, AVVP, AVE->AVVP and UCF<->VGGSound task sets, in the real file layouts.

    The generative model is described in docs/synthetic-data.md. Prints a JSON summary (counts
    and relative paths) on stdout; the same summary, with class names, is written to DIR/synth.json.
    """
    summary = synthesize(directory, scale=scale, seed=seed, text_dim=text_dim, force=force,
                         progress=stage_lines("synth"))
    payload = summary.to_dict()
    payload.pop("class_names")
    click.echo(json.dumps(payload, sort_keys=True))


COMMANDS = [synth]
