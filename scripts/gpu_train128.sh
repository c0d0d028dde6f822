#!/usr/bin/env bash
# One GPU sitting of the faces128 model (issue #26): at most 9 minutes on a lent machine, set-up included.
#
# Trains the faces128 recipe (core/train/recipes.py) from scratch, or continues the training state of an earlier
# sitting (INIT=<a model folder with training/state.json>), for GAN_MINUTES of wall time with the data drawn on
# the GPU; exports the EMA generator with its compact training state (float16 G and D, the step, the log: what
# the next sitting's INIT continues from); trains the 128 px oracle when the repository has none (the benchmarks'
# judge at this resolution, ORACLE_S at most). Everything is packed into one tar, split into parts of at most
# 15 MiB, so that it comes back from one call (the device returns at most 8 files of 16 MiB, 64 MiB together):
#   $OUT/sitting.tar.part-aa, -ab, ...   faces128/ (generator, config, training/), oracle/ when trained,
#                                        bench_train_cuda.json when measured
#   $OUT/sitting.log                     this script's output
# Why compact and not exact: an exact state (float32 G, D and EMA with both optimisers' moments) is about 89 MiB at
# this size, more than a call brings back or sends (64 MiB, the repository's own ~46 MiB included); the compact
# state is ~13 MiB both ways. Adam's moments rebuild within a few hundred steps (GANTrainer.export).
#
# Usage (the device tool, from the repository root):
#   OUT=$OUT bash scripts/gpu_train128.sh                                  # from scratch, ~8.5 min
#   INIT=.carry/faces128 OUT=$OUT bash scripts/gpu_train128.sh             # continue (carry: [".carry"])
# Knobs: GAN_MINUTES (6.5 with the oracle to train, else 7.5), BATCH (64), HOST_WORKERS (4: processes sampling the
#        faces' parameters ahead of the GPU; one thread caps near 2,700 faces/s), DEVICE (cuda; cpu for the test suite's
#        dry run), ORACLE (auto: when benchmarks/oracle has no oracle128; always; never), ORACLE_S (75),
#        ORACLE_IMAGES (20000), ORACLE_WIDTH (24), ORACLE_EPOCHS (3), ORACLE_TEST (1000), THREADS (torch's CPU
#        threads; unset = torch's default), BENCH (auto: issue #26's throughput measurement, old data path against
#        new, when benchmarks/results has no bench_train_cuda.json; always; never), BENCH_S (75).
# Each optional step takes its time from the GAN's: 6.5 minutes of GAN with neither, 1.25 less for each.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder the results go to}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/sitting128.XXXXXX)
mkdir -p "$OUT" "$WORK/pack"
exec > >(tee "$OUT/sitting.log") 2>&1
t0=$(date +%s)
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
ORACLE=${ORACLE:-auto}
case "$ORACLE" in
  auto) if [ -f benchmarks/oracle/oracle128.safetensors ]; then ORACLE=never; else ORACLE=always; fi ;;
  always|never) ;;
  *) echo "ORACLE must be auto, always or never, got $ORACLE" >&2; exit 2 ;;
esac
BENCH=${BENCH:-auto}
case "$BENCH" in
  auto) if [ -f benchmarks/results/bench_train_cuda.json ]; then BENCH=never; else BENCH=always; fi ;;
  always|never) ;;
  *) echo "BENCH must be auto, always or never, got $BENCH" >&2; exit 2 ;;
esac
if [ -z "${GAN_MINUTES:-}" ]; then
  GAN_MINUTES=$(awk -v o="$ORACLE" -v b="$BENCH" 'BEGIN { print 7.75 - 1.25 * (o == "always") - 1.25 * (b == "always") }')
fi
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
init=()
if [ -n "${INIT:-}" ]; then
  [ -f "$INIT/training/state.json" ] || { echo "INIT=$INIT holds no training/state.json" >&2; exit 2; }
  init=(--init-from "$INIT")
fi

# 0. the data paths' throughput, old against new (benchmarks/bench_train.py), once per repository
if [ "$BENCH" = always ]; then
  timeout "${BENCH_S:-75}" $PY -m benchmarks.bench_train --device "$DEVICE" "${threads[@]}" --sizes "${BENCH_SIZES:-64,128}" \
    --batches "${BENCH_BATCHES:-64,256}" --steps "${BENCH_STEPS:-10}" --warmup 3 --workers "${BENCH_WORKERS:-8}" --host-workers "${BENCH_HOST_WORKERS:-4}" \
    --render-images 256 --oracle-images 0 --out "$WORK/pack/bench_train_cuda.json" \
    || echo "bench_train stopped before the end (the JSON keeps the settings it finished)"
fi

# 1. the GAN, continued or from scratch; the export writes the model folder and its compact training state
$PY -m core.train.gan --recipe faces128 --out "$WORK/run" "${init[@]}" "${threads[@]}" --device "$DEVICE" \
  --batch-size "${BATCH:-64}" --data device --host-workers "${HOST_WORKERS:-4}" --max-minutes "$GAN_MINUTES" --ckpt-every 100000000 \
  --export "$WORK/pack/faces128" --export-state compact
tail -n 1 "$WORK/pack/faces128/training/log.jsonl"

# 2. the oracle at 128 px, unless the repository has one (benchmarks/oracle.py; never part of the editor)
if [ "$ORACLE" = always ]; then
  mkdir -p "$WORK/pack/oracle"
  timeout "${ORACLE_S:-75}" $PY -m benchmarks.oracle train --resolution 128 --device "$DEVICE" "${threads[@]}" \
    --train-images "${ORACLE_IMAGES:-20000}" --width "${ORACLE_WIDTH:-24}" --epochs "${ORACLE_EPOCHS:-3}" \
    --test-images "${ORACLE_TEST:-1000}" --folder "$WORK/pack/oracle" --out "$WORK/pack/oracle/oracle128_eval.json" \
    || echo "the oracle did not finish within ${ORACLE_S:-75} s: train it in another sitting"
fi

# 3. one tar in parts of at most 15 MiB
tar -C "$WORK/pack" -cf - . | split -b 15M -a 2 - "$OUT/sitting.tar.part-"
ls -l "$OUT"
echo "sitting took $(( $(date +%s) - t0 )) s"
cat <<EOF
done. On the CPU machine, with <files_at> the folder the files came back to:
  mkdir -p ../shared/faces128_sittingN && cat <files_at>/sitting.tar.part-* | tar -x -C ../shared/faces128_sittingN
  # a README there saying how it was made; the next sitting continues from it:
  #   mkdir -p .carry && cp -r ../shared/faces128_sittingN/faces128 .carry/   (.carry/ is git-ignored)
  #   device run: INIT=.carry/faces128 OUT=\$OUT bash scripts/gpu_train128.sh   with carry [".carry"]
  # the oracle, when one came back: cp ../shared/faces128_sittingN/oracle/oracle128.* benchmarks/oracle/
  # the throughput, when measured: cp ../shared/faces128_sittingN/bench_train_cuda.json benchmarks/results/
  # quality: python -m benchmarks.bench_core --model ../shared/faces128_sittingN/faces128 --out benchmarks/results/core_faces128.json (plausibility >= 0.90?)
EOF
rm -rf "$WORK"
