#!/usr/bin/env bash
# A new user's check of `toc train`'s default recipe (today `shared-codes`; a corpus without text
# trains as `small-corpus`): a fresh spoken-digits corpus (a seed never used while developing),
# `toc train` with every default, `toc eval ave` with every default, then the same checkpoint
# with every head (code ids, prototype, linear), both variants and 3 head seeds, and `toc health
# --task ave` for the audio-video code agreement (Cohen's kappa); a linear CCA on the same
# unlabelled pairs beside it. Needs espeak-ng and scikit-learn.
#   bash benchmarks/default_recipe.sh [--no-text] SEED [WORK_DIR]
# --no-text trains on the corpus's pretraining audio and video without its text (the own-data
# layout, built by benchmarks/unified_codes.py's without_text), as a user with their own paired
# features would; evaluation is the same (the corpus's AVE clips).
# Writes WORK_DIR/SEED/data (the corpus), WORK_DIR/SEED/cca.json and, per setting (text or
# no-text), WORK_DIR/SEED/SETTING/{run/,train.json,train.err,train.time,eval-default.jsonl,
# eval-all.jsonl,health.json,summary.json}, and prints the summary; the tables in
# benchmarks/results/default_recipe.md were made from it. A step whose output exists is skipped
# (delete the folder to start over). Torch uses its own thread count unless OMP_NUM_THREADS is
# set. About 7 CPU minutes of training on one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
setting=text
if [[ ${1:-} == --no-text ]]; then
  setting=no-text
  shift
fi
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: bash benchmarks/default_recipe.sh [--no-text] SEED [WORK_DIR]" >&2
  exit 2
fi
seed=$1
work=${2:-/tmp/toc-default-recipe}/$seed
out=$work/$setting
mkdir -p "$out"
T=.venv/bin/toc
data=$work/data
if [[ ! -e $data/spoken-digits.json ]]; then
  $T synth-spoken-digits "$data" --seed "$seed" --force > "$work/build.json" 2> "$work/build.err"
fi
train_root=$data
if [[ $setting == no-text ]]; then
  train_root=$(.venv/bin/python -c "
import sys; from pathlib import Path; sys.path.insert(0, '.')
from benchmarks.unified_codes import without_text
print(without_text(Path(sys.argv[1])))" "$data")
fi
if [[ ! -e $out/run/last.pt ]]; then
  /usr/bin/time -o "$out/train.time" -f "%e %U %S" \
    $T train --data-root "$train_root" -o "$out/run" --force > "$out/train.json" 2> "$out/train.err"
  rm -f "$out"/run/epoch-*.pt  # ~270 MB an epoch; every step below reads last.pt
fi
if [[ ! -e $out/eval-default.jsonl ]]; then
  $T eval ave --checkpoint "$out/run/last.pt" --data-root "$data" -o "$out/eval-default.jsonl" 2> "$out/eval.err"
fi
if [[ ! -e $out/eval-all.jsonl ]]; then
  $T eval ave --checkpoint "$out/run/last.pt" --data-root "$data" --head codes,prototype,linear \
    --variant hdcid,dcid --seeds 0,1,2 -o "$out/eval-all.jsonl" 2>> "$out/eval.err"
fi
if [[ ! -e $out/health.json ]]; then
  $T health "$out/run/last.pt" --task ave --data-root "$data" -o "$out/health.json" 2> "$out/health.err"
fi
.venv/bin/python - "$work" "$setting" <<'PY'
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
sys.path.insert(0, ".")
import cca_baseline  # noqa: E402

from toc.report.resampling import wilson_interval  # noqa: E402

work, setting = Path(sys.argv[1]), sys.argv[2]
out = work / setting
if not (work / "cca.json").exists():
    cca = cca_baseline.evaluate(cca_baseline.load_corpus(work / "data"), seed=0)
    (work / "cca.json").write_text(json.dumps(cca, indent=1, sort_keys=True))
cca = json.loads((work / "cca.json").read_text())


def records(name):
    return [json.loads(line) for line in (out / name).read_text().splitlines() if line.startswith("{")]


def with_wilson(r):
    parts = r["eval_parts"]
    correct = int(sum(p[0] if isinstance(p, list) else p for p in parts))
    interval = wilson_interval(correct, len(parts))
    return {"accuracy": r["metrics"]["accuracy"], "correct": correct, "clips": len(parts),
            "wilson95": [round(interval.low, 1), round(interval.high, 1)]}


wall, user, system = (float(x) for x in (out / "train.time").read_text().split()[-3:])
trained = json.loads((out / "train.json").read_text())
config = json.loads((out / "run" / "config.json").read_text())
default = {r["direction"]: {"variant": r["variant"], "head": r["head"], **with_wilson(r)}
           for r in records("eval-default.jsonl")}
every: dict[str, list[float]] = {}
for r in records("eval-all.jsonl"):
    every.setdefault(f"{r['variant']}/{r['head']}/{r['direction']}", []).append(r["metrics"]["accuracy"])
health = json.loads((out / "health.json").read_text())
summary = {
    "corpus_seed": int(work.name), "setting": setting, "recipe": config.get("recipe"),
    "train_wall_min": round(wall / 60, 2), "train_cpu_min": round((user + system) / 60, 2),
    "epochs": trained.get("epochs"), "steps": trained.get("total_step"),
    "default_eval": default,
    "every_head": {k: {"mean": round(statistics.mean(v), 2), "std": round(statistics.stdev(v), 2) if len(v) > 1 else 0.0,
                       "head_seeds": len(v)} for k, v in sorted(every.items())},
    "health": [{"kappa": lv["kappa"], "nmi": lv["nmi"], "codes_audio": lv["codes_used"]["audio"],
                "codes_video": lv["codes_used"]["video"], "codes_shared": lv["codes_shared"]} for lv in health["levels"]],
    "positions": health.get("positions"),
    "cca": cca,
}
(out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
print(json.dumps(summary, indent=1, sort_keys=True))
PY
