#!/usr/bin/env bash
# Reproduce the shipped GAN weights (src/srpsa/weights/translate, .../superres) on a CPU, 1 thread each.
# Data: 200 aligned simulator pairs of configs/synth/gan.toml (seed 1), cut into 256 px OM patches.
# Measured on the project's 2-core machine (shared): translate ~0.8-1.2 s/step (2500 steps, ~45 min),
# superres ~1.5-3 s/step in the L1 warm-up and ~10 s/step in the GAN phase (750 steps, ~55 min).
set -euo pipefail
BIN="${BIN:-.venv/bin}"
RUNS="${RUNS:-runs/gan}"
"$BIN/srpsa" synth "$RUNS/pairs" --config configs/synth/gan.toml --n 200 --aligned --seed 1
"$BIN/srpsa" prepare "$RUNS/pairs" --out "$RUNS/prepared" --patch 256 --stride 256 --split 0.9,0.05,0.05 --augment 0 --seed 0
# The shipped translator is compact-sn at 1250 steps: the best validation PSNR/SSIM of the three ablation
# runs and of the 2500-step AASNA run (docs/gans.md, "CPU training runs").
"$BIN/srpsa" train translate --config configs/translate/compact-sn.toml --data "$RUNS/prepared" --out "$RUNS/ablation-compact-sn" --threads 1 --steps 1250 &
"$BIN/srpsa" train translate --config configs/translate/compact.toml --data "$RUNS/prepared" --out "$RUNS/translate-compact" --threads 1 &
# The superres run stops at step 750 of its 900-step schedule (150 GAN steps): the CPU budget.
"$BIN/srpsa" train superres --config configs/superres/compact.toml --data "$RUNS/prepared" --out "$RUNS/superres-compact" --threads 1 --steps 750 &
wait
mkdir -p src/srpsa/weights/translate src/srpsa/weights/superres
cp "$RUNS/ablation-compact-sn/weights/"generator.* src/srpsa/weights/translate/
cp "$RUNS/superres-compact/weights/"generator.* src/srpsa/weights/superres/
# Ablation (Tables 1/2): the three translate configs at an equal 1250-step budget.
for c in compact-default compact; do
  "$BIN/srpsa" train translate --config configs/translate/$c.toml --data "$RUNS/prepared" --out "$RUNS/ablation-$c" --threads 1 --steps 1250
done
