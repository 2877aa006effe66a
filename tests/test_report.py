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
from toc.eval.records import unit_ids_digest
from toc.pipeline.plan import load_plan
from toc.report import (
    SPLIT_EVALUATION,
    SPLIT_VALIDATION,
    VERDICT_CLEAR,
    VERDICT_NONE,
    VERDICT_SINGLE,
    build_report,
    read_results,
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


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def _unit_record(variant, seed, eval_correct, val_correct, *, head="prototype", protocol="strict",
                 task="ave", direction="v2a", pretrain_run=None, split_seed=None, **extra):
    """A result line as `toc eval` writes it for a clip task, with its per-clip outcomes."""
    eval_correct, val_correct = list(map(int, eval_correct)), list(map(int, val_correct))
    rec = {
        "task": task, "direction": direction, "variant": variant, "head": head, "protocol": protocol,
        "seed": seed, "metrics": {"accuracy": 100.0 * sum(eval_correct) / len(eval_correct)},
        "val_metrics": {"accuracy": 100.0 * sum(val_correct) / len(val_correct)},
        "unit": "clip", "parts_metrics": ["accuracy"], "n_eval": len(eval_correct),
        "n_val": len(val_correct), "eval_parts": eval_correct, "val_parts": val_correct,
        "eval_units_sha256": unit_ids_digest(_ids(f"e{split_seed}-", len(eval_correct))),
        "val_units_sha256": unit_ids_digest(_ids(f"v{split_seed}-", len(val_correct))),
        "val_split": "evaluation" if protocol == "reference" else "validation",
    }
    if pretrain_run is not None:
        rec["pretrain_run"] = pretrain_run
    if split_seed is not None:
        rec["split_seed"] = split_seed
    rec.update(extra)
    return rec


def _deterministic_set(correct: dict, seeds=(0, 1, 2), **kwargs):
    """Training-free heads: every seed gives the same per-clip outcome (eval = val here)."""
    return [_unit_record(v, s, c, c, **kwargs) for v, c in correct.items() for s in seeds]


def test_variants_one_clip_apart_with_deterministic_heads_get_no_clear_verdict(tmp_path):
    # The README's old excerpt: Δ = +2.22 on one of 45 validation clips, identical for 3 seeds.
    rng = np.random.default_rng(0)
    base = (rng.random(45) < 0.6).astype(int)
    better = base.copy()
    better[np.flatnonzero(base == 0)[0]] = 1
    records = _deterministic_set({"dcid": better, "dcid+toc": base, "hdcid": base, "hdcid+toc": base})
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]), n_resamples=1000)
    (group,) = report.groups
    rec = group.recommendation
    assert rec.best == "dcid" and rec.verdict == VERDICT_NONE and rec.variant is None
    assert rec.contenders[0] == "dcid" and len(rec.contenders) == 4
    assert all(c.test == "exact McNemar" and c.p_value == 1.0 for c in rec.comparisons)
    for row in group.rows:  # never a zero-width "certain" interval
        assert row.estimate.n_eff_runs == 1 and row.estimate.interval.width > 5
    text = render_markdown(report)
    assert "**No clear winner**" in text and "n_eff = 1" in text
    assert "[+2.22, +2.22]" not in text


def test_a_clear_separation_is_called_and_every_comparison_is_shown(tmp_path):
    rng = np.random.default_rng(1)
    correct = {v: (rng.random(120) < 0.4).astype(int) for v in ("dcid", "dcid+toc", "hdcid")}
    correct["hdcid+toc"] = (rng.random(120) < 0.95).astype(int)
    records = _deterministic_set(correct)
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]), n_resamples=1000)
    rec = report.groups[0].recommendation
    assert rec.verdict == VERDICT_CLEAR and rec.variant == "hdcid+toc" and rec.contenders == ("hdcid+toc",)
    assert len(rec.comparisons) == 3 and all(c.separated for c in rec.comparisons)
    text = render_markdown(report)
    assert "**Recommended: hdcid+toc**" in text and "Holm-adjusted" in text
    assert "same-modality" in text  # the validation rows are of the training modality


