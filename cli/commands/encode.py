"""`toc encode`: features → codes and quantized vectors per level, in an h5 file."""

from __future__ import annotations

import json

import click

from cli.options import command, encoder_options, force_option, trust_option
from cli.progress import bars
from cmg_base.files import prepare_output
from hdcid.vocabulary import MODALITIES
from toc.vocabulary import ENCODE_BATCH_SIZE


@command("encode")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--modality", type=click.Choice(MODALITIES), required=True, help="Which encoder to run.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), required=True, help="Features: .npy or .h5, shaped [N, T, ...].")
@click.option("--key", default=None, help="Dataset name inside an .h5 input (default: its only dataset).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Output .h5 file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=ENCODE_BATCH_SIZE, help="Clips per forward pass.")
@encoder_options
@trust_option
@force_option
def encode(checkpoint, modality, input_path, key, output, dtype, batch_size, device, trust_checkpoint, force):
    """Turn features into the codes (and codewords) the checkpoint's shared codebook assigns.

    Writes OUT.h5 with, for every codebook level L, `level{L}/codes` [N, T] int64 and
    `level{L}/quantized` [N, T, D]. FCID checkpoints: level 0 holds the per-second coarse codes and
    codewords the published downstream heads read, and `clip/codes` [N], `clip/quantized` [N, D]
    the one code per clip. Prints a JSON summary on stdout.
    """
    from toc.codebook.checkpoint import load_checkpoint
    from toc.codebook.encode import encode_file

    target = prepare_output(output, force=force)
    loaded = load_checkpoint(checkpoint, trust_checkpoint=trust_checkpoint)
    summary = encode_file(
        loaded, modality, input_path, target, key=key, dtype=dtype, batch_size=batch_size,
        device=device, progress=bars(unit="clip"),
    )
    click.echo(json.dumps(summary, sort_keys=True))


COMMANDS = [encode]
