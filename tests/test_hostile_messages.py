"""Messages, round two (item 10): a representative set of the ~30 cases whose message named no
file, named the hidden temporary instead of the output, came after all the computing, or was
misleading. Each is one `Error:` line naming the file (or the option) with expected and actual."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile

import pytest
from hostile_inputs import ROOT, error_line, invoke, one_error_line, run_toc

from cmg_base.errors import OutputError
from cmg_base.files import atomic_path, prepare_output
from toc.errors import DataError
from toc.report.analysis import build_report
from toc.report.markdown import render_markdown
from toc.report.results import read_results
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave, write_pretrain

GOLDEN_RESULTS = os.path.join(os.path.dirname(__file__), "golden", "results.jsonl")


# ------------------------------------------------------------------ outputs that cannot be written


def test_an_unwritable_output_names_the_output_not_the_temporary(tmp_path, monkeypatch):
    """Before the fix the check happened only when writing, and the message named the hidden
    `.NAME.XXXX.tmp` (e.g. `Permission denied: '.codes.h5.abc.tmp'`). Simulated with a folder
    refusing new files (the tests may run as root, for whom chmod refuses nothing)."""
    target = tmp_path / "codes.h5"

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".codes.h5.1.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    for attempt in (lambda: prepare_output(target), lambda: atomic_path(target).__enter__()):
        with pytest.raises(OutputError) as caught:
            attempt()
        assert str(caught.value) == f"{target}: cannot write here (permission denied)"


@pytest.mark.parametrize("blocker", ["regular-file", "permission-denied"])
def test_an_unwritable_output_folder_is_refused_before_encoding(tmp_path, monkeypatch, blocker):
    """`toc encode -o` into a folder that cannot take a new file is refused before anything is
    read or encoded, naming the output (never the hidden temporary). Root writes into a chmod
    555 folder, so the folder is made unwritable for everyone: a regular file stands where the
    folder should be, or creating any file in it fails with EACCES (as on a read-only mount).
    The input does not exist: an error about it would mean the output was checked too late."""
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    folder = tmp_path / "out"
    if blocker == "regular-file":
        folder.write_text("a regular file where the output folder should be")
    else:
        folder.mkdir()
        real_mkstemp = tempfile.mkstemp

        def refuse(*args, **kwargs):
            if str(kwargs.get("dir", "")) == str(folder):
                raise PermissionError(errno.EACCES, "Permission denied", str(folder / ".codes.h5.1.x.tmp"))
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = invoke("encode", checkpoint, "--modality", "audio", "--input", tmp_path / "missing.npy", "-o",
                    folder / "codes.h5")
    line = error_line(result)
    reason = "not a directory" if blocker == "regular-file" else "permission denied"
    assert line.startswith(f"Error: {folder / 'codes.h5'}: cannot write here") and reason in line, line
    assert ".tmp" not in line and "missing.npy" not in line and result.exit_code == 1
    assert not (folder / "codes.h5").exists()


def test_eval_checks_its_output_before_computing(tmp_path):
    """Before the fix `toc eval -o` under a regular file failed only after encoding and training
    every head, naming the temporary; now it fails first (no cache file is ever written)."""
    data = write_ave(tmp_path / "data")
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    (tmp_path / "plain").write_text("a regular file")
    cache = tmp_path / "cache"
    result = invoke("eval", "ave", "--checkpoint", checkpoint, "--data-root", data, "--head", "prototype",
                    "--direction", "v2a", "--cache-dir", cache, "-o", tmp_path / "plain" / "r.jsonl")
    line = error_line(result)
    assert result.exit_code == 1 and str(tmp_path / "plain" / "r.jsonl") in line and "not a directory" in line
    assert ".tmp" not in line and not (cache.exists() and any(cache.iterdir()))


def test_output_through_a_symlink_replaces_the_linked_file_and_keeps_the_link(tmp_path):
    """Before the fix `-o link --force` renamed the new file over the link itself."""
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    result = invoke("select", checkpoint, "--channels", "4", "-o", link, "--force")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == real.name
    assert json.loads(real.read_text())["tool"] == "cmg-toc"
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------ training settings


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--lr", "nan", "--lr must be a finite number, got nan"),
    ("--lr", "inf", "--lr must be a finite number, got inf"),
    ("--mi-lr", "-1", "--mi-lr must be > 0, got -1.0"),
    ("--clip", "-1", "--clip must be > 0, got -1.0"),
    ("--n-embeddings", "100000000", "--n-embeddings must be at most 65,536, got 100000000"),
])
def test_absurd_training_settings_are_refused_before_reading_data(tmp_path, option, value, needle):
    """Before the fix `--lr nan` trained to NaN weights, `--clip -1` was accepted and
    `--n-embeddings 1e8` allocated until "out of memory (try a smaller --batch-size)". The data
    root does not exist: the setting is refused first, and nothing is created."""
    result = invoke("train", "--data-root", tmp_path / "no-data", "-o", tmp_path / "run", option, value)
    assert error_line(result) == f"Error: {needle}"
    assert not (tmp_path / "run").exists()


def test_resume_with_an_empty_checkpoint_or_a_bad_metrics_line_names_the_file(tmp_path):
    data = write_pretrain(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    line = error_line(invoke("train", "--data-root", data, "--resume", run, "-o", run))
    assert f"{run / 'last.pt'}: empty file (0 bytes)" in line


# ------------------------------------------------------------------ results files and report tables


@pytest.mark.parametrize("key", ["task", "variant", "head"])
@pytest.mark.parametrize("name", ["dc|id", "dcid\n| forged | row |", "x" * 200])
def test_names_from_results_that_would_break_a_table_are_refused(tmp_path, key, name):
    """Before the fix a variant or task name with `|` or a newline went into report.md's tables
    as is, adding columns or forged rows."""
    lines = [json.loads(x) for x in open(GOLDEN_RESULTS) if x.strip()]
    for line in lines:
        if key in line:
            line[key] = name
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError) as caught:
        read_results([path])
    text = str(caught.value)
    assert "r.jsonl:1" in text and f"key '{key}'" in text and "bad name" in text and "\n" not in text


def test_free_text_from_results_is_escaped_in_report_tables(tmp_path):
    """Fields of a health line are kept as given (not names): in report.md they are escaped, so a
    `|` or a newline cannot add a column or forge a row of the codebook-health table. (This cell
    escaping held before round two too; pinned here beside the name check it complements.)"""
    lines = [json.loads(x) for x in open(GOLDEN_RESULTS) if x.strip()]
    for line in lines:
        if line.get("kind") == "health":
            line["checkpoint"] = "/runs/a|b.pt"
            line["family"] = "dc|id\n| forged | row |"
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    markdown = render_markdown(build_report(read_results([path]), n_resamples=100))
    rows = markdown.split("## Codebook health", 1)[1].strip().splitlines()
    table = [row for row in rows if row.startswith("|")]
    assert len(table) == 2 + sum(line.get("kind") == "health" for line in lines)
    assert all(row.replace("\\|", "").count("|") == 9 for row in table), table
    assert any("a\\|b.pt" in row and "dc\\|id" in row for row in table)
    assert not any(row.startswith("| forged") for row in markdown.splitlines())


def test_a_results_file_name_that_is_not_utf8_is_reported(tmp_path):
    """Before the fix a non-UTF-8 file name broke `toc report` (UnicodeEncodeError writing summary.json)."""
    name = os.fsdecode(b"r\xff.jsonl")
    source = tmp_path / name
    source.write_bytes(open(GOLDEN_RESULTS, "rb").read())
    result = invoke("report", source, "-o", tmp_path / "rep", "--no-charts", "--resamples", "100")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text(encoding="utf-8"))
    assert "\\xff" in json.dumps(summary) or "\ufffd" in json.dumps(summary)


# ------------------------------------------------------------------ warnings


# What the command line does with warnings, in a process of its own: a library warning (as
# select_channels issues it) and one of torch's notes to its developers.
_WARNING_DRIVER = """
import warnings
import torch
import cli.main
from toc.codebook import selection

