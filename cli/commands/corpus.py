"""`toc synth-spoken-digits`: the real-signal spoken-digits corpus (espeak-ng + sklearn digits)."""

from __future__ import annotations

import json

import click

from cli.options import command, force_option
from cli.progress import bars


@command("synth-spoken-digits")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--clips", type=click.IntRange(min=10), default=500, help="Pretraining clips (VGGSound-AVEL layout).")
@click.option("--ave-clips", type=click.IntRange(min=10), default=None,
              help="AVE-layout clips (train/val/test 60/20/20) [default: 0.6 x --clips].")  # fmt: skip
@click.option("--text-width", type=click.IntRange(min=1), default=768, help="Width W of the text word features [10,10,W].")
@click.option("--seed", type=int, default=0, help="Random seed (same seed, same espeak-ng version: identical corpus).")
@force_option
def synth_spoken_digits(directory, clips, ave_clips, text_width, seed, force):
    """Build a paired audio-video corpus of real signals in DIRECTORY, offline.

    Spoken digits "zero".."nine" synthesised by espeak-ng with many voices, paired with
    scikit-learn's handwritten 8x8 digits; VGGish-shaped audio [10,128] and VGG19-pool5-shaped
    video [10,7,7,512] features. Writes the pretraining layout (vggsound-avel40k.csv, per-video
    zips, vggsound40k/data/text_features.h5) and the AVE layout (AVE-ECCV18-master/data/), with evaluation
    speakers and images disjoint from pretraining ones. Needs espeak-ng and scikit-learn
    (pip install 'cmg-toc[corpus]'). Prints a JSON summary on stdout.
    """
    from toc.corpora.spoken_digits import SpokenDigitsConfig, build_spoken_digits

    n_ave = ave_clips if ave_clips is not None else max(10, round(0.6 * clips))
    config = SpokenDigitsConfig(pretrain_clips=clips, ave_clips=n_ave, seed=seed, text_width=text_width)
    summary = build_spoken_digits(directory, config, force=force, progress=bars(unit="clip"))
    click.echo(json.dumps(summary.to_dict(), sort_keys=True))


COMMANDS = [synth_spoken_digits]
