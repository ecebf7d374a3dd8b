"""Dynamic batching sweep for ``yolov8n``: which queue delay / preferred sizes / instances to ship.

Each setting is applied live through Triton's repository API (``load_model`` with a
config override, explicit model-control mode), then perf_analyzer drives the whole
ensemble at several concurrencies with real JPEG frames. Triton's own statistics give
the average batch size actually formed (inferences / executions).

    python -m benchmarks.batching [--concurrency 4,8] [--window-ms 4000] [--frames store|photos]
"""
from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import tritonclient.grpc as grpcclient

from benchmarks.perf import input_data, perf_analyzer_cmd, sample_frames, store_frames
from launchers.triton import REPO_ROOT, TritonPorts, start_triton

SETTINGS = [  # (label, dynamic_batching or None, instance count)
    ("off", None, 1),
    ("delay 0", {"max_queue_delay_microseconds": 0}, 1),
    ("delay 2 ms", {"max_queue_delay_microseconds": 2000}, 1),
    ("delay 5 ms", {"max_queue_delay_microseconds": 5000}, 1),
    ("delay 20 ms", {"max_queue_delay_microseconds": 20000}, 1),
    ("delay 5 ms, preferred 4", {"max_queue_delay_microseconds": 5000, "preferred_batch_size": [4]}, 1),
    ("off, 2 instances x 1 thread", None, 2),
    ("delay 5 ms, 2 instances x 1 thread", {"max_queue_delay_microseconds": 5000}, 2),
]


def _apply(client, base: dict, batching: dict | None, instances: int) -> None:
    cfg = copy.deepcopy(base)
    cfg.pop("dynamic_batching", None)
    if batching is not None:
        cfg["dynamic_batching"] = batching
    cfg["instance_group"] = [{"count": instances, "kind": "KIND_CPU"}]
    threads = str(max(1, 2 // instances))
    cfg.setdefault("parameters", {})["intra_op_threads"] = {"string_value": threads}
    client.load_model("yolov8n", config=json.dumps(cfg))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", default="4,8")
    ap.add_argument("--window-ms", type=int, default=4000)
    ap.add_argument("--frames", choices=("store", "photos"), default="store",
                    help="store: rendered checkout frames (people, so OSNet runs); photos: 960x540 photos")
    a = ap.parse_args(argv)
    from modelops.build import ensure_models

    ensure_models()
    levels = [int(c) for c in a.concurrency.split(",")]
    cmd, env = perf_analyzer_cmd()
    frames = store_frames() if a.frames == "store" else sample_frames()
    h, w = frames[0].shape[:2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "input.json"
        data.write_text(json.dumps(input_data("retail_pipeline", frames)))
        server = start_triton(TritonPorts.free(), log_path=Path(tmp) / "triton.log")
        try:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            base = client.get_model_config("yolov8n", as_json=True)["config"]
            for label, batching, instances in SETTINGS:
                _apply(client, base, batching, instances)
                for c in levels:
                    s0 = client.get_inference_statistics("yolov8n", as_json=True)["model_stats"][0]
                    out = Path(tmp) / "pa.csv"
                    p = subprocess.run(cmd + ["-m", "retail_pipeline", "-u", server.grpc_url, "-i", "grpc",
                                              "--input-data", str(data), "--concurrency-range", str(c),
                                              "-p", str(a.window_ms), "-s", "25", "-r", "6", "-f", str(out)],
                                       env=env, capture_output=True, text=True)
                    if p.returncode != 0:
                        print(f"{label} c={c}: perf_analyzer failed\n{p.stdout[-800:]}")
                        continue
                    r = next(csv.DictReader(open(out)))
                    s1 = client.get_inference_statistics("yolov8n", as_json=True)["model_stats"][0]
                    inf = int(s1.get("inference_count", 0)) - int(s0.get("inference_count", 0))
                    exe = int(s1.get("execution_count", 0)) - int(s0.get("execution_count", 0))
                    rows.append((label, c, float(r["Inferences/Second"]), float(r["p50 latency"]) / 1000,
                                 float(r["p95 latency"]) / 1000, inf / max(exe, 1)))
                    print(f"{label:38s} c={c}: {rows[-1][2]:.2f} infer/s, p50 {rows[-1][3]:.0f} ms, "
                          f"p95 {rows[-1][4]:.0f} ms, avg batch {rows[-1][5]:.2f}", flush=True)
        finally:
            server.stop()
    table = ["| yolov8n setting | concurrency | ensemble infer/s | p50 ms | p95 ms | avg batch formed |",
             "|---|---|---|---|---|---|"]
    table += [f"| {l} | {c} | {t:.2f} | {p50:.0f} | {p95:.0f} | {b:.2f} |" for l, c, t, p50, p95, b in rows]
    text = "\n".join(table)
    print(text)
    out = REPO_ROOT / "docs" / "batching_sweep.md"
    out.write_text(f"# Dynamic batching sweep (yolov8n, CPU configs)\n\nGenerated by `python -m benchmarks.batching` on "
                   f"{dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores (`--frames {a.frames}`). Ensemble "
                   f"throughput with {len(frames)} {w}x{h} JPEG q90 "
                   f"{'rendered checkout-camera frames at the evening rush (7-9 people each: OSNet runs)' if a.frames == 'store' else 'photos'}; "
                   f"batching settings applied live via the repository API.\n\n{text}\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
