#!/usr/bin/env bash
# Regenerates the tables under benchmarks/results/ that take minutes, not hours (CPU). The long
# ones (eval_scale, small_corpus, unified_codes, default_recipe, demo) run on their own.
# cca_baseline needs the optional espeak-ng and scikit-learn and is skipped without them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/python benchmarks/toc_scoring.py
.venv/bin/python benchmarks/cli_startup.py
.venv/bin/python benchmarks/code_health_memory.py
.venv/bin/python benchmarks/eval_cache.py
.venv/bin/python benchmarks/train_throughput.py
if command -v espeak-ng >/dev/null && .venv/bin/python -c "import sklearn" 2>/dev/null; then
  .venv/bin/python benchmarks/cca_baseline.py
else
  echo "cca_baseline: skipped (needs espeak-ng and scikit-learn)" >&2
fi
# Statistics and parity checks of the code itself (no corpus needed).
OMP_NUM_THREADS=1 .venv/bin/python benchmarks/resampling_coverage.py
OMP_NUM_THREADS=1 .venv/bin/python benchmarks/resampling.py
OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synthetic_difficulty.py
.venv/bin/python benchmarks/float32_codes.py
