"""``make perf``: real perf_analyzer (tritonclient 2.50.0 wheel) against the ensemble and each model.

Feeds real encoded frames (``--input-data`` JSON, base64) rather than random tensors,
sweeps concurrency over gRPC, and writes ``docs/perf/<model>.csv`` plus a markdown table
(``docs/perf.md``): throughput, p50/p95/p99 latency, server queue vs compute time.

    python -m benchmarks.perf [--url localhost:8001] [--concurrency 1,2,4,8] [--models ...] [--frames store|photos]

Frames: ``store`` (default) = the simulator's checkout camera at the evening peak, where the
demo detector finds 3-4 people per frame, so the ensemble's OSNet branch runs as in a store;
``photos`` = real photos resized to 960x540 (use them with real weights: few people in them).

Against the GPU deployment (docker compose) the same command runs with ``--url``
pointing at that server; nothing else changes.
"""
from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from serving.local_triton import REPO_ROOT, TritonPorts, start_triton
from serving.postprocess import reid_crops
from serving.preprocess import letterbox

DOCS = REPO_ROOT / "docs"
DEFAULT_MODELS = ("retail_pipeline", "preprocess", "yolov8n", "osnet_x0_25")
STORE_CAMERA = "cam-checkout-1"  # the simulator's busiest camera view...
STORE_START = "2024-01-15T18:30:00Z"  # ...at the evening rush (7-9 people in view)


def perf_analyzer_cmd() -> tuple[list[str], dict[str, str]]:
    """The binary from the tritonclient wheel and the libraries it needs (FACTS.md)."""
    exe = Path(sys.executable).parent / "perf_analyzer"
    if not exe.exists():
        raise SystemExit(f"perf_analyzer not found at {exe}: run `make setup` (tritonclient==2.50.0 ships it)")
    import nvidia.cuda_runtime  # libcudart.so.12, only loaded, no GPU needed

    cudart = Path(list(nvidia.cuda_runtime.__path__)[0]) / "lib"
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([str(cudart), os.environ.get("LD_LIBRARY_PATH", "")]))
    return [str(exe)], env


def sample_frames(n: int = 4, size: tuple[int, int] = (960, 540)) -> list[np.ndarray]:
    """Real photos (scikit-image) resized to a camera-like frame size, BGR."""
    import skimage.data as d

    photos = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), np.dstack([d.camera()] * 3)]
    return [cv2.resize(np.ascontiguousarray(p[:, :, ::-1]), size) for p in photos[:n]]


def store_frames(n: int = 8) -> list[np.ndarray]:
    """``n`` rendered checkout-camera frames with at least two people in view (640x360 BGR)."""
    from scripts.simulator.render import render_camera

    frames = []
    for img, _t, _boxes, cls, _ids in render_camera(STORE_CAMERA, seconds=60.0, fps=1.0, start=STORE_START):
        if int((cls == 0).sum()) >= 2:
            frames.append(img)
        if len(frames) == n:
            break
    if not frames:
        raise RuntimeError(f"no frame of {STORE_CAMERA} from {STORE_START} shows people")
    return frames


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def input_data(model: str, frames: list[np.ndarray], quality: int = 90) -> dict:
    """perf_analyzer --input-data JSON for ``model`` from real frames."""
    rows = []
    for f in frames:
        if model in ("retail_pipeline", "preprocess"):
            jpg = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].reshape(-1)
            rows.append({"image": {"b64": _b64(jpg), "shape": [int(jpg.size)]}})
        elif model == "yolov8n":
            rows.append({"images": {"b64": _b64(letterbox(f)[0]), "shape": [3, 640, 640]}})
        elif model == "osnet_x0_25":
            h, w = f.shape[:2]
            crop = reid_crops(f, np.array([[w * 0.3, h * 0.1, w * 0.5, h * 0.9]], np.float32))[0]
            rows.append({"images": {"b64": _b64(crop), "shape": [3, 256, 128]}})
        else:
            raise ValueError(f"no input data recipe for model {model!r}")
    return {"data": rows}


def grpc_ready(url: str) -> bool:
    import tritonclient.grpc as grpcclient

    try:
        return grpcclient.InferenceServerClient(url).is_server_ready(client_timeout=2.0)
    except Exception:  # refused, timeout, not Triton: all mean "start one"
        return False


