"""Do paired audio and video land on the same code ids? The held-out check of training recipes.

For each corpus and row: build the corpus (a seed never used while developing the recipe),
`toc train --data-root DIR` with every default plus the row's flags and a training seed, then
`toc eval ave --variant hdcid,dcid --head codes,prototype,linear` (strict protocol, head seed 0)
and `toc health last.pt --task ave` (audio–video κ, NMI, codes used / shared on the AVE test
split's event seconds). Train time is the wall-clock and CPU time (user + sys) of the `toc train`
process, one torch thread, `nice`d; the machine is shared, so wall time is an upper bound.
Finished steps are kept under --work and skipped when the script runs again.

    python benchmarks/unified_codes.py --corpus spoken:12 --rows default small-corpus --train-seeds 43 44 45 \
        [--corpus synth:0 spoken:13:2000] [--jobs 2] [--work /tmp/toc-unified-codes] [-o results.md]

Corpora: `spoken:SEED[:CLIPS]` (`toc synth-spoken-digits`, 500 pretraining clips by default),
`synth:SEED` (`toc synth`, the reference layout). Rows are flags on top of today's defaults
(ROWS; the default is the code-sharing recipe `shared-codes`, `small-corpus` the previous one); the
`*av-only` rows train on the corpus' audio and video without its text (own-data layout).
Prints one markdown table (mean ± sample std over training seeds where there are several) and
keeps every run's numbers in WORK/results.jsonl (`--raw FILE`: the named runs' rows, with each
test clip's outcome per head, in FILE). `--clips` adds the uncertainty over test clips: per run
each accuracy with its Wilson 95% interval on the n test clips, per row the mean over training
seeds with a paired bootstrap interval over the clips and training runs
(toc.report.resampling), and `--compare A:B` the difference of two rows on the same clips.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from cmg_base.files import write_text_atomic  # noqa: E402
from hdcid.recipes import DEFAULT_RECIPE, RECIPES  # noqa: E402
from toc.data.layout import resolve_paths  # noqa: E402
from toc.data.vggsound import load_pretrain  # noqa: E402
from toc.report.resampling import ACCURACY, UnitParts, paired_bootstrap, wilson_interval  # noqa: E402

TOC = [sys.executable, "-m", "cli"]
SMALL_WIDTHS = ("--audio-output-dim", "64", "--video-output-dim", "64", "--text-output-dim", "64")
# Flags on top of today's default recipe (shared-codes). "published" is the published recipe's
# objective and settings at the default's sizes and step budget (the published widths and batch 80
# cost about a minute per step here), so every row trains for the same number of steps.
SMALL = ("--recipe", "small-corpus")
PLAIN = ("--code-usage-per-prompt", "0")  # the plain usage term instead of the floor
# The settings shared-codes adds to small-corpus (hdcid/recipes.py), as flags: code
# matching with its usage floor, and the rest.
CODE_MATCH = ("--code-match-weight", "1", "--code-usage-weight", "3", "--code-usage-per-prompt", "2")
CODE_SHARING = (*SMALL, *CODE_MATCH, "--reset-patience", "off", "--detach-level2-targets", "--level2-start", "0")
ROWS: dict[str, tuple[str, ...]] = {
    "default": (),  # toc train with every default: the shared-codes recipe
    "published": ("--recipe", "reference", "--batch-size", "16", *SMALL_WIDTHS),
    "small-corpus": SMALL,  # the previous default: the small-corpus remedies, no code sharing
    # The default with one setting changed ...
    "plain-usage-1.5": (*PLAIN, "--code-usage-weight", "1.5"),  # the previous shared-codes recipe
    "plain-usage-1": (*PLAIN, "--code-usage-weight", "1"),
    "plain-usage-2": (*PLAIN, "--code-usage-weight", "2"),
    "with-resets": ("--reset-patience", "auto"),
    "no-detach": ("--no-detach-level2-targets",),
    "level2-late": ("--level2-start", "3"),
    # ... and the previous default with one of the code-sharing settings.
    "small-corpus+code-match": (*SMALL, *CODE_MATCH),
    "small-corpus+no-resets": (*SMALL, "--reset-patience", "off"),
    # Without text: no category prompt, so no label information reaches training. The default
    # then trains as small-corpus (the usage floor has no prompts to count), so "av-only" and
    # "small-corpus-av-only" train the same config; "av-only+code-match" forces the default's
    # code-sharing settings (without prompts the usage term is the plain one, weight 3).
    "av-only": (),
    "small-corpus-av-only": SMALL,
    "av-only+code-match": CODE_SHARING,
    "av-only+code-match-usage-1.5": (*CODE_SHARING, "--code-usage-weight", "1.5"),
    # Swapped code prediction (hdcid/swapped_codes.py): small-corpus + the term, no resets; it
    # needs no text, so the av-only row trains the same recipe without the prompts.
    "swapped": ("--recipe", "swapped-codes"),
    "av-only+swapped": ("--recipe", "swapped-codes"),
    # ... with one of its settings changed (issue 27's alternatives), and beside the prompt terms.
    "swapped-uniform-0.3": ("--recipe", "swapped-codes", "--swap-prior-uniform", "0.3"),
    "swapped-centring": ("--recipe", "swapped-codes", "--swap-targets", "centring"),
    "default+swapped": ("--swap-weight", "1"),
    "av-only+swapped-uniform-0.3": ("--recipe", "swapped-codes", "--swap-prior-uniform", "0.3"),
    "av-only+swapped-centring": ("--recipe", "swapped-codes", "--swap-targets", "centring"),
    # SwAV's equipartition; with 400 codes and 160 positions a batch it needs the queue.
    "av-only+swapped-equipartition": ("--recipe", "swapped-codes", "--swap-prior-power", "0", "--swap-queue", "1024"),
    "default+swapped-centring": ("--swap-weight", "1", "--swap-targets", "centring"),
    # The same settings training DCID (one level) instead of H-DCID, the default method.
    "dcid": ("--method", "dcid"),
    "dcid+swapped": ("--method", "dcid", "--recipe", "swapped-codes"),
    "av-only+dcid+swapped": ("--method", "dcid", "--recipe", "swapped-codes"),
}
NO_TEXT_ROWS = tuple(row for row in ROWS if row.startswith(("av-only", "small-corpus-av-only")))


def run(command: list[str], stdout: Path, stderr: Path, timing: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    prefix = ["nice", "-n", "10"] + (["/usr/bin/time", "-o", str(timing), "-f", "%e %U %S"] if timing else [])
    with open(stdout, "w") as out, open(stderr, "w") as err:
        subprocess.run([*prefix, *command], stdout=out, stderr=err, env=env, cwd=REPO, check=True)


# Corpus kinds of --corpus KIND:SEED[:CLIPS]: spoken (`toc synth-spoken-digits`), synth
# (`toc synth`), and the real-signal corpora of `toc synth-real --kind` by a short name.
REAL_KINDS = {"digits": "spoken-digits", "words": "spoken-words", "instruments": "instruments", "vowels": "vowels"}
CORPUS_KINDS = ("spoken", "synth", *REAL_KINDS)


def corpus(work: Path, spec: str) -> Path:
    """Build (once) the corpus `spec` names and return its data root."""
    kind, seed, *rest = spec.split(":")
    root = work / spec.replace(":", "-")
    if not (root / ".built").exists():
        work.mkdir(parents=True, exist_ok=True)
        clips = ["--clips", rest[0]] if rest else []
        if kind == "spoken":
            command = [*TOC, "synth-spoken-digits", str(root), "--seed", seed, *clips, "--force"]
        elif kind == "synth":
            command = [*TOC, "synth", str(root), "--seed", seed]
        elif kind in REAL_KINDS:
            command = [*TOC, "synth-real", str(root), "--kind", REAL_KINDS[kind], "--seed", seed, *clips, "--force"]
        else:
            raise SystemExit(f"--corpus {spec}: expected KIND:SEED[:CLIPS] with KIND one of {', '.join(CORPUS_KINDS)}")
        run(command, Path(f"{root}.json"), Path(f"{root}.err"))
        (root / ".built").write_text("ok\n")
    return root


def without_text(root: Path) -> Path:
    """The corpus' pretraining audio and video (and categories, for the probe diagnostic only) in
    the own-data layout, without text."""
    target = root.parent / f"{root.name}-no-text"
    if (target / ".built").exists():
        return target
    clips = load_pretrain(resolve_paths("pretrain", data_root=root))
    first = clips.read([0])
    target.mkdir(exist_ok=True)
    with h5py.File(target / "paired.h5.tmp", "w") as f:
        audio = f.create_dataset("audio", (len(clips), *first["audio"].shape[1:]), dtype="float32")
        video = f.create_dataset("video", (len(clips), *first["video"].shape[1:]), dtype="float32")
        for start in range(0, len(clips), 50):
            rows = np.arange(start, min(start + 50, len(clips)))
            batch = clips.read(rows)
            audio[rows[0] : rows[-1] + 1] = batch["audio"]
            video[rows[0] : rows[-1] + 1] = batch["video"]
        f["labels"] = np.asarray(clips.labels, dtype=np.int64)
    os.replace(target / "paired.h5.tmp", target / "paired.h5")
    (target / ".built").write_text("ok\n")
    return target


def published_epochs(root: Path) -> list[str]:
    """The default recipe's epoch count for this corpus, so the published row trains as long."""
    n_clips = len(load_pretrain(resolve_paths("pretrain", data_root=root)))
    return ["--epochs", str(RECIPES[DEFAULT_RECIPE].default_epochs(2, n_clips))]


