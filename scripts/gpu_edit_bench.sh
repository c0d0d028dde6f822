#!/usr/bin/env bash
# Issue #25's GPU measurement, as one command for a lent GPU machine (the device tool, never CI):
# our 512 px edit step against the faithful baseline (benchmarks/edit_baseline.py), 28,224-pixel region and
# whole image, fp32 and TF32, eager and CUDA graph; the default model's 30-step edit and vector apply through
# EditGAN. Everything is benchmarks/gpu_edit_bench.py; this script sets up and bounds the time.
#
# Usage (from the repository root):
#   OUT=/some/dir bash scripts/gpu_edit_bench.sh            # on the GPU machine: JSON + log into $OUT (2 files)
#   bash scripts/gpu_edit_bench.sh                          # locally: into benchmarks/results/gpu/
#   bash scripts/gpu_edit_bench.sh --device cpu --dry-run   # tiny sizes, 3 steps: checks the script (a test runs it)
# Extra arguments go to benchmarks/gpu_edit_bench.py. Knobs: PY (python, default python3 as the GPU image has
# it; the project's .venv when there is one), LIMIT_S (hard limit of the Python part, 225), BUDGET_S (its own
# time guard, 195: what would not finish is skipped and the JSON keeps what was measured).
# Set-up as benchmarks/gpu_run.sh: the GPU machine has torch but no lpips and no network; lpips travels as a
# wheel in .whl/ (see /work/.library/device/README.md) and is installed from there when missing. Without it
# the at-scale perceptual term is the substitute, which the JSON records.
# Sized for <= 4 minutes in all, about 8 files at most under $OUT (it writes two). Untested on a GPU so far.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$OUT"
if ! "$PY" -c "import lpips" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu_edit_bench.log"
fi
# --device cuda first: on a machine where torch sees no GPU it stops with the reason (a later --device wins)
timeout "${LIMIT_S:-225}" "$PY" -m benchmarks.gpu_edit_bench --device cuda --out "$OUT/gpu_edit_bench.json" \
  --budget-s "${BUDGET_S:-195}" "$@" 2>&1 | tee -a "$OUT/gpu_edit_bench.log"
rc=${PIPESTATUS[0]}
echo "exit $rc; results in $OUT/gpu_edit_bench.json" | tee -a "$OUT/gpu_edit_bench.log"
exit "$rc"