# (getattr: the same driver runs on code from before the fix, which had neither name.)
getattr(cli.main, "install_process_handlers", lambda: None)()
select_channels = getattr(selection, "select_channels", None) or selection.toc_indices
select_channels(torch.arange(64.0).reshape(8, 8).double() / 7, 5)
warnings.warn_explicit("TypedStorage is deprecated", UserWarning, "torch/storage.py", 1, module="torch.storage")
"""


@pytest.mark.slow  # subprocesses: the process-wide warning display, not pytest's
def test_warnings_are_one_line_without_a_source_line(tmp_path):
    """Before the fix Python's default display printed `selection.py:244: ShortSelectionWarning:
    ...` followed by the `warnings.warn(` source line, and torch's UserWarnings came through."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    driven = subprocess.run([sys.executable, "-c", _WARNING_DRIVER], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert driven.returncode == 0, driven.stderr
    assert driven.stderr.splitlines() == [
        "warning: TOC returns 4 of 5 channels (channels // (max_num + min_num) = 2 groups); use exact_budget "
        "to get exactly `channels`"
    ], driven.stderr
    # And as a user sees it: `toc select` with a budget TOC cannot fill says so in one line.
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    result = run_toc("select", checkpoint, "--channels", "5", "--level", "0", "-o", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].lower().startswith("warning: level 0: 4 of 5 channels"), result.stderr
    assert ".py" not in result.stderr and "warnings.warn" not in result.stderr


def test_one_error_line_helper_rejects_tracebacks():
    with pytest.raises(AssertionError):
        one_error_line("Traceback (most recent call last):\nError: x")
