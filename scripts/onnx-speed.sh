#!/usr/bin/env bash
# Speed side by side on the same ONNX files: inferbench's compiled plan
# (examples/onnx-speed.rs), candle_onnx::simple_eval (scripts/candle-onnx-speed, a separate
# cargo project with its own target directory, target/candle-onnx-speed; it needs a system
# protoc to build) and ONNX Runtime (scripts/onnx-speed.py), at 1 and 2 threads, batch 1
# and 32. Run on a quiet machine:
#
#   scripts/onnx-speed.sh [MODEL.onnx[:name=1x128,...] ...]    # default: .cache/onnx-models
#
# Prints one JSON line per measurement as it goes (to stderr, and all of them to
# $OUT_JSON, default target/onnx-speed.jsonl), then a markdown table on stdout, ready to
# paste: one row per model, threads and batch, with the load average read after the row.
# A runtime that cannot run a model gets its error in the table instead of a time.
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
out_json="${OUT_JSON:-target/onnx-speed.jsonl}"
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(.cache/onnx-models/resnet18.onnx .cache/onnx-models/mobilenet_v3_small.onnx
    ".cache/onnx-models/all_minilm_l6_v2.onnx:input_ids=1x128,attention_mask=1x128"
    ".cache/onnx-models/all_minilm_l6_v2_opset14.onnx:input_ids=1x128,attention_mask=1x128")
fi

if [[ " $runtimes " == *" inferbench "* ]]; then
  cargo build --quiet --release --example onnx-speed
fi
candle_onnx=target/candle-onnx-speed/release/candle-onnx-speed
if [[ " $runtimes " == *" candle-onnx "* ]]; then
  # Its own target directory: candle-onnx is not a dependency of inferbench.
  CARGO_TARGET_DIR=target/candle-onnx-speed cargo build --quiet --release \
    --manifest-path scripts/candle-onnx-speed/Cargo.toml
fi
python=.cache/onnx-venv/bin/python
mkdir -p "$(dirname "$out_json")"
: >"$out_json"

# Runs one measurement; on failure records the runtime's last error line instead.
measure() {
  local runtime="$1" model="$2" batch="$3" threads="$4"
  shift 4
  local err
  err=$(mktemp)
  if line=$("$@" 2>"$err"); then
    echo "$line"
  else
    "$python" -c 'import json, sys
lines = [l.strip() for l in open(sys.argv[5]) if l.strip()]
print(json.dumps({"runtime": sys.argv[1], "model": sys.argv[2], "batch": int(sys.argv[3]),
                  "threads": sys.argv[4], "error": lines[-1] if lines else "failed"}))' \
      "$runtime" "$model" "$batch" "$threads" "$err"
  fi
  rm -f "$err"
}

for spec in "${models[@]}"; do
  model="${spec%%:*}"
  shapes=()
  if [[ "$spec" == *:* ]]; then IFS=, read -r -a shapes <<<"${spec#*:}"; fi
  for t in $threads_list; do
    for b in $batches; do
      for r in $runtimes; do
        case "$r" in
          inferbench) line=$(RAYON_NUM_THREADS=$t measure inferbench "$model" "$b" "$t" \
            target/release/examples/onnx-speed "$model" "$b" "$iters" "${shapes[@]}") ;;
          candle-onnx) line=$(RAYON_NUM_THREADS=$t measure candle-onnx "$model" "$b" "$t" \
            "$candle_onnx" "$model" "$b" "$iters" "${shapes[@]}") ;;
          onnxruntime) line=$(measure onnxruntime "$model" "$b" "$t" \
            "$python" scripts/onnx-speed.py "$model" "$b" "$t" "$iters" "${shapes[@]}") ;;
          *) echo "unknown runtime $r (inferbench, candle-onnx, onnxruntime)" >&2; exit 2 ;;
        esac
        # The load average after the cell, to judge how quiet the machine was.
        line="${line%\}}, \"loadavg\": $(cut -d' ' -f1 /proc/loadavg)}"
        echo "$line" >&2
        echo "$line" >>"$out_json"
      done
    done
  done
done

"$python" scripts/onnx-speed-table.py "$out_json"
