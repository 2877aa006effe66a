"""Distributed training (gloo, 2 processes) against one process: same batches, same result.

Two processes with half of each batch train the model one process trains with the whole batch:
codebooks, EMA counts and weights and every network weight agree within float64 summation
order, the codebooks are identical on both ranks, and a killed distributed run resumes exactly
(on 2 processes, and within the same tolerance on 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from hdcid.errors import SettingsError
from hdcid.training import Remedies
from hdcid.training.distributed import Collective, World
from tests.distributed_workers import final_states, run_processes, run_steps, trainer_for
from tests.test_own_data_training import corpus_file

# Everything that couples rows runs: k-means init, resets that fire, alignment, standardised
# inputs, consistent EMA counts; uneven shards (batch 5 → 3 + 2, then 3 → 2 + 1) for DCID; H-DCID's level 2
# starts in epoch 1, so its first epoch leaves level-2 parameters without gradients.
REMEDIES = dict(
    standardize_inputs=True, codebook_init="kmeans", reset_patience=2, ema_consistent=True, align_weight=1.0,
)
COMMON = dict(
    epochs=2, seed=3, dtype="float64", n_embeddings=24, audio_output_dim=16, video_output_dim=16,
    text_output_dim=16, diagnostics_clips=4, mi_iters=2,
)
DCID = dict(levels=1, batch_size=5, **{**COMMON, "epochs": 1})
HDCID = dict(levels=2, batch_size=4, embedding_dim=32, level2_start=1, save_every=2, **COMMON)
# float64: the two runs differ only in the order of sums (gradients, EMA statistics), ~1e-16
# relative. Adam's first steps divide each gradient by its own size (+ eps 1e-8), so a component
# whose gradient is nearly zero moves by a visible part of the learning rate on both runs, and a
# 1e-13 difference in it becomes ~1e-8 in the weight (measured: 3e-8 after one step, in the text
# branch's attention). The codebooks follow the features: ~1e-9.
CODEBOOK_TOLERANCE = dict(rtol=1e-7, atol=1e-8)
WEIGHT_TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _settings(base: dict) -> dict:
    return {**base, "remedies": Remedies(**REMEDIES)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-process runs and the same runs on 2 processes (plus a killed H-DCID run)."""
    root = tmp_path_factory.mktemp("distributed")
    out = root / "states"
    out.mkdir()
    jobs = [
        {"name": "dcid", "run_dir": str(root / "dcid-2"), "settings": _settings(DCID), "steps_only": True},
        {"name": "hdcid", "run_dir": str(root / "hdcid-2"), "settings": _settings(HDCID)},
        # Last (it ends the processes): rank 0 dies after step 3; last.pt holds step 2
        # (save_every 2), metrics.jsonl step 3.
        {"name": "killed", "run_dir": str(root / "killed"), "settings": _settings(HDCID), "kill_after": 3},
    ]
    with pytest.raises(mp.ProcessExitedException) as died:
        run_processes(jobs, out)
    assert died.value.exit_code == 3  # the planned crash, not a failure of the runs before it
    single, single_steps = {}, {}
    for name, base in (("dcid", DCID), ("hdcid", HDCID)):
        trainer = trainer_for(root / f"{name}-1", _settings(base), None)
        if name == "dcid":
            single_steps[name] = run_steps(trainer)
        else:
            trainer.run()
        single[name] = final_states(trainer)
    distributed = {}
    for name in ("dcid", "hdcid"):
        states = [torch.load(out / f"{name}-rank{r}.pt", weights_only=True) for r in range(2)]
        if name == "dcid":
            assert [s["loss"] for s in states[0].pop("steps")] == pytest.approx([s["loss"] for s in single_steps[name]], rel=1e-8)
            states[1].pop("steps")
        else:
            for s in states:
                s.pop("steps")
        distributed[name] = states
    return root, single, distributed


def _assert_close(actual: dict, expected: dict) -> float:
    """Every tensor of every module within the tolerance; returns the largest difference."""
    largest = 0.0
    for key, tensors in expected.items():
        for name, value in tensors.items():
            other = actual[key][name]
            tolerance = CODEBOOK_TOLERANCE if "quantizer" in name else WEIGHT_TOLERANCE
            torch.testing.assert_close(other, value, **tolerance, msg=lambda m, k=key, n=name: f"{k}.{n}: {m}")
            if value.is_floating_point():
                largest = max(largest, float((other - value).abs().max()))
    return largest


