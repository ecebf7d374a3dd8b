"""Serving overhead: the Triton ensemble vs the same networks and processing in-process.

In-process = ``serving.preprocess`` + ONNX Runtime (same ONNX files, same intra-op threads
as each model's ``configs/cpu.pbtxt``) + ``serving.postprocess`` (+ OSNet for person boxes), run by
``concurrency`` threads over one session each for YOLOv8n and OSNet, as an application
embedding the models would. Triton = gRPC requests with the same JPEG frames at the same
concurrency. A second Triton server with ``yolov8n``'s dynamic batching switched the other
way (on if the shipped CPU config does not batch, off if it does) shows what batching buys.
Both servers stay up (idle costs nothing) and the three paths are measured in interleaved
rounds, each cell's median reported, so a machine whose speed drifts (shared cloud cores:
up to ~40 % over hours here) biases no path.

    python -m benchmarks.serving [--seconds 10] [--rounds 3] [--concurrency 1,4] [--frames store|photos]

Frames: ``store`` (default) are the simulator's checkout camera at the evening peak, where the
demo detector finds people, so OSNet runs on every frame; ``photos`` are real 960x540 photos.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient

from benchmarks.perf import sample_frames, store_frames
from launchers.triton import MODEL_REPOSITORY, TritonPorts, start_triton
from serving.postprocess import NmsConfig, decode_yolov8, l2_normalise, reid_crops, to_original
from serving.preprocess import decode_image, letterbox


def _latest_onnx(model: str) -> Path:
    versions = sorted((p for p in (MODEL_REPOSITORY / model).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return versions[-1] / "model.onnx"


def cpu_threads(model: str) -> int:
    """``intra_op_threads`` of ``model``'s CPU config (what each Triton instance uses)."""
    text = (MODEL_REPOSITORY / model / "configs" / "cpu.pbtxt").read_text()
    m = re.search(r'key:\s*"intra_op_threads"\s*value\s*\{\s*string_value:\s*"(\d+)"', text)
    return int(m.group(1)) if m else 0


def _session(model: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = cpu_threads(model)
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(_latest_onnx(model)), so, providers=["CPUExecutionProvider"])


class InProcessPipeline:
    """The ensemble's steps in this process, thread-safe (ONNX Runtime sessions are). Each
    session uses the intra-op threads of the model's CPU config; ``concurrency`` caller
    threads run frames in parallel, as Triton's instances do."""

    def __init__(self):
        self.yolo = _session("yolov8n")
        self.osnet = _session("osnet_x0_25")
        self.nms = NmsConfig()

    def __call__(self, jpeg: bytes):
        image = decode_image(jpeg)
        x, lb = letterbox(image)
        pred = self.yolo.run(None, {"images": x[None]})[0][0]
        xyxy, scores, cls = decode_yolov8(pred, self.nms)
        xyxy = to_original(xyxy, lb)
        person = np.flatnonzero(cls == 0)
        emb = np.zeros((len(xyxy), 512), np.float32)
        if person.size:
            emb[person] = l2_normalise(self.osnet.run(None, {"images": reid_crops(image, xyxy[person])})[0])
        return xyxy, scores, cls, emb


