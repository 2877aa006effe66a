"""benchmarks/gpu_check.py's CPU fallback runs (what a GPU machine runs, at tiny sizes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_fallback_runs_every_check_and_writes_its_report(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert "CPU fallback" in report
    parity = [line for line in report.splitlines() if line.startswith("| dcid-avt") or line.startswith("| hdcid-avt")]
    assert len(parity) == 3 + 3 * 2  # DCID: 3 modalities x 1 level; H-DCID: x 2 levels
    assert all(line.endswith("| True |") for line in parity)
    for section in ("One training step", "Training throughput", "Encode throughput", "Two processes"):
        assert section in report
