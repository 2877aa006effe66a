"""Bounded fuzzing: mutated data and checkpoint files fed to every loader and to the CLI.

Allowed outcomes: success, or a documented one-line error (exit code 1, no traceback, no partial
output file). Anything else is counted as a crash. Not part of CI's default run:

    .venv/bin/python benchmarks/fuzz.py --inputs 300 --seconds 240
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli.main import cli  # noqa: E402
from hdcid.errors import CmgError  # noqa: E402
from tests import datafixtures  # noqa: E402
from tests.checkpoints import save_reference_checkpoint  # noqa: E402
from toc.data.layout import resolve_paths  # noqa: E402
from toc.data.vggsound import load_pretrain  # noqa: E402
from toc.eval.tasks import load_task  # noqa: E402


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buffer = bytearray(data)
    mode = rng.choice(["flip", "truncate", "empty", "insert"])
    if mode == "flip" and buffer:
        for _ in range(rng.randint(1, 8)):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif mode == "truncate":
        buffer = buffer[: rng.randrange(len(buffer) + 1)]
    elif mode == "empty":
        buffer = bytearray()
    else:
        at = rng.randrange(len(buffer) + 1)
        buffer[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(buffer), mode


def feed_loaders(root: Path) -> list[str]:
    outcomes = []
    for task in ("ave", "avvp", "ave-avvp", "ucf-vggsound"):
        try:
            data = load_task(task, data_root=root)
            for feature_set in data.sets.values():
                feature_set.read(np.arange(len(feature_set)))
            outcomes.append("ok")
        except CmgError as exc:
            if "\n" in str(exc):
                raise AssertionError(f"multi-line error: {exc!r}") from exc
            outcomes.append("error")
    try:
        corpus = load_pretrain(resolve_paths("pretrain", data_root=root))
        corpus.read(np.arange(len(corpus)))
        outcomes.append("ok")
    except CmgError:
        outcomes.append("error")
    return outcomes


def feed_cli(checkpoint: Path, work: Path) -> list[str]:
    runner = CliRunner()
    np.save(work / "audio.npy", np.random.default_rng(0).normal(size=(2, 10, 128)))
    outputs = {"select": work / "sel.json", "encode": work / "codes.h5"}
    commands = {
        "inspect": ["inspect", str(checkpoint), "--format", "json"],
        "select": ["select", str(checkpoint), "--channels", "4", "-o", str(outputs["select"]), "--force"],
        "encode": ["encode", str(checkpoint), "--modality", "audio", "--input", str(work / "audio.npy"), "-o", str(outputs["encode"]), "--force"],
    }
    outcomes = []
    for name, args in commands.items():
        result = runner.invoke(cli, args)
        if result.exit_code not in (0, 1) or "Traceback" in result.output or result.exception and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{name}: exit {result.exit_code}: {result.output[-500:]}")
        if result.exit_code == 1:
            if len(result.stderr.strip().splitlines()) != 1:
                raise AssertionError(f"{name}: error is not one line: {result.stderr!r}")
            if name in outputs and outputs[name].exists():
                raise AssertionError(f"{name}: output left behind after an error")
            if list(work.glob(".*.tmp")):
                raise AssertionError(f"{name}: temporary file left behind")
        outcomes.append("ok" if result.exit_code == 0 else "error")
        for path in outputs.values():
            path.unlink(missing_ok=True)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="toc-fuzz-"))
    data_root = base / "data"
    for writer in (datafixtures.write_ave, datafixtures.write_avvp, datafixtures.write_ave_avvp, datafixtures.write_ucf_vggsound, datafixtures.write_pretrain):
        writer(data_root)
    data_files = sorted(p for p in data_root.rglob("*") if p.is_file())
    checkpoints = [
        save_reference_checkpoint(base / "dcid.pt"),
        save_reference_checkpoint(base / "hdcid.pt", "hdcid-avt"),
    ]
    torch.save({"codebook": torch.randn(16, 8)}, base / "codebook.pt")
    checkpoints.append(base / "codebook.pt")
    counts = {"inputs": 0, "ok": 0, "errors": 0, "crashes": 0}
    deadline = time.monotonic() + args.seconds
    while counts["inputs"] < args.inputs and time.monotonic() < deadline:
        counts["inputs"] += 1
        work = Path(tempfile.mkdtemp(dir=base))
        try:
            if rng.random() < 0.5:
                shutil.copytree(data_root, work / "data")
                target = work / "data" / rng.choice(data_files).relative_to(data_root)
                target.write_bytes(mutate(target.read_bytes(), rng)[0])
                outcomes = feed_loaders(work / "data")
            else:
                source = rng.choice(checkpoints)
                target = work / source.name
                target.write_bytes(mutate(source.read_bytes(), rng)[0])
                outcomes = feed_cli(target, work)
            counts["ok"] += outcomes.count("ok")
            counts["errors"] += outcomes.count("error")
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            counts["crashes"] += 1
            print(f"CRASH on input {counts['inputs']}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 1 if counts["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
