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
tracker, one process) on a rendered clip of the same camera, and person recall of the served
detections on that clip against the simulator's truth (IoU >= 0.5, one-to-one).

Side by side (Ultralytics' own pipeline, ``benchmarks/peer_ultralytics.py`` in ``.venv-ultra``,
``make bench-peers-ultralytics``): the same ONNX, the same clip's JPEG frames, in-process
``track(persist=True)`` per frame (ByteTrack, ONNX Runtime on 2 threads, numpy's OpenBLAS on 1:
its spinning worker halves Ultralytics' speed on 2 cores otherwise), after the servers stopped.
CPU per frame for the served paths is the whole machine's busy time (/proc/stat: clients,
Triton and its python stubs) over the frames; for Ultralytics its process's CPU time.
Writes its sections of docs/benchmarks.md.

    python -m benchmarks.pace [--window-ms 4000] [--clip-frames 120] [--streams 4] [--no-peer]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks._report import append_section
from benchmarks.perf import input_data
from launchers.triton import MODEL_REPOSITORY, REPO_ROOT, TritonPorts, start_triton
from modelops.perf_analyzer import STORE_CAMERA, STORE_START, jpeg, jpeg_input_data, run_level, store_frames
from serving.preprocess import YOLO_STRIDE, letterbox

BASELINE = Path(__file__).resolve().parent / "baseline_repo"
PEER_PYTHON = REPO_ROOT / ".venv-ultra" / "bin" / "python"
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_ultralytics.py"
DEMO_DETECTOR = REPO_ROOT / "data" / "models" / "demo" / "yolov8n_demo.onnx"
CLIP_FPS = 4.0
ENSEMBLE, DETECTOR = "retail_pipeline", "yolov8n"


def baseline_repository(dest: Path) -> Path:
    """A copy of the model repository whose CPU configs are the saved pre-issue-18 ones."""
    shutil.copytree(MODEL_REPOSITORY, dest, ignore=shutil.ignore_patterns("__pycache__", "*.plan"))
    for cfg in BASELINE.glob("*.pbtxt"):
        target = dest / cfg.stem / "configs" / "cpu.pbtxt"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(cfg, target)
    return dest


def _row(r: dict) -> dict:
    us = lambda k: float(r.get(k, 0) or 0) / 1000  # noqa: E731  perf_analyzer CSV: microseconds
    return {"fps": float(r["Inferences/Second"]), "p50_ms": us("p50 latency"), "p95_ms": us("p95 latency")}


