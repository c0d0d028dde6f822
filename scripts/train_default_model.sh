#!/usr/bin/env bash
# The whole recipe of the shipped default model (checkpoints/faces64), step by step.
# Every step resumes from its run folder, so the script can be started again after
# an interruption and continues where it stopped.
#   bash scripts/train_default_model.sh            # CPU: slow (hours), as the shipped model was trained
#   DEVICE=cuda bash scripts/train_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
DEVICE="${DEVICE:-auto}"
GAN_ITERS="${GAN_ITERS:-40000}"
MODEL=checkpoints/faces64

# 1. GAN (64 px; see checkpoints/faces64/README.md for the config that shipped)
python -m core.train.gan --out runs/faces64 --resolution 64 --style-dim 256 --n-mlp 4 \
    --channel-base 2048 --channel-max 256 --channel-multiplier 1 --batch-size 8 --r1-gamma 0.5 \
    --ema-half-life-kimg 5 --iterations "$GAN_ITERS" --device "$DEVICE" --init-from "$MODEL" --export "$MODEL"

# 2. The oracle segmenter (benchmarks only; never used by the editor)
[ -f benchmarks/oracle/oracle64.safetensors ] || python -m benchmarks.oracle train --width 24 --train-images 20000

# 3. Encoder (image -> W+), then 4. the segmentation branch from 16 labelled images
python -m core.train.encoder --model "$MODEL" --out runs/encoder64 --device "$DEVICE" --export
python -m core.train.branch --model "$MODEL" --min-map-resolution 32 --export  # the 4-16 px maps hurt at 64 px (branch_sweep)

# 5. Measurements and the model card
python -m benchmarks.bench_core --model "$MODEL"
python -m benchmarks.model_card --model "$MODEL" --run runs/faces64 --hardware "${HARDWARE:-unspecified}"
