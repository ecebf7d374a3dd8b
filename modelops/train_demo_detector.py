"""Train the offline demo detector: YOLOv8n on frames rendered by the store simulator.

No pretrained YOLOv8 weights can be downloaded offline, and an untrained detector makes
the demo's analytics noise. The simulator renders cameras and knows every box, so a
YOLOv8n trained on its frames makes the offline path real and checkable end to end.

Steps (``all`` runs them in order; each can run alone):

  dataset   render labelled frames (person, cart) from several cameras, seeds and
            lighting conditions; cut 320x320 tiles at native scale (the served camera
            frames are 640x360, letterboxed at scale 1, so objects keep their pixel size)
  train     Ultralytics YOLOv8n from scratch (``yolov8n.yaml``), CPU or GPU
  export    ONNX, dynamic batch, 640x640 input, opset 17: the production signature
  pack      fp16 weights (Cast nodes to fp32 at load: ONNX Runtime CPU runs fp32) ->
            data/models/demo/yolov8n_demo.onnx (~6 MB)
  evaluate  mAP50 / mAP50-95 on held-out rendered full frames through the *served*
            path (serving.preprocess + ONNX Runtime + serving.postprocess)
  card      data/models/demo/MODEL_CARD.md

The heavy training dependencies live in their own environment, not the runtime's::

    python3 -m venv .venv-train
    .venv-train/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics onnx
    .venv/bin/python scripts/train_demo_detector.py all [--epochs 15] [--tiles 1800]
    # a reproduction beside the shipped model:
    .venv/bin/python scripts/train_demo_detector.py all --work .run/retrain --out .run/retrain/model

``make models`` installs the packed model as the newest ``yolov8n`` version through
``modelops.model_repo`` (``scripts/build_models.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK = REPO_ROOT / "data" / "demo_train"
OUT_DIR = REPO_ROOT / "data" / "models" / "demo"
PACKED = OUT_DIR / "yolov8n_demo.onnx"
CARD = OUT_DIR / "MODEL_CARD.md"
CLASSES = ("person", "cart")
TILE = 320


# ----------------------------------------------------------------------------- dataset

def _tiles(frame: np.ndarray, xyxy: np.ndarray, cls: np.ndarray, rng, n: int):
    """Random TILE x TILE crops at native scale; boxes clipped, kept if >= 45 % visible."""
    h, w = frame.shape[:2]
    for _ in range(n):
        x0 = int(rng.integers(0, max(w - TILE, 0) + 1))
        y0 = int(rng.integers(0, max(h - TILE, 0) + 1))
        tile = np.full((TILE, TILE, 3), 114, np.uint8)
        crop = frame[y0:y0 + TILE, x0:x0 + TILE]
        tile[:crop.shape[0], :crop.shape[1]] = crop
        b = xyxy - np.array([x0, y0, x0, y0], np.float32)
        clipped = np.clip(b, 0, [crop.shape[1], crop.shape[0], crop.shape[1], crop.shape[0]])
        area = np.prod(b[:, 2:] - b[:, :2], 1)
        vis = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), 1) / np.maximum(area, 1e-6)
        keep = (vis >= 0.45) & ((clipped[:, 2] - clipped[:, 0]) >= 3) & ((clipped[:, 3] - clipped[:, 1]) >= 3)
        yield tile, clipped[keep], cls[keep]


def _yolo_label(xyxy: np.ndarray, cls, width: int, height: int) -> str:
    """YOLO txt: class cx cy w h, normalised by the image size."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    c = (xyxy[:, :2] + xyxy[:, 2:]) / 2 / [width, height]
    wh = (xyxy[:, 2:] - xyxy[:, :2]) / [width, height]
    return "".join(f"{k} {a:.6f} {b:.6f} {w:.6f} {h:.6f}\n" for k, (a, b), (w, h) in zip(cls, c, wh))


