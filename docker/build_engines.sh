#!/usr/bin/env bash
# Build model.plan next to every model.onnx of the TensorRT models that lacks one (or whose
# ONNX is newer). Precision from TRT_PRECISION (fp16 default; int8 needs TRT_CALIBRATION_DIR).
# Runs inside the `engines` compose service; idempotent, so `docker compose up` is cheap
# after the first build.
#
# The converter reads <repo>/<model>/config.pbtxt (--model/--repo): the batch profile reaches
# its max_batch_size (Triton refuses an engine that stops below it) and dynamic non-batch
# dims of the ONNX (Ultralytics dynamic=True exports: [batch, 3, height, width]) come from
# its input dims. Timing and INT8 calibration caches live beside the engine
# (model.plan.timing, model.plan.calib) and make rebuilds fast.
set -euo pipefail
REPO=${MODEL_REPOSITORY:-/models}
PRECISION=${TRT_PRECISION:-fp16}
CALIB=${TRT_CALIBRATION_DIR:-}
PY=${PYTHON:-python3}
built=0
for model in yolov8n osnet_x0_25; do
  for onnx in "$REPO/$model"/[0-9]*/model.onnx; do
    [ -e "$onnx" ] || { echo "engines: no $REPO/$model/<version>/model.onnx: run 'make models' or 'make download-models' first" >&2; exit 1; }
    plan="$(dirname "$onnx")/model.plan"
    if [ -e "$plan" ] && [ "$plan" -nt "$onnx" ]; then
      echo "engines: $plan is up to date"; continue
    fi
    args=(convert --input "$onnx" --output "$plan.tmp" --precision "$PRECISION"
          --model "$model" --repo "$REPO" --timing-cache "$plan.timing")
    if [ "$PRECISION" = int8 ]; then
      args+=(--calibration-cache "$plan.calib")
      [ -n "$CALIB" ] && args+=(--calibration-dir "$CALIB")
    fi
    echo "engines: building $plan ($PRECISION)"
    "$PY" -m modelops.tensorrt_engine "${args[@]}"
    mv -f "$plan.tmp" "$plan"   # Triton never sees a half-written engine
    [ -e "$plan.tmp.json" ] && mv -f "$plan.tmp.json" "$plan.json"
    built=$((built + 1))
  done
done
echo "engines: $built built"
