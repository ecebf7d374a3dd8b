"""Simulate a store and write the seed's five files by running the real tracker and analytics.

    python scripts/generate_sample_data.py --output data/sample/ --hours 24 [--seed 42]
    python scripts/generate_sample_data.py --render-camera cam-checkout-1 --render-seconds 20 \\
        --render-output data/demo/cam-checkout-1.mp4

Customers arrive by a time-of-day profile, shop, queue and pay (scripts/simulator/agents.py);
four cameras see parts of the store (scripts/simulator/world.py); a detector model turns
what each camera sees into noisy detections (scripts/simulator/camera.py); those go through
``analytics.tracking.Tracker`` and ``analytics.pipeline`` exactly as live detections would,
and the records go to ``analytics.sinks.json_files.JsonFilesSink``. Beside the five files:
``ground_truth.json`` (true queue lengths, waits, dwell, footfall, purchases), ``footfall.json``
(the analytics' line counts, which have no seed file) and ``heatmap_<camera>.png``.
``python -m scripts.score_sample --input DIR`` compares the two. Time advances in chunks
of ``--chunk-s`` simulated seconds, so memory does not grow with ``--hours``.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a file (make sample-data) as well as with -m
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from analytics.config import load_store_config  # noqa: E402
from analytics.pipeline import StoreAnalytics  # noqa: E402
from analytics.records import FootfallRecord, HeatmapRecord, iso_utc, parse_iso_utc  # noqa: E402
from scripts.simulator import world as W  # noqa: E402
from scripts.simulator.agents import positions, simulate  # noqa: E402
from scripts.simulator.camera import CART_ID_OFFSET, CLASS_NAMES, detect, objects_in_view  # noqa: E402
from scripts.simulator.truth import Truth  # noqa: E402

CAMERAS = list(W.CAMERA_IDS)
DEMO_CAMERAS = ["cam-checkout-1", "cam-entrance-1", "cam-aisles-1", "cam-checkout-2"]
DEFAULT_START = "2024-01-15T08:00:00Z"
STORE_CONFIG = REPO_ROOT / "configs" / "store.yaml"


@dataclass
class Tracks:
    track_ids: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


class TruthTracker:
    """Diagnostics only (``--tracker truth``): detections keep their true identity, so the
    analytics' own error can be told apart from the tracker's. False positives get fresh ids."""

    def __init__(self) -> None:
        self._fp = 10_000_000

    def update(self, xyxy, scores, class_ids, embeddings=None, timestamp=None, truth_ids=None):
        ids = np.asarray(truth_ids, np.int64).copy()
        fp = ids < 0
        ids[fp] = self._fp + np.arange(fp.sum())
        self._fp += int(fp.sum())
        return Tracks(ids, xyxy, scores, np.asarray(class_ids, np.int32))


def make_tracker(kind: str, fps: float):
    if kind == "truth":
        return TruthTracker()
    from analytics.tracking import Tracker, TrackerConfig

    return Tracker(TrackerConfig(frame_rate=fps))


def _json_records(path: Path, records: list) -> None:
    """Footfall records (no seed file) as a JSON array in the seed's style."""
    rows = [{"stream_id": r.stream_id, "timestamp": iso_utc(r.timestamp), "line_id": r.line_id,
             "count_in": r.count_in, "count_out": r.count_out, "occupancy": r.occupancy} for r in records]
    path.write_text(json.dumps(rows, indent=1))


