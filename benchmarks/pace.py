"""``python -m benchmarks.pace``: serving now vs the saved pre-issue-18 configuration, one run, same frames.

Two CPU Triton servers in turn, on the same model files:

- **baseline**: ``benchmarks/baseline_repo/*.pbtxt`` (the CPU configs of 2026-12-06 before
  issue 18): 640x640 letterbox, raw YOLOv8 output, decode + NMS in Python, ONNX Runtime fp32;
- **current**: ``model_repository`` as shipped: the camera's aspect (640x360 -> 640x384),
  decode + NMS in the detector's graph, the int8 QDQ detector.

For each: perf_analyzer on the ensemble at concurrency 1 and 4 (the same JPEG store frames,
gRPC) and on the detector alone at the same input size and concurrency 4 (the ceiling:
letterboxed float tensors over gRPC, no JPEG decode, no re-id); for the current server also
the stream clients end to end (``benchmarks.clients.run_clients``: decode -> gRPC ensemble ->
tracker, one process) on a clip of the same frames. Writes its section of docs/benchmarks.md.

    python -m benchmarks.pace [--window-ms 4000] [--clip-frames 120] [--streams 4]
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._report import append_section
from launchers.triton import MODEL_REPOSITORY, REPO_ROOT, TritonPorts, start_triton
from modelops.perf_analyzer import jpeg_input_data, run_level, store_frames
from serving.preprocess import YOLO_STRIDE, letterbox

BASELINE = Path(__file__).resolve().parent / "baseline_repo"
ENSEMBLE, DETECTOR = "retail_pipeline", "yolov8n"


def baseline_repository(dest: Path) -> Path:
    """A copy of the model repository whose CPU configs are the saved pre-issue-18 ones."""
    shutil.copytree(MODEL_REPOSITORY, dest, ignore=shutil.ignore_patterns("__pycache__", "*.plan"))
    for cfg in BASELINE.glob("*.pbtxt"):
        target = dest / cfg.stem / "configs" / "cpu.pbtxt"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(cfg, target)
    return dest


def detector_input_data(frames: list[np.ndarray], stride: int) -> dict:
    rows = []
    for f in frames:
        x = letterbox(f, stride=stride)[0]
        rows.append({"images": {"b64": base64.b64encode(x.tobytes()).decode(), "shape": list(x.shape)}})
    return {"data": rows}


def _row(r: dict) -> dict:
    us = lambda k: float(r.get(k, 0) or 0) / 1000  # noqa: E731  perf_analyzer CSV: microseconds
    return {"fps": float(r["Inferences/Second"]), "p50_ms": us("p50 latency"), "p95_ms": us("p95 latency")}


def measure(repo: Path, frames: list[np.ndarray], stride: int, window_ms: int, workdir: Path, label: str,
            clip: Path | None, streams: int) -> dict:
    server = start_triton(TritonPorts.free(), model_repository=repo, log_path=workdir / f"triton-{label}.log")
    try:
        url = server.grpc_url
        ens_data, det_data = workdir / f"ens-{label}.json", workdir / f"det-{label}.json"
        ens_data.write_text(json.dumps(jpeg_input_data(frames)))
        det_data.write_text(json.dumps(detector_input_data(frames, stride)))
        out = {"input": "x".join(map(str, letterbox(frames[0], stride=stride)[0].shape[1:]))}
        for c in (1, 4):
            out[f"ensemble_c{c}"] = _row(run_level(ENSEMBLE, url, c, ens_data, window_ms, workdir))
            print(f"{label}: ensemble c{c} {out[f'ensemble_c{c}']}", flush=True)
        out["detector_c4"] = _row(run_level(DETECTOR, url, 4, det_data, window_ms, workdir))
        print(f"{label}: detector c4 {out['detector_c4']}", flush=True)
        if clip is not None:
            from benchmarks.clients import run_clients

            r = run_clients(url, clip, streams, 2, 90, workdir)
            out["clients"] = {k: r[k] for k in ("fps", "cpu_ms_per_frame", "frames", "errors", "detections")}
            print(f"{label}: stream clients {out['clients']}", flush=True)
        return out
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-ms", type=int, default=4000)
    ap.add_argument("--clip-frames", type=int, default=120, help="frames per stream for the stream clients (0: skip)")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)

    frames = store_frames(8)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = None
        if args.clip_frames:
            from benchmarks.clients import write_clip

            clip = write_clip(tmp / "clip.mp4", frames, args.clip_frames)
        base = measure(baseline_repository(tmp / "baseline_repo"), frames, 0, args.window_ms, tmp, "baseline",
                       clip, args.streams)
        cur = measure(MODEL_REPOSITORY, frames, YOLO_STRIDE, args.window_ms, tmp, "current", clip, args.streams)
    results = {"baseline": base, "current": cur}
    (REPO_ROOT / ".run").mkdir(exist_ok=True)
    (REPO_ROOT / ".run" / "pace.json").write_text(json.dumps(results, indent=1))

    table = ["| configuration | detector input | ensemble c1 frames/s | ensemble c1 p50 ms | ensemble c4 frames/s | "
             "ensemble c4 p50 ms | detector alone c4 frames/s | ensemble c4 / detector alone | stream clients frames/s "
             "| client CPU ms/frame |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cl = r.get("clients", {})
        table.append(f"| {name} | {r['input']} | {r['ensemble_c1']['fps']:.2f} | {r['ensemble_c1']['p50_ms']:.1f} | "
                     f"{r['ensemble_c4']['fps']:.2f} | {r['ensemble_c4']['p50_ms']:.1f} | {r['detector_c4']['fps']:.2f} | "
                     f"{r['ensemble_c4']['fps'] / r['detector_c4']['fps']:.2f} | "
                     f"{cl.get('fps', float('nan')):.2f} | {cl.get('cpu_ms_per_frame', float('nan')):.1f} |")
    gain = cur["ensemble_c4"]["fps"] / base["ensemble_c4"]["fps"]
    notes = (f"`python -m benchmarks.pace`: both servers on this machine one after the other, 8 rendered "
             f"checkout-camera frames (640x360, JPEG q90), perf_analyzer over gRPC, {args.window_ms} ms windows. "
             f"Current vs baseline at concurrency 4: **{gain:.2f}x** ensemble frames/s; p50 at concurrency 1 "
             f"{cur['ensemble_c1']['p50_ms']:.1f} vs {base['ensemble_c1']['p50_ms']:.1f} ms. Detector alone = "
             f"perf_analyzer on yolov8n with letterboxed float32 tensors at the same size (no JPEG, no re-id). "
             f"Stream clients: {args.streams} streams x {args.clip_frames} frames, decode -> JPEG -> gRPC ensemble "
             f"-> tracker in one process, 2 requests in flight per stream.")
    print("\n".join(table) + "\n" + notes)
    if not args.no_report:
        append_section("Serving pace: before and after issue 18", "\n".join(table), notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
