"""Rendering a report: report.md (tables, recommendations), results.csv (tidy rows) and
summary.json (every number of report.md, rounded so reruns agree)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmg_base.errors import printable
from toc.eval.heads import HEADS
from toc.eval.protocols import DIRECTION_TEXT, DIRECTIONS, PROTOCOLS
from toc.eval.records import ResultRecord
from toc.eval.tasks import TASKS
from toc.eval.variants import VARIANT_NAMES
from toc.report.analysis import VERDICT_CLEAR, VERDICT_SINGLE, Group, Report
from toc.report.results import order_key
from toc.report.stats import PairedDifference, SampleSummary

REPORT_FORMAT = "toc-report/1"
SUMMARY_DECIMALS = 6  # summary.json floats are rounded so reruns and library versions agree


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-0.00", "0.00").replace("+0.00", "0.00") if text.strip("+-") == "0.00" else text


def _ci(summary: SampleSummary | None) -> str:
    if summary is None or summary.ci_low is None:
        return "—"
    return f"[{_f(summary.ci_low)}, {_f(summary.ci_high)}]"


def _mean_std(summary: SampleSummary | None) -> str:
    if summary is None:
        return "—"
    return f"{_f(summary.mean)} ± {_f(summary.std)}" if summary.std is not None else f"{_f(summary.mean)}"


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(value[k])}" for k in sorted(value, key=str))
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return _cell(str(value))


def _cell(text: str) -> str:
    # printable: a newline or control character from an input file cannot end a table row.
    return printable(text).replace("|", "\\|")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _difference_text(d: PairedDifference | None) -> tuple[str, str]:
    if d is None or d.summary is None:
        return "—", "—"
    s = d.summary
    mean = _f(s.mean, signed=True)
    ci = "—" if s.ci_low is None else f"[{_f(s.ci_low, True)}, {_f(s.ci_high, True)}]"
    if d.only_a or d.only_b:
        mean += f" (n={d.n})"
    return mean, ci


def _recommendation_text(group: Group) -> str:
    rec = group.recommendation
    metric = f"{rec.split} {group.metric}"
    if rec.verdict == VERDICT_SINGLE:
        text = f"**Recommended: {rec.best}** — the only variant evaluated here ({metric} {_f(rec.best_mean)})."
    else:
        d = rec.vs_runner_up
        if d is None or d.summary is None:
            diff = "no seed shared, so no paired difference"
        elif d.summary.ci_low is None:
            diff = f"Δ {_f(d.summary.mean, True)} on {d.n} shared seed, too few for an interval"
        else:
            diff = (
                f"paired Δ {_f(d.summary.mean, True)}, 95% CI [{_f(d.summary.ci_low, True)}, "
                f"{_f(d.summary.ci_high, True)}], n={d.n}"
            )
        if rec.verdict == VERDICT_CLEAR:
            text = (
                f"**Recommended: {rec.best}** — best mean {metric} ({_f(rec.best_mean)}); its paired "
                f"interval lies above 0 against every other variant (runner-up {rec.runner_up}: {diff})."
            )
        else:
            text = (
                f"**No clear winner** — best mean {metric}: {rec.best} ({_f(rec.best_mean)}), runner-up "
                f"{rec.runner_up} ({_f(rec.runner_up_mean)}; {diff}). Not separated from the best: "
                f"{', '.join(rec.contenders)}."
            )
    if rec.missing_validation:
        text += (
            f" Validation scores are missing for {rec.missing_validation} result(s), so the variants "
            "are ranked on the evaluation split, which makes the choice optimistic."
        )
    return text


def render_markdown(report: Report) -> str:
    """report.md: summary table, one section per task, TOC settings, codebook health, plots."""
    pct = int(round(report.confidence * 100))
    out: list[str] = ["# Model-selection report", ""]
    out.append("Inputs:")
    for item in report.inputs:
        out.append(f"- `{item.name}` (sha256 `{item.sha256[:16]}`): {item.n_results} results, {item.n_health} health records")
    out += [
        "",
        "How to read this report. Scores are in %. *mean ± std* is over seeds (sample standard deviation, "
        f"n − 1); the {pct}% CI is mean ± t(0.975, n − 1)·std/√n. *Δ vs dcid* is the difference to the "
        "DCID baseline paired by seed (only seeds both variants have; n is shown when some are "
        f"missing), with its {pct}% t interval. The recommendation ranks variants by their mean on the "
        "validation split (never the evaluation split, unless validation scores are missing, which "
        "is then said). The best is recommended only when its seed-paired interval against every "
        "other variant lies strictly above 0; otherwise the verdict is *no clear winner* and the "
        "variants not separated from the best are listed.",
        "",
        "## Summary",
        "",
        "| task | direction | head | protocol | metric | recommendation | ranked on | eval mean of best | chance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in report.groups:
        rec = g.recommendation
        choice = rec.variant if rec.variant else f"no clear winner ({', '.join(rec.contenders)})"
        best_row = next(r for r in g.rows if r.variant == rec.best)
        out.append(
            f"| {g.task} | {g.direction} | {g.head} | {g.protocol} | {g.metric} | {_cell(choice)} | "
            f"{rec.split} | {_f(best_row.eval.mean)} | {_pct(g.chance)} |"
        )
    out.append("")
    current_task = None
    for g in report.groups:
        if g.task != current_task:
            current_task = g.task
            out += [f"## {g.task}", ""]
            chances = {x.chance for x in report.groups if x.task == g.task}
            if len(chances) == 1 and None not in chances:
                out += [f"Chance level: {_pct(next(iter(chances)))} %.", ""]
            if g.task in report.charted_tasks:
                out += [f"![{g.task}: mean with {pct}% CI per variant]({chart_name(g.task)})", ""]
        direction = DIRECTION_TEXT.get(g.direction, g.direction)
        out += [f"### {g.title} — {g.metric} ({direction})", ""]
        if g.chance is not None and len({x.chance for x in report.groups if x.task == g.task}) > 1:
            out += [f"Chance level: {_pct(g.chance)} %.", ""]
        out += [
            f"| variant | n | mean ± std | {pct}% CI | Δ vs dcid | {pct}% CI of Δ | validation mean | same-modality |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in g.rows:
            diff, diff_ci = _difference_text(row.vs_baseline)
            name = f"**{row.variant}**" if row.variant == g.recommendation.variant else row.variant
            out.append(
                f"| {_cell(name)} | {row.eval.n} | {_mean_std(row.eval)} | {_ci(row.eval)} | {diff} | "
                f"{diff_ci} | {_mean_std(row.val)} | {_mean_std(row.same_modality)} |"
            )
        notes = []
        for row in g.rows:
            d = row.vs_baseline
            if d is not None and (d.only_a or d.only_b):
                parts = []
                if d.only_a:
                    parts.append(f"seeds {list(d.only_a)} have no dcid result")
                if d.only_b:
                    parts.append(f"dcid seeds {list(d.only_b)} have no {row.variant} result")
                notes.append(f"{row.variant}: " + "; ".join(parts) + " (left out of Δ).")
        constant = [r.variant for r in g.rows if r.eval.n >= 2 and r.eval.std == 0.0]
        if constant:
            notes.append(
                f"{', '.join(constant)}: every seed gave the same score, so the interval has zero width "
                "(intervals measure seed-to-seed variation only, e.g. none for a training-free head on a fixed split)."
            )
        out.append("")
        for note in notes:
            out += [f"- {note}"]
        if notes:
            out.append("")
        out += [_recommendation_text(g), ""]
    out += ["## TOC settings", ""]
    if report.toc_settings:
        out += [
            "| task | direction | variant | checkpoint | channels per level | C | max_num | min_num | sim_weight | var_weight | other | selection |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        known = ("channels", "max_num", "min_num", "sim_weight", "var_weight")
        for t in report.toc_settings:
            toc = t.toc or {}
            other = {k: v for k, v in toc.items() if k not in known}
            out.append(
                f"| {t.task} | {t.direction} | {t.variant} | {_sha(t.checkpoint_sha256)} | {t.channels_per_level} | "
                + " | ".join(_value(toc.get(k)) for k in known)
                + f" | {_value(other) if other else '—'} | {_cell(t.selection) if t.selection else '—'} |"
            )
    else:
        out.append("No result carries TOC settings or a channel selection.")
    out += ["", "## Codebook health", ""]
    if report.health:
        out += [
            "| family | checkpoint | sha256 | level | codes used | codes | perplexity | cross-modal agreement (%) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for h in report.health:
            f = h.fields
            checkpoint = Path(str(f["checkpoint"])).name if f.get("checkpoint") else "—"
            out.append(
                f"| {_value(f.get('family'))} | {_cell(checkpoint)} | {_sha(f.get('checkpoint_sha256'))} | "
                f"{_value(f.get('level'))} | {_value(f.get('codes_used'))} | {_value(f.get('n_codes'))} | "
                f"{_value(f.get('perplexity'))} | {_value(f.get('agreement'))} |"
            )
    else:
        out.append("No codebook-health records in the input.")
    if report.selections:
        out += ["", "## Channel selections", ""]
        for s in report.selections:
            out += [f"![{_cell(s.path.name)}]({s.name})", ""]
        out.pop()
    return "\n".join(out) + "\n"


def _sha(value: Any) -> str:
    return f"`{_cell(str(value)[:12]).replace('`', '')}`" if value else "—"


def chart_name(task: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in task)
    return f"chart-{safe}.png"


def results_rows(records: Sequence[ResultRecord]) -> list[tuple[str, str, str, str, str, int, str, float]]:
    """Tidy rows: one per (result, metric); validation and same-modality scores prefixed."""
    rows = []
    for r in records:
        for prefix, metrics in (("", r.metrics), ("val_", r.val_metrics), ("same_modality_", r.same_modality)):
            for name, value in (metrics or {}).items():
                rows.append((r.task, r.direction, r.variant, r.head, r.protocol, r.seed, prefix + name, value))
    rows.sort(
        key=lambda x: (
            order_key(x[0], TASKS), order_key(x[1], DIRECTIONS), order_key(x[2], VARIANT_NAMES),
            order_key(x[3], HEADS), order_key(x[4], PROTOCOLS), x[5], x[6],
        )
    )
    return rows


def render_csv(records: Sequence[ResultRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", "direction", "variant", "head", "protocol", "seed", "metric", "value"])
    for row in results_rows(records):
        writer.writerow([*row[:7], repr(float(row[7]))])
    return buffer.getvalue()


def _r(value: float | None) -> float | None:
    if value is None:
        return None
    rounded = round(value, SUMMARY_DECIMALS)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def _summary_json(s: SampleSummary | None) -> dict | None:
    if s is None:
        return None
    ci = None if s.ci_low is None else [_r(s.ci_low), _r(s.ci_high)]
    return {"n": s.n, "mean": _r(s.mean), "std": _r(s.std), "ci": ci}


def _difference_json(d: PairedDifference | None) -> dict | None:
    if d is None:
        return None
    out = _summary_json(d.summary) or {"n": 0, "mean": None, "std": None, "ci": None}
    out.update({"seeds": list(d.seeds), "only_variant": list(d.only_a), "only_other": list(d.only_b)})
    return out


def summary_document(report: Report) -> dict[str, Any]:
    groups = []
    for g in report.groups:
        rec = g.recommendation
        groups.append(
            {
                "task": g.task, "direction": g.direction, "head": g.head, "protocol": g.protocol,
                "metric": g.metric, "chance": _r(g.chance),
                "variants": [
                    {
                        "variant": row.variant, "seeds": list(row.seeds), "eval": _summary_json(row.eval),
                        "validation": _summary_json(row.val), "same_modality": _summary_json(row.same_modality),
                        "vs_dcid": _difference_json(row.vs_baseline), "checkpoints": list(row.checkpoints),
                    }
                    for row in g.rows
                ],
                "recommendation": {
                    "verdict": rec.verdict, "variant": rec.variant, "ranked_on": rec.split,
                    "best": rec.best, "best_mean": _r(rec.best_mean), "runner_up": rec.runner_up,
                    "runner_up_mean": _r(rec.runner_up_mean), "best_vs_runner_up": _difference_json(rec.vs_runner_up),
                    "contenders": list(rec.contenders), "missing_validation": rec.missing_validation,
                },
            }
        )
    return {
        "format": REPORT_FORMAT,
        "confidence": report.confidence,
        "metric_option": report.metric_option,
        "inputs": [
            {"name": i.name, "sha256": i.sha256, "results": i.n_results, "health": i.n_health} for i in report.inputs
        ],
        "groups": groups,
        "toc_settings": [
            {
                "task": t.task, "direction": t.direction, "variant": t.variant,
                "checkpoint_sha256": t.checkpoint_sha256, "channels_per_level": t.channels_per_level,
                "toc": t.toc, "selection": t.selection,
            }
            for t in report.toc_settings
        ],
        "health": [h.fields for h in report.health],
    }


def render_summary(report: Report) -> str:
    return json.dumps(summary_document(report), sort_keys=True, indent=2, allow_nan=False, default=str) + "\n"
