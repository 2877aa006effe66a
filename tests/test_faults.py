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


TRAIN_ARGS = ["--levels", "2", "--audio-output-dim", "16", "--video-output-dim", "16", "--text-output-dim", "16",
              "--n-embeddings", "16", "--embedding-dim", "16", "--batch-size", "2", "--seed", "3",
              "--epochs", "2", "--diagnostics-clips", "4", "--level2-start", "0", "--save-every", "1"]


def test_sigkill_during_train_then_resume_gives_the_uninterrupted_checkpoint(tmp_path):
    import torch

    from toc.testing.datafixtures import write_pretrain

    root = tmp_path / "data"
    write_pretrain(root)
    steps = "8"
    full = subprocess.run([sys.executable, "-m", "cli", "train", "--data-root", str(root), *TRAIN_ARGS, "--max-steps", steps, "-o", str(tmp_path / "full")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    process = _toc("train", "--data-root", root, *TRAIN_ARGS, "--max-steps", steps, "-o", tmp_path / "killed")
    try:
        deadline = time.monotonic() + 300
        # Kill once a mid-run last.pt exists (written every step), before the run can finish.
        while time.monotonic() < deadline and process.poll() is None:
            metrics = tmp_path / "killed" / "metrics.jsonl"
            if (tmp_path / "killed" / "last.pt").exists() and metrics.exists() and metrics.read_text().count('"step"') >= 3:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "cli", "train", "--data-root", str(root), "--epochs", "2", "--max-steps", steps,
                              "--diagnostics-clips", "4", "--resume", str(tmp_path / "killed")],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    killed_log = (tmp_path / "killed" / "metrics.jsonl").read_text()
    assert a["total_step"] == b["total_step"], killed_log
    for key in ("Encoder_parameters", "Decoder_parameters", "CPC_parameters"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
