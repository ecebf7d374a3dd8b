#!/usr/bin/env bash
# Build model.plan next to every model.onnx of the TensorRT models that lacks one (or whose
# ONNX is newer). Precision from TRT_PRECISION (fp16 default; int8 needs TRT_CALIBRATION_DIR).
# Runs inside the `engines` compose service; idempotent, so `docker compose up` is cheap
# after the first build.
set -euo pipefail
REPO=${MODEL_REPOSITORY:-/models}
PRECISION=${TRT_PRECISION:-fp16}
CALIB=${TRT_CALIBRATION_DIR:-}
built=0
for model in yolov8n osnet_x0_25; do
  for onnx in "$REPO/$model"/[0-9]*/model.onnx; do
    [ -e "$onnx" ] || { echo "engines: no $REPO/$model/<version>/model.onnx: run 'make models' or 'make download-models' first" >&2; exit 1; }
    plan="$(dirname "$onnx")/model.plan"
    if [ -e "$plan" ] && [ "$plan" -nt "$onnx" ]; then
      echo "engines: $plan is up to date"; continue
    fi
    # the engine's batch profile must reach the config's max_batch_size (dynamic batching up to it)
    maxb=$(sed -nE 's/^max_batch_size:[[:space:]]*([0-9]+).*/\1/p' "$REPO/$model/config.pbtxt" | head -1)
    args=(convert --input "$onnx" --output "$plan.tmp" --precision "$PRECISION" --max-batch "${maxb:-8}")
    [ -n "$CALIB" ] && args+=(--calibration-dir "$CALIB")
    echo "engines: building $plan ($PRECISION)"
    python3 -m serving.tensorrt_engine "${args[@]}"
    mv -f "$plan.tmp" "$plan"   # Triton never sees a half-written engine
    built=$((built + 1))
  done
done
echo "engines: $built built"