def rendered_clip(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` consecutive frames of the checkout camera at the evening rush and each frame's true person boxes."""
    from simulator.render import render_camera

    frames, people = [], []
    for img, _t, boxes, cls, _ids in render_camera(STORE_CAMERA, seconds=n / CLIP_FPS, fps=CLIP_FPS, start=STORE_START):
        frames.append(img)
        people.append(np.asarray(boxes, np.float32).reshape(-1, 4)[np.asarray(cls) == 0])
    return frames, people


def person_recall(found: list[np.ndarray], truth: list[np.ndarray], min_iou: float = 0.5) -> float:
    """Share of true people matched one-to-one (Hungarian on IoU) by a found person box with IoU >= ``min_iou``."""
    hit = total = 0
    for f, t in zip(found, truth):
        total += len(t)
        if len(f) and len(t):
            lt, rb = np.maximum(f[:, None, :2], t[None, :, :2]), np.minimum(f[:, None, 2:], t[None, :, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), 2)
            area = lambda b: np.prod(b[:, 2:] - b[:, :2], 1)  # noqa: E731
            iou = inter / (area(f)[:, None] + area(t)[None] - inter + 1e-9)
            r, c = linear_sum_assignment(-iou)
            hit += int((iou[r, c] >= min_iou).sum())
    return hit / max(total, 1)


def served_people(url: str, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The ensemble's person boxes for each frame (what the stream clients receive)."""
    import tritonclient.grpc as grpcclient

    client, out = grpcclient.InferenceServerClient(url), []
    for f in frames:
        buf = jpeg(f)
        inp = grpcclient.InferInput("image", [buf.size], "UINT8")
        inp.set_data_from_numpy(buf)
        r = client.infer(ENSEMBLE, [inp], outputs=[grpcclient.InferRequestedOutput(n) for n in ("boxes", "class_names")])
        names = r.as_numpy("class_names")
        out.append(r.as_numpy("boxes").reshape(-1, 4)[np.array([n == b"person" for n in names], bool)])
    return out


def busy_seconds() -> float:
    """CPU time spent by the whole machine so far (/proc/stat, every core, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_peer(jpeg_dir: Path, out: Path, truth: list[np.ndarray]) -> dict | None:
    """Ultralytics' in-process pipeline on the same frames, or None when .venv-ultra is missing."""
    if not PEER_PYTHON.exists():
        print(f"no {PEER_PYTHON}: `make bench-peers-ultralytics` to add the Ultralytics side-by-side", flush=True)
        return None
    cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--model", str(DEMO_DETECTOR), "--frames", str(jpeg_dir),
           "--imgsz", "640", "--conf", "0.25", "--iou", "0.45", "--tracker", "bytetrack.yaml", "--warmup", "5",
           "--threads", "2", "--blas-threads", "1", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"Ultralytics peer failed (exit {p.returncode}): {(p.stdout + p.stderr)[-1500:]}")
    r = json.loads(out.read_text())
    found = [np.asarray([b[:4] for b in frame if int(b[5]) == 0], np.float32).reshape(-1, 4) for frame in r["boxes"]]
    return {"fps": r["fps"], "cpu_ms_per_frame": r["cpu_ms_per_frame"], "recall": person_recall(found, truth),
            "input": "x".join(map(str, r["input_shape"][2:])), "ultralytics": r["ultralytics"]}


def measure(repo: Path, frames: list[np.ndarray], stride: int, window_ms: int, workdir: Path, label: str,
            clip: Path | None, streams: int, clip_frames: list[np.ndarray], truth: list[np.ndarray]) -> dict:
    server = start_triton(TritonPorts.free(), model_repository=repo, log_path=workdir / f"triton-{label}.log")
    try:
        url = server.grpc_url
        ens_data, det_data = workdir / f"ens-{label}.json", workdir / f"det-{label}.json"
        ens_data.write_text(json.dumps(jpeg_input_data(frames)))
        det_data.write_text(json.dumps(input_data(DETECTOR, frames, stride=stride)))
        out = {"input": "x".join(map(str, letterbox(frames[0], stride=stride)[0].shape[1:]))}
        for c in (1, 4):
            out[f"ensemble_c{c}"] = _row(run_level(ENSEMBLE, url, c, ens_data, window_ms, workdir))
            print(f"{label}: ensemble c{c} {out[f'ensemble_c{c}']}", flush=True)
        out["detector_c4"] = _row(run_level(DETECTOR, url, 4, det_data, window_ms, workdir))
        print(f"{label}: detector c4 {out['detector_c4']}", flush=True)
        if clip is not None:
            from benchmarks.clients import run_clients

            out["recall"] = person_recall(served_people(url, clip_frames), truth)
            busy = busy_seconds()
            r = run_clients(url, clip, streams, 2, 90, workdir)
            out["clients"] = {k: r[k] for k in ("fps", "cpu_ms_per_frame", "frames", "errors", "detections")}
            out["clients"]["machine_cpu_ms_per_frame"] = 1000 * (busy_seconds() - busy) / max(r["frames"], 1)
            print(f"{label}: person recall {out['recall']:.4f}, stream clients {out['clients']}", flush=True)
        return out
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-ms", type=int, default=4000)
    ap.add_argument("--clip-frames", type=int, default=120, help="frames per stream for the stream clients (0: skip)")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--no-peer", action="store_true", help="skip the Ultralytics side-by-side")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)

    frames = store_frames(8)
    clip_frames, truth = rendered_clip(args.clip_frames) if args.clip_frames else ([], [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = None
        if clip_frames:
            from benchmarks.clients import write_clip

            clip = write_clip(tmp / "clip.mp4", clip_frames, len(clip_frames), fps=CLIP_FPS)
        base = measure(baseline_repository(tmp / "baseline_repo"), frames, 0, args.window_ms, tmp, "baseline",
                       clip, args.streams, clip_frames, truth)
        cur = measure(MODEL_REPOSITORY, frames, YOLO_STRIDE, args.window_ms, tmp, "current", clip, args.streams,
                      clip_frames, truth)
        peer = None
        if clip_frames and not args.no_peer:
            jpeg_dir = tmp / "jpeg"
            jpeg_dir.mkdir()
            for i, f in enumerate(clip_frames):
                cv2.imwrite(str(jpeg_dir / f"{i:05d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 90])
            t0 = time.perf_counter()
            peer = run_peer(jpeg_dir, tmp / "peer.json", truth)
            print(f"ultralytics: {peer} ({time.perf_counter() - t0:.0f} s)", flush=True)
    results = {"baseline": base, "current": cur}
    (REPO_ROOT / ".run").mkdir(exist_ok=True)
    (REPO_ROOT / ".run" / "pace.json").write_text(json.dumps({**results, "ultralytics": peer}, indent=1))

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
    if clip_frames:
        side = side_by_side(results, peer, args)
        print(side)
        if not args.no_report:
            append_section("Side by side with Ultralytics: same ONNX, same frames", side,
                           f"`python -m benchmarks.pace`: {len(clip_frames)} rendered frames of {STORE_CAMERA} "
                           f"from {STORE_START} at {CLIP_FPS:g} fps (640x360, JPEG q90), the demo detector. Served: "
                           f"{args.streams} streams of that clip through the stream clients (decode -> JPEG -> gRPC "
                           f"ensemble incl. OSNet embeddings -> tracker), frames/s of all streams together; recall "
                           f"from the served detections of each frame. Ultralytics: one stream in-process "
                           f"(its pipeline has no re-id step), recall from its detections before the tracker. "
                           f"Person recall: IoU >= 0.5, one-to-one, against the simulator's boxes (occluded people "
                           f"included). CPU ms/frame: the machine's busy time (served) or the process's (Ultralytics).")
    return 0


def side_by_side(results: dict, peer: dict | None, args) -> str:
    rows = ["| pipeline | detector input | frames/s | CPU ms / frame | person recall |", "|---|---|---|---|---|"]
    for name, r in results.items():
        c = r["clients"]
        rows.append(f"| served ensemble ({name}), {args.streams} stream clients | {r['input']} | {c['fps']:.2f} | "
                    f"{c['machine_cpu_ms_per_frame']:.1f} | {r['recall']:.4f} |")
    if peer is not None:
        rows.append(f"| Ultralytics {peer['ultralytics']} track(persist=True), in-process, 1 stream | {peer['input']} | "
                    f"{peer['fps']:.2f} | {peer['cpu_ms_per_frame']:.1f} | {peer['recall']:.4f} |")
        cur = results["current"]
        rows.append(f"| **current / Ultralytics** | | **{cur['clients']['fps'] / peer['fps']:.2f}x** | | "
                    f"{100 * (cur['recall'] - peer['recall']):+.2f} pt |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
