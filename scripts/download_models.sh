#!/usr/bin/env bash
# Real weights for users with internet (make download-models).
#   YOLOv8n: Ultralytics' official release, exported to ONNX with a dynamic batch axis.
#   OSNet x0_25: torchreid's ImageNet/MSMT17 weights, exported with the same signature
#   as the offline build (input images [N,3,256,128], output features [N,512]).
# Then each is added as a new model version through the versioning command, which
# validates it against the repository's config first.
# Offline machines: `make models` builds placeholder-weight models instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! [ -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "download-models: no $PY: run 'make download-models' (it runs 'make setup' first: .venv and the pinned packages)" >&2
  exit 2
fi
OUT=data/models
mkdir -p "$OUT"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo "== YOLOv8n (Ultralytics) =="
"$PY" -m pip install -q "ultralytics>=8.3,<8.4" "numpy==1.26.4"
"$PY" - "$OUT" <<'PY'
import sys, shutil
from ultralytics import YOLO
out = sys.argv[1]
m = YOLO("yolov8n.pt")                       # downloads the official weights
path = m.export(format="onnx", dynamic=True, opset=17, simplify=True, imgsz=640)
shutil.move(path, f"{out}/yolov8n_retail.onnx")
print("exported", f"{out}/yolov8n_retail.onnx")
PY

echo "== OSNet x0_25 (torchreid) =="
"$PY" -m pip install -q gdown "numpy==1.26.4"
URL=${OSNET_URL:-https://drive.google.com/uc?id=1rb8UN5ZzPKRc_xvtHlyDh-cSz88YX9hs}
"$PY" -m gdown -q -O "$tmp/osnet_x0_25.pth" "$URL"
"$PY" - "$tmp/osnet_x0_25.pth" "$OUT/osnet_x0_25.onnx" <<'PY'
import sys, torch
from modelops.architectures import OSNet
state = torch.load(sys.argv[1], map_location="cpu")
state = state.get("state_dict", state)
model = OSNet()
# torchreid names -> ours: same order of parameters; map by position over matching shapes
ours = model.state_dict()
theirs = [(k, v) for k, v in state.items() if not k.startswith("classifier")]
assert len(theirs) == len(ours), f"parameter count differs: {len(theirs)} vs {len(ours)}"
model.load_state_dict({k: v for (k, _), (_, v) in zip(ours.items(), theirs)})
model.eval()
torch.onnx.export(model, torch.zeros(1, 3, 256, 128), sys.argv[2], dynamo=False, opset_version=17,
                  input_names=["images"], output_names=["features"],
                  dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
print("exported", sys.argv[2])
PY

"$PY" -m modelops.model_repo add --model yolov8n --onnx "$OUT/yolov8n_retail.onnx" --source "ultralytics yolov8n.pt" --precision fp32 --update-labels
"$PY" -m modelops.model_repo add --model osnet_x0_25 --onnx "$OUT/osnet_x0_25.onnx" --source "torchreid osnet_x0_25 imagenet" --precision fp32
echo "done: load the new versions with python -m modelops.model_repo load --model yolov8n (explicit mode) or restart Triton"