def test_random_heads_are_resampled_over_runs_and_linear_heads_say_epoch_selected(tmp_path):
    rng = np.random.default_rng(2)
    records = []
    for seed in range(3):
        for v, p in (("dcid", 0.5), ("hdcid", 0.55)):
            records.append(_unit_record(
                v, seed, rng.random(60) < p, rng.random(30) < p, head="linear",
            ))
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]), n_resamples=1000)
    group = report.groups[0]
    assert all(r.estimate.n_eff_runs == 3 for r in group.rows)
    assert all(c.test == "paired bootstrap" for c in group.recommendation.comparisons)
    assert any("best over epochs" in w for w in group.recommendation.warnings)
    assert "training runs" in " ".join(group.recommendation.facts)


def test_reference_protocol_groups_never_say_validation(tmp_path):
    rng = np.random.default_rng(3)
    correct = {v: (rng.random(50) < p).astype(int) for v, p in (("dcid", 0.5), ("hdcid", 0.9))}
    new = _deterministic_set(correct, protocol="reference")
    old = [_record(variant=v, seed=s, value=50.0 + s, val=50.0 + s) for v in ("dcid", "hdcid") for s in (0, 1)]
    for r in old:
        r["protocol"] = "reference"
        r["task"] = "ucf-vggsound"
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", new + old)]), n_resamples=500)
    text = render_markdown(report)
    sections = text.split("### ")[1:]
    assert len(sections) == 2
    for group, section in zip(report.groups, sections, strict=True):
        body = section.split("## TOC settings")[0]
        assert group.recommendation.split == SPLIT_EVALUATION
        assert "validation" not in body.lower(), body
        assert "evaluation split (published protocol)" in body
        assert any("optimistic" in w for w in group.recommendation.warnings)
    summary_rows = [line for line in text.splitlines() if line.startswith("| ave ") or line.startswith("| ucf")]
    assert summary_rows and all("evaluation (published protocol)" in line for line in summary_rows)


def test_results_without_per_clip_outcomes_get_seed_statistics_and_no_winner(tmp_path):
    # Old-schema lines: a seed t interval above 0 no longer makes a "clear" winner.
    scores = {"dcid": (50.0, 52.0, 51.0), "hdcid": (55.0, 57.0, 56.5)}
    records = [_record(variant=v, seed=s, value=x, val=x) for v, xs in scores.items() for s, x in enumerate(xs)]
    report = build_report(read_results([_write_jsonl(tmp_path / "old.jsonl", records)]))
    (group,) = report.groups
    rec = group.recommendation
    assert not group.resampled and rec.verdict == VERDICT_NONE and rec.best == "hdcid"
    assert rec.contenders == ("hdcid", "dcid")
    hdcid = next(r for r in group.rows if r.variant == "hdcid")
    assert hdcid.vs_baseline.above_zero()  # the seed interval is shown, but it decides nothing
    text = render_markdown(report)
    assert "no per-clip (per-video) outcomes" in text and "seed statistics only" in text
    single = build_report(read_results([_write_jsonl(tmp_path / "one.jsonl", records[3:])]))
    assert single.groups[0].recommendation.verdict == VERDICT_SINGLE


def test_constant_seed_scores_have_exactly_zero_std():
    # 100·5/45 three times: a float std of ~2e-15 used to hide the zero-width note.
    flat = summarize([100 * 5 / 45] * 3)
    assert flat.std == 0.0 and flat.ci_low == flat.ci_high == 100 * 5 / 45


