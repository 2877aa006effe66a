#!/usr/bin/env bash
# Regenerates every table under benchmarks/results/ (CPU; a few minutes; cca_baseline needs the
# optional espeak-ng and scikit-learn and is skipped without them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/python benchmarks/toc_scoring.py
.venv/bin/python benchmarks/code_health_memory.py
.venv/bin/python benchmarks/eval_cache.py
.venv/bin/python benchmarks/train_throughput.py
if command -v espeak-ng >/dev/null && .venv/bin/python -c "import sklearn" 2>/dev/null; then
  .venv/bin/python benchmarks/cca_baseline.py
else
  echo "cca_baseline: skipped (needs espeak-ng and scikit-learn)" >&2
fi
