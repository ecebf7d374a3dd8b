"""Peer pipeline: Ultralytics' own detect + track on the same ONNX, in-process, one stream.

Contract. Reads the JPEG files of --frames in sorted name order as one video stream, decodes
each with cv2.imread and calls YOLO(model, task="detect").track(frame, persist=True, ...) on
it, as a camera client using Ultralytics directly would. Decode is part of the timed pipeline
(the Triton path's client decodes its frames too). Writes one JSON file (--out):

    ultralytics, torch, onnxruntime, numpy, cv2   versions that ran
    frames, wall_s, cpu_s, fps, cpu_ms_per_frame  the timed pass (below); cpu_s is
                                                  time.process_time: all threads of the process
    cold_start_s                                  YOLO() + the first track() (session, tracker)
    input_shape, input_shapes                     the tensor shape ONNX Runtime was really fed
                                                  (recorded at session.run): for a dynamic ONNX
                                                  Ultralytics letterboxes 640x360 to 1x3x384x640,
                                                  not 640x640
    threads                                       ORT intra-op (0 = ORT default: one per
                                                  physical core), torch, cv2, OpenBLAS threads
    boxes        per frame: every detection after NMS, before the tracker (all classes),
                 [x1, y1, x2, y2, score, class] in original-image pixels
    track_boxes  per frame: what track() returned, same layout. ByteTrack outputs only
                 confirmed tracks, at their Kalman-filtered box, so this is not `boxes`
    track_ids    per frame: ids aligned with track_boxes, or null when the tracker gave none

Timing. A warm-up pass runs track() on the first --warmup frames (>= 1: this is where
Ultralytics builds its predictor, the ORT session and the tracker). Then the tracker is reset
(BYTETracker.reset: no tracks, ids from 1) and the timed pass runs track() over ALL frames
from the first, so the detections and ids cover every frame and the stream starts fresh
while the session stays warm. Timing the cold start would measure model loading, not
per-frame cost; it is reported apart as cold_start_s.

Run (from the repository root, after `make bench-peers-ultralytics`):

    .venv-ultra/bin/python benchmarks/peer_ultralytics.py --model data/models/demo/yolov8n_demo.onnx \
        --frames /tmp/frames --imgsz 640 --conf 0.25 --iou 0.45 --tracker bytetrack.yaml \
        --warmup 5 --out outputs/peer_ultralytics.json [--threads 2] [--blas-threads 1]

Why a separate venv (.venv-ultra): ultralytics needs torch + torchvision (its pre- and
post-processing and NMS run in torch even when the network runs in ONNX Runtime), which the
runtime venv does not carry. For the same reason this file imports no project module: only
the standard library, numpy, cv2 and ultralytics.

Threads. Defaults (no --threads) are Ultralytics' own: ORT's default intra-op pool (one
thread per physical core; Ultralytics passes no SessionOptions) and torch at
os.cpu_count() - 1 (its select_device sets that); it also sets cv2.setNumThreads(0).
--threads N rebuilds the ORT session with intra-op N (inter-op 1) after the first warm-up
frame; torch keeps Ultralytics' count (torch at 2 on 2 cores was slower: its OpenMP workers
spin between the small pre/post-processing ops and take the core ORT wants).
--blas-threads N sets OPENBLAS_NUM_THREADS before numpy loads: ByteTrack's per-frame numpy
linear algebra wakes OpenBLAS' worker threads, which then spin between frames. On 2 cores
that spinning thread took about as much CPU as the rest of the pipeline and cut fps by half
or more, so compare like for like: the "threads" entry of the result says what ran.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

# numpy, cv2 and ultralytics are imported in main(), after the arguments: --blas-threads has to
# be in the environment before numpy loads OpenBLAS.


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--model", required=True, help="detector .onnx")
    ap.add_argument("--frames", required=True, help="directory of .jpg/.jpeg files, one stream in sorted name order")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--tracker", default="bytetrack.yaml",
                    help="Ultralytics tracker config (its own default for track() is tracktrack.yaml)")
    ap.add_argument("--warmup", type=int, default=5, help="frames of the untimed warm-up pass (>= 1)")
    ap.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's, one per core)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS_NUM_THREADS for numpy (default: the environment's, else OpenBLAS' one per core)")
    ap.add_argument("--out", required=True, help="result JSON")
    args = ap.parse_args(argv)
    if args.warmup < 1:
        ap.error("--warmup must be >= 1 (the first track() call builds the session and the tracker)")
    for name in ("threads", "blas_threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def frame_paths(directory: str) -> list[Path]:
    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    if not paths:
        raise SystemExit(f"no .jpg/.jpeg files in {directory}")
    return paths


def rows(boxes) -> list[list[float]]:
    """Ultralytics Boxes -> [[x1, y1, x2, y2, score, class], ...] in original-image pixels."""
    import numpy as np

    if boxes is None or len(boxes) == 0:
        return []
    data = np.concatenate(
        [boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy()[:, None], boxes.cls.cpu().numpy()[:, None]], axis=1
    )
    return [[round(float(v), 2) for v in r[:4]] + [round(float(r[4]), 4), int(r[5])] for r in data]


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = frame_paths(args.frames)

    if args.blas_threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    # Never pip-install a missing requirement at run time (the venv's pins are the Makefile's;
    # an install mid-run would also land in the timing), and no connectivity probes or
    # telemetry (ultralytics checks "online" when imported).
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import cv2
    import numpy as np
    import onnxruntime as ort
    import torch
    import ultralytics
    from ultralytics import YOLO

    track_kw = dict(persist=True, imgsz=args.imgsz, conf=args.conf, iou=args.iou,
                    tracker=args.tracker, verbose=False)

    t0 = time.perf_counter()
    model = YOLO(args.model, task="detect")

    # Detections before the tracker: track() returns only what the tracker outputs. This
    # callback is added before track() registers the tracker's, so it runs first and sees
    # the predictor's post-NMS results untouched.
    detections: list = []
    model.add_callback("on_predict_postprocess_end",
                       lambda predictor: detections.append(rows(predictor.results[0].boxes)))

    model.track(cv2.imread(str(paths[0])), **track_kw)
    cold_start_s = time.perf_counter() - t0

    predictor = model.predictor
    backend = predictor.model.backend
    if not hasattr(backend, "session"):
        raise SystemExit(f"{args.model} did not load through ONNX Runtime ({type(backend).__name__})")

    if args.threads is not None:
        # Ultralytics passes no SessionOptions: rebuild the session with the thread counts.
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        backend.session = ort.InferenceSession(args.model, so, providers=backend.session.get_providers())

    # Record the shape ONNX Runtime is fed (the letterboxed tensor), at the call itself.
    fed: Counter = Counter()
    session_run = backend.session.run

    def recording_run(output_names, feed, *a, **kw):
        for v in feed.values():
            fed[tuple(v.shape)] += 1
        return session_run(output_names, feed, *a, **kw)

    backend.session.run = recording_run

    for p in paths[1:args.warmup]:
        model.track(cv2.imread(str(p)), **track_kw)

    # Fresh stream for the timed pass: same warm session, tracker emptied and ids from 1.
    for tracker in predictor.trackers:
        tracker.reset()
    detections.clear()
    fed.clear()
    track_boxes, track_ids = [], []

    c0, w0 = time.process_time(), time.perf_counter()
    for p in paths:
        frame = cv2.imread(str(p))
        if frame is None:
            raise SystemExit(f"could not decode {p}")
        r = model.track(frame, **track_kw)[0]
        track_boxes.append(r.boxes)
        track_ids.append(r.boxes.id)
    wall_s, cpu_s = time.perf_counter() - w0, time.process_time() - c0

    # Converted after the clock stops (the pipeline's own output is the Results object).
    track_boxes = [rows(b) for b in track_boxes]
    track_ids = [None if i is None else [int(v) for v in i.tolist()] for i in track_ids]

    n = len(paths)
    shapes = [list(s) for s, _ in fed.most_common()]
    so = backend.session.get_session_options()
    result = {
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "model": str(args.model),
        "provider": backend.session.get_providers()[0],
        "tracker": args.tracker,
        "imgsz": args.imgsz, "conf": args.conf, "iou": args.iou,
        "warmup": args.warmup,
        "frames": n,
        "frame_shape": list(cv2.imread(str(paths[0])).shape),
        "cold_start_s": round(cold_start_s, 3),
        "wall_s": round(wall_s, 4),
        "cpu_s": round(cpu_s, 4),
        "fps": round(n / wall_s, 3),
        "cpu_ms_per_frame": round(1000 * cpu_s / n, 3),
        "input_shape": shapes[0] if shapes else None,
        "input_shapes": shapes,  # more than one only if frame sizes differ
        "threads": {"requested": args.threads, "ort_intra_op": so.intra_op_num_threads,
                    "ort_inter_op": so.inter_op_num_threads, "torch": torch.get_num_threads(),
                    "cv2": cv2.getNumThreads(), "openblas": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                    "cpu_count": os.cpu_count()},
        "boxes": detections,
        "track_boxes": track_boxes,
        "track_ids": track_ids,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("boxes", "track_boxes", "track_ids")}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
