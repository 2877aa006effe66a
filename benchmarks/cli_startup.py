"""How fast does `toc` answer? `--help` against `python -c "import click"`, and a command that
reads a checkpoint against `python -c "import torch"`, measured side by side in one run.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 9]
Writes benchmarks/results/cli_startup.md and cli_startup.jsonl (one line per command and run).

Each pair (command, its baseline) runs alternately, A B A B ..., as whole processes from the
repository's virtualenv, so a drift in the machine's speed hits both; the ratio is taken pair by
pair and the median reported with its min and max. Also recorded per command: whether the
process imported torch, h5py or scipy (read from `python -X importtime`), since `--help` must
import none of them. The issue's targets: `toc --help` under 0.5 s wall; `toc inspect` on a
small checkpoint within 1.5x of importing torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import provenance  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
TOC = str(ROOT / ".venv" / "bin" / "toc")
CHECKPOINT = "tests/fixtures/cmg-reference/dcid_small.pt"
RESULTS = ROOT / "benchmarks" / "results"

HELP_BASELINE = ("python -c 'import click'", [PYTHON, "-c", "import click"])
TORCH_BASELINE = ("python -c 'import torch'", [PYTHON, "-c", "import torch"])
# (what is timed, its argv after `toc`, the baseline it is held against)
CASES = [
    ("toc --help", ["--help"], HELP_BASELINE),
    *[(f"toc {name} --help", [*name.split(), "--help"], HELP_BASELINE) for name in (
        "select", "eval ave", "eval retrieval", "train", "compare", "health", "demo",
    )],
    ("toc inspect CKPT", ["inspect", CHECKPOINT], TORCH_BASELINE),
    ("toc select CKPT --channels 32", ["select", CHECKPOINT, "--channels", "32"], TORCH_BASELINE),
]
WATCHED = ("torch", "h5py", "scipy")


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return seconds


def heavy_imports(toc_args: list[str]) -> list[str]:
    """Which of WATCHED the `toc` process imports, from Python's own import-time log."""
    code = "import sys; from cli.main import cli; sys.argv = ['toc', *sys.argv[1:]]; cli()"
    done = subprocess.run([PYTHON, "-X", "importtime", "-c", code, *toc_args], cwd=ROOT, capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in WATCHED if name in imported]


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed pairs per command (after one warm-up pair)")
    parser.add_argument("--output", type=Path, default=RESULTS / "cli_startup.md")
    args = parser.parse_args()
    records, rows = [], []
    for name, toc_args, (baseline_name, baseline) in CASES:
        command = [TOC, *toc_args]
        wall(command), wall(baseline)  # warm-up: file caches
        pairs = [(wall(command), wall(baseline)) for _ in range(args.runs)]
        imports = heavy_imports(toc_args)
        for run, (a, b) in enumerate(pairs):
            records.append({"command": name, "baseline": baseline_name, "run": run, "seconds": a, "baseline_seconds": b})
        ratios = [a / b for a, b in pairs]
        rows.append(
            f"| `{name}` | {median_range([a for a, _ in pairs])} | `{baseline_name}` | "
            f"{median_range([b for _, b in pairs])} | {median_range(ratios)} | {', '.join(imports) or 'none'} |"
        )
        print(rows[-1], file=sys.stderr)
    lines = [
        "# `toc` start-up: --help and a checkpoint command against their baselines",
        "",
        *provenance.header(
            "benchmarks/cli_startup.py", provenance.python_argv(), "none (no randomness)",
            ["cli", "toc/__init__.py", "toc/vocabulary.py", "hdcid/vocabulary.py", "toc/codebook/settings.py"],
        ),
        "",
        f"Wall seconds of the whole process, median [min, max] over {args.runs} runs after one warm-up, "
        "each run of the command followed by one of its baseline; the ratio is taken pair by pair. "
        "`imports` names which of torch, h5py and scipy the command's process imported.",
        "",
        "| command | wall s | baseline | baseline wall s | ratio | imports |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Targets (issue 26): `toc --help` under 0.5 s wall on this machine, every `--help` without torch, "
        "and `toc inspect` on a small checkpoint within 1.5x of `python -c 'import torch'`.",
    ]
    raw = provenance.write_results(args.output, lines, records)
    print(f"wrote {args.output} and {raw}", file=sys.stderr)


if __name__ == "__main__":
    main()
