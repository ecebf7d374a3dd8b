#!/usr/bin/env bash
# Build model.plan next to every model.onnx of the TensorRT models, unless the plan's build
# record (model.plan.json) says it was built from the same ONNX (sha256), precision, TensorRT
# version, GPU and batch profile as asked now (python -m modelops.engine_sidecar check): a new
# TRT_PRECISION, image (TensorRT) or GPU rebuilds; an unchanged request does not.
# Runs inside the `engines` compose service; idempotent, so `docker compose up` is cheap
# after the first build.
#
# Precision from TRT_PRECISION (fp16 default). int8 is that one setting: it calibrates on the
# camera frames in TRT_CALIBRATION_DIR (default /calibration, the compose mount of the host's
# ./data/calibration); OSNet on person crops (DIR/crops/ if present, else cut from the frames
# by the repository's detector: modelops/calibration_crops.py). An existing model.plan.calib
# (INT8 scales) is reused without frames.
#
# The converter reads <repo>/<model>/config.pbtxt (--model/--repo): the batch profile reaches
# its max_batch_size (Triton refuses an engine that stops below it) and dynamic non-batch
# dims of the ONNX (Ultralytics dynamic=True exports: [batch, 3, height, width]) come from
# its input dims. Timing and INT8 calibration caches live beside the engine
# (model.plan.timing, model.plan.calib) and make rebuilds fast.
set -euo pipefail
REPO=${MODEL_REPOSITORY:-/models}
PRECISION=${TRT_PRECISION:-fp16}
CALIB=${TRT_CALIBRATION_DIR:-/calibration}
PY=${PYTHON:-python3}
built=0
has_images() { [ -d "$1" ] && [ -n "$(find "$1" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.bmp' \) -print -quit)" ]; }
# yolov8n first: OSNet's int8 calibration crops are cut by the detector's ONNX
for model in yolov8n osnet_x0_25; do
  for onnx in "$REPO/$model"/[0-9]*/model.onnx; do
    [ -e "$onnx" ] || { echo "engines: no $REPO/$model/<version>/model.onnx: run 'make models' or 'make download-models' first" >&2; exit 1; }
    plan="$(dirname "$onnx")/model.plan"
    if why=$("$PY" -m modelops.engine_sidecar check --plan "$plan" --onnx "$onnx" --precision "$PRECISION" \
               --model "$model" --repo "$REPO"); then
      echo "engines: $plan is up to date ($PRECISION)"; continue
    fi
    args=(convert --input "$onnx" --output "$plan.tmp" --precision "$PRECISION"
          --model "$model" --repo "$REPO" --timing-cache "$plan.timing")
    if [ "$PRECISION" = int8 ]; then
      args+=(--calibration-cache "$plan.calib")
      if has_images "$CALIB"; then
        args+=(--calibration-dir "$CALIB")
      elif [ ! -s "$plan.calib" ]; then
        echo "engines: TRT_PRECISION=int8 needs camera frames (.jpg/.png) in $CALIB (in compose: the host's ./data/calibration); it has none and there is no $plan.calib to reuse" >&2
        exit 2
      fi
    fi
    echo "engines: building $plan ($PRECISION): ${why#stale: }"
    "$PY" -m modelops.tensorrt_engine "${args[@]}"
    mv -f "$plan.tmp" "$plan"   # Triton never sees a half-written engine
    [ -e "$plan.tmp.json" ] && mv -f "$plan.tmp.json" "$plan.json"
    built=$((built + 1))
  done
done
echo "engines: $built built"
