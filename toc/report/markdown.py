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
from toc.eval.records import ResultRecord
from toc.eval.tasks import TASKS
from toc.eval.variants import VARIANT_NAMES
from toc.report.analysis import Group, Report, VariantRow
from toc.report.resampling import (
    SPLIT_VALIDATION,
    TEST_BOOTSTRAP,
    TEST_MCNEMAR,
    VERDICT_CLEAR,
    VERDICT_SINGLE,
    Interval,
    PairedEstimate,
    VariantEstimate,
)
from toc.report.results import order_key
from toc.report.stats import PairedDifference, SampleSummary
from toc.vocabulary import DIRECTION_TEXT, DIRECTIONS, HEADS, PROTOCOLS

REPORT_FORMAT = "toc-report/2"
SUMMARY_DECIMALS = 6  # summary.json floats are rounded so reruns and library versions agree
LLP_COLUMNS = (
    ("llp_segment_audio", "segment audio"), ("llp_segment_visual", "segment visual"),
    ("llp_event_audio", "event audio"), ("llp_event_visual", "event visual"),
)
LLP_BOTH = (
    ("llp_segment_av", "segment audio-visual"), ("llp_segment_type_at_av", "segment Type@AV"),
    ("llp_segment_event_at_av", "segment Event@AV"), ("llp_event_av", "event audio-visual"),
    ("llp_event_type_at_av", "event Type@AV"), ("llp_event_event_at_av", "event Event@AV"),
)


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-0.00", "0.00").replace("+0.00", "0.00") if text.strip("+-") == "0.00" else text


def _ci(summary: SampleSummary | None) -> str:
    if summary is None or summary.ci_low is None:
        return "—"
    return f"[{_f(summary.ci_low)}, {_f(summary.ci_high)}]"


def _span(interval: Interval | None, signed: bool = False) -> str:
    if interval is None:
        return "—"
    return f"[{_f(interval.low, signed)}, {_f(interval.high, signed)}]"


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


def _how_to_read(report: Report) -> list[str]:
    """The header: exactly what was done, for the kinds of groups this report has."""
    pct = f"{report.confidence * 100:g}%"
    resampled = [g for g in report.groups if g.resampled]
    seed_only = [g for g in report.groups if not g.resampled]
    out = ["## How this report was made", ""]
    out.append(
        "- Scores are in %. A variant's score is its metric on all evaluated clips (videos for the "
        "segment tasks), averaged over its training runs: head seeds and, where the results have "
        "them, pretraining runs (checkpoints) and split seeds."
    )
    if resampled:
        out += [
            f"- Intervals ({pct}) come from a paired bootstrap: {report.n_resamples} resamples "
            f"(seed {report.bootstrap_seed}) of the evaluated units, the same draw for every "
            "variant. Where a head differs between runs the runs are resampled too (pretraining "
            "runs first, head seeds within them), and with several split seeds the splits. They "
            "are expanded percentile intervals (the small-sample widening of Hesterberg 2015). "
            "*Δ vs dcid* is paired by unit and run.",
            "- A head that gives the same outcome for every seed on one fixed split (the "
            "training-free prototype head) is one training run, n_eff = 1: its interval covers "
            "the evaluation sample only, not another split or another pretraining run. *runs "
            "(n_eff)* gives the results per variant and how many of them differ.",
            "- Recommendation: variants are ranked by their score on the **validation split**, the "
            "held-out rows of the *training* modality: a same-modality score, not a cross-modal "
            "one; for the linear head it is the score at the epoch those same rows chose, which "
            "is optimistic. Groups of the reference protocol are ranked on the **evaluation "
            "split (published protocol)**, as the published scripts choose, and say so. The best "
            "variant is called the winner only when a two-sided paired test over units (exact "
            "McNemar for the accuracy of deterministic heads on one split, else the paired "
            f"bootstrap) separates it from every other variant at level {report.level:g}, "
            "Holm-adjusted over those comparisons; otherwise the verdict is *no clear winner* and "
            "the variants not separated from the best are listed.",
        ]
    if seed_only:
        names = ", ".join(g.title for g in seed_only)
        out.append(
            f"- Groups without per-unit outcomes ({names}) show seed statistics only: mean ± "
            f"sample std over the results and the Student-t {pct} interval, which describe "
            "seed-to-seed spread, not the evaluated sample; no paired test can be made and no "
            "variant is called a winner there."
        )
    return out + [""]


