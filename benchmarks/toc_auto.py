"""TOC's channel budget chosen on validation (issue 29): no TOC, the published budget, `--channels
auto` and the evaluation-split oracle, each scored on the evaluation split; and what the sweep
costs against one evaluation with the same head.

Run (read-only on the checkpoints and corpora; one torch thread, `nice`d):

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/toc_auto.py \
        --demo /tmp/toc-auto/demo --robust /tmp/toc-robust-codes -o benchmarks/results/toc_auto.md

Cases: a `toc demo --quick` folder (the synthetic corpus: DCID and H-DCID on AVE, AVVP and
UCF<->VGGSound) and the issue-27 runs under --robust (H-DCID checkpoints trained on the spoken-words
and instrument corpora, with text; `av-only*` runs without text, when their training has
finished). No model is trained here.

Per case, direction and head (prototype: one seed, it is deterministic; linear: head seeds
0, 1, 2, each chosen on its own as a one-seed `toc eval --channels auto` would):
* no TOC: the plain variant (every channel, in order), evaluated by the evaluation loop;
* published: the release's budget for the task, direction and method (toc.codebook.presets),
  where it fits the codebook;
* auto: the default grid (every 32 channels up to the width, and the width; patterns 1/0, 1/1,
  3/1) swept on the validation split and chosen by the default rule (one-se, cross-modal
  validation clips); ablations: the textbook one-SE rule (one-se-marginal) and same-modality
  validation clips;
* oracle: per seed, the grid point with the best score on the evaluation split itself — chosen
  on the evaluated clips, so optimistic: a ceiling, not a method.
Every one is scored on the same evaluated clips; intervals are paired bootstraps over those
clips (and the head seeds), toc.report.resampling. The cost rows time one evaluation with a
fixed budget and one `--channels auto` evaluation on a fresh session each (encoding included).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import provenance  # noqa: E402

from toc.codebook.presets import published_budget  # noqa: E402
from toc.codebook.settings import BudgetSearch  # noqa: E402
from toc.eval.budget import BudgetSweep, GridPoint, evaluated_curve_parts, sweep_budgets  # noqa: E402
from toc.eval.loop import EvalRequest, direction_runs, linear_epochs, run_evaluation  # noqa: E402
from toc.eval.tasks import load_task  # noqa: E402
from toc.pipeline.budget import budget_width, choose_budgets, grid_points, with_choices  # noqa: E402
from toc.pipeline.session import EvalSession  # noqa: E402
from toc.report.analysis import unit_metric  # noqa: E402
from toc.report.budget import choose_budget  # noqa: E402
from toc.report.resampling import UnitParts, paired_bootstrap  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("no TOC", "published", "auto", "oracle (evaluation split)")
ABLATIONS = ("auto, one-se-marginal", "auto, same-modality validation")
LINEAR_SEEDS = (0, 1, 2)
RESAMPLES = 2000
SYNTHETIC_NOTE = (
    "The synthetic rows come from a `toc demo --quick` folder, whose checkpoints (scale 0.25, 2 epochs) are "
    "near chance on 11 AVE test clips: they exercise the machinery (the segment metric, the UCF↔VGGSound "
    "fallback to same-modality validation clips) and say nothing about TOC. An informative synthetic row "
    "needs a full demo folder (`toc demo -o DIR`, which trains) and this script run with `--demo DIR`."
)


def cases(demo: Path | None, robust: Path | None) -> list[dict]:
    out = []
    if demo is not None:
        for method in ("dcid", "hdcid"):
            for task in ("ave", "avvp", "ucf-vggsound"):
                out.append({"corpus": "synthetic (toc demo --quick)", "run": method, "task": task,
                            "checkpoint": demo / "runs" / method / "last.pt", "data_root": demo / "data"})
    if robust is not None:
        for kind in ("words", "instruments"):
            for row in ("default", "small-corpus", "swapped", "av-only+swapped"):
                name = f"{row}-{kind}-31-t43"
                checkpoint = robust / "runs" / name / "last.pt"
                finished = (robust / "runs" / f"{name}.train.time").is_file()
                if checkpoint.is_file() and finished:
                    corpus = {"words": "spoken words", "instruments": "instrument notes"}[kind]
                    text = "without text" if row.startswith("av-only") else "with text"
                    out.append({"corpus": f"{corpus} (seed 31), {text}", "run": row, "task": "ave",
                                "checkpoint": checkpoint, "data_root": robust / f"{kind}-31"})
    return out


def restrict(sweep: BudgetSweep, indices: list[int], seeds: tuple[int, ...]) -> BudgetSweep:
    """The sweep as it would be with only these grid points and seeds (the heads are the same:
    a grouped head's numbers do not depend on the other heads, toc.eval.head_groups)."""
    return replace(
        sweep, points=tuple(sweep.points[i] for i in indices), views=tuple(sweep.views[i] for i in indices),
        fits=[{s: sweep.fits[i][s] for s in seeds} for i in indices], seeds=seeds,
    )


def score(parts: list, metric: str) -> float:
    measure = unit_metric(metric)
    sums = np.asarray(parts, dtype=np.float64).reshape(len(parts), -1).sum(axis=0)
    return float(measure.from_sums(sums, len(parts)))


def point_key(point) -> tuple[int, int, int]:
    return (point.channels, point.max_num, point.min_num)


def one_cell(case: dict, session: EvalSession, data, direction: str, head: str, seeds: tuple[int, ...],
             search: BudgetSearch) -> dict:
    method = session.method
    variant = f"{method}+toc"
    request = EvalRequest(variants=(variant,), directions=(direction,), heads=(head,), seeds=seeds, head_workers=1)
    (run,) = list(direction_runs(data, request, method))
    epochs = linear_epochs(data, session.cache, request, method)
    width = budget_width(session.checkpoint.codebooks, variant)
    points = grid_points(session, variant, search)
    default = {point_key(p) for p in points}
    published = published_budget(data.task, direction, method)
    fits_width = published is not None and published.channels <= width
    if fits_width and (published.channels, published.max_num, published.min_num) not in default:
        points.append(GridPoint(published.channels, published.max_num, published.min_num,
                                session.select(search.settings(published.channels, published.max_num, published.min_num))))
    started = time.perf_counter()
    sweep = sweep_budgets(data, run.plan, session.cache, request, epochs, variant=variant, head=head, points=points,
                          split_seed=run.split_seed, split="cross-modal")
    sweep_seconds = time.perf_counter() - started
    same = sweep_budgets(data, run.plan, session.cache, request, epochs, variant=variant, head=head, points=points,
                         split_seed=run.split_seed, split="same-modality")
    evaluated = evaluated_curve_parts(sweep, data, session.cache, request)
    grid = [i for i, p in enumerate(sweep.points) if point_key(p) in default]
    metric = sweep.metric
    published_index = None
    if fits_width:
        key = (published.channels, published.max_num, published.min_num)
        kept = [point_key(p) for p in sweep.points]
        if key in kept:
            published_index = kept.index(key)
        else:  # it keeps the channels of an earlier point (e.g. every channel): that point's heads
            original = next(i for i, p in enumerate(points) if point_key(p) == key)
            published_index = sweep.duplicates[original]
    plain = run_evaluation(data, session.cache, replace(request, variants=(method,)))
    no_toc = {r.seed: r.eval_parts for r in plain}
    parts = {name: {} for name in (*METHODS, *ABLATIONS)}
    chosen = {name: {} for name in (*METHODS, *ABLATIONS)}
    for seed in seeds:
        parts["no TOC"][seed] = no_toc[seed]
        chosen["no TOC"][seed] = f"all {width}"
        for name, source, rule in (("auto", sweep, "one-se"), ("auto, one-se-marginal", sweep, "one-se-marginal"),
                                   ("auto, same-modality validation", same, "one-se")):
            choice = choose_budget(restrict(source, grid, (seed,)), replace(search, rule=rule))
            index = grid[choice.chosen]
            parts[name][seed] = evaluated[index][seed]
            chosen[name][seed] = choice.point.label
        eval_scores = {i: score(evaluated[i][seed], metric) for i in grid}
        top = max(eval_scores.values())
        oracle = min((i for i in grid if eval_scores[i] == top), key=lambda i: (sum(sweep.n_channels(i)), i))
        parts["oracle (evaluation split)"][seed] = evaluated[oracle][seed]
        chosen["oracle (evaluation split)"][seed] = f"{sweep.points[oracle].channels} ({sweep.points[oracle].max_num}/{sweep.points[oracle].min_num})"
        if published_index is not None:
            parts["published"][seed] = evaluated[published_index][seed]
            chosen["published"][seed] = f"{published.channels} ({published.max_num}/{published.min_num})"
    present = [name for name in (*METHODS, *ABLATIONS) if parts[name]]
    block = UnitParts.from_runs({name: parts[name] for name in present}, unit_metric(metric), sweep.unit)
    boot = paired_bootstrap(block, n_resamples=RESAMPLES, seed=0)
    out = {
        "corpus": case["corpus"], "run": case["run"], "task": data.task, "method": method, "direction": direction,
        "head": head, "seeds": list(seeds), "metric": metric, "unit": sweep.unit, "n_eval": block.n_units,
        "n_validation": sweep.n_units, "validation": sweep.validation_text, "width": width,
        "grid_points": len(grid), "sweep_seconds": round(sweep_seconds, 2),
        "published": None if published is None else published.as_dict() | {"fits": fits_width},
        "methods": {},
    }
    for name in present:
        estimate = boot.variant(name)
        entry = {
            "score": estimate.estimate, "interval": [estimate.interval.low, estimate.interval.high],
            "per_seed": {str(s): score(parts[name][s], metric) for s in seeds}, "chosen": chosen[name],
        }
        for other in ("published", "no TOC"):
            if name != other and other in present:
                d = boot.difference(name, other)
                entry[f"minus {other}"] = {"difference": d.difference, "interval": [d.interval.low, d.interval.high]}
        out["methods"][name] = entry
    return out


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cost(case: dict, head: str, search: BudgetSearch) -> dict:
    """One evaluation with a fixed budget vs one `--channels auto` evaluation (default seed 0,
    both directions), each on a fresh session (the encoding included), same head."""
    out = {"corpus": case["corpus"], "run": case["run"], "task": case["task"], "head": head}
    for mode in ("fixed", "auto"):
        wall, cpu = time.perf_counter(), cpu_seconds()
        session = EvalSession.open(case["checkpoint"])
        data = load_task(case["task"], data_root=case["data_root"])
        variant = f"{session.method}+toc"
        request = EvalRequest(variants=(variant,), heads=(head,), seeds=(0,), head_workers=1)
        for run in direction_runs(data, request, session.method):  # encode the sets both modes read
            for name in {run.plan.train.set_name, run.plan.evaluate.set_name}:
                session.cache.get(data.task, data.sets[name], request.dtype)
        encoded_wall, encoded_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        heads_wall, heads_cpu = time.perf_counter(), cpu_seconds()
        if mode == "fixed":
            channels = min(128, budget_width(session.checkpoint.codebooks, variant))
            request = replace(request, selection=session.select(search.settings(channels, 1, 0)))
            records = list(run_evaluation(data, session.cache, request))
            out["fixed_budget"] = channels
        else:
            outcomes = choose_budgets(session, data, request, search)
            request = replace(request, selections={k: o.selection for k, o in outcomes.items()})
            records = list(with_choices(run_evaluation(data, session.cache, request), outcomes, data, session, request, search))
        assert records
        out[mode] = {
            "wall": round(time.perf_counter() - wall, 2), "cpu": round(cpu_seconds() - cpu, 2),
            "encode_wall": round(encoded_wall, 2), "encode_cpu": round(encoded_cpu, 2),
            "heads_wall": round(time.perf_counter() - heads_wall, 2), "heads_cpu": round(cpu_seconds() - heads_cpu, 2),
        }
    for key in ("wall", "cpu", "heads_wall", "heads_cpu"):
        # Below the clock's useful resolution a ratio says nothing.
        out[f"ratio_{key}"] = round(out["auto"][key] / out["fixed"][key], 2) if out["fixed"][key] >= 0.05 else None
    return out


def fmt(value: float) -> str:
    return f"{value:.1f}"


def span(interval) -> str:
    return f"[{interval[0]:.1f}, {interval[1]:.1f}]"


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| corpus | run | task | method | dir | head | n eval / val | no TOC | published | auto | oracle (eval split) | "
        "auto − published | auto − no TOC | auto chose (per seed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["methods"]

        def cell(name, m=m):
            return "—" if name not in m else f"{fmt(m[name]['score'])} {span(m[name]['interval'])}"

        def diff(other, m=m):
            d = m["auto"].get(f"minus {other}")
            return "—" if d is None else f"{d['difference']:+.1f} {span(d['interval'])}"

        chose = ", ".join(m["auto"]["chosen"][s] for s in r["seeds"])
        lines.append(
            f"| {r['corpus']} | {r['run']} | {r['task']} | {r['method']} | {r['direction']} | {r['head']} | "
            f"{r['n_eval']} / {r['n_validation']} | {cell('no TOC')} | {cell('published')} | {cell('auto')} | "
            f"{cell('oracle (evaluation split)')} | {diff('published')} | {diff('no TOC')} | {chose} |"
        )
    return lines


def ablation_table(rows: list[dict]) -> list[str]:
    lines = [
        "| corpus | run | task | dir | head | auto (default) | one-se-marginal | same-modality validation | "
        "chosen: default / marginal / same-modality (per seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["methods"]
        cells = [f"{fmt(m[n]['score'])} {span(m[n]['interval'])}" for n in ("auto", *ABLATIONS)]
        chose = " / ".join(", ".join(m[n]["chosen"][s] for s in r["seeds"]) for n in ("auto", *ABLATIONS))
        lines.append(f"| {r['corpus']} | {r['run']} | {r['task']} | {r['direction']} | {r['head']} | "
                     + " | ".join(cells) + f" | {chose} |")
    return lines


GROUPS = (
    ("real-signal corpora, checkpoints trained with text", lambda r: "with text" in r["corpus"]),
    ("real-signal corpora, checkpoints trained without text", lambda r: "without text" in r["corpus"]),
    ("synthetic corpus, `toc demo --quick` checkpoints (near chance: a test of the machinery only)",
     lambda r: r["corpus"].startswith("synthetic")),
)


def _kept(label: str) -> int:
    return int(label.split()[0]) if label[0].isdigit() else int(label.split()[-1])


def summary(rows: list[dict]) -> list[str]:
    """Per group of corpora and head: auto against the published budget and against no TOC
    (the judged reading: is auto at least the published budget within the interval, i.e. does
    the interval of auto − published reach 0 or above?), the oracle's margin, channels kept."""
    out = []
    for title, keep in GROUPS:
        group = [r for r in rows if keep(r)]
        if not group:
            continue
        out += [f"**{title}**", ""]
        for head in ("prototype", "linear"):
            cells = [r for r in group if r["head"] == head]
            if not cells:
                continue
            parts = []
            for other in ("published", "no TOC"):
                diffs = [r["methods"]["auto"][f"minus {other}"] for r in cells if f"minus {other}" in r["methods"]["auto"]]
                if not diffs:
                    continue
                reach = sum(d["interval"][1] >= 0 for d in diffs)
                above = sum(d["interval"][0] > 0 for d in diffs)
                below = sum(d["interval"][1] < 0 for d in diffs)
                parts.append(
                    f"auto − {other} {statistics.mean(d['difference'] for d in diffs):+.1f} points on average over "
                    f"{len(diffs)} cells (interval reaches 0 or above in {reach}, entirely above 0 in {above}, entirely "
                    f"below 0 in {below})"
                )
            oracle = statistics.mean(r["methods"]["oracle (evaluation split)"]["score"] - r["methods"]["auto"]["score"] for r in cells)
            kept = statistics.mean(_kept(label) for r in cells for label in r["methods"]["auto"]["chosen"].values())
            width = statistics.mean(r["width"] for r in cells)
            out.append(
                f"- {head} head: " + "; ".join(parts) + f"; the evaluation-split oracle {oracle:+.1f} above auto; auto kept "
                f"{kept:.0f} of {width:.0f} channels per level on average."
            )
        out.append("")
    return out


def cost_table(rows: list[dict]) -> list[str]:
    lines = [
        "| corpus | run | task | head | fixed budget | one evaluation: wall / CPU s (encoding wall) | `auto`: wall / CPU s | "
        "ratio wall / CPU | heads only: fixed → auto CPU s (ratio) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, a = r["fixed"], r["auto"]
        lines.append(
            f"| {r['corpus']} | {r['run']} | {r['task']} | {r['head']} | {r['fixed_budget']} | {f['wall']} / {f['cpu']} "
            f"({f['encode_wall']}) | {a['wall']} / {a['cpu']} | {r['ratio_wall']} / {r['ratio_cpu']} | "
            f"{f['heads_cpu']} → {a['heads_cpu']} ({'—' if r['ratio_heads_cpu'] is None else r['ratio_heads_cpu']}) |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=None, help="a `toc demo --quick` output folder")
    parser.add_argument("--robust", type=Path, default=None, help="benchmarks/robust_codes.py's --work folder")
    parser.add_argument("--heads", nargs="+", default=["prototype", "linear"])
    parser.add_argument("--linear-seeds", type=int, nargs="+", default=list(LINEAR_SEEDS))
    parser.add_argument("--only", nargs="*", default=None, help="runs to keep (e.g. dcid default-words-31-t43)")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "toc_auto.md")
    args = parser.parse_args()
    started = time.monotonic()
    header = provenance.header(
        "benchmarks/toc_auto.py", provenance.python_argv(),
        f"head seeds {args.linear_seeds} (linear; prototype: seed 0, deterministic); budget-rule bootstrap seed 0, "
        f"{BudgetSearch().resamples} resamples; interval bootstrap seed 0, {RESAMPLES} resamples; corpora and "
        "checkpoints as found under --demo / --robust (their own seeds)",
        ["toc/eval", "toc/codebook", "toc/report/budget.py", "toc/pipeline/budget.py", "benchmarks/toc_auto.py"],
    )
    search = BudgetSearch()
    found = cases(args.demo, args.robust)
    if args.only:
        found = [c for c in found if c["run"] in args.only or c["checkpoint"].parent.name in args.only]
    rows = []
    for case in found:
        session = EvalSession.open(case["checkpoint"])
        data = load_task(case["task"], data_root=case["data_root"])
        for direction in ("v2a", "a2v"):
            for head in args.heads:
                seeds = tuple(args.linear_seeds) if head == "linear" else (0,)
                row = one_cell(case, session, data, direction, head, seeds, search)
                rows.append(row)
                m = row["methods"]
                print(f"{case['corpus']} {case['run']} {case['task']} {direction} {head}: "
                      + ", ".join(f"{k} {m[k]['score']:.1f}" for k in m), file=sys.stderr)
    costs = []
    for case in [c for c in found if c["task"] == "ave"][:1] + [c for c in found if c["run"] == "default"][:1]:
        for head in args.heads:
            costs.append(cost(case, head, search))
            print(f"cost {case['run']} {head}: {costs[-1]}", file=sys.stderr)
    minutes = (time.monotonic() - started) / 60
    robust_missing = [] if args.robust is None else [
        row for row in ("av-only+swapped",)
        if not any(c["run"] == row for c in found)
    ]
    lines = [
        "# TOC's channel budget chosen on validation: no TOC, published, auto and the evaluation-split oracle",
        "",
        *header,
        "",
        f"This invocation took {minutes:.1f} minutes wall on the shared machine (load in the header).",
        "",
        "Every cell is scored on the **evaluation split** (the held-out AVE test clips, or the strict video-level "
        "split's evaluated videos for AVVP and UCF↔VGGSound, split seed 0): % accuracy (clip tasks) or micro-F1 "
        "(AVVP), mean over head seeds, with a 95% paired bootstrap interval over the evaluated clips/videos and "
        "the head seeds. **auto** chose on the validation split only (default rule `one-se`, cross-modal "
        "validation clips: the evaluated modality's clips of the validation videos; UCF↔VGGSound shares no video "
        "between its sets and falls back to the training modality's validation clips); each linear head seed "
        "chose on its own, as a one-seed `toc eval --channels auto` does. **oracle** picked, per seed, the grid "
        "point with the best score on the evaluated clips themselves: optimistic by construction, shown only to "
        "price the choice. **published** is the release's budget for that task, direction and method "
        "(toc.codebook.presets; — where the release has none or it exceeds the codebook width). Differences are "
        "paired over the same clips and seeds.",
        "",
        *table(rows),
        "",
        SYNTHETIC_NOTE,
        "",
        "Summary over the cells above:",
        "",
        *summary(rows),
        "",
        "Ablations of the rule and the validation clips (same heads, same evaluated clips):",
        "",
        *ablation_table(rows),
        "",
        "## Cost: the sweep against one evaluation with the same head",
        "",
        "One evaluation = a fresh session, encoding both sets, one head per direction at a fixed budget "
        "(128 (1/0), or the width if smaller), seed 0, one head worker. `auto` = the same, plus the "
        "sweep of every grid point on validation and the evaluation-split curve the report draws. CPU = user + "
        "system of this process and its head workers. The machine is shared: wall times are upper bounds, CPU "
        "times are the steadier measure.",
        "",
        *cost_table(costs),
        "",
    ]
    if robust_missing:
        lines += [f"Not included: {', '.join(robust_missing)} (its training had not finished when this ran).", ""]
    provenance.write_results(args.output, lines, [*({"kind": "cell", **r} for r in rows), *({"kind": "cost", **c} for c in costs)],
                             default=str)
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
