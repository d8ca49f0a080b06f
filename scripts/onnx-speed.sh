#!/usr/bin/env bash
# Speed side by side on the same ONNX files: inferbench's compiled plan
# (examples/onnx-speed.rs), candle_onnx::simple_eval (scripts/candle-onnx-speed, needs a
# system protoc to build) and ONNX Runtime (scripts/onnx-speed.py), at 1 and 2 threads,
# batch 1 and 32. One JSON line per measurement on stdout. Run on a quiet machine:
#
#   scripts/onnx-speed.sh [MODEL.onnx[:name=1x128,...] ...]    # default: .cache/onnx-models
#
# Needs the models (scripts/export-onnx-models.py --large) and .cache/onnx-venv with
# onnxruntime (see .ci/run). ITERS (default 20), THREADS ("1 2"), BATCHES ("1 32") and
# RUNTIMES ("inferbench candle-onnx onnxruntime") override the grid.
set -euo pipefail
cd "$(dirname "$0")/.."

iters="${ITERS:-20}"
threads_list="${THREADS:-1 2}"
batches="${BATCHES:-1 32}"
runtimes="${RUNTIMES:-inferbench candle-onnx onnxruntime}"
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(.cache/onnx-models/resnet18.onnx .cache/onnx-models/mobilenet_v3_small.onnx
    ".cache/onnx-models/all_minilm_l6_v2.onnx:input_ids=1x128,attention_mask=1x128")
fi

cargo build --quiet --release --example onnx-speed
if [[ " $runtimes " == *" candle-onnx "* ]]; then
  CARGO_TARGET_DIR=target cargo build --quiet --release --manifest-path scripts/candle-onnx-speed/Cargo.toml
fi
python=.cache/onnx-venv/bin/python

for spec in "${models[@]}"; do
  model="${spec%%:*}"
  shapes=()
  if [[ "$spec" == *:* ]]; then IFS=, read -r -a shapes <<<"${spec#*:}"; fi
  for t in $threads_list; do
    for b in $batches; do
      for r in $runtimes; do
        case "$r" in
          inferbench) RAYON_NUM_THREADS=$t target/release/examples/onnx-speed "$model" "$b" "$iters" "${shapes[@]}" ;;
          candle-onnx) RAYON_NUM_THREADS=$t target/release/candle-onnx-speed "$model" "$b" "$iters" "${shapes[@]}" ;;
          onnxruntime) "$python" scripts/onnx-speed.py "$model" "$b" "$t" "$iters" "${shapes[@]}" ;;
        esac
      done
    done
  done
done
