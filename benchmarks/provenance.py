"""The header every regenerated results file starts with: script, command, seeds, machine, date.

A number in benchmarks/results/ can only be checked when the file says how it was made. The
command is rebuilt from this process (its arguments, `nice` level and OMP_NUM_THREADS); the code
is named by its git commit, with any uncommitted change to the files the numbers depend on.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmg_base.files import write_text_atomic  # noqa: E402


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command as it was run from the repository root (nice and thread settings included)."""
    prefix = []
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is not None:
        prefix.append(f"OMP_NUM_THREADS={threads}")
    niceness = os.nice(0) if hasattr(os, "nice") else 0
    if niceness:
        prefix.append(f"nice -n {niceness}")
    return " ".join([*prefix, ".venv/bin/python", script, *argv])


def header(script: str, argv: Sequence[str], seeds: str, code: Sequence[str]) -> list[str]:
    """Markdown lines: script, command, seeds, machine, software, code version, date, load.

    `code`: the files (from the repository root) whose behaviour the numbers measure; an
    uncommitted change to any of them is named in the header.
    """
    started = datetime.datetime.now(datetime.timezone.utc)
    commit = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = _git("status", "--porcelain", "--", *code)
    dirty = sorted({line[3:] for line in changed.splitlines() if line.strip()})
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"- Script: `{script}`",
        f"- Command (from the repository root): `{command_line(script, argv)}`",
        f"- Seeds: {seeds}",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable), "
        f"{platform.system()} {platform.release()} {platform.machine()}; shared with other jobs "
        f"(load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f})",
        f"- Software: Python {platform.python_version()}, numpy {_version('numpy')}, "
        f"scipy {_version('scipy')}, torch {_version('torch')}",
        f"- Code: commit {commit}"
        + (f", with uncommitted changes to {', '.join(dirty)}" if dirty else
           f" ({', '.join(code)} as committed)"),
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
    ]


def python_argv() -> list[str]:
    """This process's arguments after the script name."""
    return list(sys.argv[1:])


def write_results(table: Path, lines: Sequence[str], records: Sequence[dict], default=None) -> Path:
    """Write the markdown `lines` to `table` and the raw `records` beside it (same name, .jsonl),
    each whole or not at all; returns the raw file's path."""
    raw = table.with_suffix(".jsonl")
    write_text_atomic(table, "\n".join(lines) + ("" if lines and lines[-1] == "" else "\n"))
    write_text_atomic(raw, "".join(json.dumps(r, sort_keys=True, default=default) + "\n" for r in records))
    return raw
