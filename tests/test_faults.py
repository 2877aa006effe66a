"""Faults: a kill or a full disk while an output is written leaves the old file or the new one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _toc(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def _wait_for_temp(directory: Path, name: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(directory.glob(f".{name}.*.tmp")):
            return True
        time.sleep(0.02)
    return False


def test_sigkill_during_encode_keeps_the_old_output(tmp_path, dcid_small_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3000, 10, 128)))
    out = tmp_path / "codes.h5"
    out.write_bytes(b"previous complete file")
    process = _toc("encode", dcid_small_path, "--modality", "audio", "--input", tmp_path / "x.npy", "-o", out, "--force", "--batch-size", "1")
    try:
        assert _wait_for_temp(tmp_path, out.name), process.stderr.read().decode() if process.poll() is not None else "no temp file"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert out.read_bytes() == b"previous complete file"


def test_file_size_limit_gives_one_line_and_keeps_the_old_output(tmp_path, dcid_small_path):
    np.save(tmp_path / "x.npy", np.zeros((200, 10, 128)))
    out = tmp_path / "codes.h5"
    out.write_bytes(b"previous complete file")
    command = f"ulimit -f 64; exec {sys.executable} -m cli encode {dcid_small_path} --modality audio --input {tmp_path / 'x.npy'} -o {out} --force"
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "file-size limit" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"previous complete file"
    assert not list(tmp_path.glob(".codes.h5.*"))
