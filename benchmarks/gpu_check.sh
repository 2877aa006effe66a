#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) with a hard five-minute limit; writes
# benchmarks/results/gpu.md. Without CUDA it runs its CPU fallback (tiny sizes, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec timeout 300 "$PYTHON" benchmarks/gpu_check.py "$@"