def run_name(spec: str, row: str, seed: int) -> str:
    return f"{row}-{spec.replace(':', '-')}-t{seed}"


def _finished(out: Path) -> bool:
    return all(Path(f"{out}.{ext}").exists() for ext in ("train.time", "train.json", "eval.jsonl", "health.json"))


def one(work: Path, spec: str, row: str, seed: int) -> dict:
    data = corpus(work, spec)
    name = run_name(spec, row, seed)
    out = work / "runs" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    base = str(out)
    if not (out / "last.pt").exists():
        train_root = without_text(data) if row in NO_TEXT_ROWS else data
        extra = published_epochs(data) if row == "published" else []
        run([*TOC, "train", "--data-root", str(train_root), "-o", base, "--force", "--seed", str(seed),
             *ROWS[row], *extra], Path(base + ".train.json"), Path(base + ".train.err"), Path(base + ".train.time"))  # fmt: skip
        for path in out.glob("epoch-*.pt"):
            path.unlink()  # ~270 MB an epoch (13 epochs on 500 clips); the steps below read last.pt
    cache = str(work / f"cache-{name}")
    if not Path(base + ".eval.jsonl").exists():
        run([*TOC, "eval", "ave", "--checkpoint", f"{base}/last.pt", "--data-root", str(data), "--variant",
             "hdcid,dcid", "--head", "codes,prototype,linear", "--head-threads", "1", "--cache-dir", cache],
            Path(base + ".eval.jsonl"), Path(base + ".eval.err"))  # fmt: skip
    if not Path(base + ".health.json").exists():
        run([*TOC, "health", f"{base}/last.pt", "--task", "ave", "--data-root", str(data), "--cache-dir", cache],
            Path(base + ".health.json"), Path(base + ".health.err"))  # fmt: skip
    return summarise(out, spec, row, seed)


