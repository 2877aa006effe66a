"""The code-sharing measures of a checkpoint on a task's held-out clips (`toc health --task`)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from evalfixtures import FakeCodeSource, clip_task, codebooks, segment_task, single_thread

from cli.main import cli
from toc.errors import ConfigError
from toc.eval.cache import CodeCache
from toc.eval.sharing import measure_code_sharing
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def _with_audio_codes(data, codes_of_video):
    """The task with audio's codes replaced by a function of video's (same clips, same order)."""
    video, audio = data.sets["mem/video"], data.sets["mem/audio"]
    codes = codes_of_video(video.read(np.arange(len(video))))
    sets = {**data.sets, "mem/audio": replace(audio, read=lambda rows: codes[np.asarray(rows)])}
    return replace(data, sets=sets)


def _measure(data, **kwargs):
    return measure_code_sharing(data, CodeCache(FakeCodeSource(codebooks())), **kwargs)


def test_identical_codes_score_kappa_one_on_the_test_split():
    data = _with_audio_codes(clip_task(n_per_class=10, n_classes=4), lambda video: video.copy())
    sharing = _measure(data)
    test_rows = data.predefined_splits["mem/audio"]["test"]
    assert sharing.clips == len(test_rows) and not sharing.event_seconds
    assert sharing.positions == len(test_rows) * 10
    for level in sharing.levels:
        assert level.agreement == 1.0 and level.kappa == pytest.approx(1.0) and level.nmi == pytest.approx(1.0)
        assert level.class_overlap == 1.0


def test_a_collapsed_codebook_scores_kappa_zero_and_a_relabelling_nmi_one():
    collapsed = _with_audio_codes(clip_task(n_per_class=10, n_classes=4), lambda video: np.zeros_like(video))
    video = collapsed.sets["mem/video"]
    zeros = np.zeros((len(video), *video.feature_shape))
    data = replace(collapsed, sets={**collapsed.sets, "mem/video": replace(video, read=lambda rows: zeros[np.asarray(rows)])})
    assert all(level.kappa == 0.0 for level in _measure(data).levels)
    shifted = _with_audio_codes(clip_task(n_per_class=10, n_classes=4), lambda video: (video + 1) % 24)
    for level in _measure(shifted).levels:
        assert level.agreement == 0.0 and level.nmi == pytest.approx(1.0)


def test_event_seconds_limit_the_positions():
    data = _with_audio_codes(clip_task(n_per_class=10, n_classes=4), lambda video: video.copy())
    events = np.zeros((len(data.sets["mem/audio"]), 10), dtype=bool)
    events[:, :3] = True
    sets = {name: replace(s, event_mask=events) for name, s in data.sets.items()}
    sharing = _measure(replace(data, sets=sets))
    assert sharing.event_seconds and sharing.positions == 3 * sharing.clips


def test_segment_tasks_measure_the_seconds_with_an_event():
    data = segment_task(n_videos=40, n_classes=3)
    sharing = _measure(data)
    assert sharing.event_seconds and 0 < sharing.positions < sharing.clips * 10
    assert len(sharing.levels) == 2 and sharing.levels[0].class_overlap is None


def test_unpaired_sets_are_one_clear_error():
    data = clip_task(n_per_class=10, n_classes=4)
    audio = data.sets["mem/audio"]
    renamed = replace(audio, ids=[f"other{i}" for i in range(len(audio))])
    with pytest.raises(ConfigError, match="share no clip id"):
        _measure(replace(data, sets={**data.sets, "mem/audio": renamed}))


def test_toc_health_task_reports_the_pair_measures_per_level(tmp_path):
    n = 8  # rows 0 and 3 of the fixture labels hold background seconds (6 and 1 event seconds)
    write_ave(tmp_path / "data", n, train=(1, 2, 4, 6), val=(7,), test=(0, 3, 5))
    ckpt = save_reference_checkpoint(tmp_path / "hdcid.pt", "hdcid-avt")
    result = CliRunner().invoke(cli, ["health", str(ckpt), "--task", "ave", "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["task"], report["clips"], report["event_seconds"], report["positions"]) == ("ave", 3, True, 17)
    assert [level["level"] for level in report["levels"]] == [0, 1]
    for level in report["levels"]:
        assert level["pair"] == "audio-video" and level["positions"] == 17
        assert set(level) >= {"kappa", "agreement", "chance_agreement", "nmi", "nmi_shuffled", "class_overlap",
                              "codes_used", "codes_shared"}  # fmt: skip
        assert -1.0 <= level["kappa"] <= 1.0


def test_options_of_the_other_mode_are_refused(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["health", str(tmp_path / "x.pt"), "--task", "ave", "--counts"])
    assert result.exit_code == 2 and "--counts does not apply with --task" in result.output
    result = runner.invoke(cli, ["health", str(tmp_path / "x.pt"), "--data-root", str(tmp_path)])
    assert result.exit_code == 2 and "--data-root does not apply without --task" in result.output
