#!/usr/bin/env bash
# `make demo`: analyse the bundled example OM image with the full pipeline (OM -> translate -> detect;
# `--sr model` would add the super-resolution stage), write the HTML report, and score against the ground truth.
set -euo pipefail
BIN="$1"; OUT="$2"
"$BIN/srpsa" analyze examples/om_example.tif --out "$OUT" --pipeline full --report --force
# Border-cut particles are ignored on both sides, as the statistics do (ISO 13322-1).
"$BIN/srpsa" evaluate detect --gt examples/om_example_gt.csv --pred "$OUT/om_example/particles.csv" --out "$OUT/evaluation" --ignore-border --image-size 1024 768
echo
echo "Demo results:"
echo "  HTML report      : $OUT/report.html"
echo "  per-image folder : $OUT/om_example/  (particles.csv, summary.json, overlay.png, psd.png)"
echo "  batch summary    : $OUT/summary.csv"
echo "  vs ground truth  : $OUT/evaluation/metrics.json"
echo "  (fast path without the GANs: srpsa analyze IMAGE --out DIR --pipeline detect-only)"
