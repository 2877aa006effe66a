"""`toc report`: seed statistics, pairing, the recommendation rule, golden files and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from cli.main import cli
from toc.codebook.selection import TocSettings, selection_for
from toc.errors import ConfigError, DataError, OutputExistsError
from toc.pipeline.plan import load_plan
from toc.report import (
    SPLIT_EVALUATION,
    SPLIT_VALIDATION,
    VERDICT_CLEAR,
    VERDICT_NONE,
    VERDICT_SINGLE,
    build_report,
    read_results,
    recommend,
    render_csv,
    render_markdown,
    render_summary,
    write_report,
)
from toc.report.stats import paired_difference, summarize, t_critical

GOLDEN = Path(__file__).parent / "golden"


def _record(task="ave", direction="v2a", variant="dcid", seed=0, value=50.0, val=None, **extra):
    metric = "accuracy" if task in ("ave", "ucf-vggsound") else "f1"
    rec = {
        "task": task, "direction": direction, "variant": variant, "head": "linear", "protocol": "strict",
        "seed": seed, "metrics": {metric: value},
    }
    if val is not None:
        rec["val_metrics"] = {metric: val}
    rec.update(extra)
    return rec


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# ---------------------------------------------------------------------------- statistics


def test_summary_matches_hand_computation():
    # 1, 2, 3, 4: mean 2.5, s² = (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3, t(0.975, 3) = 3.182446305...
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    assert t_critical(4) == pytest.approx(3.182446305284263, rel=1e-12)
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2.0
    assert (s.ci_low, s.ci_high) == (pytest.approx(2.5 - half, abs=1e-12), pytest.approx(2.5 + half, abs=1e-12))
    assert s.ci_low == pytest.approx(0.445739743239121, abs=1e-12)


def test_summary_of_one_value_has_no_interval_and_constant_values_a_zero_width_one():
    one = summarize([42.0])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 42.0, None, None, None)
    flat = summarize([5.0, 5.0, 5.0])
    assert flat.std == 0.0 and flat.ci_low == flat.ci_high == 5.0
    with pytest.raises(ValueError):
        summarize([])


def test_paired_difference_pairs_by_seed_and_lists_missing_seeds():
    a = {0: 10.0, 1: 12.0, 2: 11.0, 5: 99.0}
    b = {2: 10.0, 1: 10.5, 0: 9.0, 3: -50.0}  # insertion order must not matter
    d = paired_difference(a, b)
    assert d.seeds == (0, 1, 2) and d.only_a == (5,) and d.only_b == (3,)
    diffs = np.array([1.0, 1.5, 1.0])
    assert d.summary.mean == pytest.approx(diffs.mean(), abs=1e-14)
    assert d.summary.std == pytest.approx(diffs.std(ddof=1), abs=1e-14)
    low, high = scipy_stats.t.interval(0.95, 2, loc=diffs.mean(), scale=scipy_stats.sem(diffs))
    assert (d.summary.ci_low, d.summary.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert d.above_zero()
    # Pairing matters: the unpaired intervals of a and b overlap, the paired difference does not.
    assert summarize([10.0, 12.0, 11.0]).ci_low < summarize([9.0, 10.5, 10.0]).ci_high
    none_shared = paired_difference({0: 1.0}, {1: 2.0})
    assert none_shared.summary is None and not none_shared.above_zero() and not none_shared.below_zero()


# ---------------------------------------------------------------------------- recommendation


def test_recommend_clear_winner_when_separated_from_every_other_variant():
    scores = {
        "dcid": {0: 50.0, 1: 52.0, 2: 51.0},
        "dcid+toc": {0: 53.0, 1: 55.5, 2: 54.0},
        "hdcid": {0: 55.0, 1: 57.0, 2: 56.5},
    }
    rec = recommend(scores, SPLIT_VALIDATION)
    assert rec.verdict == VERDICT_CLEAR and rec.variant == "hdcid" and rec.runner_up == "dcid+toc"
    assert rec.contenders == ("hdcid",)
    assert rec.vs_runner_up.summary.mean == pytest.approx(2.0, abs=1e-12)


def test_recommend_no_clear_winner_when_the_runner_up_interval_covers_zero():
    scores = {"dcid": {0: 50.0, 1: 53.0, 2: 51.0}, "hdcid+toc": {0: 52.0, 1: 52.0, 2: 52.5}}
    rec = recommend(scores, SPLIT_VALIDATION)
    assert rec.best == "hdcid+toc" and rec.runner_up == "dcid"
    assert rec.verdict == VERDICT_NONE and rec.variant is None
    assert rec.contenders == ("hdcid+toc", "dcid")
    assert rec.vs_runner_up.summary.ci_low < 0 < rec.vs_runner_up.summary.ci_high


def test_recommend_needs_separation_from_all_not_only_the_runner_up():
    # The runner-up is cleanly beaten, but a noisier third variant is not: no clear winner.
    scores = {
        "dcid": {0: 60.0, 1: 61.0, 2: 62.0},
        "dcid+toc": {0: 59.0, 1: 60.0, 2: 61.1},
        "hdcid": {0: 40.0, 1: 70.0, 2: 55.0},
    }
    rec = recommend(scores, SPLIT_VALIDATION)
    assert rec.best == "dcid" and rec.runner_up == "dcid+toc" and rec.vs_runner_up.above_zero()
    assert rec.verdict == VERDICT_NONE and rec.contenders == ("dcid", "hdcid")


def test_recommend_edge_cases_single_variant_ties_and_one_seed():
    assert recommend({"hdcid": {0: 1.0}}, SPLIT_VALIDATION).verdict == VERDICT_SINGLE
    tie = recommend({"hdcid": {0: 5.0, 1: 6.0}, "dcid": {0: 5.0, 1: 6.0}}, SPLIT_VALIDATION)
    assert tie.best == "dcid" and tie.verdict == VERDICT_NONE  # equal means: the fixed variant order
    one_seed = recommend({"dcid": {0: 10.0}, "hdcid": {0: 90.0}}, SPLIT_VALIDATION)
    assert one_seed.best == "hdcid" and one_seed.verdict == VERDICT_NONE  # no interval from one pair


def test_ranking_uses_validation_not_evaluation_and_falls_back_with_a_note(tmp_path):
    # dcid is better on evaluation, hdcid on validation: the validation split decides.
    records = []
    for seed, (e_d, v_d, e_h, v_h) in enumerate([(60, 40, 50, 50), (61, 41, 51, 52), (62, 42, 52, 51)]):
        records.append(_record(variant="dcid", seed=seed, value=e_d, val=v_d))
        records.append(_record(variant="hdcid", seed=seed, value=e_h, val=v_h))
    report = build_report(read_results([_write_jsonl(tmp_path / "a.jsonl", records)]))
    (group,) = report.groups
    assert group.recommendation.split == SPLIT_VALIDATION and group.recommendation.variant == "hdcid"
    del records[3]["val_metrics"]
    report = build_report(read_results([_write_jsonl(tmp_path / "b.jsonl", records)]))
    rec = report.groups[0].recommendation
    assert rec.split == SPLIT_EVALUATION and rec.missing_validation == 1 and rec.variant == "dcid"
    assert "ranked on the evaluation split" in render_markdown(report)


def test_difference_to_dcid_uses_only_shared_seeds(tmp_path):
    records = [_record(variant="dcid", seed=s, value=50.0 + s) for s in (0, 1, 2)]
    records += [_record(variant="dcid+toc", seed=s, value=53.0 + 2 * s) for s in (1, 2, 7)]
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]))
    row = next(r for r in report.groups[0].rows if r.variant == "dcid+toc")
    assert row.vs_baseline.seeds == (1, 2) and row.vs_baseline.only_a == (7,) and row.vs_baseline.only_b == (0,)
    assert row.vs_baseline.summary.mean == pytest.approx(((55 - 51) + (57 - 52)) / 2, abs=1e-12)
    text = render_markdown(report)
    assert "seeds [7] have no dcid result" in text and "dcid seeds [0] have no dcid+toc result" in text


# ---------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in _record().items() if k != "seed"}), "key 'seed'"),
        (json.dumps(_record(seed="0")), "key 'seed'"),
        (json.dumps(_record(direction="v2t")), "key 'direction'"),
        (json.dumps({**_record(), "metrics": {}}), "key 'metrics'"),
        (json.dumps({**_record(), "metrics": {"accuracy": "high"}}), "key 'metrics.accuracy'"),
        ('{"task": "ave", "direction": "v2a", "variant": "dcid", "head": "linear", "protocol": "strict", "seed": 0, "metrics": {"accuracy": NaN}}', "finite"),
        (json.dumps({**_record(), "kind": "mystery"}), "key 'kind'"),
    ],
)
def test_malformed_lines_give_one_line_errors_with_file_and_line(tmp_path, line, fragment):
    path = _write_jsonl(tmp_path / "bad.jsonl", [_record(seed=0), "", line])
    with pytest.raises(DataError) as info:
        read_results([path])
    message = str(info.value)
    assert "\n" not in message and f"{path}:3" in message and fragment in message


def test_duplicates_empty_input_and_missing_metric_are_errors(tmp_path):
    dup = _write_jsonl(tmp_path / "dup.jsonl", [_record(), _record(value=1.0)])
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate result .*first at .*dup.jsonl:1"):
        read_results([dup])
    with pytest.raises(DataError, match="no result lines"):
        read_results([_write_jsonl(tmp_path / "health.jsonl", [{"kind": "health", "family": "dcid"}])])
    with pytest.raises(DataError, match="results file not found"):
        read_results([tmp_path / "missing.jsonl"])
    mixed = _write_jsonl(tmp_path / "mixed.jsonl", [_record(), {**_record(seed=1), "metrics": {"f1": 3.0}}])
    with pytest.raises(DataError, match=r"mixed.jsonl:2.*metric 'accuracy' missing"):
        build_report(read_results([mixed]))
    with pytest.raises(ConfigError, match="metric 'recall' is in no result"):
        build_report(read_results([_write_jsonl(tmp_path / "ok.jsonl", [_record()])]), metric="recall")


def test_unknown_fields_are_ignored_and_health_lines_shown(tmp_path):
    health = {"kind": "health", "family": "dcid", "checkpoint": "/x/dcid.pt", "checkpoint_sha256": "ab" * 32,
              "codes_used": 123, "n_codes": 400, "perplexity": 77.7, "agreement": 12.5, "extra": [1]}
    path = _write_jsonl(tmp_path / "r.jsonl", [_record(whatever={"x": 1}), health, _record(seed=1)])
    results = read_results([path])
    assert len(results.records) == 2 and len(results.health) == 1
    text = render_markdown(build_report(results))
    assert "| dcid | dcid.pt | `abababababab` | — | 123 | 400 | 77.70 | 12.50 |" in text


# ---------------------------------------------------------------------------- golden files


def test_golden_report_is_byte_identical(tmp_path):
    shutil.copy(GOLDEN / "results.jsonl", tmp_path / "results.jsonl")
    written = write_report([tmp_path / "results.jsonl"], tmp_path / "out")
    for name in ("report.md", "results.csv", "summary.json"):
        assert (tmp_path / "out" / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    assert {"chart-ave.png", "chart-avvp.png"} <= set(written.files)
    assert (tmp_path / "out" / "chart-ave.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_golden_numbers_agree_with_an_independent_computation():
    lines = [json.loads(x) for x in (GOLDEN / "results.jsonl").read_text().splitlines() if x.strip()]
    results = [x for x in lines if x.get("kind") != "health"]
    assert len(results) == 2 * 2 * 4 * 3 and len(lines) - len(results) == 3
    summary = json.loads((GOLDEN / "summary.json").read_text())
    for group in summary["groups"]:
        metric = group["metric"]
        assert metric == ("accuracy" if group["task"] == "ave" else "f1")
        by_variant = {
            v: {r["seed"]: r["metrics"][metric] for r in results
                if (r["task"], r["direction"], r["variant"]) == (group["task"], group["direction"], v)}
            for v in ("dcid", "dcid+toc", "hdcid", "hdcid+toc")
        }
        for entry in group["variants"]:
            values = np.array([by_variant[entry["variant"]][s] for s in (0, 1, 2)])
            low, high = scipy_stats.t.interval(0.95, 2, loc=values.mean(), scale=scipy_stats.sem(values))
            assert entry["eval"]["mean"] == pytest.approx(values.mean(), abs=1e-6)
            assert entry["eval"]["std"] == pytest.approx(values.std(ddof=1), abs=1e-6)
            assert entry["eval"]["ci"] == [pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6)]
            if entry["variant"] != "dcid":
                diffs = values - np.array([by_variant["dcid"][s] for s in (0, 1, 2)])
                d_low, d_high = scipy_stats.t.interval(0.95, 2, loc=diffs.mean(), scale=scipy_stats.sem(diffs))
                assert entry["vs_dcid"]["mean"] == pytest.approx(diffs.mean(), abs=1e-6)
                assert entry["vs_dcid"]["ci"] == [pytest.approx(d_low, abs=1e-6), pytest.approx(d_high, abs=1e-6)]
    verdicts = {(g["task"], g["direction"]): g["recommendation"] for g in summary["groups"]}
    assert verdicts[("ave", "v2a")]["verdict"] == "clear" and verdicts[("ave", "v2a")]["variant"] == "hdcid+toc"
    assert verdicts[("ave", "a2v")]["verdict"] == "no clear winner"
    assert verdicts[("avvp", "a2v")]["ranked_on"] == "evaluation"  # one result lacks val_metrics
    csv_lines = (GOLDEN / "results.csv").read_text().splitlines()
    # ave: accuracy, val, same-modality; avvp: 4 metrics + 4 val (one result has none) + same f1.
    assert len(csv_lines) - 1 == 24 * 3 + 24 * 9 - 4
    assert "ave,v2a,dcid,linear,strict,0,same_modality_accuracy,64.73" in csv_lines


def test_report_is_deterministic_and_independent_of_input_order(tmp_path):
    lines = (GOLDEN / "results.jsonl").read_text().splitlines()
    reordered = _write_jsonl(tmp_path / "results.jsonl", list(reversed(lines)))
    report = build_report(read_results([reordered]))
    original = build_report(read_results([GOLDEN / "results.jsonl"]))
    assert render_markdown(report).split("## Summary")[1] == render_markdown(original).split("## Summary")[1]
    assert render_summary(report).split('"metric_option"')[1] == render_summary(original).split('"metric_option"')[1]
    assert render_csv(read_results([reordered]).records) == (GOLDEN / "results.csv").read_text()


# ---------------------------------------------------------------------------- CLI and outputs


def test_cli_writes_files_and_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "rep"
    runner = CliRunner()
    args = ["report", str(GOLDEN / "results.jsonl"), "-o", str(out), "--no-charts"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["files"] == ["report.md", "results.csv", "summary.json", "report.html"]
    (out / "report.md").write_text("keep me")
    second = runner.invoke(cli, args)
    assert second.exit_code == 1 and "output exists" in second.stderr and "--force" in second.stderr
    assert (out / "report.md").read_text() == "keep me"
    third = runner.invoke(cli, [*args, "--force"])
    assert third.exit_code == 0 and (out / "report.md").read_text().startswith("# Model-selection report")
    bad = runner.invoke(cli, ["report", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "not found" in bad.stderr
    assert not (tmp_path / "x").exists()  # no partial output on error


def test_refusal_happens_before_any_file_is_written(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "summary.json").write_text("old")
    with pytest.raises(OutputExistsError):
        write_report([GOLDEN / "results.jsonl"], out, charts=False)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_metric_option_and_chart_skip_note(tmp_path, monkeypatch):
    report = build_report(read_results([GOLDEN / "results.jsonl"]), metric="macro_f1")
    # Groups without the requested metric (AVE has accuracy only) keep their primary metric.
    assert {(g.task, g.metric) for g in report.groups} == {("ave", "accuracy"), ("avvp", "macro_f1")}
    partial = [_record(task="avvp"), {**_record(task="avvp", seed=1), "metrics": {"f1": 1.0, "macro_f1": 2.0}}]
    with pytest.raises(DataError, match="r.jsonl:1.*metric 'macro_f1' missing for task avvp"):
        build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", partial)]), metric="macro_f1")
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    written = write_report([GOLDEN / "results.jsonl"], tmp_path / "out")
    assert written.files == ("report.md", "results.csv", "summary.json", "report.html")
    assert any("matplotlib" in note for note in written.notes)
    assert "chart-ave.png" not in (tmp_path / "out" / "report.md").read_text()


def test_selection_files_get_a_channel_score_plot(tmp_path):
    selection = {
        "tool": "cmg-toc", "version": "0.1.0",
        "checkpoint": {"path": "dcid.pt", "sha256": "cd" * 32, "family": "dcid"},
        "parameters": {"channels": 4, "max_num": 1, "min_num": 1},
        "levels": [{"level": 0, "codebook_shape": [8, 6], "indices": [3, 1, 0, 5], "scores": [0.9, 0.5, -0.2, -0.4],
                    "parameters": {}, "short_by": 0}],
    }
    sel_path = tmp_path / "sel ave.json"
    sel_path.write_text(json.dumps(selection))
    results = _write_jsonl(tmp_path / "r.jsonl", [_record(seed=0), _record(seed=1, selection=str(sel_path))])
    written = write_report([results], tmp_path / "out", selection_files=[sel_path])
    assert "selection-sel_ave.png" in written.files  # referenced twice, drawn once
    assert (tmp_path / "out" / "selection-sel_ave.png").read_bytes()[:4] == b"\x89PNG"
    assert "](selection-sel_ave.png)" in (tmp_path / "out" / "report.md").read_text()


# ---------------------------------------------------------------------------- comparison plans


def _plan(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(body)
    return path


PLAN = """
data_root = "data"
tasks = ["ave", "avvp"]
seeds = [0, 1]
heads = ["prototype"]

