"""Analytics throughput: tracks through zones, journeys, queues, footfall, heatmap, alerts.

    python -m benchmarks.analytics [--frames 3000] [--sizes 10 50 200] [--no-generator] [--hours 1]

Part 1 feeds synthetic tracker output (people walking with persistent ids, a share pushing
carts, ids ending and new ones starting so journeys close) at 10 / 50 / 200 tracks per
frame through one ``CameraAnalytics`` whose camera has the sample store's checkout zones
and lanes, the entrance's door line, and every alert rule of ``configs/store.yaml``; it
reports frames/s, tracks/s and the cost per frame, split by stage (each stage's method is
wrapped with a timer, which adds well under a microsecond per call). Times are CPU time
(``time.process_time``) and wall time: the machine is shared, so CPU time is the steadier
number.

Part 2 runs the sample-data generator (``scripts/generate_sample_data.py``) for ``--hours``
of the 4 cameras at 15 fps and reports its wall and CPU time, peak RSS and the CPU split
simulation / tracker / analytics / writing.

Both go to docs/benchmarks.md (``benchmarks._report.append_section``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analytics.config import parse_store_config
from analytics.pipeline import CameraAnalytics
from benchmarks._report import append_section
from core.blas import one_blas_thread
from core.config import read_mapping
from core.types import Tracks

REPO = Path(__file__).resolve().parents[1]
NAMES = {0: "person", 1: "cart"}
T0 = 1705334400.0  # 2024-01-15T16:00:00Z


def bench_camera(store_yaml: Path = REPO / "configs" / "store.yaml"):
    """A camera with the checkout camera's zones and lanes, the entrance's door line, and the
    store's alert rules (restricted to no camera), so every analytic has work to do."""
    raw = read_mapping(store_yaml, "store config")
    co, en = raw["cameras"]["cam-checkout-1"], raw["cameras"]["cam-entrance-1"]
    cam = {"image_size": [640, 360], "zones": dict(co["zones"]), "lanes": co["lanes"], "lines": en["lines"]}
    cam["zones"]["entrance"] = {"kind": "entrance", "polygon": [[520, 40], [630, 40], [630, 200], [520, 200]]}
    alerts = []
    for a in raw.get("alerts", []):
        a = dict(a)
        a.pop("cameras", None)
        alerts.append(a)
    top = {k: raw[k] for k in ("metrics_interval_s", "heatmap_interval_s", "defaults") if k in raw}
    return parse_store_config({**top, "cameras": {"bench": cam}, "alerts": alerts}, "bench.yaml")


def synthetic_frames(n_tracks: int, frames: int, fps: float = 15.0, seed: int = 0, mean_life_s: float = 60.0,
                     cart_share: float = 0.2):
    """``frames`` (timestamp, tracks) with about ``n_tracks`` people in view (plus their carts)."""
    rng = np.random.default_rng(seed)
    w, h = 640.0, 360.0
    pos = rng.uniform([20, 40], [w - 20, h - 5], (n_tracks, 2))
    vel = rng.normal(0, 25, (n_tracks, 2))
    ids = np.arange(1, n_tracks + 1, dtype=np.int64)
    cart = rng.random(n_tracks) < cart_share
    next_id = n_tracks + 1
    p_end = 1.0 / (mean_life_s * fps)
    out = []
    for f in range(frames):
        t = T0 + f / fps
        end = rng.random(n_tracks) < p_end
        if end.any():
            k = int(end.sum())
            ids[end] = np.arange(next_id, next_id + k)
            next_id += k
            pos[end] = rng.uniform([20, 40], [w - 20, h - 5], (k, 2))
            cart[end] = rng.random(k) < cart_share
        vel += rng.normal(0, 4, vel.shape)
        vel *= 0.98
        pos += vel / fps
        bounce = (pos < [5, 30]) | (pos > [w - 5, h - 1])
        vel[bounce] *= -1
        pos[:] = np.clip(pos, [5, 30], [w - 5, h - 1])
        seen = rng.random(n_tracks) > 0.03  # the tracker's output has gaps too
        hh = 40.0 + 0.25 * pos[seen, 1]
        p = pos[seen]
        boxes = np.stack([p[:, 0] - 0.2 * hh, p[:, 1] - hh, p[:, 0] + 0.2 * hh, p[:, 1]], 1)
        tid = ids[seen]
        cls = np.zeros(len(tid), np.int32)
        c = cart[seen]
        if c.any():
            cp = p[c] + [0.0, 12.0]
            ch = 0.4 * hh[c]
            cb = np.stack([cp[:, 0] - 0.4 * ch, cp[:, 1] - ch, cp[:, 0] + 0.4 * ch, cp[:, 1]], 1)
            boxes = np.concatenate([boxes, cb])
            tid = np.concatenate([tid, 10_000_000 + tid[c]])
            cls = np.concatenate([cls, np.ones(int(c.sum()), np.int32)])
        out.append((t, Tracks.detected(tid, boxes.astype(np.float32), np.full(len(tid), 0.8, np.float32), cls)))
    return out


STAGES = [("journeys", "journeys", "update"), ("zones", "zones", "contains"), ("queues", "queues", "update"),
          ("footfall", "lines", "update"), ("heatmap", "heatmap", "update"), ("alerts", None, "_maybe_alerts"),
          ("detection records", None, "_detections"), ("track expiry + journey records", None, "_expire"),
          ("reports", None, "_report_metrics")]