def test_pretraining_runs_and_split_seeds_show_their_spread(tmp_path):
    rng = np.random.default_rng(4)
    records = []
    for p in (0, 1):
        for split in (0, 1):
            for seed in (0, 1):
                for v, level in (("dcid", 0.5), ("hdcid", 0.6)):
                    shift = 0.1 * p
                    records.append(_unit_record(
                        v, seed, rng.random(40 + split) < level + shift, rng.random(20) < level + shift,
                        head="linear", pretrain_run=p, split_seed=split,
                    ))
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]), n_resamples=500)
    group = report.groups[0]
    row = group.rows[0]
    assert row.estimate.n_splits == 2 and len(row.runs) == 8
    assert [s.what for s in row.spread] == ["pretraining run", "split seed"]
    text = render_markdown(report)
    assert "dcid across 2 pretraining runs" in text and "dcid across 2 split seeds" in text
    assert "2 pretraining runs × head seeds" in " ".join(group.recommendation.facts)


def test_minimal_hand_built_lines_with_per_clip_outcomes_are_tested(tmp_path):
    # Only the identity, the metric and the outcomes: the unit is inferred, the units are paired
    # by position, and without validation outcomes the ranking is on the evaluation split.
    rng = np.random.default_rng(8)
    correct = {"dcid": rng.random(80) < 0.3, "hdcid": rng.random(80) < 0.95}
    records = [
        {"task": "mytask", "direction": "v2a", "variant": v, "head": "prototype", "protocol": "strict",
         "seed": 0, "metrics": {"accuracy": 100.0 * c.mean()}, "eval_parts": [float(x) for x in c]}
        for v, c in correct.items()
    ]
    report = build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]), n_resamples=1000)
    (group,) = report.groups
    rec = group.recommendation
    assert group.resampled and group.unit == "clip" and rec.split == SPLIT_EVALUATION
    assert rec.verdict == VERDICT_CLEAR and rec.variant == "hdcid"
    assert any("paired by position" in n for n in group.notes)
    assert any("Validation scores are missing for 2" in w for w in rec.warnings)
    records[1]["eval_parts"] = records[1]["eval_parts"][:79]
    with pytest.raises(DataError, match="different numbers of clips"):
        build_report(read_results([_write_jsonl(tmp_path / "s.jsonl", records)]))


def test_results_scored_on_other_clips_are_refused(tmp_path):
    rng = np.random.default_rng(5)
    records = _deterministic_set({"dcid": rng.random(30) < 0.5, "hdcid": rng.random(30) < 0.5}, seeds=(0,))
    records[1]["eval_units_sha256"] = unit_ids_digest(_ids("other", 30))
    with pytest.raises(DataError, match=r"r.jsonl:2.*different clips.*cannot be paired"):
        build_report(read_results([_write_jsonl(tmp_path / "r.jsonl", records)]))


def test_ranking_uses_validation_not_evaluation_and_falls_back_with_a_note(tmp_path):
    # dcid is better on evaluation, hdcid on validation: the validation split decides.
    rng = np.random.default_rng(6)
    eval_d, eval_h = rng.random(80) < 0.7, rng.random(80) < 0.4
    val_d, val_h = rng.random(40) < 0.4, rng.random(40) < 0.7
    records = []
    for seed in range(3):
        records.append(_unit_record("dcid", seed, eval_d, val_d))
        records.append(_unit_record("hdcid", seed, eval_h, val_h))
    report = build_report(read_results([_write_jsonl(tmp_path / "a.jsonl", records)]), n_resamples=500)
    (group,) = report.groups
    assert group.recommendation.split == SPLIT_VALIDATION and group.recommendation.best == "hdcid"
    for key in ("val_metrics", "val_parts", "val_units_sha256"):
        del records[3][key]
    report = build_report(read_results([_write_jsonl(tmp_path / "b.jsonl", records)]), n_resamples=500)
    rec = report.groups[0].recommendation
    assert rec.split == SPLIT_EVALUATION and rec.missing_validation == 1 and rec.best == "dcid"
    text = render_markdown(report)
    assert "ranked on the evaluation split" in text and "evaluation (validation missing)" in text


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
        ('{"task": "ave", "direction": "v2a", "variant": "dcid", "head": "linear", "protocol": "strict", "seed": 0, "metrics": {"accuracy": NaN}}', "NaN is not a JSON number"),
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


