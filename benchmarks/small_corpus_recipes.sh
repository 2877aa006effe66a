#!/usr/bin/env bash
# Published recipe vs `--recipe small-corpus` on the spoken-digits corpus (needs espeak-ng and
# scikit-learn): DCID, 6 epochs, 3 training seeds, AVE strict protocol, both heads, both directions.
# Writes per-run results under $OUT; the table in benchmarks/results/small_corpus_recipes.md was
# made from them. About 11 minutes on 2 cores.
set -u
mkdir -p "${OUT:-/tmp/toc-small-corpus}"
cd "$(dirname "$0")/.."
T=.venv/bin/toc
$T synth-spoken-digits ${OUT:-/tmp/toc-small-corpus}/sd --seed 0 --force > ${OUT:-/tmp/toc-small-corpus}/build.json 2>${OUT:-/tmp/toc-small-corpus}/build.err
for seed in 0 1 2; do
 for recipe in reference small-corpus; do
  run=${OUT:-/tmp/toc-small-corpus}/run-$recipe-$seed
  rm -rf $run
  $T train --levels 1 --data-root ${OUT:-/tmp/toc-small-corpus}/sd --epochs 6 --batch-size 16 --seed $seed --audio-output-dim 32 --video-output-dim 32 --text-output-dim 32 --n-embeddings 64 --recipe $recipe -o $run > $run.train.json 2> $run.train.err
  $T eval ave --checkpoint $run/last.pt --data-root ${OUT:-/tmp/toc-small-corpus}/sd --variant dcid --head prototype,linear --direction both --seeds 0 --epochs 30 -o $run.eval.jsonl 2> $run.eval.err
  echo "done $recipe $seed $(date +%T)"
 done
done