def _wrap(obj, name, acc, key):
    fn = getattr(obj, name)

    def timed(*a, **k):
        c = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            acc[key] = acc.get(key, 0.0) + time.process_time() - c

    setattr(obj, name, timed)


def run_analytics(n_tracks: int, frames: int, detections_every_s: float = 1.0, split: bool = True) -> dict:
    store = bench_camera()
    data = synthetic_frames(n_tracks, frames)
    n_in = sum(len(tr.track_ids) for _, tr in data)

    def make():
        return CameraAnalytics(store.camera("bench"), alert_rules=store.alerts,
                               metrics_interval_s=store.metrics_interval_s,
                               heatmap_interval_s=store.heatmap_interval_s, detections_every_s=detections_every_s)

    def go(cam):
        recs = 0
        for t, tr in data:
            recs += len(cam.update(t, tr, NAMES))
        return recs + len(cam.flush())

    go(make())  # warm-up (imports, first allocations)
    cam = make()
    c0, w0 = time.process_time(), time.perf_counter()
    recs = go(cam)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    res = {"tracks_per_frame": n_in / frames, "frames": frames, "cpu_s": cpu, "wall_s": wall, "records": recs,
           "frames_per_s": frames / cpu, "tracks_per_s": n_in / cpu, "us_per_frame": 1e6 * cpu / frames,
           "us_per_frame_wall": 1e6 * wall / frames}
    if split:
        cam = make()
        acc: dict[str, float] = {}
        for key, attr, meth in STAGES:
            obj = cam if attr is None else getattr(cam, attr)
            for o in (obj if isinstance(obj, list) else [obj]):
                _wrap(o, meth, acc, key)
        go(cam)
        res["split_us"] = {k: 1e6 * acc.get(k, 0.0) / frames for k, _, _ in STAGES}
    return res


def run_generator(hours: float, workers: int | None = None) -> dict:
    import resource

    from simulator.day import generate

    with tempfile.TemporaryDirectory() as d:
        c0 = time.process_time()
        s = generate(Path(d), hours, png=False, log=lambda *a: None, workers=workers)
        s["main_cpu_s"] = time.process_time() - c0
        s["children_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=3000, help="frames per size (15 fps: 3000 = 200 s)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--hours", type=float, default=1.0, help="generator run (4 cameras, 15 fps)")
    ap.add_argument("--workers", type=int, default=None, help="generator worker processes (default: CPU cores)")
    ap.add_argument("--no-generator", action="store_true")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="generation_summary.json files of earlier generator runs (e.g. data/sample/ after "
                         "`make sample-data`, 24 h) to list as further rows")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    a = ap.parse_args(argv)
    one_blas_thread()  # as the stream clients run (core/blas.py)

    rows = [run_analytics(n, a.frames) for n in a.sizes]
    stages = [k for k, _, _ in STAGES]
    table = ["| people/frame | tracks/frame | frames/s | tracks/s | µs/frame CPU | µs/frame wall | "
             + " | ".join(stages) + " |",
             "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(stages)]
    for n, r in zip(a.sizes, rows):
        table.append(f"| {n} | {r['tracks_per_frame']:.1f} | {r['frames_per_s']:,.0f} | {r['tracks_per_s']:,.0f} | "
                     f"{r['us_per_frame']:.0f} | {r['us_per_frame_wall']:.0f} | "
                     + " | ".join(f"{r['split_us'][k]:.0f}" for k in stages) + " |")
    text = "\n".join(table)
    print(text)
    notes = (f"Synthetic tracker output ({a.frames} frames at 15 fps per row; people walk with persistent ids, "
             "20 % push a cart, 3 % missed per frame, ids end after ~60 s) through one CameraAnalytics with the "
             "sample store's checkout zones + lanes, the entrance door line, an entrance zone and all 5 alert "
             "rules; detection records once a second. Stage columns: µs of CPU per frame inside that stage "
             "(the rest of a frame's cost: class lookup, feet, track-id rows, cart proximity). "
             "`python -m benchmarks.analytics`.")
    out = {"analytics": dict(zip(map(str, a.sizes), rows))}
    if not a.no_generator:
        g = run_generator(a.hours, a.workers)
        out["generator"] = g
        gtab = ["| simulated | cameras × fps | workers | wall s | CPU s | peak RSS MB (largest process) | "
                "plan | simulation + detector noise | tracker | analytics | writing + merge |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in [g] + [json.loads(p.read_text()) for p in a.also if p.exists()]:
            sp = r["cpu_split_s"]
            gtab.append(f"| {r['hours']:g} h from {r['start']} | {len(r['cameras'])} × {r['fps']:g} | {r['workers']} | "
                        f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {sp['plan_s']:.1f} | "
                        f"{sp['sim_s']:.1f} | {sp['tracker_s']:.1f} | {sp['analytics_s']:.1f} | {sp['write_s']:.1f} |")
        gtext = "\n".join(gtab)
        print()
        print(gtext)
        text += "\n\nSample-data generator (`scripts/generate_sample_data.py`):\n\n" + gtext
        notes += (f"\n\nGenerator (first row): {g['frames']:,} camera frames, {g['customers']} customers, "
                  f"{g['tracker_calls']:,} tracker calls (frames with nothing detected and nothing tracked skip "
                  "the tracker). The split columns are CPU seconds summed over the worker processes; wall time "
                  "depends on what else the machine runs (its cores were shared with other jobs).")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=str))
    if not a.no_report:
        append_section("Analytics throughput and sample-data generator", text, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
