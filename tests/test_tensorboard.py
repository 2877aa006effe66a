"""`toc train --tensorboard DIR`: TensorBoard scalars equal to metrics.jsonl, one clear line
when the optional package is missing, and a resumed run that does not duplicate steps."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hdcid.training import TrainConfig, TrainRequest, run_training
from tests.train_corpus import PlantedCorpus

SMALL = {"batch_size": 4, "seed": 0, "n_embeddings": 16, "audio_output_dim": 8, "video_output_dim": 8,
         "text_output_dim": 8, "diagnostics_clips": 8, "embedding_dim": 16, "levels": 2, "level2_start": 1,
         "recipe": "small-corpus"}


def test_missing_package_is_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if absent
    result = CliRunner().invoke(cli, ["train", "--data-root", str(tmp_path / "nothing"), "-o", str(tmp_path / "run"),
                                      "--tensorboard", str(tmp_path / "tb")], catch_exceptions=False)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "--tensorboard needs the tensorboard package" in result.stderr
    assert "pip install 'cmg-toc[tensorboard]'" in result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(folder), size_guidance={accumulator.SCALARS: 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_scalars_mirror_metrics_jsonl_and_resume_purges(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed (pip install 'cmg-toc[tensorboard]')")
    data = PlantedCorpus(n_clips=8, n_classes=2, steps=3, word_dim=6, audio_dim=10, video_dim=6)
    settings = {k: v for k, v in SMALL.items()}
    request = TrainRequest(output=tmp_path / "run", settings={**settings, "epochs": 2, "max_steps": 3},
                           tensorboard=tmp_path / "tb")
    run_training(request, lambda: data)
    # As if the run had logged step 4 and crashed before writing its checkpoint.
    writer_module = pytest.importorskip("torch.utils.tensorboard")
    crashed = writer_module.SummaryWriter(log_dir=str(tmp_path / "tb"))
    crashed.add_scalar("step/loss", 1e6, 4)
    crashed.close()
    # The resumed run writes step 4 again; TensorBoard drops the stale one (purge_step).
    resumed = TrainRequest(resume=tmp_path / "run", settings={"epochs": 2, "max_steps": 4}, tensorboard=tmp_path / "tb")
    run_training(resumed, lambda: data)
    lines = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    logged = scalars(tmp_path / "tb")
    steps = [r for r in lines if r["kind"] == "step"]
    assert [s for s, _ in logged["step/loss"]] == [r["total_step"] for r in steps] == [1, 2, 3, 4]
    for name in ("loss", "nce", "recon_audio", "commit_video", "mi_text", "batch_codes_audio"):
        expected = [np.float32(r[name]) for r in steps if name in r]
        assert [np.float32(v) for _, v in logged[f"step/{name}"]] == expected, name
    epochs = [r for r in lines if r["kind"] == "epoch"]
    assert epochs and [s for s, _ in logged["epoch/epoch"]] == [r["total_step"] for r in epochs]
    first = epochs[0]["diagnostics"][0]
    assert logged["epoch/level1/perplexity_all"][0][1] == pytest.approx(first["perplexity_all"], rel=1e-6)
    assert logged["epoch/level1/codes_used/audio"][0][1] == first["codes_used"]["audio"]
    av = first["pairs"]["audio-video"]
    assert logged["epoch/level1/pairs/audio-video/kappa"][0][1] == pytest.approx(av["kappa"], rel=1e-6, abs=1e-9)
    assert logged["epoch/level1/pairs/audio-video/codes_used/audio"][0][1] == av["codes_used"]["audio"]


def test_config_stays_a_plain_setting():
    assert "tensorboard" not in TrainConfig().settings()  # where logs go does not define the run
