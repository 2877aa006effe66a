"""`toc eval` end to end: real loaders, a tiny checkpoint, `toc encode` as the independent check."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from evalfixtures import single_thread

from cli.main import cli
from toc.codebook.checkpoint import load_checkpoint
from toc.codebook.selection import SelectionFile, TocSettings, select_level
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import AVE_DIR, write_ave, write_avvp, write_ucf_vggsound

N_AVE = 24


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    classes = np.arange(N_AVE) % 4
    labels = np.zeros((N_AVE, 10, 29))
    labels[np.arange(N_AVE), :, classes] = 1.0
    patterns_a, patterns_v = rng.normal(size=(4, 128)), rng.normal(size=(4, 7, 7, 512))
    audio = patterns_a[classes][:, None] + 0.5 * rng.normal(size=(N_AVE, 10, 128))
    video = patterns_v[classes][:, None] + 0.5 * rng.normal(size=(N_AVE, 10, 7, 7, 512))
    order = rng.permutation(N_AVE)
    write_ave(root / "data", N_AVE, labels=labels, audio=audio, video=video,
              train=order[:14], val=order[14:17], test=order[17:])
    write_avvp(root / "data")
    write_ucf_vggsound(root / "data")
    ckpt = save_reference_checkpoint(root / "hdcid.pt", "hdcid-avt")
    return {"root": root, "data": root / "data", "ckpt": ckpt}


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def eval_lines(workspace, *args: str) -> list[dict]:
    result = invoke("eval", *args, "--checkpoint", workspace["ckpt"], "--data-root", workspace["data"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_variant_defaults_to_the_checkpoints_own(workspace, tmp_path):
    (hdcid,) = eval_lines(workspace, "ave", "--head", "prototype", "--direction", "v2a")
    assert hdcid["variant"] == "hdcid"
    (selected,) = eval_lines(workspace, "ave", "--head", "prototype", "--direction", "v2a", "--channels", "8")
    assert selected["variant"] == "hdcid+toc"
    dcid = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt")
    result = invoke("eval", "ave", "--checkpoint", dcid, "--data-root", workspace["data"], "--head", "prototype",
                    "--direction", "v2a")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["variant"] for line in result.stdout.splitlines() if line.startswith("{")] == ["dcid"]


def test_prototype_accuracy_equals_toc_encode_computation(workspace, tmp_path):
    (record,) = eval_lines(workspace, "ave", "--variant", "hdcid", "--head", "prototype", "--direction", "v2a")
    # Independent: `toc encode` both modalities, then the prototype definition in numpy.
    data = workspace["data"] / AVE_DIR
    for modality, name in (("video", "visual_feature.h5"), ("audio", "audio_feature.h5")):
        result = invoke("encode", workspace["ckpt"], "--modality", modality, "--input", data / name,
                        "--key", "avadataset", "-o", tmp_path / f"{modality}.h5")
        assert result.exit_code == 0, result.output

    def quantized(modality):
        with h5py.File(tmp_path / f"{modality}.h5") as handle:
            return np.concatenate([np.asarray(handle[f"level{i}/quantized"], np.float64) for i in (0, 1)], -1)

    with h5py.File(data / "labels.h5") as handle:
        targets = np.asarray(handle["avadataset"])[:, :, :28].argmax(-1).max(-1)
    with h5py.File(data / "train_order.h5") as h1, h5py.File(data / "test_order.h5") as h2:
        train, test = np.asarray(h1["order"]), np.asarray(h2["order"])
    train_f, test_f = quantized("video")[train].mean(1), quantized("audio")[test].mean(1)
    classes = sorted(set(targets[train]))
    protos = np.stack([train_f[targets[train] == c].mean(0) for c in classes])
    cos = test_f @ protos.T / np.outer(np.linalg.norm(test_f, axis=1), np.linalg.norm(protos, axis=1))
    predicted = np.asarray(classes)[cos.argmax(1)]
    expected = 100.0 * np.sum(predicted == targets[test]) / len(test)
    assert record["metrics"]["accuracy"] == expected
    assert record["n_train"] == 14 and record["n_eval"] == 7 and record["split"] == "predefined"
    assert record["checkpoint_sha256"] == load_checkpoint(workspace["ckpt"]).sha256


def test_linear_reruns_identical_and_cache_reused(workspace, tmp_path, monkeypatch):
    from toc.codebook.encode import EncodingSession

    calls = []
    original = EncodingSession.encode_rows

    def counting(self, modality, *args, **kwargs):
        calls.append(modality)
        return original(self, modality, *args, **kwargs)

    monkeypatch.setattr(EncodingSession, "encode_rows", counting)
    args = ("ave", "--variant", "dcid,hdcid", "--head", "linear,prototype", "--epochs", "2",
            "--seeds", "0,1", "--cache-dir", tmp_path / "cache")
    first = eval_lines(workspace, *args)
    assert len(first) == 2 * 2 * 2 * 2 and sorted(calls) == ["audio", "video"]
    second = eval_lines(workspace, *args)
    assert sorted(calls) == ["audio", "video"]  # the second run read the cache
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(first) == strip(second)
    assert {r["seed"] for r in first} == {0, 1}


def test_selection_file_and_reference_protocol(workspace, tmp_path):
    checkpoint = load_checkpoint(workspace["ckpt"])
    settings = TocSettings(channels=6, max_num=1, min_num=1)
    selections = [select_level(cb, settings, level) for level, cb in enumerate(checkpoint.codebooks)]
    document = SelectionFile.from_selections(selections, checkpoint_path=workspace["ckpt"], checkpoint_sha256=checkpoint.sha256,
                                             family=checkpoint.family, parameters=settings.as_dict())
    path = document.save(tmp_path / "sel.json").path
    rows = eval_lines(workspace, "ave", "--variant", "dcid+toc,hdcid+toc", "--selection", path, "--head", "linear",
                      "--protocol", "reference", "--epochs", "5", "--direction", "a2v", "-o", tmp_path / "r.jsonl")
    assert rows == []  # written to the file instead
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["dcid+toc", "hdcid+toc"]
    assert rows[1]["channels"] == [s.indices.tolist() for s in selections]
    assert rows[0]["epochs_trained"] == 5 - 2 - 1 and rows[0]["n_eval"] == rows[0]["n_train"] == 14
    assert rows[0]["notes"] and "Q2" in rows[0]["notes"][0]


@pytest.mark.parametrize("task", ["avvp", "ucf-vggsound"])
def test_other_tasks_run(workspace, task):
    rows = eval_lines(workspace, task, "--variant", "dcid", "--head", "prototype,linear", "--epochs", "4",
                      "--protocol", "reference")
    assert len(rows) == 4
    key = "accuracy" if task == "ucf-vggsound" else "f1"
    assert all(key in r["metrics"] for r in rows)
    if task == "avvp":
        assert {"precision", "recall", "macro_f1", "micro_f1"} <= set(rows[0]["metrics"])


def test_strict_split_too_small_is_one_line_error(workspace):
    # The AVVP fixture has 3 audio and 2 visual videos: holding out evaluated videos leaves none.
    result = invoke("eval", "avvp", "--checkpoint", workspace["ckpt"], "--data-root", workspace["data"],
                    "--variant", "dcid", "--head", "prototype", "--direction", "a2v")
    assert result.exit_code == 1
    assert "leaves no evaluation clips" in result.stderr and len(result.stderr.strip().splitlines()) <= 3


@pytest.mark.parametrize("extra", [
    ["--variant", "dcid"],  # no data source
    ["--data-root", ".", "--variant", "dcid+toc"],  # +toc without a selection
    ["--data-root", ".", "--variant", "dcid+toc", "--channels", "4", "--selection", "x.json"],
    ["--data-root", ".", "--variant", "dcid", "--max-num", "2"],
    ["--data-root", ".", "--variant", "dcid", "--channels", "4"],
    ["--data-root", ".", "--variant", "nope"],
    ["--data-root", ".", "--variant", "dcid", "--seeds", "a,b"],
    ["--data-root", ".", "--variant", "dcid", "--head", "prototype", "--epochs", "3"],
])
def test_usage_errors_exit_2(workspace, extra):
    result = invoke("eval", "ave", "--checkpoint", workspace["ckpt"], *extra)
    assert result.exit_code == 2, result.output


def test_hdcid_variant_on_dcid_checkpoint_is_config_error(workspace, tmp_path):
    ckpt = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt")
    result = invoke("eval", "ave", "--checkpoint", ckpt, "--data-root", workspace["data"], "--variant", "hdcid",
                    "--head", "prototype")
    assert result.exit_code == 1 and "needs 2 codebook levels" in result.stderr


def test_ave_avvp_runs(tmp_path):
    from toc.testing.datafixtures import write_ave_avvp

    write_ave_avvp(tmp_path / "data")
    ckpt = save_reference_checkpoint(tmp_path / "c.pt", "dcid-avt")
    rows = eval_lines({"ckpt": ckpt, "data": tmp_path / "data"}, "ave-avvp", "--variant", "dcid",
                      "--head", "prototype", "--protocol", "reference")
    assert [r["direction"] for r in rows] == ["v2a", "a2v"]
    assert all({"precision", "recall", "f1", "macro_f1"} <= set(r["metrics"]) for r in rows)


def test_ucf_vggsound_clips_in_the_pretraining_csv_are_reported_or_excluded(tmp_path):
    from toc.testing.datafixtures import EXTRACTOR_DIR, write_table

    data = write_ucf_vggsound(tmp_path / "data")
    # The data root's pretraining CSV lists one of the three evaluated VGGSound clips.
    write_table(data / EXTRACTOR_DIR / "vggsound-avel40k.csv", ("category", "video_id", "split"),
                [("playing acoustic guitar", "ggggggggggg", "train"), ("x", "zzzzzzzzzzz", "val")])
    ckpt = save_reference_checkpoint(tmp_path / "c.pt", "dcid-avt")
    work = {"ckpt": ckpt, "data": data}
    args = ("ucf-vggsound", "--variant", "dcid", "--head", "prototype", "--direction", "v2a")
    (found,) = eval_lines(work, *args)
    assert found["n_eval"] == 3
    assert found["pretrain_overlap"] == {
        "checked": True, "pretraining_list": "vggsound-avel40k.csv", "policy": "report", "evaluated": 3,
        "in_pretraining": 1, "same_modality_in_pretraining": 0,
    }
    (excluded,) = eval_lines(work, *args, "--pretrain-overlap", "exclude")
    assert excluded["n_eval"] == 2 and excluded["pretrain_overlap"]["excluded"] == 1
    other = write_table(tmp_path / "other.csv", ("video_id",), [("hhhhhhhhhhh",), ("iiiiiiiiiii",)])
    (given,) = eval_lines(work, *args, "--pretrain-csv", other)
    assert given["pretrain_overlap"]["in_pretraining"] == 2
    assert given["pretrain_overlap"]["pretraining_list"] == "other.csv"
    missing = invoke("eval", *args, "--checkpoint", ckpt, "--data-root", data, "--pretrain-csv", tmp_path / "no.csv")
    assert missing.exit_code == 1 and "no.csv: missing file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_split_seed_and_split_seeds_are_alternatives(workspace):
    result = invoke("eval", "avvp", "--checkpoint", workspace["ckpt"], "--data-root", workspace["data"],
                    "--variant", "dcid", "--split-seed", "1", "--split-seeds", "0,1")
    assert result.exit_code == 2 and "--split-seed and --split-seeds" in result.output
