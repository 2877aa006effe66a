"""`toc synth-real` and `toc synth-spoken-digits`: the real-signal corpora (docs/real-corpora.md)."""

from __future__ import annotations

import json

import click

from cli.options import command, force_option
from cli.progress import bars
from toc.corpora.kinds import DEFAULT_KIND, KINDS


def corpus_options(func):
    """The options every real-signal corpus takes (sizes, seed, text width, force)."""
    options = [
        click.option("--clips", type=click.IntRange(min=10), default=500, help="Pretraining clips (VGGSound-AVEL layout)."),
        click.option("--ave-clips", type=click.IntRange(min=10), default=None,
                     help="AVE-layout clips (train/val/test 60/20/20) [default: 0.6 x --clips]."),  # fmt: skip
        click.option("--text-width", type=click.IntRange(min=1), default=768, help="Width W of the text word features [10,10,W]."),
        click.option("--seed", type=click.IntRange(min=0), default=0,
                     help="Random seed (same seed, same tools and fonts: an identical corpus)."),  # fmt: skip
        force_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build(kind: str, directory: str, clips: int, ave_clips: int | None, text_width: int, seed: int, force: bool) -> None:
    from toc.corpora.kinds import corpus_for
    from toc.corpora.real_signals import RealCorpusConfig, build_real_corpus, default_ave_clips

    n_ave = ave_clips if ave_clips is not None else default_ave_clips(clips)
    config = RealCorpusConfig(pretrain_clips=clips, ave_clips=n_ave, seed=seed, text_width=text_width)
    summary = build_real_corpus(corpus_for(kind), directory, config, force=force, progress=bars(unit="clip"))
    click.echo(json.dumps(summary.to_dict(), sort_keys=True))


_KIND_LIST = "\n".join(f"  {name}: {kind.description}." for name, kind in KINDS.items())


@command("synth-real", help=f"""Build a paired audio-video corpus of real signals of one KIND in DIRECTORY, offline.

\b
Kinds (--kind):
{_KIND_LIST}

Every kind has 10 classes, VGGish-shaped audio [10,128] and VGG19-pool5-shaped video
[10,7,7,512] features from fixed extractors, and writes the pretraining layout
(vggsound-avel40k.csv, per-video zips, vggsound40k/data/text_features.h5 of the category
prompts) and the AVE layout (AVE-ECCV18-master/data/), with the evaluation sources and images
disjoint from the pretraining ones. spoken-digits and spoken-words need espeak-ng;
spoken-digits needs scikit-learn (pip install 'cmg-toc[corpus]'); spoken-words needs Pillow and
the DejaVu fonts. Prints a JSON summary on stdout.
""")  # fmt: skip
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(list(KINDS)), default=DEFAULT_KIND, help="Which corpus.")
@corpus_options
def synth_real(directory, kind, clips, ave_clips, text_width, seed, force):
    build(kind, directory, clips, ave_clips, text_width, seed, force)


@command("synth-spoken-digits")
@click.argument("directory", type=click.Path(file_okay=False))
@corpus_options
def synth_spoken_digits(directory, clips, ave_clips, text_width, seed, force):
    """Build the spoken-digits corpus in DIRECTORY, offline (= toc synth-real --kind spoken-digits).

    Spoken digits "zero".."nine" synthesised by espeak-ng with many voices, paired with
    scikit-learn's handwritten 8x8 digits; VGGish-shaped audio [10,128] and VGG19-pool5-shaped
    video [10,7,7,512] features. Writes the pretraining layout (vggsound-avel40k.csv, per-video
    zips, vggsound40k/data/text_features.h5) and the AVE layout (AVE-ECCV18-master/data/), with evaluation
    speakers and images disjoint from pretraining ones. Needs espeak-ng and scikit-learn
    (pip install 'cmg-toc[corpus]'). Prints a JSON summary on stdout.
    """
    build("spoken-digits", directory, clips, ave_clips, text_width, seed, force)


COMMANDS = [synth_real, synth_spoken_digits]
