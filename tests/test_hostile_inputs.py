"""Hostile inputs, round two: the one input opener (regular files only, bounded reads), strict
text formats (UTF-8, JSON without NaN, nesting limits) and paths that cannot be expanded."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hostile_inputs import no_hang

from cli.main import cli
from cmg_base.inputs import check_regular_file, read_input_bytes
from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.selection import read_selection
from toc.data.files import read_class_list, read_table, read_toml
from toc.data.layout import resolve_paths
from toc.errors import CheckpointError, ConfigError, DataError
from toc.pipeline.plan import load_plan
from toc.report.results import read_results
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import write_ave
from toc.testing.hostile import deep_json, deep_toml, fifo, result_line


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error:")]
    assert result.exit_code in (1, 2) and len(lines) == 1, result.output
    return lines[0]


# ------------------------------------------------------------------ item 7: FIFOs never block


@pytest.mark.parametrize("reader", [
    lambda p: read_selection(p), lambda p: read_results([p]), lambda p: read_toml(p), lambda p: read_class_list(p),
    lambda p: read_table(p, ("a",), delimiter=","), lambda p: load_checkpoint(p),
])
def test_a_fifo_is_refused_before_it_is_opened(tmp_path, reader):
    path = fifo(tmp_path / "input.json")
    with no_hang(20), pytest.raises((DataError, ConfigError, CheckpointError), match="FIFO"):
        reader(path)


def test_fifo_as_selection_or_report_input_is_one_line_and_does_not_hang(tmp_path):
    write_ave(tmp_path / "data")
    ckpt = save_reference_checkpoint(tmp_path / "dcid.pt")
    pipe = fifo(tmp_path / "sel.json")
    with no_hang(60):
        result = invoke("eval", "ave", "--checkpoint", ckpt, "--data-root", tmp_path / "data", "--variant",
                        "dcid+toc", "--selection", pipe, "--head", "prototype")
        assert "sel.json" in error_line(result) and "FIFO" in result.stderr
        report = invoke("report", pipe, "-o", tmp_path / "rep")
        assert "sel.json" in error_line(report) and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("role", ["selection", "results", "selection field of a result"])
def test_dev_zero_is_refused_not_read(tmp_path, role):
    out = tmp_path / "rep"
    with no_hang(30):
        if role == "selection":
            with pytest.raises(DataError, match="character device"):
                read_selection("/dev/zero")
            return
        if role == "results":
            result = invoke("report", "/dev/zero", "-o", out)
        else:
            (tmp_path / "r.jsonl").write_text(result_line(variant="dcid+toc", selection="/dev/zero") + "\n")
            result = invoke("report", tmp_path / "r.jsonl", "-o", out)
    assert "/dev/zero" in error_line(result) and "character device" in result.stderr
    assert not out.exists()


def test_bounded_read_refuses_a_file_above_its_bound_by_its_size(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 1025)
    with pytest.raises(DataError, match="too large for a selection file.*at most 1,024 bytes, got 1,025"):
        read_input_bytes(path, what="selection file", error=DataError, max_bytes=1024)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        check_regular_file(tmp_path / "dir.json", what="selection file", error=DataError)


# ------------------------------------------------------------------ item 10: strict text formats


def test_non_utf8_and_deeply_nested_toml_name_the_file(tmp_path):
    bad = tmp_path / "plan.toml"
    bad.write_bytes(b'tasks = ["ave"]\ndata_root = "\xff"\n')
    with pytest.raises(ConfigError, match=r"plan.toml: not UTF-8 text \(invalid byte 0xff at offset 29\)"):
        load_plan(bad)
    bad.write_text(deep_toml(20_000))
    with pytest.raises(ConfigError, match="plan.toml: invalid TOML"):
        load_plan(bad)


@pytest.mark.parametrize("text, needle", [
    (deep_json(100_000), "nested too deeply"),
    ('{"tool": "cmg-toc", "version": NaN}', "NaN is not a JSON number"),
    ('{"a": 1e999}', "out of range"),
    ('{"a": ' + "9" * 5000 + "}", "Exceeds the limit"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_selection_and_results_json_are_strict(tmp_path, text, needle):
    path = tmp_path / "doc.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=needle) as info:
        read_selection(path)
    assert "doc.json" in str(info.value) and "\n" not in str(info.value)
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_bytes(text if isinstance(text, bytes) else (result_line() + "\n" + text.replace("\n", " ") + "\n").encode())
    with pytest.raises(DataError, match=needle):
        read_results([jsonl])


def test_nan_metric_in_results_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(result_line().replace("50.0", "NaN") + "\n")
    result = invoke("report", path, "-o", tmp_path / "rep")
    assert "r.jsonl:1" in error_line(result) and not (tmp_path / "rep").exists()


def test_unknown_home_directory_is_one_line_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"~nosuchuser_zz/data: cannot expand '~nosuchuser_zz'"):
        resolve_paths("ave", data_root="~nosuchuser_zz/data")
    plan = tmp_path / "plan.toml"
    plan.write_text('data_root = "~nosuchuser_zz/d"\ntasks = ["ave"]\n[checkpoints]\ndcid = "x.pt"\n')
    with pytest.raises(ConfigError, match="key 'data_root'"):
        load_plan(plan)
    ckpt = save_reference_checkpoint(tmp_path / "c.pt")
    result = invoke("eval", "ave", "--checkpoint", ckpt, "--data-root", "~nosuchuser_zz/x", "--head", "prototype")
    assert "~nosuchuser_zz" in error_line(result)


def test_nul_byte_in_a_plan_path_is_a_config_error(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('data_root = "a\\u0000b"\ntasks = ["ave"]\n[checkpoints]\ndcid = "x.pt"\n')
    with pytest.raises(ConfigError, match="data_root"):
        load_plan(plan)


def test_huge_version_string_in_a_selection_is_not_a_crash(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"tool": "cmg-toc", "version": "9" * 5000, "checkpoint": {}, "levels": []}))
    with pytest.raises(DataError, match="newer cmg-toc"):
        read_selection(path)


# ------------------------------------------------------------------ item 6: a clip too long to encode


def test_a_clip_too_long_to_encode_is_refused_before_reading(tmp_path):
    """Before the fix `toc encode` of one clip of T = 20000 steps allocated 6.4 GB (the attention
    is T x T per head); the estimate now refuses it from the declared shape, naming the file."""
    checkpoint = save_reference_checkpoint(tmp_path / "m.pt")
    np.save(tmp_path / "long.npy", np.zeros((1, 20_000, 128), np.float32))
    result = invoke("encode", checkpoint, "--modality", "audio", "--input", tmp_path / "long.npy", "-o",
                    tmp_path / "codes.h5")
    line = error_line(result)
    assert "long.npy" in line and "clips too long to encode" in line and "[1, 20000, 128]" in line
    assert not (tmp_path / "codes.h5").exists()