def generate(output: Path, hours: float, seed: int = 42, start: str = DEFAULT_START, fps: float = 15.0,
             cameras: list[str] | None = None, tracker: str = "project", detections_every_s: float = 1.0,
             chunk_s: float = 60.0, store_config: Path = STORE_CONFIG, png: bool = True, log=print) -> dict:
    from analytics.sinks.json_files import JsonFilesSink

    wall0 = time.monotonic()
    cameras = list(cameras or CAMERAS)
    cfg = load_store_config(store_config)
    for c in cameras:
        cfg.camera(c)
        if c not in W.CAMERAS:
            raise SystemExit(f"{c}: the simulator's floor plan has no such camera ({', '.join(W.CAMERAS)})")
    t0 = parse_iso_utc(start)
    t1 = t0 + hours * 3600.0
    store = simulate(seed, t0, t1)
    truth = Truth(store, cfg, cameras, fps)
    multi = StoreAnalytics(cfg, detections_every_s=detections_every_s)
    cams = {c: (W.CAMERAS[c], multi.for_stream(c), make_tracker(tracker, fps),
                np.random.default_rng([seed, CAMERAS.index(c) if c in CAMERAS else 99])) for c in cameras}
    output.mkdir(parents=True, exist_ok=True)
    sink = JsonFilesSink(output, flush_every=5000)
    footfall: list = []
    last_heatmap: dict[str, HeatmapRecord] = {}
    n_frames_total = int(round((t1 - t0) * fps))
    per_chunk = max(1, int(round(chunk_s * fps)))
    frames_done, stats = 0, {"detections": 0, "tracks": 0, "tracker_s": 0.0, "analytics_s": 0.0, "sim_s": 0.0}

    def emit(recs):
        keep = []
        for r in recs:
            if isinstance(r, FootfallRecord):
                footfall.append(r)
            elif isinstance(r, HeatmapRecord):
                last_heatmap[r.stream_id] = r
                keep.append(r)
            else:
                keep.append(r)
        if keep:
            sink.write(keep)

    next_log = time.monotonic() + 10
    for f0 in range(0, n_frames_total, per_chunk):
        c0 = time.perf_counter()
        n = min(per_chunk, n_frames_total - f0)
        times = t0 + (f0 + np.arange(n)) / fps
        pos = positions(store, times)
        stats["sim_s"] += time.perf_counter() - c0
        for cid, (cam, an, trk, rng) in cams.items():
            c0 = time.perf_counter()
            obj = objects_in_view(store, cam, pos)
            truth.add(cid, obj, times, f0)
            det = detect(obj, n, cam, rng)
            bounds = np.searchsorted(det.frame, np.arange(n + 1))
            stats["sim_s"] += time.perf_counter() - c0
            stats["detections"] += len(det.frame)
            ttrk = tana = 0.0
            for f in range(n):
                a, b = bounds[f], bounds[f + 1]
                c1 = time.perf_counter()
                if tracker == "truth":
                    tr = trk.update(det.xyxy[a:b], det.scores[a:b], det.cls[a:b], None, timestamp=times[f],
                                    truth_ids=det.truth_id[a:b])
                else:
                    tr = trk.update(det.xyxy[a:b], det.scores[a:b], det.cls[a:b], None, timestamp=float(times[f]))
                c2 = time.perf_counter()
                stats["tracks"] += len(tr.track_ids)
                recs = an.update(float(times[f]), tr, CLASS_NAMES)
                if recs:
                    emit(recs)
                c3 = time.perf_counter()
                ttrk += c2 - c1
                tana += c3 - c2
            stats["tracker_s"] += ttrk
            stats["analytics_s"] += tana
        frames_done += n
        if time.monotonic() >= next_log:
            next_log = time.monotonic() + 30
            log(f"  {iso_utc(times[-1])}: {frames_done / n_frames_total:.0%} of the frames, "
                f"{time.monotonic() - wall0:.0f} s, peak RSS {_peak_mb():.0f} MB")
    for cid, (cam, an, trk, rng) in cams.items():
        emit(an.flush(t1))
    sink.close()
    truth.write(output / "ground_truth.json")
    _json_records(output / "footfall.json", footfall)
    if png:
        from analytics.heatmap import save_overlay
        from scripts.simulator.render import background

        for cid, rec in last_heatmap.items():
            save_overlay(output / f"heatmap_{cid}.png", rec, background(W.CAMERAS[cid]))
    wall = time.monotonic() - wall0
    summary = {"hours": hours, "cameras": cameras, "fps": fps, "seed": seed, "start": start, "tracker": tracker,
               "frames": n_frames_total * len(cameras), "wall_s": round(wall, 2), "peak_rss_mb": round(_peak_mb(), 1),
               "customers": len(store.customers), "files": sink.stats()["files"],
               **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in stats.items()}}
    (output / "generation_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def render_camera(camera_id: str = "cam-checkout-1", output: str | Path | None = None, seconds: float = 20.0,
                  fps: float = 15.0, seed: int = 7, start: str | None = None, **kw):
    """Render one camera to an mp4 (+ ``<output>.truth.json``); see scripts/simulator/render.py."""
    from scripts.simulator.render import DEFAULT_RENDER_START, render_camera_video

    return render_camera_video(camera_id, output, seconds=seconds, fps=fps, seed=seed,
                               start=start or DEFAULT_RENDER_START, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", type=Path, default=Path("data/sample"))
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default=None, help=f"simulated start time (ISO-8601 UTC; default {DEFAULT_START}, "
                    "or the busiest hour for --render-camera)")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--cameras", nargs="+", default=None, choices=CAMERAS)
    ap.add_argument("--tracker", choices=["project", "truth"], default="project",
                    help="project: analytics.tracking.Tracker; truth: true identities (diagnostics)")
    ap.add_argument("--detections-every", type=float, default=1.0,
                    help="seconds between detection records per camera (0: every frame; a day of every frame "
                         "is tens of GB)")
    ap.add_argument("--chunk-s", type=float, default=60.0)
    ap.add_argument("--store-config", type=Path, default=STORE_CONFIG)
    ap.add_argument("--no-png", action="store_true")
    ap.add_argument("--render-camera", choices=CAMERAS, help="render this camera to a video instead")
    ap.add_argument("--render-seconds", type=float, default=20.0)
    ap.add_argument("--render-output", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.render_camera:
        from scripts.simulator.render import DEFAULT_RENDER_START

        out = a.render_output or Path("data/demo") / f"{a.render_camera}.mp4"
        res = render_camera(a.render_camera, out, a.render_seconds, a.fps, a.seed, a.start or DEFAULT_RENDER_START)
        print(f"wrote {res.video_path} ({res.frames} frames) and {res.truth_path}")
        return 0
    if a.hours <= 0:
        ap.error("--hours must be > 0")
    a.start = a.start or DEFAULT_START
    print(f"simulating {a.hours:g} h from {a.start} (seed {a.seed}, {a.fps:g} fps, tracker {a.tracker}) "
          f"into {a.output}/ ...", flush=True)
    s = generate(a.output, a.hours, a.seed, a.start, a.fps, a.cameras, a.tracker, a.detections_every, a.chunk_s,
                 a.store_config, png=not a.no_png)
    print(f"done in {s['wall_s']:.1f} s: {s['frames']} camera frames, {s['customers']} customers, "
          f"peak RSS {s['peak_rss_mb']:.0f} MB; files: {s['files']}")
    print(f"score it: python -m scripts.score_sample --input {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
