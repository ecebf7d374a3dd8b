"""``python -m benchmarks.clients``: the stream runner end to end vs perf_analyzer.

For 1, 4 and 8 streams (video files of real photos, read as fast as possible) it measures:
- end-to-end frames/s: decode -> JPEG -> gRPC ensemble -> reorder -> tracker -> analytics
  -> sinks, all streams together, in steady state (first to last completed frame);
- perf_analyzer's throughput for the same ensemble, the same JPEG frames (``--input-data``)
  and the same number of requests in flight (streams x max_in_flight_per_stream);
- efficiency = end-to-end / perf_analyzer (goal >= 0.8);
- client CPU time per frame: the runner process's CPU time (it runs no model) / frames.

The runner and perf_analyzer alternate level by level so that load from other work on
the machine hits both alike. Appends a section to docs/benchmarks.md.

    python -m benchmarks.clients [--url host:port] [--streams 1,4,8] [--frames 40] [--in-flight 2]
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from benchmarks.perf import input_data, perf_analyzer_cmd, sample_frames
from serving.local_triton import REPO_ROOT, TritonPorts, is_ready, start_triton

DOCS = REPO_ROOT / "docs"


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


def run_clients(url: str, clip: Path, n_streams: int, in_flight: int, quality: int, workdir: Path) -> dict:
    from clients.config import load_app_config
    from clients.run import Runner, build_processor_factory, build_sinks

    cfg = {"triton": {"url": url, "max_in_flight_per_stream": in_flight, "jpeg_quality": quality},
           "streams": [{"id": f"bench-{k}", "source": str(clip), "start_time": 1_700_000_000} for k in range(n_streams)],
           "sinks": {"json": {"output_dir": str(workdir / f"out-{n_streams}")}, "influxdb": {"enabled": False}}}
    path = workdir / f"app-{n_streams}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = load_app_config(path)
    sinks = build_sinks(config)
    runner = Runner(config, build_processor_factory(config), sinks, health_interval_s=3600)
    try:
        summary = asyncio.run(runner.run())
    finally:
        for s in sinks:
            s.close()
    stats = [p.stats for p in runner.pipelines]
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
            "processor": type(runner.pipelines[0].processor).__name__}


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
    ap.add_argument("--size", default="960x540", help="frame size WxH")
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--window-ms", type=int, default=5000)
    ap.add_argument("--stability", type=int, default=60, help="perf_analyzer --stability-percentage (shared CPUs are noisy)")
    ap.add_argument("--repeats", type=int, default=2, help="runner / perf_analyzer pairs per level (best kept)")
    ap.add_argument("--no-doc", action="store_true", help="do not append to docs/benchmarks.md")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    w, h = (int(v) for v in a.size.split("x"))
    frames = sample_frames(4, (w, h))
    server = None
    url = a.url
    if url is None:
        from scripts.build_models import ensure_models

        ensure_models()
        ports = TritonPorts.free()
        server = start_triton(ports)
        url = server.grpc_url
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            clip = write_clip(work / "clip.mp4", frames, a.frames)
            # warm-up: first requests pay for lazy init inside the models
            run_clients(url, clip, 1, a.in_flight, a.jpeg_quality, work)
            for n in (int(s) for s in a.streams.split(",")):
                conc = n * a.in_flight
                # Alternate runner and perf_analyzer and keep the best of each: on a shared
                # machine the least-disturbed run is the closest to the true capacity.
                runs, pas = [], []
                for _ in range(a.repeats):
                    runs.append(run_clients(url, clip, n, a.in_flight, a.jpeg_quality, work))
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
        lines = [
            f"\n## Stream clients end to end vs perf_analyzer ({dt.date.today()})\n",
            f"`python -m benchmarks.clients --streams {a.streams} --frames {a.frames} --in-flight {a.in_flight} "
            f"--size {a.size}` on {platform.machine()}, {os.cpu_count()} CPU cores (shared with the CPU Triton), "
            f"Python {platform.python_version()}, server {'private local CPU Triton' if server else url}. "
            f"Streams: mp4 files of real photos at {w}x{h}, read as fast as possible; JPEG q{a.jpeg_quality}; "
            f"per-frame processing: {rows[0]['processor'] if rows else '?'}. perf_analyzer gets the same JPEG frames "
            f"(`--input-data`) at the same number of requests in flight (streams x in-flight per stream).\n",
            f"Each level alternates the runner and perf_analyzer {a.repeats} times and keeps the best of each "
            "(the machine is shared; all runs are listed).\n",
            "| streams | in flight | end-to-end frames/s | perf_analyzer infer/s | efficiency | client CPU ms/frame "
            "| e2e latency p50 / p95 ms | bytes/frame | frames lost | all runs e2e / perf_analyzer |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(f"| {r['streams']} | {r['concurrency']} | {r['fps']:.2f} | {r['perf_analyzer_fps']:.2f} | "
                         f"{r['efficiency']:.2f} | {r['cpu_ms_per_frame']:.1f} | {r['p50_ms']:.0f} / {r['p95_ms']:.0f} | "
                         f"{r['bytes_per_frame']:.0f} | {r['lost']} | {r['all_fps']} / {r['all_pa']} |")
        raw = w * h * 3
        lines.append(f"\nFrames on the wire (same {w}x{h} photos; raw BGR is {raw} bytes): "
                     + "; ".join(f"JPEG q{q}: {b / 1024:.0f} KiB ({raw / b:.0f}x smaller), encode {ms:.1f} ms"
                                 for q, b, ms in jpeg_table(frames))
                     + ". JPEG is sent (the ensemble decodes it in `preprocess`): an order of magnitude fewer "
                       "bytes per frame for ~2 ms of client CPU; `triton.jpeg_quality` sets the trade-off.")
        boxes = sum(r.get("detections", 0) for r in rows)
        lines.append(
            "\nClient CPU per frame is the runner process's CPU time divided by frames: it never runs a model, so "
            "this is video decode + JPEG encode + gRPC + reorder + tracking + analytics + sinks. Efficiency near 1 "
            "means the Triton server, not the Python client, sets the pace: the async client keeps the same number "
            "of requests in flight as perf_analyzer does, and its CPU (a few ms per frame) is small next to the "
            "~100+ ms of CPU the ensemble spends per frame on these 2 cores. Latency runs from frame read to "
            "analytics done; files are read as fast as possible, so it includes the wait in the per-stream queue "
            "(in-flight x streams / throughput)."
            + (f" The detector here produced {boxes} boxes in all runs (placeholder weights detect nothing), so "
               "tracking and analytics ran on empty frames: their per-box cost is measured by their own "
               "benchmarks." if boxes == 0 else "") + "\n")
        with open(DOCS / "benchmarks.md", "a") as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"appended to {DOCS / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