[checkpoints]
dcid = "ckpt/dcid.pt"
hdcid = "/abs/hdcid.pt"

[selection]
channels = 128
max_num = 1
min_num = 0

[selection.ave]
channels = 224
min_num = 1

[selection.avvp]
hdcid = "sel/avvp-hdcid.json"
"""


def test_plan_expands_into_one_job_per_task_and_checkpoint(tmp_path):
    plan = load_plan(_plan(tmp_path, PLAN))
    assert plan.data_root == tmp_path / "data" and plan.cache_dir is None and plan.device == "cpu"
    jobs = {(j.task, j.family): j for j in plan.jobs}
    assert list(jobs) == [("ave", "dcid"), ("ave", "hdcid"), ("avvp", "dcid"), ("avvp", "hdcid")]
    ave_dcid = jobs[("ave", "dcid")]
    assert ave_dcid.variants == ("dcid", "dcid+toc") and ave_dcid.checkpoint == tmp_path / "ckpt/dcid.pt"
    assert ave_dcid.directions == ("v2a", "a2v") and ave_dcid.heads == ("prototype",) and ave_dcid.seeds == (0, 1)
    assert ave_dcid.protocol == "strict" and ave_dcid.epochs is None
    # Task tables override the defaults key by key; a family entry may name a selection file.
    assert ave_dcid.selection == TocSettings(channels=224, max_num=1, min_num=1)
    assert jobs[("avvp", "dcid")].selection == TocSettings(channels=128, max_num=1, min_num=0)
    assert jobs[("avvp", "hdcid")].selection == tmp_path / "sel/avvp-hdcid.json"
    assert jobs[("avvp", "hdcid")].checkpoint == Path("/abs/hdcid.pt")
    only_plain = load_plan(_plan(tmp_path, PLAN.replace('seeds = [0, 1]', 'seeds = [0, 1]\nvariants = ["hdcid"]')))
    assert [(j.task, j.family, j.variants, j.selection) for j in only_plain.jobs] == [
        ("ave", "hdcid", ("hdcid",), None), ("avvp", "hdcid", ("hdcid",), None)
    ]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (("tasks = [\"ave\", \"avvp\"]", "tasks = [\"ave\", \"kinetics\"]"), "key 'tasks'"),
        (("seeds = [0, 1]", "seeds = [0, 0]"), "key 'seeds'"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nvariants = [\"dcid+tok\"]"), "key 'variants'"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nprotocol = \"loose\""), "key 'protocol'"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nepochs = 0"), "key 'epochs'"),
        (("seeds = [0, 1]", "seeds = [0, 1]\nseed = 3"), "unknown key 'seed'"),
        (("hdcid = \"/abs/hdcid.pt\"", ""), "need 'checkpoints.hdcid'"),
        (("data_root = \"data\"", ""), "give 'data_root' or 'data_config'"),
        (("min_num = 1\n", "min_num = 1\nchanels = 3\n"), "key 'selection.ave.chanels'"),
        (("channels = 224", "channels = -1"), "key 'selection.ave.channels'"),
        (("heads = [\"prototype\"]", "heads = [\"prototype\"\n"), "invalid TOML"),
    ],
)
def test_plan_errors_name_the_file_and_key(tmp_path, edit, fragment):
    body = PLAN.replace(*edit)
    assert body != PLAN
    with pytest.raises(ConfigError) as info:
        load_plan(_plan(tmp_path, body))
    assert fragment in str(info.value) and str(tmp_path / "plan.toml") in str(info.value)


def test_plan_toc_variant_without_settings_is_refused(tmp_path):
    body = PLAN.split("[selection]")[0]
    with pytest.raises(ConfigError, match=r"dcid\+toc on task ave needs TOC settings"):
        load_plan(_plan(tmp_path, body))


def test_compare_runs_the_plan_end_to_end(tmp_path):
    from tests.checkpoints import save_reference_checkpoint
    from tests.datafixtures import write_ave

    write_ave(tmp_path / "data", n=12, train=list(range(8)), val=[8, 9], test=[10, 11])
    save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", seed=1)
    save_reference_checkpoint(tmp_path / "hdcid.pt", "hdcid-avt", seed=2)
    plan = _plan(
        tmp_path,
        'data_root = "data"\ntasks = ["ave"]\nheads = ["prototype"]\nseeds = [0, 1]\n'
        '[checkpoints]\ndcid = "dcid.pt"\nhdcid = "hdcid.pt"\n[selection]\nchannels = 8\nmax_num = 1\nmin_num = 1\n',
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")
    runner = CliRunner()
    refused = runner.invoke(cli, ["compare", "--config", str(plan), "-o", str(out), "--no-charts"])
    assert refused.exit_code == 1 and "output exists" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # refused before evaluating
    result = runner.invoke(cli, ["compare", "--config", str(plan), "-o", str(out), "--no-charts", "--force"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert files[:4] == ["results.jsonl", "report.md", "results.csv", "summary.json"]
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 4 * 2  # directions × variants × seeds, one head
    assert {(x["variant"], x["direction"]) for x in lines} == {
        (v, d) for v in ("dcid", "dcid+toc", "hdcid", "hdcid+toc") for d in ("v2a", "a2v")
    }
    toc_line = next(x for x in lines if x["variant"] == "hdcid+toc")
    assert toc_line["toc"]["channels"] == 8 and [len(c) for c in toc_line["channels"]] == [8, 8]
    selection = json.loads((out / "toc-ave-hdcid.json").read_text())
    assert [lvl["indices"] for lvl in selection["levels"]] == toc_line["channels"]
    summary = json.loads((out / "summary.json").read_text())
    assert [(g["task"], g["direction"], g["head"]) for g in summary["groups"]] == [
        ("ave", "v2a", "prototype"), ("ave", "a2v", "prototype")
    ]
    # The report of the written results is the one `toc report` makes from them.
    again = runner.invoke(cli, ["report", str(out / "results.jsonl"), "-o", str(tmp_path / "again"), "--no-charts"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "summary.json").read_bytes() == (out / "summary.json").read_bytes()


def test_selection_of_a_present_checkpoint_gets_the_full_toc_figure(tmp_path):
    import struct

    from tests.checkpoints import save_reference_checkpoint
    from toc.codebook.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(save_reference_checkpoint(tmp_path / "dcid.pt", "dcid-avt", seed=3))
    document = selection_for(checkpoint, TocSettings(channels=6, max_num=2, min_num=1))
    assert [len(level.indices) for level in document.levels] == [6]
    document.save(tmp_path / "sel.json")
    results = _write_jsonl(tmp_path / "r.jsonl", [_record(seed=0)])
    write_report([results], tmp_path / "out", selection_files=[tmp_path / "sel.json"])
    png = (tmp_path / "out" / "selection-sel.png").read_bytes()
    width = struct.unpack(">I", png[16:20])[0]
    assert width == 1500  # toc.figures's three-panel figure; the fallback bar chart is 700 px wide
    (tmp_path / "dcid.pt").write_bytes(b"moved away")  # checkpoint changed: the fallback is drawn
    write_report([results], tmp_path / "out2", selection_files=[tmp_path / "sel.json"])
    assert struct.unpack(">I", (tmp_path / "out2" / "selection-sel.png").read_bytes()[16:20])[0] == 700
