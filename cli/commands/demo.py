"""`toc demo`: the main job on the built-in synthetic data, ending in a model-selection report."""

from __future__ import annotations

import dataclasses
import json
import time

import click

from cli.options import command
from cli.progress import log
from hdcid.recipes import RECIPES
from toc.vocabulary import DEMO_RECIPE


@command("demo")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="toc-demo", help="Folder for data, runs and the report.")
@click.option("--quick", is_flag=True, default=False, help="A smaller corpus, fewer epochs and seeds (under a minute on 2 cores).")
@click.option("--seed", type=int, default=0, help="Seed of the corpus and of training.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default=DEMO_RECIPE, help="Remedies of this `toc train` recipe (the demo keeps its own CPU-sized widths, batch and epochs; with its 64 codes for 52 categories and 150 steps, the code sharing of `toc train`'s default, shared-codes, loses AVE transfer); reference = the published recipe.")
@click.option("--force", is_flag=True, default=False, help="Replace an earlier demo in the output folder.")
def demo(out_dir, quick, seed, recipe, force):
    """Synthesise a corpus in the real layouts, train DCID and H-DCID, select channels with TOC,
    evaluate DCID / DCID+TOC / H-DCID / H-DCID+TOC on AVE, AVVP, AVE→AVVP and UCF↔VGGSound in both
    directions with several head seeds and (full mode) two pretraining runs per family (strict
    protocol; linear, prototype and code-id heads), and write OUT/report.md."""
    from toc.pipeline.demo import DemoSettings, run_demo

    settings = DemoSettings.quick() if quick else DemoSettings()
    settings = dataclasses.replace(settings, seed=seed, recipe=recipe)
    start = time.monotonic()
    result = run_demo(out_dir, settings, force=force, log=log)
    summary = {
        "out_dir": str(result.out_dir),
        "report": str(result.out_dir / "report.md"),
        "files": sorted(str(p) for p in result.report_files),
        "checkpoints": {k: [str(p) for p in v] for k, v in result.checkpoints.items()},
        "seconds": {k: round(v, 1) for k, v in {**result.seconds, "total": time.monotonic() - start}.items()},
    }
    click.echo(json.dumps(summary, sort_keys=True, indent=2))


COMMANDS = [demo]
