"""`toc health` memory: does the peak stay one block, whatever the size of the codes file?

For code files of two sizes (a small one and one `--scale` times larger; [N, 50, 8] int32 random
codes, K = 1024) in both accepted containers (.npy and .h5), each measurement runs in a fresh
Python process: import toc, record the peak RSS, run `toc.codebook.health.code_health`, record the
peak RSS again (Linux: the peak is reset through /proc/self/clear_refs after the imports).
Reported: the extra peak RSS (MiB) above the RSS after the imports, the peak of the heap that
tracemalloc sees (numpy arrays included), the ratio of the extra peak between the large and the
small file (1.0 = independent of the file size), and the time. Writes
benchmarks/results/code_health_memory.md.

    .venv/bin/python benchmarks/code_health_memory.py [--rows 25000] [--scale 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cmg_base.files import write_text_atomic  # noqa: E402

CHILD = """
import json, sys, time, tracemalloc
from toc.codebook.health import code_health

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
tracemalloc.start()
start = time.perf_counter()
report = code_health(sys.argv[1], 1024)
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] / 2**20
print(json.dumps({"extra_mib": status("VmHWM") - before, "traced_mib": traced, "seconds": seconds}))
"""


def write_codes(folder: Path, rows: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    npy = folder / f"codes_{rows}.npy"
    array = np.lib.format.open_memmap(npy, mode="w+", dtype=np.int32, shape=(rows, 50, 8))
    h5 = folder / f"codes_{rows}.h5"
    with h5py.File(h5, "w") as out:
        dataset = out.create_dataset("codes", shape=(rows, 50, 8), dtype=np.int32)
        for first in range(0, rows, 10_000):
            block = rng.integers(0, 1024, size=(min(10_000, rows - first), 50, 8), dtype=np.int32)
            array[first : first + len(block)] = block
            dataset[first : first + len(block)] = block
    array.flush()
    del array
    return {"npy": npy, "h5": h5}


def measure(path: Path) -> dict:
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    output = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "code_health_memory.md")
    args = parser.parse_args()
    rows = [args.rows, args.rows * args.scale]
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {n: write_codes(Path(tmp), n, seed=0) for n in rows}
        for _ in range(args.repeats):
            for n in rows:
                for container, path in files[n].items():
                    results.setdefault((container, n), []).append(measure(path))
    lines = [
        "# `toc health`: peak memory against the size of the codes file",
        "",
        f"`python benchmarks/code_health_memory.py --rows {args.rows} --scale {args.scale} --repeats {args.repeats}`"
        f" ({platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, h5py {h5py.__version__};"
        " each run in a fresh process, OMP_NUM_THREADS=1). Codes: [N, 50, 8] int32, uniform in [0, 1024), levels on"
        " the last axis. Extra peak = peak RSS during `code_health` minus the RSS after importing toc"
        " (peak reset through /proc/self/clear_refs); traced = tracemalloc's peak;"
        " median of the repeats (min-max).",
        "",
        "| container | codes | file MiB | extra peak RSS MiB | traced peak MiB | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for (container, n), runs in sorted(results.items()):
        extra = [r["extra_mib"] for r in runs]
        traced = [r["traced_mib"] for r in runs]
        seconds = [r["seconds"] for r in runs]
        lines.append(
            f"| {container} | {n * 400:,} | {n * 400 * 4 / 2**20:.0f} | {statistics.median(extra):.1f} ({min(extra):.1f}-{max(extra):.1f})"
            f" | {statistics.median(traced):.1f}"
            f" | {statistics.median(seconds):.2f} ({min(seconds):.2f}-{max(seconds):.2f}) |"
        )
    lines.append("")
    for container in ("npy", "h5"):
        small = statistics.median(r["extra_mib"] for r in results[(container, rows[0])])
        large = statistics.median(r["extra_mib"] for r in results[(container, rows[1])])
        ratio = large / small if small > 0 else float("nan")
        lines.append(f"- {container}: extra peak, {args.scale}x larger file / small file = {ratio:.2f}")
    lines.append("")
    write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
