"""`toc synth`: write a built-in synthetic corpus, in the real on-disk layouts or in the own-data
(paired) layout."""

from __future__ import annotations

import json

import click

from cli.options import command
from cli.progress import stage_lines
from toc.vocabulary import SYNTHETIC_TEXT_DIM


@command("synth")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--layout", type=click.Choice(["reference", "paired"]), default="reference",
              help="reference: the published layouts of every task; paired: one DIR/paired.h5 in the own-data format (docs/data.md).")
@click.option("--scale", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              help="Size multiplier: 1.0 is demo-sized (reference: ~1.2k clips, ~170 MB; paired: 400 clips), 0.1 is a tiny CI set.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Random seed: the same seed gives byte-identical files.")
@click.option("--text-dim", type=click.IntRange(min=1), default=None,
              help=f"Width W of the text features: reference, per category [K, 10, W] (default {SYNTHETIC_TEXT_DIM}); "
              "paired, one prompt per class [K, W] (default: no text).")
@click.option("--audio-dim", type=click.IntRange(min=1), default=768, help="paired: audio feature width.")
@click.option("--video-dim", type=click.IntRange(min=1), default=512, help="paired: video feature width (vectors, no spatial grid).")
@click.option("--steps", type=click.IntRange(min=1), default=1, help="paired: time steps T per clip (1: no time axis, [N, D] arrays).")
@click.option("--classes", type=click.IntRange(min=2), default=10, help="paired: number of classes.")
@click.option("--force", is_flag=True, default=False,
              help="Write into a non-empty DIR, replacing the corpus' own top-level entries there.")
def synth(directory: str, layout: str, scale: float, seed: int, text_dim: int | None, audio_dim: int,
          video_dim: int, steps: int, classes: int, force: bool) -> None:
    """Write a synthetic corpus to DIR.

    --layout reference (default): VGGSound-AVEL-style pretraining data with text features, and
    the AVE, AVVP, AVE->AVVP and UCF<->VGGSound task sets, in the real file layouts.
    --layout paired: DIR/paired.h5 in the own-data format (default: 768-d audio, 512-d clip-level
    video, T = 1, 10 classes, train / val / test splits), what `toc train --data-root DIR` and
    `toc eval paired --data-root DIR` read.

    The generative models are described in docs/synthetic-data.md. Prints a JSON summary on
    stdout; the same summary is written to DIR/synth.json.
    """
    from toc.corpora.paired import synthesize_paired
    from toc.corpora.synthetic import synthesize

    if layout == "paired":
        summary = synthesize_paired(
            directory, scale=scale, seed=seed, classes=classes, steps=steps, audio_dim=audio_dim,
            video_dim=video_dim, text_dim=text_dim, force=force,
        )
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
        return
    summary = synthesize(directory, scale=scale, seed=seed, text_dim=text_dim or SYNTHETIC_TEXT_DIM,
                         force=force, progress=stage_lines("synth"))
    payload = summary.to_dict()
    payload.pop("class_names")
    click.echo(json.dumps(payload, sort_keys=True))


COMMANDS = [synth]