def summarise(out: Path, spec: str, row: str, seed: int) -> dict:
    base = str(out)
    wall, user, system = (float(x) for x in Path(base + ".train.time").read_text().split()[-3:])
    records = [json.loads(line) for line in Path(base + ".eval.jsonl").read_text().splitlines() if line.startswith("{")]
    transfer = {f"{r['variant']}/{r['head']}/{r['direction']}": r["metrics"]["accuracy"] for r in records}
    # Each test clip's outcome ("1" correct), for intervals over clips; the clips are the same for
    # every head and run of a corpus (eval_units_sha256 says which).
    clips = {f"{r['variant']}/{r['head']}/{r['direction']}": "".join(str(int(_unit_part(p))) for p in r["eval_parts"])
             for r in records if r.get("eval_parts") is not None}  # fmt: skip
    units = sorted({r.get("eval_units_sha256") for r in records if r.get("eval_units_sha256")})
    health = json.loads(Path(base + ".health.json").read_text())
    summary = json.loads(Path(base + ".train.json").read_text())
    levels = [
        {"kappa": lv["kappa"], "nmi": lv["nmi"], "nmi_shuffled": lv["nmi_shuffled"],
         "audio": lv["codes_used"]["audio"], "video": lv["codes_used"]["video"], "shared": lv["codes_shared"]}
        for lv in health["levels"]
    ]  # fmt: skip
    return {"corpus": spec, "row": row, "train_seed": seed, "train_wall_min": wall / 60,
            "train_cpu_min": (user + system) / 60, "epochs": summary.get("epochs"),
            "steps": summary.get("total_step"), "positions": health.get("positions"), "transfer": transfer,
            "levels": levels, "test_clips": clips, "test_clips_sha256": units}  # fmt: skip