@pytest.mark.parametrize("name", ["dcid", "hdcid"])
def test_two_processes_with_half_batches_train_the_one_process_model(runs, name):
    root, single, distributed = runs
    rank0, rank1 = distributed[name]
    encoder = rank0["Encoder_parameters"]
    assert all(torch.isfinite(t).all() for states in rank0.values() for t in states.values())
    for buffer in ("embedding", "ema_count", "ema_weight", "unactivated_count"):
        key = f"Cross_quantizer.{buffer}"
        assert torch.equal(encoder[key], rank1["Encoder_parameters"][key]), f"{buffer} differs between the ranks"
    for key in rank0:  # DDP and the CLUB all-reduce keep every weight identical on the ranks
        for tensor_name, value in rank0[key].items():
            assert torch.equal(value, rank1[key][tensor_name]), f"{key}.{tensor_name} differs between the ranks"
    # The runs moved: the EMA counts started uniform (ema_consistent), so a test of equal
    # initial states would fail here.
    counts = encoder["Cross_quantizer.ema_count"]
    assert not torch.equal(counts, torch.full_like(counts, float(counts.flatten()[0])))
    print(f"{name}: largest difference to one process {_assert_close(rank0, single[name]):.3g}")
    if name == "dcid":
        return  # trained without checkpoints (the fixture compared its step losses)
    # Only rank 0 wrote, and the logged losses are the batch's.
    lines_2 = (root / f"{name}-2" / "metrics.jsonl").read_text().splitlines()
    lines_1 = (root / f"{name}-1" / "metrics.jsonl").read_text().splitlines()
    assert len(lines_2) == len(lines_1)
    for one, two in zip(lines_1, lines_2, strict=True):
        a, b = json.loads(one), json.loads(two)
        if a["kind"] == "step":
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-8)
            assert b["nce"] == pytest.approx(a["nce"], rel=1e-8)
    assert json.loads((root / f"{name}-2" / "config.json").read_text())["world_size"] == 2


def test_a_killed_distributed_run_resumes_exactly(runs, tmp_path):
    root, single, distributed = runs
    killed = tmp_path / "killed"
    shutil.copytree(root / "killed", killed)
    out = tmp_path / "states"
    out.mkdir()
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 4  # steps 1-3 and epoch 0
    assert torch.load(killed / "last.pt", weights_only=True)["total_step"] == 2
    on_one = tmp_path / "on-one"
    shutil.copytree(killed, on_one)
    run_processes([{"name": "resumed", "run_dir": str(killed), "settings": None}], out)
    resumed = [torch.load(out / f"resumed-rank{r}.pt", weights_only=True) for r in range(2)]
    for key, tensors in distributed["hdcid"][0].items():
        for name, value in tensors.items():
            assert torch.equal(resumed[0][key][name], value), f"{key}.{name}: the resumed run differs"
            assert torch.equal(resumed[1][key][name], value)
    assert (killed / "metrics.jsonl").read_text() == (root / "hdcid-2" / "metrics.jsonl").read_text()
    # The same checkpoint continued by one process: the batches do not change with the world size.
    trainer = trainer_for(on_one, None, None)
    trainer.run()
    _assert_close(final_states(trainer), distributed["hdcid"][0])


def test_a_world_that_cannot_split_the_batches_is_refused_before_training():
    collective = Collective(World(0, 4, 0), torch.device("cpu"))
    with pytest.raises(SettingsError, match="leaves a process without clips"):
        collective.check_run(n_clips=13, batch_size=4, method=None)  # the last batch holds 1 clip
    collective.check_run(n_clips=16, batch_size=4, method=None)
    with pytest.raises(SettingsError, match="FCID"):
        collective.check_run(n_clips=16, batch_size=4, method="fcid")


def test_shards_are_contiguous_and_cover_the_batch():
    batch = [7, 3, 9, 1, 4]
    shards = []
    for rank in range(2):
        collective = Collective(World(rank, 2, rank), torch.device("cpu"))
        shards.append(collective.shard(batch))
        assert collective.counts == [3, 2]
    assert shards == [[7, 3, 9], [1, 4]]


def test_toc_train_nproc_launches_torchrun_and_writes_once(tmp_path):
    """`toc train --nproc 2`: torchrun's launcher, 2 gloo processes, one summary, world_size 2.
    (Clips without a time axis: the clip-level InfoNCE runs on the gathered batch.)"""
    data = corpus_file(tmp_path / "paired.h5", n=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [
        sys.executable, "-m", "cli", "train", "--paired", str(data), "-o", str(tmp_path / "run"), "--nproc", "2",
        "--max-steps", "2", "--batch-size", "4", "--n-embeddings", "16", "--embedding-dim", "16",
        "--audio-output-dim", "8", "--video-output-dim", "8", "--diagnostics-clips", "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["total_step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["total_step"]) for r in lines] == [("step", 1), ("step", 2), ("epoch", 2)]
