"""Selections and resumed runs, round two (items 4 and 5): a selection is applied only to the
checkpoint it was made for, `toc select` never writes an empty one, and `--resume` accepts the
same command again, keeps the saved step cap and names old and new value of a real change."""

from __future__ import annotations

import json

import pytest
from hostile_inputs import error_line, invoke

from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave, write_pretrain


def _eval(checkpoint, data, selection):
    return invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--head", "prototype",
                  "--direction", "v2a", "--variant", "dcid+toc", "--selection", selection)


# ------------------------------------------------------------------ item 4: selections of another checkpoint


def test_a_selection_from_another_checkpoint_is_refused_by_eval(tmp_path):
    """Before the fix `toc eval --selection` of another checkpoint gave a warning and exit 0."""
    data = write_ave(tmp_path / "data")
    mine = save_reference_checkpoint(tmp_path / "mine.pt", seed=0)
    other = save_reference_checkpoint(tmp_path / "other.pt", seed=1)
    assert invoke("select", other, "--channels", "4", "-o", tmp_path / "other.json").exit_code == 0
    result = _eval(mine, data, tmp_path / "other.json")
    line = error_line(result)
    assert result.exit_code == 1 and '"metrics"' not in result.stdout
    assert "other.json" in line and "other.pt" in line and "mine.pt" in line
    # The selection's own checkpoint takes it.
    assert invoke("select", mine, "--channels", "4", "-o", tmp_path / "mine.json").exit_code == 0
    ok = _eval(mine, data, tmp_path / "mine.json")
    assert ok.exit_code == 0, ok.output


def test_an_empty_sha256_does_not_silence_the_check(tmp_path):
    """Before the fix `"sha256": ""` skipped even the warning."""
    data = write_ave(tmp_path / "data")
    mine = save_reference_checkpoint(tmp_path / "mine.pt")
    assert invoke("select", mine, "--channels", "4", "-o", tmp_path / "s.json").exit_code == 0
    document = json.loads((tmp_path / "s.json").read_text())
    document["checkpoint"]["sha256"] = ""
    (tmp_path / "s.json").write_text(json.dumps(document))
    line = error_line(_eval(mine, data, tmp_path / "s.json"))
    assert "s.json" in line and "empty sha256" in line


def test_codebook_shape_is_compared(tmp_path):
    """Before the fix `codebook_shape` was read and never compared with the checkpoint's."""
    data = write_ave(tmp_path / "data")
    mine = save_reference_checkpoint(tmp_path / "mine.pt")
    assert invoke("select", mine, "--channels", "4", "-o", tmp_path / "s.json").exit_code == 0
    document = json.loads((tmp_path / "s.json").read_text())
    actual = document["levels"][0]["codebook_shape"]
    document["levels"][0]["codebook_shape"] = [actual[0] * 2, actual[1]]
    (tmp_path / "s.json").write_text(json.dumps(document))
    line = error_line(_eval(mine, data, tmp_path / "s.json"))
    assert "s.json" in line and "level 0" in line and str([actual[0] * 2, actual[1]]) in line and str(actual) in line


def test_select_refuses_a_budget_that_selects_nothing(tmp_path):
    """Before the fix `toc select --channels 1` wrote `"indices": []`, which `toc eval` refused."""
    mine = save_reference_checkpoint(tmp_path / "mine.pt")
    result = invoke("select", mine, "--channels", "1", "-o", tmp_path / "s.json")
    assert result.exit_code == 2 and "--channels 1" in error_line(result) and "--exact-budget" in result.stderr
    assert not (tmp_path / "s.json").exists()
    exact = invoke("select", mine, "--channels", "1", "--exact-budget", "-o", tmp_path / "s.json")
    assert exact.exit_code == 0, exact.output
    assert all(len(level["indices"]) == 1 for level in json.loads((tmp_path / "s.json").read_text())["levels"])


# ------------------------------------------------------------------ item 5: --resume


TINY = ["--levels", "1", "--audio-output-dim", "8", "--video-output-dim", "8", "--text-output-dim", "8",
        "--n-embeddings", "16", "--batch-size", "2", "--seed", "3", "--epochs", "3", "--diagnostics-clips", "2",
        "--recipe", "reference", "--lr", "4e-4"]


def _steps(run):
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["total_step"] for line in lines if line.get("kind") == "step"]


@pytest.mark.slow
def test_resume_on_the_command_line_keeps_the_cap_and_names_real_changes(tmp_path):
    """Before the fix `--resume` without `--max-steps` dropped the saved cap (the run trained on
    to its epochs), the same command with `--resume` added was refused, and a refusal did not
    say which value changed how (checked on 31643e1: "these options cannot change: --levels,
    --batch-size, ..."). The library rule is pinned in tests/test_train_settings.py; this is the
    command line a user types."""
    data = write_pretrain(tmp_path / "data")
    run = tmp_path / "run"
    command = ["train", "--data-root", data, "-o", run, *TINY]
    first = invoke(*command, "--max-steps", "2")
    assert first.exit_code == 0, first.output
    assert _steps(run) == [1, 2]
    # Resumed without --max-steps: the saved cap stands, no step is added.
    again = invoke(*command, "--resume", run)
    assert again.exit_code == 0, again.output
    assert _steps(run) == [1, 2]
    # The very same command with --resume added (every value equal, 4e-4 spelled as given).
    same = invoke(*command, "--max-steps", "2", "--resume", run)
    assert same.exit_code == 0, same.output
    # A real change is refused, naming the option with its saved and given values.
    changed = invoke(*command, "--lr", "0.1", "--resume", run)
    line = error_line(changed)
    assert changed.exit_code in (1, 2) and "--lr (saved 0.0004, given 0.1)" in line
    # Lifting the cap is a resumable setting: training continues from step 3.
    lifted = invoke(*command, "--max-steps", "4", "--resume", run)
    assert lifted.exit_code == 0, lifted.output
    assert _steps(run) == [1, 2, 3, 4]
