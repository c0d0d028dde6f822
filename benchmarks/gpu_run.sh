#!/usr/bin/env bash
# The GPU measurements, as one script for a lent GPU machine (never CI):
#   1. the at-scale side-by-side of issue #5 (512 px config-f, 32-class branch over
#      6016 channels, 10 members, 28,224-pixel region), fp32 and bf16, with LPIPS-VGG's
#      real network (untrained backbone: the cost is the real one, the values are not used);
#   2. the same with the whole image as the region;
#   3. one 30-step edit on the default model, both formulations;
#   4. the branch capacity sweep (benchmarks/branch_sweep.py) within a time budget.
# Usage: OUT=/some/dir bash benchmarks/gpu_run.sh   (lpips travels as a wheel in .whl/ when missing)
# Knobs: STEPS (timed steps at scale, default 20), SWEEP_VARIANTS, SWEEP_BUDGET_S, SWEEP_LIMIT_S.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results/gpu}
STEPS=${STEPS:-20}
mkdir -p "$OUT"
if ! python3 -c "import lpips" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
common=(--at-scale --device cuda --perceptual lpips-vgg-random --scale-steps "$STEPS" --warmup 3)
timeout 200 python3 -m benchmarks.bench_edit "${common[@]}" --profile \
  --out "$OUT/edit_at_scale_gpu.json" 2>"$OUT/edit_at_scale_gpu_profile.txt" | tail -22
timeout 120 python3 -m benchmarks.bench_edit "${common[@]}" --precision bf16 \
  --out "$OUT/edit_at_scale_gpu_bf16.json" | tail -22
timeout 120 python3 -m benchmarks.bench_edit "${common[@]}" --region full \
  --out "$OUT/edit_at_scale_gpu_full.json" | tail -22
for form in sampled baseline; do
  timeout 60 python3 -m benchmarks.bench_edit --child --device cuda --formulation $form --steps 30 --warmup 3 2>/dev/null
done | tee "$OUT/default_model_gpu.jsonl"
variants=${SWEEP_VARIANTS:-}
timeout "${SWEEP_LIMIT_S:-240}" python3 -m benchmarks.branch_sweep --device cuda --threads 8 \
  --budget-s "${SWEEP_BUDGET_S:-180}" ${variants:+--variants $variants} --out "$OUT/branch_sweep.json"
echo "done"
