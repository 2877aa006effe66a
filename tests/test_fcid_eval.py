"""FCID in the comparison: fcid / fcid+toc variants, the published presets, the FCID reference rules."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from evalfixtures import FakeCodeSource, clip_task, codebooks, segment_task, single_thread
from fcid_fixtures import save_fcid_checkpoint, tiny_fcid_encoder

from cli.main import cli
from toc.codebook.presets import FCID_TOC_PRESETS, preset_settings
from toc.codebook.selection import TocSettings, select_level
from toc.errors import ConfigError
from toc.eval.cache import CodeCache
from toc.eval.loop import EvalRequest, run_evaluation
from toc.eval.protocols import default_n_epoch, published_script
from toc.eval.variants import check_applicable, default_variants, method_of_checkpoint
from toc.pipeline.plan import load_plan
from toc.testing.checkpoints import save_reference_checkpoint
from toc.testing.datafixtures import AVE_DIR, write_planted_ave

N_AVE = 24


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fcid-eval")
    write_planted_ave(root / "data", N_AVE, n_classes=4, seed=0, n_train=14, n_val=3)
    # The published input widths and code width; small elsewhere, so it builds in milliseconds.
    encoder = tiny_fcid_encoder(audio_dim=128, video_dim=512, text_dim=768, embedding_dim=256, n_embeddings=24,
                                se_hidden=64, video_att_dim=256)
    return {"data": root / "data", "ckpt": save_fcid_checkpoint(root / "fcid.pt", encoder), "root": root}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def eval_lines(workspace, *args):
    result = invoke("eval", *args, "--checkpoint", workspace["ckpt"], "--data-root", workspace["data"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_method_follows_the_model_family():
    assert method_of_checkpoint("fcid-avt", 1) == "fcid"
    assert method_of_checkpoint("dcid-avt", 1) == "dcid" and method_of_checkpoint("hdcid-avt", 2) == "hdcid"
    assert method_of_checkpoint(None, 1) == "dcid"  # only the levels known
    assert default_variants(1, True, "fcid-avt") == ["fcid+toc"]
    with pytest.raises(ConfigError, match="variant dcid reads dcid checkpoints; this is a fcid-avt"):
        check_applicable(["dcid"], 1, "fcid-avt")
    with pytest.raises(ConfigError, match="variant fcid reads fcid checkpoints"):
        check_applicable(["fcid"], 1, "dcid-avt")
    check_applicable(["dcid", "hdcid+toc"], 2, "hdcid-avt")


def test_cli_fcid_default_variant_and_prototype_equal_an_independent_computation(workspace, tmp_path):
    (record,) = eval_lines(workspace, "ave", "--head", "prototype", "--direction", "a2v")
    assert record["variant"] == "fcid"
    # Independent: `toc encode` gives level 0 = the per-second coarse codewords; prototypes in numpy.
    data = workspace["data"] / AVE_DIR
    quantized = {}
    for modality, name in (("video", "visual_feature.h5"), ("audio", "audio_feature.h5")):
        out = tmp_path / f"{modality}.h5"
        result = invoke("encode", workspace["ckpt"], "--modality", modality, "--input", data / name,
                        "--key", "avadataset", "-o", out)
        assert result.exit_code == 0, result.output
        with h5py.File(out) as handle:
            quantized[modality] = np.asarray(handle["level0/quantized"], np.float64)
            assert handle["clip/codes"].shape == (N_AVE,)
    with h5py.File(data / "labels.h5") as handle:
        targets = np.asarray(handle["avadataset"])[:, :, :28].argmax(-1).max(-1)
    with h5py.File(data / "train_order.h5") as h1, h5py.File(data / "test_order.h5") as h2:
        train, test = np.asarray(h1["order"]), np.asarray(h2["order"])
    train_f, test_f = quantized["audio"][train].mean(1), quantized["video"][test].mean(1)
    classes = sorted(set(targets[train]))
    protos = np.stack([train_f[targets[train] == c].mean(0) for c in classes])
    cos = test_f @ protos.T / np.outer(np.linalg.norm(test_f, axis=1), np.linalg.norm(protos, axis=1))
    expected = 100.0 * np.sum(np.asarray(classes)[cos.argmax(1)] == targets[test]) / len(test)
    assert record["metrics"]["accuracy"] == expected


def test_cli_published_preset_selects_as_the_fcid_ave_script(workspace):
    (record,) = eval_lines(workspace, "ave", "--toc-preset", "published", "--head", "prototype", "--direction", "a2v")
    assert record["variant"] == "fcid+toc"
    codebook = torch.load(workspace["ckpt"], weights_only=True)["Encoder_parameters"]["Cross_quantizer_coarse.embedding"]
    expected = select_level(codebook.double(), TocSettings(256, 1, 0, sim_weight=0.7, var_weight=0.3)).indices
    assert record["channels"] == [expected.tolist()]  # all 256 channels, re-ordered (AVE: sim_var)
    (sim_only,) = eval_lines(workspace, "ave", "--variant", "fcid+toc", "--channels", "168", "--max-num", "1",
                             "--min-num", "0", "--score", "sim_only", "--head", "prototype", "--direction", "a2v")
    expected = select_level(codebook.double(), FCID_TOC_PRESETS["ucf-vggsound"].settings()).indices
    assert sim_only["channels"] == [expected.tolist()]


def test_cli_refuses_family_mismatches_and_presets_without_fcid(workspace, tmp_path):
    result = invoke("eval", "ave", "--checkpoint", workspace["ckpt"], "--data-root", workspace["data"],
                    "--variant", "dcid", "--head", "prototype")
    assert result.exit_code == 1 and "reads dcid checkpoints" in result.stderr
    dcid = save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt")
    result = invoke("eval", "ave", "--checkpoint", dcid, "--data-root", workspace["data"], "--toc-preset",
                    "published", "--head", "prototype")
    assert result.exit_code == 1 and "FCID checkpoints only" in result.stderr
    result = invoke("eval", "ave", "--checkpoint", dcid, "--data-root", workspace["data"], "--toc-preset",
                    "published", "--channels", "8")
    assert result.exit_code == 2 and "alternatives" in result.output


def test_published_scripts_per_family():
    assert [published_script(t, "fcid").n_epoch for t in ("ave", "avvp", "ave-avvp", "ucf-vggsound")] == [25, 50, 50, 80]
    assert published_script("avvp", "fcid").selection_metric == "f1"
    assert published_script("avvp", "dcid").selection_metric == "precision"
    assert published_script("ave", "fcid").same_modality_own_best
    assert not published_script("ave", "hdcid").same_modality_own_best
    assert default_n_epoch("ave", "strict", "fcid") == default_n_epoch("ave", "strict", "dcid") == 50
    assert default_n_epoch("ave", "reference", "fcid") == 25


def _run(data, family, **kwargs):
    source = FakeCodeSource(codebooks(levels=1), epoch=2)
    source.family = family
    request = EvalRequest(**{"variants": ["fcid" if family == "fcid-avt" else "dcid"], "heads": ("linear",),
                             "batch_size": 16, **kwargs})
    return list(run_evaluation(data, CodeCache(source), request))


def test_reference_protocol_uses_the_fcid_scripts_rules():
    data = clip_task(n_per_class=8, n_classes=3, levels=1)
    (fcid,) = _run(data, "fcid-avt", protocol="reference", directions=("a2v",))
    (dcid,) = _run(data, None, protocol="reference", directions=("a2v",))
    assert fcid.epochs_trained == 25 - 2 - 1 and dcid.epochs_trained == 50 - 2 - 1
    assert any("FCID reference" in n for n in fcid.notes)
    segment = segment_task(n_videos=12, levels=1)
    (avvp_fcid,) = _run(segment, "fcid-avt", protocol="reference", directions=("v2a",), epochs=4)
    (avvp_dcid,) = _run(segment, None, protocol="reference", directions=("v2a",), epochs=4)
    assert avvp_fcid.selection_metric == "f1" and avvp_dcid.selection_metric == "precision"
    # Strict: the same budget for every family.
    (strict,) = _run(data, "fcid-avt", directions=("a2v",), epochs=3)
    assert strict.epochs_trained == 3 and strict.selection_metric == "accuracy"


def test_fcid_ave_reference_keeps_the_same_modality_maximum():
    data = clip_task(n_per_class=8, n_classes=3, levels=1, signal=0.5)
    args = dict(protocol="reference", directions=("a2v",), epochs=12, seeds=(0, 1, 2))
    fcid = _run(data, "fcid-avt", **args)
    dcid = _run(data, None, **args)
    for own_best, at_selected in zip(fcid, dcid, strict=True):
        # Same codes, seed and epochs: the cross-modal result is the same, the same-modality
        # score is the maximum over epochs instead of the value at the selected epoch.
        assert own_best.metrics == at_selected.metrics and own_best.best_epoch == at_selected.best_epoch
        assert own_best.same_modality["accuracy"] >= at_selected.same_modality["accuracy"]


PLAN = """
data_root = "data"
tasks = ["ave", "avvp"]
heads = ["prototype"]
variants = ["dcid", "dcid+toc", "fcid", "fcid+toc"]

