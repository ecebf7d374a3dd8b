"""``python -m benchmarks.cpu_runtime``: which CPU runtime serves the detector fastest at equal accuracy.

The same ONNX (the demo detector, NMS appended in the graph as served: ``serving.nms_graph``)
at the camera's aspect (640x360 frames -> 640x384 input), one frame per call, through:

- ONNX Runtime, fp32: 1 and 2 intra-op threads; graph optimisation basic / extended / all;
- ONNX Runtime, int8: static QDQ quantisation (per-channel weights, activations calibrated
  on rendered frames from another seed than the held-out ones);
- OpenVINO: f32 and bf16 (AVX-512 BF16 on these machines), 1 and 2 threads; and the int8
  QDQ graph.

For each: mean ms per frame (``--runs`` timed calls after warm-up, one process, one at a
time) and mAP50 / mAP50-95 on held-out rendered frames (the demo detector's model-card set:
``simulator.render.training_frames`` with seed 1000, JPEG q92, through the served letterbox
and NMS). Writes its section of docs/benchmarks.md; docs/performance.md says which one ships.

    python -m benchmarks.cpu_runtime [--frames 120] [--runs 30] [--model data/models/demo/yolov8n_demo.onnx]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx

from benchmarks._report import append_section
from modelops.quantize import CALIBRATION_SEED, calibration_inputs, quantise_detector, rendered_frames
from modelops.train_demo_detector import CLASSES, mean_ap
from serving.nms_graph import NmsSpec, append_nms, detections
from serving.postprocess import to_original
from serving.preprocess import YOLO_STRIDE, letterbox
from serving.runtimes import Runtime, load_runner

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DETECTOR = REPO_ROOT / "data" / "models" / "demo" / "yolov8n_demo.onnx"
HELDOUT_SEED = 1000  # modelops/train_demo_detector.py: held-out frames are seed + 1000 with seed 0


def evaluate(runner, frames) -> dict:
    preds, truths = [], []
    for img, xyxy, cls in frames:
        x, lb = letterbox(img, stride=YOLO_STRIDE)
        out = runner.run({"images": x[None]})
        b, s, c = detections(out["num_dets"], out["det_boxes"], out["det_scores"], out["det_classes"])
        preds.append((to_original(b, lb), s, c))
        truths.append((xyxy, cls))
    res = {}
    for k, name in enumerate(CLASSES):
        aps = mean_ap(preds, truths, k)
        res[name] = (aps[0], float(np.nanmean(aps)))
    return res


def time_ms(runner, x: np.ndarray, runs: int) -> float:
    for _ in range(3):
        runner.run({"images": x})
    t0 = time.perf_counter()
    for _ in range(runs):
        runner.run({"images": x})
    return (time.perf_counter() - t0) / runs * 1000


def candidates() -> list[tuple[str, str, Runtime]]:
    """(label, graph: fp32 | int8, runtime)."""
    out = [("ONNX Runtime fp32", "fp32", Runtime("onnxruntime", threads=t, opt_level=o))
           for t in (1, 2) for o in ("basic", "extended", "all")]
    out += [("ONNX Runtime int8 QDQ", "int8", Runtime("onnxruntime", threads=t)) for t in (1, 2)]
    out += [(f"OpenVINO {p}", "fp32", Runtime("openvino", threads=t, precision=p)) for p in ("f32", "bf16") for t in (1, 2)]
    out += [("OpenVINO int8 QDQ", "int8", Runtime("openvino", threads=t)) for t in (1, 2)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEMO_DETECTOR)
    ap.add_argument("--frames", type=int, default=120, help="held-out frames for mAP")
    ap.add_argument("--calibration", type=int, default=64, help="frames for int8 calibration")
    ap.add_argument("--runs", type=int, default=30, help="timed calls per candidate")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)

    spec = NmsSpec(score_threshold=0.001, max_detections=300)  # mAP needs the whole PR curve
    base = onnx.load(args.model)
    held = rendered_frames(args.frames, HELDOUT_SEED)
    calib = calibration_inputs(args.calibration)
    x = letterbox(held[0][0], stride=YOLO_STRIDE)[0][None]
    graphs = {"fp32": append_nms(base, spec).SerializeToString(),
              "int8": append_nms(quantise_detector(base, calib), spec).SerializeToString()}
    rows = []
    for label, graph, rt in candidates():
        runner = load_runner(graphs[graph], rt)
        ms = time_ms(runner, x, args.runs)
        acc = evaluate(runner, held)
        rows.append((label, rt, ms, acc))
        print(f"{rt.label():45s} [{graph}] {ms:7.1f} ms  person mAP50 {acc['person'][0]:.4f}  "
              f"mAP50-95 {acc['person'][1]:.4f}  cart mAP50 {acc['cart'][0]:.4f}", flush=True)

    ref = rows[[r[1] for r in rows].index(Runtime("onnxruntime", threads=1, opt_level="all"))]
    table = ["| runtime | graph | threads | ms / frame | vs ORT fp32 1 thread | person mAP50 | person mAP50-95 | "
             "cart mAP50 |", "|---|---|---|---|---|---|---|---|"]
    for label, rt, ms, acc in rows:
        opt = f" (opt {rt.opt_level})" if rt.name == "onnxruntime" else ""
        table.append(f"| {label}{opt} | {'int8 QDQ' if 'int8' in label else 'fp32'} | {rt.threads} | {ms:.1f} | "
                     f"{ref[2] / ms:.2f}x | {acc['person'][0]:.4f} | {acc['person'][1]:.4f} | {acc['cart'][0]:.4f} |")
    notes = (f"`python -m benchmarks.cpu_runtime`: the demo detector ({args.model.name}) with NMS in the graph, "
             f"input 1x3x384x640 (640x360 frames at the camera's aspect), {args.runs} timed calls each, one call "
             f"at a time; mAP on {len(held)} held-out rendered frames (seed {HELDOUT_SEED}, JPEG q92). int8: "
             f"static QDQ, MinMax calibration on {len(calib)} frames of seed {CALIBRATION_SEED}.")
    print("\n".join(table))
    if not args.no_report:
        append_section("CPU runtime for the detector", "\n".join(table), notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