def _unit_part(part) -> float:
    """A clip's 0/1 correctness from its eval_parts entry ([x] or x)."""
    return float(part[0]) if isinstance(part, list) else float(part)


def _cell(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown(results: list[dict]) -> list[str]:
    lines = [
        "| corpus | row | seeds | κ a–v L1 / L2 | NMI L1 (shuffled) | codes a / v / shared L1 | "
        "code-id L1 v2a / a2v | prototype L1 | linear L1 | code-id L1+L2 (hdcid) | train min wall (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    hdcid_view = [
        "| corpus | row | seeds | prototype L1+L2 v2a / a2v | linear L1+L2 v2a / a2v |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["corpus"], r["row"]), []).append(r)
    for (spec, row), runs in groups.items():
        kappa = [_cell([r["levels"][i]["kappa"] for r in runs if len(r["levels"]) > i], 2) for i in (0, 1)]
        first = {key: [r["levels"][0][key] for r in runs] for key in ("nmi", "nmi_shuffled", "audio", "video", "shared")}
        heads = {
            f"{variant}/{head}": " / ".join(_cell([r["transfer"].get(f"{variant}/{head}/{d}") for r in runs])
                                            for d in ("v2a", "a2v"))
            for variant in ("dcid", "hdcid") for head in ("codes", "prototype", "linear")
        }
        lines.append(
            f"| {spec} | {row} | {','.join(str(r['train_seed']) for r in runs)} | {kappa[0]} / {kappa[1]} | "
            f"{_cell(first['nmi'], 2)} ({_cell(first['nmi_shuffled'], 2)}) | "
            f"{_cell(first['audio'], 0)} / {_cell(first['video'], 0)} / {_cell(first['shared'], 0)} | "
            f"{heads['dcid/codes']} | {heads['dcid/prototype']} | {heads['dcid/linear']} | {heads['hdcid/codes']} | "
            f"{_cell([r['train_wall_min'] for r in runs])} ({_cell([r['train_cpu_min'] for r in runs])}) |"
        )
        hdcid_view.append(f"| {spec} | {row} | {','.join(str(r['train_seed']) for r in runs)} | "
                          f"{heads['hdcid/prototype']} | {heads['hdcid/linear']} |")
    return [*lines, "", "`hdcid` view, codeword heads (levels 1 + 2 concatenated, what `toc eval` reads by default):", "",
            *hdcid_view]


# The goals for the default recipe, on the AVE test split's event seconds / clips.
GOAL_KAPPA, GOAL_CODE_ID, GOAL_CODEWORD = 0.5, 80.0, 85.0
CLIP_HEADS = ("dcid/codes", "dcid/prototype", "dcid/linear", "hdcid/prototype", "hdcid/linear")
CLIP_HEAD_NAMES = {"dcid/codes": "code-id L1", "dcid/prototype": "prototype L1", "dcid/linear": "linear L1",
                   "hdcid/prototype": "prototype L1+L2", "hdcid/linear": "linear L1+L2"}


def _correct(run: dict, key: str) -> np.ndarray | None:
    outcome = run.get("test_clips", {}).get(key)
    return None if outcome is None else np.frombuffer(outcome.encode(), dtype=np.uint8) - ord("0")


def _wilson_cell(run: dict, key: str) -> str:
    correct = _correct(run, key)
    if correct is None:
        return "–"
    interval = wilson_interval(int(correct.sum()), len(correct))
    return f"{100 * correct.mean():.1f} ({interval.low:.1f}–{interval.high:.1f})"


def _goals(run: dict) -> str:
    """Which of the goals one run meets: κ, code-id both ways, each codeword head both ways."""
    met = {
        "κ": run["levels"][0]["kappa"] >= GOAL_KAPPA,
        "code-id": all(run["transfer"][f"dcid/codes/{d}"] >= GOAL_CODE_ID for d in ("v2a", "a2v")),
        "proto": all(run["transfer"][f"dcid/prototype/{d}"] >= GOAL_CODEWORD for d in ("v2a", "a2v")),
        "linear": all(run["transfer"][f"dcid/linear/{d}"] >= GOAL_CODEWORD for d in ("v2a", "a2v")),
    }
    missed = [name for name, ok in met.items() if not ok]
    return "all" if not missed else "not " + ", ".join(missed)


def _parts(groups: dict[str, list[dict]], key: str) -> UnitParts | None:
    """{row: runs} as bootstrap parts on one head and direction; None where a row lacks clips."""
    by_row = {}
    for row, runs in groups.items():
        arrays = {r["train_seed"]: _correct(r, key) for r in runs}
        if any(a is None for a in arrays.values()):
            return None
        by_row[row] = arrays
    return UnitParts.from_runs(by_row, ACCURACY)


def clip_tables(results: list[dict], compare: list[tuple[str, str]], resamples: int = 5000) -> list[str]:
    """Per run: each accuracy with its Wilson interval over the test clips and the goals it meets;
    per row: the mean over training seeds with a paired bootstrap interval over clips and runs;
    per compared pair: the difference on the same clips."""
    lines = ["Per training run: accuracy % (Wilson 95% interval over the test clips); goals: κ ≥ "
             f"{GOAL_KAPPA}, code-id ≥ {GOAL_CODE_ID:.0f}% and level-1 prototype / linear ≥ {GOAL_CODEWORD:.0f}% "
             "both ways.", "",
             "| corpus | row | seed | clips | κ L1 | codes a / v / shared L1 | "
             + " | ".join(f"{CLIP_HEAD_NAMES[h]} v2a | a2v" for h in CLIP_HEADS) + " | train CPU min | goals met |",
             "|---|---|---|---|---|---|" + "---|---|" * len(CLIP_HEADS) + "---|---|"]
    for r in results:
        n = len(next(iter(r.get("test_clips", {}).values()), ""))
        cells = " | ".join(_wilson_cell(r, f"{h}/{d}") for h in CLIP_HEADS for d in ("v2a", "a2v"))
        first = r["levels"][0]
        lines.append(f"| {r['corpus']} | {r['row']} | {r['train_seed']} | {n} | {first['kappa']:.2f} | "
                     f"{first['audio']} / {first['video']} / {first['shared']} | {cells} | "
                     f"{r['train_cpu_min']:.1f} | {_goals(r)} |")
    by_corpus: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        by_corpus.setdefault(r["corpus"], {}).setdefault(r["row"], []).append(r)
    means = ["", f"Mean over training seeds, % [paired bootstrap 95% interval: {resamples} resamples (seed 0) "
             "of the test clips and the training runs, expanded percentile; toc.report.resampling]:", "",
             "| corpus | row | seeds | " + " | ".join(f"{CLIP_HEAD_NAMES[h]} v2a | a2v" for h in CLIP_HEADS) + " |",
             "|---|---|---|" + "---|---|" * len(CLIP_HEADS)]
    differences = ["", "Differences on the same test clips, % points [paired bootstrap 95% interval; two-sided "
                   "p-value of no difference]:", "",
                   "| corpus | a − b | " + " | ".join(f"{CLIP_HEAD_NAMES[h]} v2a | a2v" for h in CLIP_HEADS) + " |",
                   "|---|---|" + "---|---|" * len(CLIP_HEADS)]
    for spec, groups in by_corpus.items():
        # Rows trained on the same seeds share one bootstrap (the same draws for every row).
        by_seeds: dict[tuple[int, ...], dict[str, list[dict]]] = {}
        for row, runs in groups.items():
            by_seeds.setdefault(tuple(sorted(r["train_seed"] for r in runs)), {})[row] = runs
        for seeds, rows in by_seeds.items():
            boot = {}
            for h in CLIP_HEADS:
                for d in ("v2a", "a2v"):
                    parts = _parts(rows, f"{h}/{d}")
                    if parts is not None:
                        boot[f"{h}/{d}"] = paired_bootstrap(parts, n_resamples=resamples, seed=0)
            for row in rows:
                cells = []
                for key in (f"{h}/{d}" for h in CLIP_HEADS for d in ("v2a", "a2v")):
                    if key not in boot:
                        cells.append("–")
                        continue
                    est = boot[key].variant(row)
                    cells.append(f"{est.estimate:.1f} [{est.interval.low:.1f}, {est.interval.high:.1f}]")
                means.append(f"| {spec} | {row} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
            for a, b in compare:
                if a not in rows or b not in rows:
                    continue
                cells = []
                for key in (f"{h}/{d}" for h in CLIP_HEADS for d in ("v2a", "a2v")):
                    if key not in boot:
                        cells.append("–")
                        continue
                    diff = boot[key].difference(a, b)
                    cells.append(f"{diff.difference:+.1f} [{diff.interval.low:+.1f}, {diff.interval.high:+.1f}; "
                                 f"p {diff.p_value:.3f}]")
                differences.append(f"| {spec} | {a} − {b} | " + " | ".join(cells) + " |")
    return [*lines, *means, *(differences if len(differences) > 5 else [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", default=["spoken:12"], help=f"KIND:SEED[:CLIPS], KIND one of {', '.join(CORPUS_KINDS)}")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=["default", "small-corpus"])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[43])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each one torch thread)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/toc-unified-codes"))
    parser.add_argument("-o", "--output", type=Path, default=None, help="also write the table here")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the table of the finished runs among the ones named")
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write the named runs' rows (one JSON object per run) to this file")
    parser.add_argument("--clips", action="store_true",
                        help="add the tables of uncertainty over test clips (Wilson per run, bootstrap per row)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                        help="with --clips: the difference of row A and row B on the same clips")
    args = parser.parse_args()
    compare = []
    for pair in args.compare:
        a, sep, b = pair.partition(":")
        if not sep or a not in ROWS or b not in ROWS:
            parser.error(f"--compare {pair}: expected ROW_A:ROW_B with rows from {', '.join(sorted(ROWS))}")
        compare.append((a, b))
    jobs = [(spec, row, seed) for spec in args.corpus for row in args.rows for seed in args.train_seeds]
    if args.report_only:
        finished = [job for job in jobs if _finished(args.work / "runs" / run_name(*job))]
        results = [summarise(args.work / "runs" / run_name(*job), *job) for job in finished]
    else:
        for spec in args.corpus:  # built one at a time, before any training
            corpus(args.work, spec)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda job: one(args.work, *job), jobs))
        with open(args.work / "results.jsonl", "a") as log:
            for r in results:
                log.write(json.dumps(r) + "\n")
    if args.raw is not None:
        write_text_atomic(args.raw, "".join(json.dumps(r, sort_keys=True) + "\n" for r in results))
    tables = markdown(results) + (["", *clip_tables(results, compare)] if args.clips else [])
    text = "\n".join(tables) + "\n"
    if args.output is not None:
        write_text_atomic(args.output, text)
    print(text, end="")


if __name__ == "__main__":
    main()