@pytest.mark.parametrize("folder", [GOLDEN, GOLDEN / "units"], ids=["seed-only", "units"])
def test_golden_report_is_byte_identical(tmp_path, folder):
    # GOLDEN: lines of the old schema (no per-unit outcomes); units: the current schema.
    shutil.copy(folder / "results.jsonl", tmp_path / "results.jsonl")
    written = write_report([tmp_path / "results.jsonl"], tmp_path / "out")
    for name in ("report.md", "results.csv", "summary.json"):
        assert (tmp_path / "out" / name).read_bytes() == (folder / name).read_bytes(), name
    assert "chart-ave.png" in written.files
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
    # Without per-clip outcomes no paired test over clips can be made: nothing is "clear", even
    # where the seed intervals of every difference lie above 0 (ave v2a: hdcid+toc).
    assert all(v["verdict"] == "no clear winner" and v["method"] == "seed statistics only" for v in verdicts.values())
    assert verdicts[("ave", "v2a")]["best"] == "hdcid+toc"
    assert verdicts[("avvp", "a2v")]["ranked_on"] == "evaluation"  # one result lacks val_metrics
    csv_lines = (GOLDEN / "results.csv").read_text().splitlines()
    # ave: accuracy, val, same-modality; avvp: 4 metrics + 4 val (one result has none) + same f1.
    assert len(csv_lines) - 1 == 24 * 3 + 24 * 9 - 4
    assert "ave,v2a,dcid,linear,strict,,,0,same_modality_accuracy,64.73" in csv_lines