def make_dataset(tiles: int, val_frames: int, seed: int) -> dict:
    import cv2

    from simulator.render import training_frames

    for split in ("train", "val"):
        for kind in ("images", "labels"):
            d = WORK / "ds" / kind / split
            d.mkdir(parents=True, exist_ok=True)
            for f in d.iterdir():
                f.unlink()
    rng = np.random.default_rng(seed)
    n_train = n_boxes = 0
    per_frame = 3
    for i, (frame, xyxy, cls) in enumerate(training_frames(count=(tiles + per_frame - 1) // per_frame, seed=seed)):
        for j, (tile, b, c) in enumerate(_tiles(frame, np.asarray(xyxy, np.float32), np.asarray(cls, np.int64), rng, per_frame)):
            name = f"{i:06d}_{j}"
            cv2.imwrite(str(WORK / "ds" / "images" / "train" / f"{name}.jpg"), tile, [cv2.IMWRITE_JPEG_QUALITY, 92])
            (WORK / "ds" / "labels" / "train" / f"{name}.txt").write_text(_yolo_label(b, c, TILE, TILE))
            n_train += 1
            n_boxes += len(b)
    # held-out: full 640x360 frames from another seed, as the camera sends them
    held = []
    for i, (frame, xyxy, cls) in enumerate(training_frames(count=val_frames, seed=seed + 1000)):
        name = f"val_{i:05d}"
        cv2.imwrite(str(WORK / "ds" / "images" / "val" / f"{name}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        held.append({"image": f"{name}.jpg", "xyxy": np.asarray(xyxy, float).tolist(), "cls": np.asarray(cls, int).tolist()})
    (WORK / "heldout.json").write_text(json.dumps(held))
    _rewrite_val_labels(held)
    (WORK / "ds.yaml").write_text(f"path: {WORK / 'ds'}\ntrain: images/train\nval: images/val\nnames:\n"
                                  + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASSES)))
    info = {"train_tiles": n_train, "train_boxes": n_boxes, "val_frames": len(held), "seed": seed}
    (WORK / "dataset.json").write_text(json.dumps(info))
    print(f"dataset: {info}")
    return info


def _rewrite_val_labels(held: list[dict]) -> None:
    """YOLO labels for the full validation frames (normalised by each frame's own size)."""
    import cv2

    for h in held:
        ih, iw = cv2.imread(str(WORK / "ds" / "images" / "val" / h["image"])).shape[:2]
        (WORK / "ds" / "labels" / "val" / h["image"].replace(".jpg", ".txt")).write_text(
            _yolo_label(h["xyxy"], h["cls"], iw, ih))


# ----------------------------------------------------------------------------- train / export (train venv)

TRAIN_CODE = """
import json, sys, time
from ultralytics import YOLO
a = json.loads(sys.argv[1])
t0 = time.time()
m = YOLO("yolov8n.yaml")
m.train(data=a["data"], epochs=a["epochs"], imgsz=a["imgsz"], batch=a["batch"], device=a["device"], workers=a["workers"],
        seed=a["seed"], deterministic=True, plots=False, amp=False, pretrained=False, project=a["project"], name="run",
        exist_ok=True, verbose=False, val=True, patience=0, close_mosaic=max(1, a["epochs"] // 5), degrees=0.0,
        fliplr=0.5, hsv_v=0.5, hsv_s=0.6, scale=0.35, mosaic=1.0, cache=True)
best = a["project"] + "/run/weights/best.pt"
m = YOLO(best)
onnx_path = m.export(format="onnx", imgsz=640, dynamic=True, opset=17, simplify=False)
print(json.dumps({"onnx": str(onnx_path), "train_seconds": time.time() - t0}))
"""


def train_and_export(python: str, epochs: int, imgsz: int, batch: int, device: str, seed: int) -> dict:
    args = {"data": str(WORK / "ds.yaml"), "epochs": epochs, "imgsz": imgsz, "batch": batch, "device": device,
            "workers": 0 if device == "cpu" else 4, "seed": seed, "project": str(WORK / "runs")}
    env = dict(os.environ, YOLO_OFFLINE="1")
    p = subprocess.run([python, "-c", TRAIN_CODE, json.dumps(args)], cwd=WORK, env=env, text=True,
                       stdout=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"training failed (exit {p.returncode}); is {python} an environment with ultralytics?")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result.update(epochs=epochs, imgsz=imgsz, batch=batch, device=device)
    (WORK / "train.json").write_text(json.dumps(result))
    return result


# ----------------------------------------------------------------------------- pack / evaluate / card

def pack_fp16(src: Path, dst: Path) -> int:
    """Store float weights as fp16 with a Cast to fp32 in the graph: half the bytes, fp32 compute."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    casts, halves = [], []
    for init in list(g.initializer):
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) > 16:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
            halves.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"))
            g.initializer.remove(init)
    g.initializer.extend(halves)
    for i, c in enumerate(casts):
        g.node.insert(i, c)
    names = next((p.value for p in m.metadata_props if p.key == "names"), None)
    if names is None or "person" not in names:
        raise SystemExit(f"{src}: ONNX metadata 'names' missing or without 'person': {names!r}")
    m.metadata_props.add(key="source", value="demo: YOLOv8n trained on the store simulator (see MODEL_CARD.md)")
    onnx.checker.check_model(m)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return dst.stat().st_size


def _ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (all-point interpolation, as COCO/VOC2010+)."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([1.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    i = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[i + 1] - r[i]) * p[i + 1]))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


COCO_IOU_THRESHOLDS = np.arange(0.5, 0.96, 0.05)


def mean_ap(preds: list[tuple], truths: list[tuple], class_id: int, thresholds=COCO_IOU_THRESHOLDS) -> list[float]:
    """AP per IoU threshold for one class. preds/truths: per image (xyxy, scores, cls) / (xyxy, cls)."""
    out = []
    n_gt = sum(int((t[1] == class_id).sum()) for t in truths)
    for thr in thresholds:
        scores, tp = [], []
        for (pb, ps, pc), (tb, tc) in zip(preds, truths):
            pm, tm = pc == class_id, tc == class_id
            pb, ps, tb = pb[pm], ps[pm], tb[tm]
            order = np.argsort(-ps)
            used = np.zeros(len(tb), bool)
            ious = _iou(pb[order], tb) if len(tb) and len(pb) else np.zeros((len(pb), 0))
            for k, i in enumerate(order):
                scores.append(ps[i])
                j = int(np.argmax(ious[k])) if ious.shape[1] else -1
                hit = j >= 0 and ious[k, j] >= thr and not used[j]
                if hit:
                    used[j] = True
                tp.append(hit)
        if n_gt == 0:
            out.append(float("nan"))
            continue
        order = np.argsort(-np.asarray(scores))
        tp_c = np.cumsum(np.asarray(tp, float)[order])
        recall = tp_c / n_gt
        precision = tp_c / np.arange(1, len(tp_c) + 1)
        out.append(_ap(recall, precision) if len(tp_c) else 0.0)
    return out


def evaluate(model_path: Path) -> dict:
    """mAP on the held-out full frames through the served pre/post-processing."""
    import cv2
    import onnxruntime as ort

    from serving.postprocess import NmsConfig, decode_yolov8, to_original
    from serving.preprocess import letterbox

    held = json.loads((WORK / "heldout.json").read_text())
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    nms = NmsConfig(conf_threshold=0.001, max_detections=300)  # mAP needs the full PR curve
    preds, truths = [], []
    t0 = time.perf_counter()
    for h in held:
        img = cv2.imread(str(WORK / "ds" / "images" / "val" / h["image"]))
        x, lb = letterbox(img)
        raw = sess.run(None, {"images": x[None]})[0][0]
        b, s, c = decode_yolov8(raw, nms)
        preds.append((to_original(b, lb), s, c))
        truths.append((np.asarray(h["xyxy"], np.float32).reshape(-1, 4), np.asarray(h["cls"], np.int64)))
    ms = (time.perf_counter() - t0) / max(len(held), 1) * 1000
    result = {"frames": len(held), "ms_per_frame": round(ms, 1)}
    for k, name in enumerate(CLASSES):
        aps = mean_ap(preds, truths, k)
        result[name] = {"mAP50": round(aps[0], 4), "mAP50-95": round(float(np.nanmean(aps)), 4),
                        "instances": int(sum((t[1] == k).sum() for t in truths))}
    print(f"evaluate: {result}")
    (WORK / "eval.json").write_text(json.dumps(result))
    return result


def write_card(size: int) -> None:
    ds = json.loads((WORK / "dataset.json").read_text())
    tr = json.loads((WORK / "train.json").read_text())
    ev = json.loads((WORK / "eval.json").read_text())
    rows = "\n".join(f"| {n} | {ev[n]['instances']} | {ev[n]['mAP50']:.3f} | {ev[n]['mAP50-95']:.3f} |" for n in CLASSES)
    CARD.write_text(f"""# Model card: YOLOv8n demo detector (store simulator)

- **What**: YOLOv8n (Ultralytics `yolov8n.yaml`, trained from scratch: no pretrained weights offline),
  classes {list(CLASSES)}; ONNX opset 17, input `images` [N,3,H,W] (dynamic; served letterboxed to 640x640),
  output `output0` [N,6,anchors] (8400 at 640x640);
  weights stored fp16 (Cast to fp32 in the graph), {size / 1e6:.1f} MB.
- **Licence**: trained with Ultralytics (AGPL-3.0; the ONNX metadata says so). The weights are
  a product of that training code, so treat them as AGPL-3.0, not under the project's Apache-2.0.
- **For**: the offline demo and tests only. It knows the simulator's rendered people and carts,
  not real cameras. Real deployments use `scripts/download_models.sh` or their own fine-tuned model.
- **Data**: {ds['train_tiles']} training tiles ({TILE}x{TILE}, native scale) with {ds['train_boxes']} boxes,
  rendered by `simulator/render.py` (seed {ds['seed']}: several cameras, lighting, occlusion);
  held-out: {ds['val_frames']} full 640x360 frames from seed {ds['seed'] + 1000}.
- **Training**: {tr['epochs']} epochs at imgsz {tr['imgsz']}, batch {tr['batch']}, device `{tr['device']}`,
  {tr['train_seconds'] / 60:.1f} min wall clock.
- **Reproduce**: `.venv/bin/python scripts/train_demo_detector.py all --tiles {ds['train_tiles']} --val-frames {ds['val_frames']} --epochs {tr['epochs']} --batch {tr['batch']} --seed {ds['seed']}`.

## Accuracy on held-out rendered frames (served pre/post-processing, ONNX Runtime)

| class | instances | mAP50 | mAP50-95 |
|---|---|---|---|
{rows}

CPU time per frame in this evaluation: {ev['ms_per_frame']} ms (2 cores).
""")
    print(f"wrote {CARD}")


def _set_dirs(work: Path, out: Path) -> None:
    global WORK, OUT_DIR, PACKED, CARD
    WORK, OUT_DIR = work.resolve(), out.resolve()
    PACKED, CARD = OUT_DIR / "yolov8n_demo.onnx", OUT_DIR / "MODEL_CARD.md"
    OUT_DIR.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["all", "dataset", "train", "pack", "evaluate", "card"])
    ap.add_argument("--tiles", type=int, default=1800)
    ap.add_argument("--val-frames", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--imgsz", type=int, default=TILE)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-python", default=str(REPO_ROOT / ".venv-train" / "bin" / "python"))
    ap.add_argument("--work", type=Path, default=WORK, help="dataset, runs and reports")
    ap.add_argument("--out", type=Path, default=OUT_DIR,
                    help="packed model + card (another folder to re-train without replacing the shipped one)")
    a = ap.parse_args(argv)
    _set_dirs(a.work, a.out)
    steps = ["dataset", "train", "pack", "evaluate", "card"] if a.step == "all" else [a.step]
    if "dataset" in steps:
        make_dataset(a.tiles, a.val_frames, a.seed)
    if "train" in steps:
        r = train_and_export(a.train_python, a.epochs, a.imgsz, a.batch, a.device, a.seed)
        print(f"trained in {r['train_seconds'] / 60:.1f} min -> {r['onnx']}")
    if "pack" in steps:
        onnx_path = json.loads((WORK / "train.json").read_text())["onnx"]
        print(f"packed {pack_fp16(Path(onnx_path), PACKED) / 1e6:.1f} MB -> {PACKED}")
    if "evaluate" in steps:
        evaluate(PACKED)
    if "card" in steps:
        write_card(PACKED.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