def _throughput(fn, jpegs: list[bytes], concurrency: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = 0
    lock = threading.Lock()

    def worker(k: int):
        nonlocal done
        i = k
        while time.monotonic() < stop:
            fn(jpegs[i % len(jpegs)])
            i += 1
            with lock:
                done += 1

    fn(jpegs[0])  # warm-up
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return done / (time.monotonic() - t0)


def _triton_fn(url: str):
    local = threading.local()

    def infer(jpeg: bytes):
        if not hasattr(local, "client"):
            local.client = grpcclient.InferenceServerClient(url)
        data = np.frombuffer(jpeg, np.uint8)
        inp = grpcclient.InferInput("image", [data.size], "UINT8")
        inp.set_data_from_numpy(data)
        return local.client.infer("retail_pipeline", [inp])

    return infer


def _batches(repo: Path) -> bool:
    return "dynamic_batching" in re.sub(r"#.*", "", (repo / "yolov8n" / "configs" / "cpu.pbtxt").read_text())


def _repo_toggling_batching(dst: Path) -> Path:
    """A copy of the repository whose yolov8n CPU config has dynamic batching switched the
    other way (off if the shipped config batches, 5 ms queue delay if it does not)."""
    repo = dst / "model_repository"
    shutil.copytree(MODEL_REPOSITORY, repo)
    cfg = repo / "yolov8n" / "configs" / "cpu.pbtxt"
    text = cfg.read_text()
    if _batches(MODEL_REPOSITORY):
        text = re.sub(r"dynamic_batching\s*\{[^}]*\}", "", text)
    else:
        text += "\ndynamic_batching { max_queue_delay_microseconds: 5000 }\n"
    cfg.write_text(text)
    return repo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per cell per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--frames", choices=("store", "photos"), default="store")
    a = ap.parse_args(argv)
    from modelops.build import ensure_models

    ensure_models()
    frames = store_frames() if a.frames == "store" else sample_frames()
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    levels = [int(c) for c in a.concurrency.split(",")]
    pipe = InProcessPipeline()
    people = [int((pipe(j)[2] == 0).sum()) for j in jpegs]
    samples: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            on = _batches(MODEL_REPOSITORY)
            for label, repo in ((f"Triton, shipped config (batching {'on' if on else 'off'})", MODEL_REPOSITORY),
                                (f"Triton, batching {'off' if on else 'on, 5 ms delay'}",
                                 _repo_toggling_batching(Path(tmp)))):
                servers[label] = start_triton(TritonPorts.free(), model_repository=repo,
                                              log_path=Path(tmp) / f"triton-{len(servers)}.log")
            paths = {"in-process ONNX Runtime": pipe, **{k: _triton_fn(s.grpc_url) for k, s in servers.items()}}
            for r in range(a.rounds):
                for label, fn in paths.items():
                    for c in levels:
                        fps = _throughput(fn, jpegs, c, a.seconds)
                        samples.setdefault(label, {}).setdefault(c, []).append(fps)
                        print(f"round {r + 1}/{a.rounds} {label} c={c}: {fps:.2f} frames/s", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    results = {label: {c: float(np.median(v)) for c, v in per.items()} for label, per in samples.items()}
    spread = max((max(v) - min(v)) / np.median(v) for per in samples.values() for v in per.values())
    base = results["in-process ONNX Runtime"]
    rows = ["| path | " + " | ".join(f"c={c} frames/s" for c in levels) + " | vs in-process |", "|---|" + "---|" * (len(levels) + 1)]
    for label, r in results.items():
        ratio = ", ".join(f"c={c}: {r[c] / base[c]:.2f}" for c in levels)
        rows.append(f"| {label} | " + " | ".join(f"{r[c]:.2f}" for c in levels) + f" | {ratio} |")
    table = "\n".join(rows)
    print(table)
    h, w = frames[0].shape[:2]
    what = (f"rendered {w}x{h} checkout-camera frames" if a.frames == "store" else f"real {w}x{h} photos")
    notes = (f"`python -m benchmarks.serving --frames {a.frames}`: same ONNX files (newest version of each model) and "
             f"intra-op threads per call (yolov8n {cpu_threads('yolov8n')}, osnet {cpu_threads('osnet_x0_25')}), {len(jpegs)} {what} as JPEG q90; "
             f"median of {a.rounds} interleaved rounds of {a.seconds:.0f} s per cell (largest spread of a cell between rounds: {spread:.0%}). Person boxes per frame "
             f"found by the detector: {people} (each goes through OSNet, in Triton by BLS from postprocess). "
             "The second Triton row is the same repository with yolov8n's CPU config switched to the other "
             "batching setting.")
    try:
        from benchmarks._report import append_section

        append_section("Serving overhead: Triton ensemble vs in-process", table, notes)
    except ImportError:
        print(notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