def _choice_text(group: Group) -> str:
    rec = group.recommendation
    return rec.variant if rec.variant else f"no clear winner ({', '.join(rec.contenders)})"


def _interval_of(row: VariantRow) -> str:
    span = row.interval
    if span is None:
        return "—"
    return f"[{_f(span[0])}, {_f(span[1])}]" + (" (Wilson)" if row.wilson_shown else "")


def render_markdown(report: Report) -> str:
    """report.md: how it was made, summary table, one section per task, TOC settings, codebook
    health, plots."""
    pct = f"{report.confidence * 100:g}%"
    out: list[str] = ["# Model-selection report", ""]
    out.append("Inputs:")
    for item in report.inputs:
        out.append(f"- `{item.name}` (sha256 `{item.sha256[:16]}`): {item.n_results} results, {item.n_health} health records")
    out.append("")
    out += _how_to_read(report)
    out += _summary_section(report, pct)
    out += _task_sections(report, pct)
    out += _toc_settings_section(report)
    out += _budget_section(report, pct)
    out += _health_section(report)
    if report.selections:
        out += ["", "## Channel selections", ""]
        for s in report.selections:
            out += [f"![{_cell(s.path.name)}]({s.name})", ""]
        out.pop()
    return "\n".join(out) + "\n"


def _summary_section(report: Report, pct: str) -> list[str]:
    """One line per group: the recommendation and the best variant's evaluation score."""
    out = [
        "## Summary",
        "",
        f"| task | direction | head | protocol | metric | recommendation | ranked on | evaluation score of best | {pct} interval | chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in report.groups:
        rec = g.recommendation
        best_row = next(r for r in g.rows if r.variant == rec.best)
        out.append(
            f"| {g.task} | {g.direction} | {g.head} | {g.protocol} | {g.metric} | {_cell(_choice_text(g))} | "
            f"{rec.ranked_on} | {_f(best_row.score)} | {_interval_of(best_row)} | {_pct(g.chance)} |"
        )
    out.append("")
    return out


def _task_sections(report: Report, pct: str) -> list[str]:
    """A section per task (its chance level and chart once), a subsection per group in it."""
    out: list[str] = []
    current_task = None
    for g in report.groups:
        if g.task != current_task:
            current_task = g.task
            out += [f"## {g.task}", ""]
            chances = {x.chance for x in report.groups if x.task == g.task}
            if len(chances) == 1 and None not in chances:
                out += [f"Chance level: {_pct(next(iter(chances)))} %.", ""]
            if g.task in report.charted_tasks:
                out += [f"![{g.task}: score with {pct} interval per variant]({chart_name(g.task)})", ""]
        direction = DIRECTION_TEXT.get(g.direction, g.direction)
        out += [f"### {g.title} — {g.metric} ({direction})", ""]
        if g.chance is not None and len({x.chance for x in report.groups if x.task == g.task}) > 1:
            out += [f"Chance level: {_pct(g.chance)} %.", ""]
        out += _resampled_table(g, pct) if g.resampled else _seed_table(g, pct)
        notes = list(g.notes) + _row_notes(g)
        out.append("")
        for note in notes:
            out.append(f"- {note}")
        if notes:
            out.append("")
        out += _llp_table(g, pct)
        out += _recommendation_lines(g)
    return out


def _toc_settings_section(report: Report) -> list[str]:
    out = ["## TOC settings", ""]
    if not report.toc_settings:
        return out + ["No result carries TOC settings or a channel selection."]
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
    return out


def _point_text(channels: int, max_num: int, min_num: int) -> str:
    return f"{channels} ({max_num}/{min_num})"


def _budget_section(report: Report, pct: str) -> list[str]:
    """Budgets chosen on validation (`--channels auto`): per task, direction, variant and head the
    validation curve the choice was made on, and — labelled, never chosen from — the same heads'
    scores on the evaluation split."""
    if not report.budget_sweeps:
        return []
    out = [
        "", "## TOC budgets chosen on validation", "",
        "Each +toc line below was evaluated at a channel budget chosen per direction and head on the "
        "**validation split** (clips of the validation videos, which are never evaluated; each case says "
        "which modality's clips) before any evaluated clip was scored. The **evaluation** column scores "
        "the same heads on the evaluated clips after the choice: "
        "it shows what another choice would have given and was **not used to choose**; picking the "
        "budget from it would make the evaluation score optimistic.",
    ]
    for view in report.budget_sweeps:
        choice = view.choice
        chosen, best = choice.point, choice.curve[choice.best]
        seeds = ", ".join(str(s) for s in choice.seeds)
        out += ["", f"### {view.title}", ""]
        lines = [
            f"Chosen: **{_point_text(chosen.channels, chosen.max_num, chosen.min_num)}**, "
            f"{' + '.join(str(n) for n in chosen.n_channels)} channels kept, validation {choice.metric} "
            f"{_f(chosen.validation)}; best on validation {_point_text(best.channels, best.max_num, best.min_num)} "
            f"({_f(best.validation)}).",
            f"- Rule: {_cell(choice.rule_text)} ({choice.rule}; {choice.resamples} resamples, seed "
            f"{choice.bootstrap_seed}).",
            f"- Ranked on: the validation split ({_cell(choice.split_detail)}), {choice.n_units} {choice.unit}s, "
            f"head seeds {seeds}, metric {choice.metric}.",
        ]
        published = choice.published
        if published:
            lines.append(
                f"- Published budget for this case: {_point_text(published['channels'], published['max_num'], published['min_num'])}"
                f" ({_cell(str(published.get('script', '')))})"
                + (f"; {_cell(str(published['note']))}" if published.get("note") else "") + "."
            )
        else:
            lines.append("- No published budget for this case.")
        skipped = (choice.search.get("auto_grid") or {}).get("skipped")  # checked when read
        if skipped:
            lines.append(f"- Swept once: {_cell('; '.join(str(s) for s in skipped))}.")
        out += lines + [""]
        if view.name in report.charted_budgets:
            out += [f"![{_cell(view.title)}: validation and evaluation score per budget]({view.name})", ""]
        evaluation = {(e.channels, e.max_num, e.min_num): e for e in (view.evaluation or ())}
        out += [
            f"| budget (max/min) | channels kept | validation {choice.metric} | {pct} interval | gap to best | "
            f"SE of gap | within 1 SE | evaluation {choice.metric} (not used to choose) | {pct} interval |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for i, point in enumerate(choice.curve):
            marks = [m for m, on in (("chosen", i == choice.chosen), ("best", i == choice.best)) if on]
            if published and (point.channels, point.max_num, point.min_num) == (
                published["channels"], published["max_num"], published["min_num"]
            ):
                marks.append("published")
            label = _point_text(point.channels, point.max_num, point.min_num)
            label = f"**{label}**" if i == choice.chosen else label
            if marks:
                label += " — " + ", ".join(marks)
            e = evaluation.get((point.channels, point.max_num, point.min_num))
            out.append(
                f"| {label} | {' + '.join(str(n) for n in point.n_channels)} | {_f(point.validation)} | "
                f"[{_f(point.interval[0])}, {_f(point.interval[1])}] | {_f(point.gap)} | {_f(point.se)} | "
                f"{'yes' if point.within_noise else 'no'} | {'—' if e is None else _f(e.evaluation)} | "
                f"{'—' if e is None else f'[{_f(e.interval[0])}, {_f(e.interval[1])}]'} |"
            )
    return out


def _health_section(report: Report) -> list[str]:
    out = ["", "## Codebook health", ""]
    if not report.health:
        return out + ["No codebook-health records in the input."]
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
    return out


def _ranking_column(g: Group) -> str:
    """What the ranking column holds; never called validation when it is not."""
    if g.recommendation.split == SPLIT_VALIDATION:
        return "validation score"
    return "ranking score (evaluation split)"


def _resampled_table(g: Group, pct: str) -> list[str]:
    rec = g.recommendation
    unit = g.unit or "clip"
    out = [
        f"| variant | {unit}s | runs (n_eff) | score | {pct} interval | Δ vs dcid | {pct} interval of Δ | "
        f"{_ranking_column(g)} | same-modality |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in g.rows:
        e = row.estimate
        assert e is not None
        d = row.vs_dcid
        name = f"**{row.variant}**" if row.variant == rec.variant else row.variant
        units = str(e.n_units) if e.n_splits == 1 else f"{e.n_units}+ × {e.n_splits} splits"
        out.append(
            f"| {_cell(name)} | {units} | {len(row.runs)} ({e.n_eff_runs}) | {_f(e.estimate)} | "
            f"{_interval_of(row)} | {'—' if d is None else _f(d.difference, True)} | "
            f"{'—' if d is None else _span(d.interval, True)} | {_f(rec.means.get(row.variant))} | "
            f"{_mean_std(row.same_modality)} |"
        )
    return out


def _seed_table(g: Group, pct: str) -> list[str]:
    rec = g.recommendation
    column = "validation mean" if rec.split == SPLIT_VALIDATION else "ranking mean (evaluation split)"
    out = [
        f"| variant | n | mean ± std (seeds) | {pct} CI (seeds) | Δ vs dcid | {pct} CI of Δ | {column} | same-modality |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in g.rows:
        diff, diff_ci = _difference_text(row.vs_baseline)
        name = f"**{row.variant}**" if row.variant == rec.variant else row.variant
        ranking = _mean_std(row.val) if rec.split == SPLIT_VALIDATION else _f(rec.means.get(row.variant))
        out.append(
            f"| {_cell(name)} | {row.eval.n} | {_mean_std(row.eval)} | {_ci(row.eval)} | {diff} | "
            f"{diff_ci} | {ranking} | {_mean_std(row.same_modality)} |"
        )
    return out


def _row_notes(g: Group) -> list[str]:
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
    if g.resampled:
        deterministic = [r.variant for r in g.rows if r.estimate is not None and r.estimate.n_eff_runs == 1]
        if deterministic:
            n = max(len(r.runs) for r in g.rows)
            alike = (
                "one run" if n < 2
                else f"{'both' if n == 2 else f'all {n}'} runs give the same outcome on every {g.unit}"
            )
            notes.append(
                f"{', '.join(deterministic)}: {alike} (n_eff = 1), so the interval covers the "
                "evaluation sample only, not training or split variation."
            )
        zero = [r.variant for r in g.rows if r.estimate is not None and r.estimate.zero_width]
        if zero:
            wilson = [r.variant for r in g.rows if r.variant in zero and r.wilson_shown]
            notes.append(
                f"{', '.join(zero)}: every {g.unit} has the same outcome, so the bootstrap interval "
                "has zero width; that is not certainty."
                + (
                    f" The interval shown for {', '.join(wilson)} is the Wilson interval of k "
                    "correct out of n."
                    if wilson else ""
                )
            )
        for row in g.rows:
            d = row.vs_dcid
            if d is not None and d.identical:
                notes.append(f"{row.variant} and dcid score every {g.unit} alike: no evidence either way.")
    else:
        constant = [r.variant for r in g.rows if r.eval.n >= 2 and r.eval.std == 0.0]
        if constant:
            notes.append(
                f"{', '.join(constant)}: every seed gave the same score, so the seed interval has zero "
                "width; that is not certainty (it measures seed-to-seed variation only, e.g. none for "
                "a training-free head on a fixed split)."
            )
    for row in g.rows:
        for spread in row.spread:
            values = ", ".join(f"{label}: {_f(value)}" for label, value in spread.values)
            notes.append(
                f"{row.variant} across {len(spread.values)} {spread.what}s: {values} "
                f"(sd {_f(spread.summary.std)})."
            )
    return notes


def _llp_table(g: Group, pct: str) -> list[str]:
    rows = [r for r in g.rows if r.llp is not None]
    if not rows:
        return []
    keys = [(k, name) for k, name in LLP_COLUMNS if all(k in r.llp.estimates for r in rows)]  # type: ignore[union-attr]
    both = [(k, name) for k, name in LLP_BOTH if any(k in r.llp.both_directions for r in rows)]  # type: ignore[union-attr]
    if not keys and not both:
        return []
    header = [f"{name} [{pct}]" for _, name in keys] + [name for _, name in both]
    out = [
        "LLP scores (F1 per video, then averaged over videos, as the audio-visual video parsing "
        "literature reports them; an event matches at segment IoU >= 0.5):",
        "",
        "| variant | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(header),
    ]
    for row in rows:
        llp = row.llp
        assert llp is not None
        cells = [f"{_f(llp.estimates[k].estimate)} {_span(llp.estimates[k].interval)}" for k, _ in keys]
        cells += [_f(llp.both_directions.get(k)) for k, _ in both]
        out.append(f"| {_cell(row.variant)} | " + " | ".join(cells) + " |")
    out.append("")
    if both:
        n = min((r.llp.n_videos_both or 0) for r in rows)  # type: ignore[union-attr]
        out += [
            f"- The audio-visual, Type@AV and Event@AV columns combine the v2a head's audio events "
            f"and the a2v head's visual events of the same variant, head and seed on the {n} videos "
            "both directions evaluate; they are means over runs without an interval.",
            "",
        ]
    return out


def _recommendation_lines(g: Group) -> list[str]:
    rec = g.recommendation
    if rec.verdict == VERDICT_SINGLE:
        head = f"**Recommended: {rec.best}** — the only variant evaluated here."
    elif rec.verdict == VERDICT_CLEAR:
        head = f"**Recommended: {rec.best}** — separated from every other variant."
    else:
        head = f"**No clear winner** — not separated from the best ({rec.best}): {', '.join(rec.contenders[1:]) or '—'}."
    out = [head, ""]
    for fact in rec.facts:
        out.append(f"- {fact}")
    for warning in rec.warnings:
        out.append(f"- Warning: {warning}")
    return out + [""]


def _sha(value: Any) -> str:
    return f"`{_cell(str(value)[:12]).replace('`', '')}`" if value else "—"


def chart_name(task: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in task)
    return f"chart-{safe}.png"


CSV_HEADER = ("task", "direction", "variant", "head", "protocol", "pretrain_run", "split_seed", "seed", "metric", "value")


def results_rows(records: Sequence[ResultRecord]) -> list[tuple]:
    """Tidy rows: one per (result, metric); validation and same-modality scores prefixed."""
    rows = []
    for r in records:
        for prefix, metrics in (("", r.metrics), ("val_", r.val_metrics), ("same_modality_", r.same_modality)):
            for name, value in (metrics or {}).items():
                rows.append((
                    r.task, r.direction, r.variant, r.head, r.protocol, r.pretrain_run, r.split_seed,
                    r.seed, prefix + name, value,
                ))
    rows.sort(
        key=lambda x: (
            order_key(x[0], TASKS), order_key(x[1], DIRECTIONS), order_key(x[2], VARIANT_NAMES),
            order_key(x[3], HEADS), order_key(x[4], PROTOCOLS),
            -1 if x[5] is None else x[5], -1 if x[6] is None else x[6], x[7], x[8],
        )
    )
    return rows


def render_csv(records: Sequence[ResultRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in results_rows(records):
        writer.writerow([*("" if x is None else x for x in row[:9]), repr(float(row[9]))])
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


def _interval_json(i: Interval | None) -> list | None:
    return None if i is None else [_r(i.low), _r(i.high)]


def _difference_json(d: PairedDifference | None) -> dict | None:
    if d is None:
        return None
    out = _summary_json(d.summary) or {"n": 0, "mean": None, "std": None, "ci": None}
    out.update({
        "method": "seed t interval", "seeds": list(d.seeds), "only_variant": list(d.only_a),
        "only_other": list(d.only_b),
    })
    return out


def _paired_json(d: PairedEstimate | None) -> dict | None:
    if d is None:
        return None
    return {
        "method": "paired bootstrap", "difference": _r(d.difference), "interval": _interval_json(d.interval),
        "p_value": _r(d.p_value), "identical": d.identical,
    }


def _estimate_json(e: VariantEstimate | None) -> dict | None:
    if e is None:
        return None
    return {
        "score": _r(e.estimate), "interval": _interval_json(e.interval), "n_units": e.n_units,
        "n_runs": e.n_runs, "n_eff_runs": e.n_eff_runs, "n_splits": e.n_splits,
        "wilson": _interval_json(e.wilson),
    }


def _row_json(row: VariantRow) -> dict:
    out = {
        "variant": row.variant, "seeds": list(row.seeds), "eval": _summary_json(row.eval),
        "validation": _summary_json(row.val), "same_modality": _summary_json(row.same_modality),
        "vs_dcid": _paired_json(row.vs_dcid) if row.estimate is not None else _difference_json(row.vs_baseline),
        "checkpoints": list(row.checkpoints), "estimate": _estimate_json(row.estimate),
        "runs": [list(run) for run in row.runs],
        "spread": [
            {"what": s.what, "values": [[label, _r(v)] for label, v in s.values], "std": _r(s.summary.std)}
            for s in row.spread
        ],
    }
    if row.llp is not None:
        out["llp"] = {
            "estimates": {k: _estimate_json(v) for k, v in sorted(row.llp.estimates.items())},
            "both_directions": {k: _r(v) for k, v in row.llp.both_directions.items()},
            "n_videos_both": row.llp.n_videos_both,
        }
    return out


def summary_document(report: Report) -> dict[str, Any]:
    groups = []
    for g in report.groups:
        rec = g.recommendation
        groups.append(
            {
                "task": g.task, "direction": g.direction, "head": g.head, "protocol": g.protocol,
                "metric": g.metric, "chance": _r(g.chance), "unit": g.unit, "n_units": g.n_units,
                "notes": list(g.notes),
                "variants": [_row_json(row) for row in g.rows],
                "recommendation": {
                    "verdict": rec.verdict, "variant": rec.variant, "ranked_on": rec.split,
                    "ranked_on_text": rec.ranked_on, "method": rec.method,
                    "best": rec.best, "best_mean": _r(rec.best_mean), "runner_up": rec.runner_up,
                    "ranking": list(rec.ranking), "means": {k: _r(v) for k, v in rec.means.items()},
                    "contenders": list(rec.contenders), "missing_validation": rec.missing_validation,
                    "comparisons": [
                        {
                            "other": c.other, "difference": _r(c.difference),
                            "interval": _interval_json(c.interval), "test": c.test,
                            "p_value": _r(c.p_value), "adjusted_p": _r(c.adjusted_p),
                            "separated": c.separated,
                        }
                        for c in rec.comparisons
                    ],
                    "facts": list(rec.facts), "warnings": list(rec.warnings),
                },
            }
        )
    document = {
        "format": REPORT_FORMAT,
        "confidence": report.confidence,
        "level": report.level,
        "bootstrap": {"resamples": report.n_resamples, "seed": report.bootstrap_seed, "tests": [TEST_MCNEMAR, TEST_BOOTSTRAP]},
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
    if report.budget_sweeps:  # reports without budgets chosen on validation keep their old form
        document["budget_choices"] = [
            {
                "task": v.task, "direction": v.direction, "variant": v.variant, "head": v.head,
                "checkpoint_sha256": v.checkpoint_sha256, "pretrain_run": v.pretrain_run, "split_seed": v.split_seed,
                "choice": v.choice.to_json(),
                "evaluation_not_used_to_choose": None if v.evaluation is None else [e.to_json() for e in v.evaluation],
            }
            for v in report.budget_sweeps
        ]
    return document


def render_summary(report: Report) -> str:
    return json.dumps(summary_document(report), sort_keys=True, indent=2, allow_nan=False, default=str) + "\n"
