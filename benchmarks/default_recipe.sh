#!/usr/bin/env bash
# A new user's check of `toc train`'s default recipe: a fresh spoken-digits corpus (a seed never
# used while developing), `toc train` with every default, then `toc eval ave` with every default
# and with both heads / both variants / 3 head seeds. Needs espeak-ng and scikit-learn.
#   bash benchmarks/default_recipe.sh SEED [WORK_DIR]
# Writes WORK_DIR/SEED/{time.json,train.err,eval-default.jsonl,eval-all.jsonl}; the table in
# benchmarks/results/default_recipe.md was made from them. About 7 minutes on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=$1
work=${2:-/tmp/toc-default-recipe}/$seed
mkdir -p "$work"
T=.venv/bin/toc
$T synth-spoken-digits "$work/data" --seed "$seed" --force > "$work/build.json" 2> "$work/build.err"
start=$(date +%s)
$T train --data-root "$work/data" -o "$work/run" --force > "$work/train.json" 2> "$work/train.err"
echo "{\"seed\": $seed, \"train_seconds\": $(( $(date +%s) - start ))}" > "$work/time.json"
$T eval ave --checkpoint "$work/run/last.pt" --data-root "$work/data" -o "$work/eval-default.jsonl" --force 2> "$work/eval.err"
$T eval ave --checkpoint "$work/run/last.pt" --data-root "$work/data" --head prototype,linear \
    --variant hdcid,dcid --seeds 0,1,2 -o "$work/eval-all.jsonl" --force 2>> "$work/eval.err"
.venv/bin/python - "$work" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import cca_baseline
work = Path(sys.argv[1])
cca = cca_baseline.evaluate(cca_baseline.load_corpus(work / "data"), seed=0)
(work / "cca.json").write_text(json.dumps(cca, indent=1, sort_keys=True))
for line in (work / "eval-default.jsonl").read_text().splitlines():
    r = json.loads(line)
    print(r["direction"], r["variant"], r["head"], round(r["metrics"]["accuracy"], 1))
PY
cat "$work/time.json"
