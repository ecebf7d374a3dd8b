"""``python -m benchmarks.clients``: the stream runner end to end vs perf_analyzer.

For 1, 4 and 8 streams (``--clip store``, the default: the simulator's checkout camera at
the evening peak, 640x360, so the served demo detector finds people and carts and the
tracker and store analytics do their real per-frame work; ``--clip photos``: real photos
at ``--size``), read as fast as possible, it measures:
- end-to-end frames/s: decode -> JPEG -> gRPC ensemble -> reorder -> tracker -> analytics
  -> sinks, all streams together, in steady state (first to last completed frame);
- perf_analyzer's throughput for the same ensemble, the same JPEG frames (``--input-data``)
  and the same number of requests in flight (streams x max_in_flight_per_stream);
- efficiency = end-to-end / perf_analyzer (goal >= 0.8);
- client CPU time per frame: the runner process's CPU time (it runs no model) / frames.

The runner and perf_analyzer alternate level by level so that load from other work on
the machine hits both alike. Writes its section of docs/benchmarks.md.

    python -m benchmarks.clients [--url host:port] [--streams 1,4,8] [--frames 40] [--in-flight 2] [--clip store]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from analytics.config import StoreConfig, load_store_config
from benchmarks.perf import STORE_CAMERA, STORE_START, input_data, perf_analyzer_cmd, sample_frames
from core.config import read_mapping
from launchers.triton import REPO_ROOT, TritonPorts, start_triton


def write_clip(path: Path, frames: list[np.ndarray], n: int, fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(n):
        vw.write(frames[i % len(frames)])
    vw.release()
    return path


def jpeg_table(frames: list[np.ndarray], qualities=(70, 80, 90, 95)) -> list[tuple[int, float, float]]:
    """(quality, mean bytes per frame, ms to encode) on the benchmark frames."""
    rows = []
    for q in qualities:
        sizes, t = [], time.perf_counter()
        for _ in range(5):
            for f in frames:
                sizes.append(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, q])[1].size)
        rows.append((q, float(np.mean(sizes)), 1000 * (time.perf_counter() - t) / len(sizes)))
    return rows


def store_clip(path: Path, n: int, fps: float = 5.0) -> tuple[Path, list[np.ndarray]]:
    """The simulator's checkout camera at the evening peak; also 4 of its frames for perf_analyzer."""
    from simulator.render import render_camera_video

    render_camera_video(STORE_CAMERA, path, seconds=n / fps, fps=fps, start=STORE_START)
    cap = cv2.VideoCapture(str(path))
    frames = []
    for k in range(n):
        ok, f = cap.read()
        if not ok:
            break
        if k % max(1, n // 4) == 0 and len(frames) < 4:
            frames.append(f)
    cap.release()
    return path, frames


def bench_store_config(n_streams: int) -> StoreConfig:
    """configs/store.yaml with cameras bench-0..N-1, each the checkout camera's zones and lanes."""
    store = REPO_ROOT / "configs" / "store.yaml"
    raw = read_mapping(store, "store config")
    cam = raw["cameras"][STORE_CAMERA]
    alerts = [r for r in raw.get("alerts", []) if "cameras" not in r]  # rules for other cameras
    return load_store_config(store, overrides={"cameras": {f"bench-{k}": cam for k in range(n_streams)},
                                               "alerts": alerts})


def run_clients(url: str, clip: Path, n_streams: int, in_flight: int, quality: int, workdir: Path,
                analytics: bool = False) -> dict:
    from clients.app import build_processor_factory, run_app
    from clients.config import parse_app_config

    cfg = {"triton": {"url": url, "max_in_flight_per_stream": in_flight, "jpeg_quality": quality},
           "streams": [{"id": f"bench-{k}", "source": str(clip), "start_time": 1_700_000_000} for k in range(n_streams)],
           "sinks": {"json": {"output_dir": str(workdir / f"out-{n_streams}"), "rotate": "none", "detections": "all"},
                     "influxdb": {"enabled": False}}}
    config = parse_app_config(cfg, "<benchmarks.clients>")
    if analytics:
        config = replace(config, analytics=bench_store_config(n_streams))
    build = build_processor_factory(config)
    processors: list = []

    def factory(spec, source):  # the configured processors, noted for the report
        processors.append(build(spec, source))
        return processors[-1]

    summary = run_app(config, processor_factory=factory, health_interval_s=3600)
    stats = list(summary.stats.values())
    done = sum(s.frames_processed for s in stats)
    t0 = min(s.first_result_at for s in stats)
    t1 = max(s.last_result_at for s in stats)
    # steady state: from the first completed frame to the last; the first frame of each
    # stream is excluded from the count since its start is outside the window
    fps = (done - 1) / (t1 - t0) if t1 > t0 else 0.0
    lat = np.concatenate([s.latency._buf[: len(s.latency)] for s in stats]) * 1000
    return {"streams": n_streams, "frames": done, "fps": fps, "wall_s": summary.wall_s,
            "lost": sum(s.frames_lost for s in stats), "errors": sum(s.inference_errors for s in stats),
            "cpu_ms_per_frame": 1000 * summary.client_cpu_s / max(done, 1),
            "bytes_per_frame": float(np.mean([s.bytes_per_frame() for s in stats])),
            "detections": sum(s.detections for s in stats),
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "processor": type(processors[0]).__name__}


def run_perf_analyzer(url: str, frames: list[np.ndarray], concurrency: int, quality: int, window_ms: int,
                      workdir: Path, stability: int = 40) -> float:
    """perf_analyzer's steady-state infer/s; NaN (with its output printed) when it finds none."""
    cmd, env = perf_analyzer_cmd()
    data = workdir / "input.json"
    data.write_text(json.dumps(input_data("retail_pipeline", frames, quality)))
    out = workdir / f"pa-{concurrency}.csv"
    args = cmd + ["-m", "retail_pipeline", "-u", url, "-i", "grpc", "--input-data", str(data),
                  "--concurrency-range", str(concurrency), "-p", str(window_ms), "-s", str(stability), "-r", "10",
                  "-f", str(out)]
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    if p.returncode != 0 or not out.exists():
        print(f"perf_analyzer c={concurrency} failed ({p.returncode}):\n{p.stdout[-1500:]}\n{p.stderr[-800:]}",
              file=sys.stderr)
        return float("nan")
    with open(out) as fh:
        return float(next(csv.DictReader(fh))["Inferences/Second"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=None, help="gRPC host:port of a running Triton (default: start a private one)")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--frames", type=int, default=40, help="frames per stream")
    ap.add_argument("--in-flight", type=int, default=2, help="max_in_flight_per_stream")
    ap.add_argument("--clip", choices=("store", "photos"), default="store",
                    help="store: rendered checkout camera (detections, tracking, analytics); photos: real photos")
    ap.add_argument("--size", default="960x540", help="frame size WxH (--clip photos)")
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--window-ms", type=int, default=5000)
    ap.add_argument("--stability", type=int, default=60, help="perf_analyzer --stability-percentage (shared CPUs are noisy)")
    ap.add_argument("--repeats", type=int, default=2, help="runner / perf_analyzer pairs per level (best kept)")
    ap.add_argument("--no-doc", action="store_true", help="do not append to docs/benchmarks.md")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    w, h = (int(v) for v in a.size.split("x"))
    server = None
    url = a.url
    if url is None:
        from modelops.build import ensure_models

        ensure_models()
        ports = TritonPorts.free()
        server = start_triton(ports)
        url = server.grpc_url
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            store = a.clip == "store"
            if store:
                clip, frames = store_clip(work / "clip.mp4", a.frames)
                h, w = frames[0].shape[:2]
            else:
                frames = sample_frames(4, (w, h))
                clip = write_clip(work / "clip.mp4", frames, a.frames)
            # warm-up: first requests pay for lazy init inside the models
            run_clients(url, clip, 1, a.in_flight, a.jpeg_quality, work, store)
            for n in (int(s) for s in a.streams.split(",")):
                conc = n * a.in_flight
                # Alternate runner and perf_analyzer and keep the best of each: on a shared
                # machine the least-disturbed run is the closest to the true capacity.
                runs, pas = [], []
                for _ in range(a.repeats):
                    runs.append(run_clients(url, clip, n, a.in_flight, a.jpeg_quality, work, store))
                    pas.append(run_perf_analyzer(url, frames, conc, a.jpeg_quality, a.window_ms, work, a.stability))
                e2e = max(runs, key=lambda r: r["fps"])
                good = [p for p in pas if p == p]
                pa = max(good) if good else float("nan")
                e2e.update(concurrency=conc, perf_analyzer_fps=pa, efficiency=e2e["fps"] / pa if pa else float("nan"),
                           all_fps=[round(r["fps"], 2) for r in runs], all_pa=[round(p, 2) for p in pas])
                rows.append(e2e)
                print(f"{n} stream(s), {conc} in flight: end-to-end {e2e['fps']:.2f} frames/s {e2e['all_fps']}, "
                      f"perf_analyzer {pa:.2f} infer/s {e2e['all_pa']}, efficiency {e2e['efficiency']:.2f}, client CPU "
                      f"{e2e['cpu_ms_per_frame']:.1f} ms/frame, p50 {e2e['p50_ms']:.0f} ms, "
                      f"{e2e['bytes_per_frame'] / 1024:.1f} KiB/frame, lost {e2e['lost']}", flush=True)
    finally:
        if server:
            server.stop()
    if not a.no_doc:
        from benchmarks._report import append_section
        from clients.demo import detector_source

        source = detector_source()[0]
        what = (f"the simulator's {STORE_CAMERA} at {STORE_START} (640x360, 5 fps clip), tracker + store analytics "
                "(zones, journeys, queues, heatmap, footfall) + JSON sink per stream" if a.clip == "store"
                else f"mp4 files of real photos at {w}x{h}")
        table = [
            "| streams | in flight | end-to-end frames/s | perf_analyzer infer/s | efficiency | client CPU ms/frame "
            "| e2e latency p50 / p95 ms | bytes/frame | boxes/frame | frames lost | all runs e2e / perf_analyzer |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            table.append(f"| {r['streams']} | {r['concurrency']} | {r['fps']:.2f} | {r['perf_analyzer_fps']:.2f} | "
                         f"{r['efficiency']:.2f} | {r['cpu_ms_per_frame']:.1f} | {r['p50_ms']:.0f} / {r['p95_ms']:.0f} | "
                         f"{r['bytes_per_frame']:.0f} | {r['detections'] / max(r['frames'], 1):.1f} | {r['lost']} | "
                         f"{r['all_fps']} / {r['all_pa']} |")
        raw = w * h * 3
        notes = [
            f"`python -m benchmarks.clients --clip {a.clip} --streams {a.streams} --frames {a.frames} --in-flight "
            f"{a.in_flight}`; server: {'private local CPU Triton' if server else url} (shares the 2 cores with the "
            f"client); detector: {source}. Streams: {what}, read as fast as possible; JPEG q{a.jpeg_quality}; "
            f"per-frame processing: {rows[0]['processor'] if rows else '?'}. perf_analyzer gets the same JPEG frames "
            "(`--input-data`) at the same number of requests in flight (streams x in-flight per stream). Each level "
            f"alternates the runner and perf_analyzer {a.repeats} times and keeps the best of each (all runs listed).",
            f"Frames on the wire ({w}x{h}; raw BGR is {raw} bytes): "
            + "; ".join(f"JPEG q{q}: {b / 1024:.0f} KiB ({raw / b:.0f}x smaller), encode {ms:.1f} ms"
                        for q, b, ms in jpeg_table(frames))
            + ". JPEG is sent (the ensemble decodes it in `preprocess`); `triton.jpeg_quality` sets the trade-off.",
            "Client CPU per frame is the runner process's CPU time divided by frames: it never runs a model, so this "
            "is video decode + JPEG encode + gRPC + reorder + tracking + analytics + sinks. Efficiency near 1 means "
            "the Triton server, not the Python client, sets the pace. Latency runs from frame read to analytics done; "
            "files are read as fast as possible, so it includes the wait in the per-stream queue "
            "(in-flight x streams / throughput).",
        ]
        append_section("Stream clients end to end vs perf_analyzer (python -m benchmarks.clients)", "\n".join(table),
                       "\n\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
