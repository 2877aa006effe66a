"""Reusable Click option bundles shared by several commands."""

from __future__ import annotations

import click


def output_option(help_text: str = "Write to FILE instead of stdout."):
    return click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None, help=help_text)


force_option = click.option("--force", is_flag=True, default=False, help="Overwrite existing output files.")

trust_option = click.option(
    "--trust-checkpoint",
    is_flag=True,
    default=False,
    help="Allow full unpickling of the checkpoint (can run arbitrary code: only for files you trust).",
)

device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Where the encoder runs."
)

seed_option = click.option("--seed", type=int, default=0, help="Random seed.")
