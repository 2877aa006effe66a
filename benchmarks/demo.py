"""`toc demo` as README's first command runs it: its time, its memory and what its report says.

Run: .venv/bin/python benchmarks/demo.py [--seed 0] [--quick] [--work /tmp/toc-demo-bench]
Writes benchmarks/results/demo.md (and demo.jsonl: the timing line). Runs `toc demo -o WORK --force`
once as a child process and measures it from outside: wall time, CPU seconds (user + system of the
process and its children) and peak RSS (the largest child's, from getrusage). The report's summary
table and the codebook-health table are copied from WORK/report.md as the demo wrote them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import provenance  # noqa: E402

from cmg_base.files import write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def section(report: str, heading_start: str) -> list[str]:
    """The lines of the first table after the first line starting with `heading_start`, or of the
    first table in the report when the heading is empty."""
    lines = report.splitlines()
    start = 0
    if heading_start:
        start = next(i for i, line in enumerate(lines) if line.startswith(heading_start))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first:end]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-demo-bench"))
    parser.add_argument("--output", type=Path, default=RESULTS / "demo.md")
    args = parser.parse_args()
    head = provenance.header(
        "benchmarks/demo.py", provenance.python_argv(), f"corpus and training seed {args.seed} (toc demo --seed)",
        ["toc/pipeline/demo.py", "toc/corpora/synthetic.py", "hdcid", "toc/eval", "toc/report"],
    )
    command = [str(ROOT / ".venv" / "bin" / "toc"), "demo", "-o", str(args.work), "--force", "--seed", str(args.seed)]
    if args.quick:
        command.append("--quick")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing = {"seed": args.seed, "quick": args.quick, "wall_seconds": round(wall, 1),
              "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(after.ru_maxrss / 1024, 1)}
    report = (args.work / "report.md").read_text()
    summary = section(report, "## Summary")
    health = section(report, "## Codebook health")
    text = [
        f"# `toc demo`{' --quick' if args.quick else ''}: time, memory and report",
        "",
        *head,
        f"- Child command: `toc demo -o {args.work} --force --seed {args.seed}{' --quick' if args.quick else ''}`",
        "",
        "| wall time | CPU time (user + system) | peak RSS |",
        "|---|---|---|",
        f"| {wall / 60:.1f} min ({wall:,.0f} s) | {cpu:,.0f} s | {timing['peak_rss_mb'] / 1024:.2f} GB |",
        "",
        "Wall time depends on what else the machine ran (the load average above); CPU time less so.",
        "",
        "## The report's summary (copied from report.md)",
        "",
        *summary,
        "",
        "## Codebook health of the trained models (copied from report.md)",
        "",
        *health,
    ]
    write_text_atomic(args.output, "\n".join(text) + "\n")
    write_text_atomic(args.output.with_suffix(".jsonl"), json.dumps(timing, sort_keys=True) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