def run_model(model: str, url: str, concurrency: list[int], frames, out_csv: Path, window_ms: int) -> list[dict]:
    cmd, env = perf_analyzer_cmd()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(input_data(model, frames), f)
        data_path = f.name
    try:
        rows: list[dict] = []
        for c in concurrency:  # one process per level: an unstable level does not lose the others
            part = out_csv.with_suffix(f".c{c}.csv")
            args = cmd + ["-m", model, "-u", url, "-i", "grpc", "--input-data", data_path,
                          "--concurrency-range", str(c), "-p", str(window_ms), "-s", "25", "-r", "6", "-f", str(part)]
            p = subprocess.run(args, env=env, capture_output=True, text=True)
            if p.returncode != 0 or not part.exists():
                print(f"perf_analyzer {model} c={c} failed ({p.returncode}):\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}",
                      file=sys.stderr)
                continue
            with open(part) as fh:
                rows.extend(csv.DictReader(fh))
            part.unlink()
    finally:
        os.unlink(data_path)
    if rows:
        with open(out_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)
    return rows


def summarise(model: str, rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        us = lambda k: float(r.get(k, 0) or 0) / 1000  # noqa: E731  (µs -> ms)
        compute = us("Server Compute Input") + us("Server Compute Infer") + us("Server Compute Output")
        lines.append(f"| {model} | {r['Concurrency']} | {float(r['Inferences/Second']):.2f} | {us('p50 latency'):.1f} | "
                     f"{us('p95 latency'):.1f} | {us('p99 latency'):.1f} | {us('Server Queue'):.1f} | {compute:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("TRITON_GRPC_URL", "localhost:8001"))
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--window-ms", type=int, default=4000, help="perf_analyzer measurement window")
    ap.add_argument("--out", type=Path, default=DOCS / "perf", help="folder for <model>.csv")
    ap.add_argument("--report", type=Path, default=DOCS / "perf.md", help="markdown table")
    ap.add_argument("--frames", choices=("store", "photos"), default="store")
    a = ap.parse_args(argv)
    conc = [int(c) for c in a.concurrency.split(",")]
    host, port = a.url.rsplit(":", 1)
    server = None
    if not grpc_ready(a.url):
        if host not in ("localhost", "127.0.0.1"):
            raise SystemExit(f"no Triton ready at {a.url}")
        from scripts.build_models import ensure_models

        ensure_models()
        print(f"starting local Triton on :{port} (CPU configs)")
        server = start_triton(TritonPorts(int(port) - 1, int(port), int(port) + 1))
    a.out.mkdir(parents=True, exist_ok=True)
    frames = store_frames() if a.frames == "store" else sample_frames()
    h, w = frames[0].shape[:2]
    table = ["| model | concurrency | infer/s | p50 ms | p95 ms | p99 ms | server queue ms | server compute ms |",
             "|---|---|---|---|---|---|---|---|"]
    try:
        for model in a.models.split(","):
            levels = conc if model == "retail_pipeline" else [c for c in conc if c in (1, 4)] or conc[:1]
            rows = run_model(model, a.url, levels, frames, a.out / f"{model}.csv", a.window_ms)
            table += summarise(model, rows)
            print("\n".join(table[-len(rows):]) if rows else f"{model}: no results", flush=True)
    finally:
        if server:
            server.stop()
    jpeg_sizes = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].size for f in frames]
    header = (f"# perf_analyzer results\n\nGenerated by `make perf` on {dt.date.today()} — {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, {platform.python_version()}, server {a.url} "
              f"({'local CPU configs' if server or host in ('localhost', '127.0.0.1') else 'remote'}).\n"
              f"Command: `python -m benchmarks.perf --frames {a.frames} --concurrency {a.concurrency}`. Input: "
              f"{len(frames)} {'rendered checkout-camera frames' if a.frames == 'store' else 'real photos'} at {w}x{h}, "
              f"JPEG q90 = {int(np.mean(jpeg_sizes))} bytes per frame on the wire (raw BGR would be {w * h * 3} bytes). "
              "Composing models get the same frames letterboxed (yolov8n) or a person-sized crop (osnet_x0_25). "
              "Latencies are client-side; queue/compute are Triton's.\n\n")
    a.report.write_text(header + "\n".join(table) + "\n")
    print(f"\nwrote {a.report} and CSVs in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