def test_units_golden_numbers_agree_with_an_independent_computation():
    from scipy.stats import binomtest

    lines = [json.loads(x) for x in (GOLDEN / "units" / "results.jsonl").read_text().splitlines()]
    results = [x for x in lines if x.get("kind") != "health"]
    summary = json.loads((GOLDEN / "units" / "summary.json").read_text())
    for group in summary["groups"]:
        mine = [r for r in results if (r["task"], r["direction"], r["head"], r["protocol"]) ==
                (group["task"], group["direction"], group["head"], group["protocol"])]
        for entry in group["variants"]:
            rs = [r for r in mine if r["variant"] == entry["variant"]]
            parts = np.array([r["eval_parts"] for r in rs], dtype=float)
            if group["unit"] == "clip":
                want = 100 * parts.mean()  # every run weighs the same in these balanced sets
            else:
                want = np.mean([200 * p[:, 0].sum() / (p[:, 1].sum() + p[:, 2].sum()) for p in parts])
            low, high = entry["estimate"]["interval"]
            assert entry["estimate"]["score"] == pytest.approx(want, abs=1e-6)
            assert low < want < high and high - low > 1.0  # never a zero-width "certain" interval
        rec = group["recommendation"]
        for c in rec["comparisons"]:
            if c["test"] != "exact McNemar":
                continue
            (best,) = {tuple(r["val_parts"]) for r in mine if r["variant"] == rec["best"]}
            (other,) = {tuple(r["val_parts"]) for r in mine if r["variant"] == c["other"]}
            a_only = sum(x > y for x, y in zip(best, other, strict=True))
            b_only = sum(y > x for x, y in zip(best, other, strict=True))
            want_p = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
            assert c["p_value"] == pytest.approx(want_p, abs=1e-6)
    verdicts = {(g["task"], g["head"], g["protocol"]): g["recommendation"] for g in summary["groups"]}
    # dcid is one validation clip ahead of dcid+toc with deterministic heads: not a winner.
    assert verdicts[("ave", "prototype", "strict")]["verdict"] == "no clear winner"
    assert verdicts[("ave", "linear", "strict")]["variant"] == "hdcid+toc"
    assert verdicts[("ucf-vggsound", "prototype", "reference")]["ranked_on_text"] == "evaluation (published protocol)"


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
    jobs = {(j.task, j.method): j for j in plan.jobs}
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
    assert [(j.task, j.method, j.variants, j.selection) for j in only_plain.jobs] == [
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
    from toc.testing.checkpoints import save_reference_checkpoint
    from toc.testing.datafixtures import write_ave

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

    from toc.codebook.checkpoint import load_checkpoint
    from toc.testing.checkpoints import save_reference_checkpoint

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


def test_plan_with_several_pretraining_runs_and_split_seeds(tmp_path):
    body = PLAN.replace('dcid = "ckpt/dcid.pt"\nhdcid = "/abs/hdcid.pt"', 'dcid = ["d0.pt", "d1.pt"]\nhdcid = ["h0.pt", "h1.pt"]')
    body = body.replace("seeds = [0, 1]", 'seeds = [0, 1]\nsplit_seeds = [0, 1, 2]\npretrain_overlap = "exclude"\npretrain_csv = "pre.csv"')
    plan = load_plan(_plan(tmp_path, body))
    assert [(j.task, j.method, j.pretrain_run, j.checkpoint.name) for j in plan.jobs][:4] == [
        ("ave", "dcid", 0, "d0.pt"), ("ave", "dcid", 1, "d1.pt"), ("ave", "hdcid", 0, "h0.pt"), ("ave", "hdcid", 1, "h1.pt"),
    ]
    assert all(j.split_seeds == (0, 1, 2) for j in plan.jobs)
    assert plan.pretrain_overlap == "exclude" and plan.pretrain_csv == tmp_path / "pre.csv"
    uneven = body.replace('hdcid = ["h0.pt", "h1.pt"]', 'hdcid = ["h0.pt"]')
    with pytest.raises(ConfigError, match="pair by position"):
        load_plan(_plan(tmp_path, uneven))
    with pytest.raises(ConfigError, match="'split_seed' or 'split_seeds'"):
        load_plan(_plan(tmp_path, body.replace("split_seeds", "split_seed = 1\nsplit_seeds")))
    with pytest.raises(ConfigError, match="key 'pretrain_overlap'"):
        load_plan(_plan(tmp_path, body.replace('"exclude"', '"drop"')))


def test_compare_with_two_pretraining_runs_pairs_them_across_families(tmp_path):
    from toc.testing.checkpoints import save_reference_checkpoint
    from toc.testing.datafixtures import write_ave

    write_ave(tmp_path / "data", n=12, train=list(range(8)), val=[8, 9], test=[10, 11])
    for run in (0, 1):
        save_reference_checkpoint(tmp_path / f"dcid{run}.pt", "dcid-avt", seed=1 + run)
        save_reference_checkpoint(tmp_path / f"hdcid{run}.pt", "hdcid-avt", seed=3 + run)
    plan = _plan(
        tmp_path,
        'data_root = "data"\ntasks = ["ave"]\nheads = ["prototype"]\nseeds = [0]\ndirections = ["v2a"]\n'
        '[checkpoints]\ndcid = ["dcid0.pt", "dcid1.pt"]\nhdcid = ["hdcid0.pt", "hdcid1.pt"]\n'
        '[selection]\nchannels = 8\nmax_num = 1\nmin_num = 1\n',
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compare", "--config", str(plan), "-o", str(out), "--no-charts"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted({(x["variant"], x["pretrain_run"]) for x in lines}) == [
        (v, p) for v in ("dcid", "dcid+toc", "hdcid", "hdcid+toc") for p in (0, 1)
    ]
    assert {p.name for p in out.glob("toc-*.json")} == {
        "toc-ave-dcid-p0.json", "toc-ave-dcid-p1.json", "toc-ave-hdcid-p0.json", "toc-ave-hdcid-p1.json"
    }
    (group,) = json.loads((out / "summary.json").read_text())["groups"]
    assert group["recommendation"]["method"] == "paired test over units"
    assert all(len(v["runs"]) == 2 and v["spread"][0]["what"] == "pretraining run" for v in group["variants"])
    assert "across 2 pretraining runs" in (out / "report.md").read_text()