[checkpoints]
dcid = "dcid.pt"
fcid = "fcid.pt"

[selection]
channels = 8
max_num = 1
min_num = 0

[selection.ave.fcid]
preset = "published"

[selection.avvp.fcid]
channels = 64
max_num = 1
min_num = 0
score = "sim_only"
"""


def test_plan_fcid_checkpoint_preset_and_score(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    plan = load_plan(path)
    jobs = {(j.task, j.method): j for j in plan.jobs}
    assert list(jobs) == [("ave", "dcid"), ("ave", "fcid"), ("avvp", "dcid"), ("avvp", "fcid")]
    assert jobs[("ave", "fcid")].variants == ("fcid", "fcid+toc")
    assert jobs[("ave", "fcid")].selection == preset_settings("published", "ave", "fcid")
    assert jobs[("avvp", "fcid")].selection == TocSettings(64, 1, 0, sim_weight=0.7, var_weight=0.0)
    assert jobs[("ave", "dcid")].selection == TocSettings(8, 1, 0)
    path.write_text(PLAN.replace("[selection.ave.fcid]", "[selection.ave.dcid]"))
    with pytest.raises(ConfigError, match=r"selection\.ave\.dcid\.preset.*FCID checkpoints only"):
        load_plan(path)
    path.write_text(PLAN.replace('score = "sim_only"', 'score = "sim_only"\nsim_weight = 1.0'))
    with pytest.raises(ConfigError, match="sets both weights"):
        load_plan(path)


def test_compare_runs_fcid_next_to_dcid_and_reports_it(workspace, tmp_path):
    save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", seed=1)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'data_root = "{workspace["data"]}"\ntasks = ["ave"]\nheads = ["prototype"]\nseeds = [0]\n'
        'variants = ["dcid", "dcid+toc", "fcid", "fcid+toc"]\ndirections = ["a2v"]\n'
        f'[checkpoints]\ndcid = "dcid.pt"\nfcid = "{workspace["ckpt"]}"\n'
        '[selection]\nchannels = 8\nmax_num = 1\nmin_num = 1\n[selection.ave.fcid]\npreset = "published"\n'
    )
    out = tmp_path / "out"
    result = invoke("compare", "--config", plan, "-o", out, "--no-charts")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["variant"] for x in lines] == ["dcid", "dcid+toc", "fcid", "fcid+toc"]
    fcid_toc = lines[-1]
    assert fcid_toc["toc"]["score"] == "sim_var" and fcid_toc["toc"]["channels"] == 256
    assert json.loads((out / "toc-ave-fcid.json").read_text())["checkpoint"]["family"] == "fcid-avt"
    report = (out / "report.md").read_text()
    assert "fcid+toc" in report
