"""``make demo``: the main job end to end on a newcomer's machine.

1. builds the models if missing (modelops.build.ensure_models);
2. starts the local CPU Triton unless one is already ready on the configured ports;
3. renders a short multi-camera store clip with the store simulator
   (simulator.day.render_camera) into data/demo/, with its ground truth;
4. writes a temporary app config with those cameras as streams and runs the application
   on it (clients.app.run_app): Triton ensemble -> tracker -> analytics -> sinks;
5. prints a per-camera summary (frames, fps, tracks, footfall, queues, where the outputs
   are) and, from the simulator's ground truth, the footfall and queue-length errors;
6. store visits (``--visits``, on by default): the cameras are views of one store, so one
   ``visits.linker.VisitLinker`` links their tracks into visits (``clients.store_link``, as in
   ``make run``); the demo scores them against the simulator's customers in the window
   (``clients.demo_visits``, via ``simulator.score.visit_scores``: visit IDF1, visit count,
   store conversion, mean visit duration) and reports how far apart the served re-id model puts the same and different
   customers across cameras. The store config is configs/store.yaml; where it has no
   ``floor:``/``floor_points``/``visits:`` sections the simulator's geometry fills them in
   (``with_visits``).

It says plainly when the detector or the re-id model has placeholder (untrained) weights:
then the numbers show the pipeline running, not what trained models would see.

    python -m scripts.demo [--seconds 300] [--cameras 1-4] [--fps 4] [--start 2024-01-15T17:30:00Z]
                           [--out outputs/demo] [--no-visits] [--keep-triton]
    make demo              (the defaults: 4 cameras, 300 s of the 17:30 rush: per-camera and store-level scores)

(scripts/demo.py is the entry point; this module is the library part.)
Inputs: the command line above. Outputs: clips in data/demo/, the five seed files, heatmap
PNGs and demo_summary.json in --out (``accuracy``: per-camera goals; ``visits``: the store's
scores, goals, re-id cosines, linker stats; ``tracklet_truth.json`` beside it), the printed summary.
May import: clients.app/config/store_link/demo_visits, simulator, modelops.build, launchers.triton,
analytics, visits (via clients.app).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analytics.config import StoreConfig, VisitSettings, load_store_config
from analytics.floor import Door, FloorCalibration, FloorPlan
from clients.app import CameraFactory, build_processor_factory, run_app
from clients.config import AppConfig, load_app_config, parse_app_config
from clients.demo_visits import Goal, print_visits, score_visits
from clients.runner import RunSummary
from core.blas import one_blas_thread
from core.collector import frame_paced_collector
from simulator import world as W
from simulator.day import DEMO_CAMERAS, render_camera

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO_ROOT / "data" / "demo"
log = logging.getLogger("demo")


# --------------------------------------------------------------------------- model provenance

def detector_source(model_repository: Path = REPO_ROOT / "model_repository",
                    model: str = "yolov8n") -> tuple[str, Path | None]:
    """(manifest ``source`` of the newest version of ``model``, manifest path) or ('unknown', None)."""
    versions = sorted((p for p in (model_repository / model).glob("[0-9]*") if p.is_dir()),
                      key=lambda p: int(p.name))
    for v in reversed(versions):
        m = v / "manifest.json"
        if m.exists():
            try:
                return str(json.loads(m.read_text()).get("source", "unknown")), m
            except (OSError, json.JSONDecodeError):
                return "unreadable manifest", m
    return "unknown (no manifest.json)", None


def placeholder_notice(source: str) -> str | None:
    if "placeholder" in source.lower():
        return ("NOTE: the detector has PLACEHOLDER weights (untrained, deterministic; manifest source: "
                f"{source!r}). It detects nothing meaningful: the numbers below show the pipeline running, "
                "not what a trained detector would measure. Real weights: `make download-models`.")
    return None


def reid_notice(source: str) -> str | None:
    if "placeholder" in source.lower():
        return ("NOTE: the re-id model (osnet_x0_25) has placeholder weights (untrained; manifest source: "
                f"{source!r}): its embeddings do not tell people apart, so store visits link mostly by where and "
                "when people are seen. Real weights: `make download-models`.")
    return None


# --------------------------------------------------------------------------- summary sink

@dataclass
class CameraTally:
    tracks: set = field(default_factory=set)
    detections: int = 0
    footfall_in: int = 0
    footfall_out: int = 0
    queue_lengths: list = field(default_factory=list)
    queue_samples: list = field(default_factory=list)  # (lane, timestamp, length)
    queue_waits: list = field(default_factory=list)
    queue_max_wait: float = 0.0
    abandonments: int = 0
    journeys: int = 0
    converted: int = 0
    alerts: int = 0
    heatmaps: int = 0
    last_heatmap: Any = None


class SummarySink:
    """An in-memory sink beside the real ones: tallies per camera for the printed summary."""

    def __init__(self, keep_boxes: bool = False) -> None:
        self.cams: dict[str, CameraTally] = defaultdict(CameraTally)
        self.keep_boxes = keep_boxes
        self.boxes: dict[str, list] = defaultdict(list)  # stream -> (timestamp, track id, x1, y1, x2, y2) of persons
        self.visits: list = []  # VisitRecord
        self.store_kpis: list = []  # StoreKpiRecord

    def write(self, records) -> None:
        for r in records:
            kind = type(r).__name__
            if kind == "VisitRecord":
                self.visits.append(r)
                continue
            if kind == "StoreKpiRecord":
                self.store_kpis.append(r)
                continue
            if kind == "FloorHeatmapRecord":
                continue
            if kind == "CameraJourneyRecord":  # a camera's journey when the store links visits
                r, kind = r.journey, "JourneyRecord"
            t = self.cams[getattr(r, "stream_id", "?")]
            if kind == "DetectionRecord":
                t.detections += 1
                if r.track_id is not None:
                    t.tracks.add(r.track_id)
                    if self.keep_boxes and r.class_name == "person":
                        self.boxes[r.stream_id].append((r.timestamp, r.track_id, r.x, r.y, r.x + r.width,
                                                        r.y + r.height))
            elif kind == "FootfallRecord":
                t.footfall_in += r.count_in
                t.footfall_out += r.count_out
            elif kind == "QueueMetricsRecord":
                t.queue_lengths.append(r.queue_length)
                t.queue_samples.append((r.lane_id, r.timestamp, r.queue_length))
                t.queue_waits.append(r.avg_wait_time_seconds)
                t.queue_max_wait = max(t.queue_max_wait, r.max_wait_time_seconds)
                t.abandonments = max(t.abandonments, r.abandonment_count)
            elif kind == "JourneyRecord":
                t.journeys += 1
                t.converted += int(r.converted)
                t.tracks.add(r.track_id)
            elif kind == "AlertRecord":
                t.alerts += 1
            elif kind == "HeatmapRecord":
                t.heatmaps += 1
                t.last_heatmap = r

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        return {k: {"tracks": len(v.tracks), "detections": v.detections} for k, v in self.cams.items()}


# --------------------------------------------------------------------------- simulator

def render_clips(out_dir: Path, seconds: float, cameras: int, fps: float, seed: int, start: str) -> list[dict]:
    """Render the simulator's cameras (one simulated store, several views) to mp4 files.

    Returns [{stream_id, path, truth}] where truth is the simulator's ground truth (dict) or None.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for cam_id in DEMO_CAMERAS[:cameras]:
        res = render_camera(cam_id, out_dir / f"{cam_id}.mp4", seconds=seconds, fps=fps, seed=seed, start=start)
        truth = json.loads(res.truth_path.read_text()) if res.truth_path.exists() else None
        clips.append({"stream_id": cam_id, "path": Path(res.video_path), "truth": truth})
    return clips


def accuracy_goals(clips: list[dict], tally: "SummarySink") -> list[Goal]:
    """Footfall and queue-length errors against the simulator's ground truth, each with its goal
    (footfall within 5 %, queue length MAE <= 1 person per lane)."""
    goals = []
    for c in clips:
        truth, t = c["truth"], tally.cams.get(c["stream_id"])
        if not truth or t is None:
            continue
        ff = truth.get("footfall")
        if ff and c["stream_id"] == "cam-entrance-1":
            got, want = t.footfall_in + t.footfall_out, ff["in"] + ff["out"]
            pct = 100.0 * abs(got - want) / max(want, 1)
            goals.append(Goal(c["stream_id"], "footfall_error_pct", pct, 5.0,
                              f"  {c['stream_id']}: footfall in {t.footfall_in} (truth {ff['in']}), out "
                              f"{t.footfall_out} (truth {ff['out']}); crossings {got} vs {want}: error {pct:.1f} % "
                              f"(goal <= 5 %: {'met' if pct <= 5.0 else 'NOT met'})"))
        per_sec = truth.get("queue_length_per_second") or {}
        t0 = float(truth.get("t0", 0.0))
        for lane, series in per_sec.items():
            meas = [(ts, n) for (ln, ts, n) in t.queue_samples if ln == lane]
            pairs = [(n, series[int(ts - t0)]) for ts, n in meas if 0 <= int(ts - t0) < len(series)]
            if not pairs:
                continue
            mae = sum(abs(m - g) for m, g in pairs) / len(pairs)
            goals.append(Goal(c["stream_id"], f"queue_length_mae:{lane}", mae, 1.0,
                              f"  {c['stream_id']} {lane}: queue length MAE {mae:.2f} over {len(pairs)} report(s) "
                              f"(goal <= 1: {'met' if mae <= 1.0 else 'NOT met'}; measured {[m for m, _ in pairs]}, "
                              f"truth {[g for _, g in pairs]})"))
    return goals


def app_tracker_settings() -> dict:
    """configs/app_config.yaml's ``tracker:`` section (what ``make run`` gives every stream's
    tracker): the demo's cameras are tracked as the application would track them."""
    return dict(load_app_config(REPO_ROOT / "configs" / "app_config.yaml", with_sections=False).tracker)


def demo_app_config(clips: list[dict], triton_url: str, out_dir: Path, start: str, store: StoreConfig) -> AppConfig:
    """The app config the demo runs: ``clips`` (``render_clips``) as file streams from ``start``,
    configs/app_config.yaml's tracker settings, the seed's files in ``out_dir`` with every
    detection, no InfluxDB, ``store`` as the analytics."""
    cfg = {
        "triton": {"url": triton_url},
        "tracker": app_tracker_settings(),
        "streams": [{"id": c["stream_id"], "source": str(c["path"]), "start_time": start} for c in clips],
        "sinks": {"json": {"output_dir": str(out_dir), "rotate": "none", "detections": "all"},  # the seed's files
                  "influxdb": {"enabled": False}},
    }
    return replace(parse_app_config(cfg, "<clients.demo>"), analytics=store)


def demo_store_config(metrics_interval_s: float, visits: bool = False) -> StoreConfig:
    """configs/store.yaml with a shorter metrics interval, so a short clip has queue samples;
    ``visits``: linking store visits (``with_visits``)."""
    store = load_store_config(REPO_ROOT / "configs" / "store.yaml", overrides={"metrics_interval_s": metrics_interval_s})
    return with_visits(store)[0] if visits else store


# --------------------------------------------------------------------------- store visits

def simulator_calibration(cam: W.Camera) -> FloorCalibration:
    """A simulator camera's image -> floor calibration: the inverse of its floor -> image homography,
    with its floor rectangle's corners as the point pairs."""
    floor_pts = W.rect_polygon(cam.floor_rect)
    H = np.linalg.inv(cam.H)
    return FloorCalibration(cam.project(floor_pts), floor_pts, H / H[2, 2], 0.0)


def simulator_floor_plan() -> FloorPlan:
    """The simulated store's floor (40 x 25 m) with its one door in the front wall (y 25, x 2..6)."""
    outline = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, W.DOOR_Y], [0.0, W.DOOR_Y]])
    door = Door("main", np.array([W.DOOR_X[0], W.DOOR_Y]), np.array([W.DOOR_X[1], W.DOOR_Y]), np.array([0.0, -1.0]))
    return FloorPlan(outline, {"main": door})


def with_visits(store: StoreConfig) -> tuple[StoreConfig, list[str]]:
    """``store`` linking visits: its own ``floor:``, ``floor_points`` and ``visits:`` where it has
    them; the simulator's geometry (simulator/world.py) and default ``VisitSettings`` where not.
    Returns (config, what was filled in from the simulator)."""
    filled, cams = [], {}
    for cid, cam in store.cameras.items():
        if cam.floor is None and cid in W.CAMERAS:
            cam = replace(cam, floor=simulator_calibration(W.CAMERAS[cid]))
            filled.append(f"floor_points of {cid}")
        cams[cid] = cam
    floor, visits = store.floor, store.visits
    if floor is None:
        floor = simulator_floor_plan()
        filled.append("floor")
    if visits is None:
        visits = VisitSettings()
        filled.append("visits")
    return replace(store, cameras=cams, floor=floor, visits=visits), filled


# --------------------------------------------------------------------------- main

def grpc_ready(grpc_url: str) -> bool:
    import tritonclient.grpc as grpcclient

    try:
        with grpcclient.InferenceServerClient(grpc_url) as c:
            return bool(c.is_server_ready(client_timeout=2.0))
    except Exception:  # noqa: BLE001 (not there: any failure means "start one")
        return False


def ensure_triton(grpc_url: str):
    """None if a Triton answers at ``grpc_url``; else start the local one (HTTP/metrics on -1/+1)."""
    from launchers.triton import TritonPorts, start_triton

    if grpc_ready(grpc_url):
        print(f"Triton already running at {grpc_url}")
        return None
    host, port = grpc_url.rsplit(":", 1)
    if host not in ("localhost", "127.0.0.1"):
        raise SystemExit(f"demo: no Triton ready at {grpc_url}")
    grpc = int(port)
    print(f"starting the local Triton (CPU configs) on {grpc_url} ...", flush=True)
    return start_triton(TritonPorts(grpc - 1, grpc, grpc + 1))


def run_pipeline(config: AppConfig, extra_sink: SummarySink, factory: CameraFactory | None = None) -> RunSummary:
    return run_app(config, extra_sinks=[extra_sink], health_interval_s=5.0, processor_factory=factory)


def save_heatmaps(tally: SummarySink, clips: list[dict], out_dir: Path) -> list[Path]:
    """heatmap-<camera>.png: the camera's last heatmap over the first frame of its (synthetic) clip."""
    import cv2

    from analytics.heatmap import save_overlay

    paths = []
    videos = {c["stream_id"]: Path(c["path"]) for c in clips}
    for sid, t in tally.cams.items():
        if t.last_heatmap is None:
            continue
        background = None
        if sid in videos:
            cap = cv2.VideoCapture(str(videos[sid]))
            ok, img = cap.read()
            cap.release()
            background = img if ok else None
        paths.append(save_overlay(out_dir / f"heatmap-{sid}.png", t.last_heatmap, background))
    return paths


def print_summary(summary, tally: SummarySink, out_dir: Path, notice: str | None,
                  clips: list[dict] | None = None) -> None:
    print("\n=== Retail Vision Analytics demo: per-camera summary ===")
    if notice:
        print(notice)
    for sid, st in summary.streams.items():
        t = tally.cams.get(sid, CameraTally())
        q = t.queue_lengths
        print(f"\n{sid}")
        if st.get("error"):
            print(f"  ERROR: {st['error']}")
        print(f"  frames {st['frames_processed']} processed / {st['frames_read']} read, {st['fps']:.2f} fps, "
              f"latency p50 {st['latency_p50_ms']:.0f} ms p95 {st['latency_p95_ms']:.0f} ms, "
              f"{st['bytes_per_frame'] / 1024:.1f} KiB/frame on the wire")
        print(f"  detections {t.detections}, tracks {len(t.tracks)}, journeys {t.journeys} ({t.converted} converted), "
              f"footfall in {t.footfall_in} / out {t.footfall_out}, alerts {t.alerts}")
        if q:
            print(f"  queue length mean {sum(q) / len(q):.1f} max {max(q)}, avg wait "
                  f"{sum(t.queue_waits) / len(t.queue_waits):.1f} s, max wait {t.queue_max_wait:.1f} s, "
                  f"abandonments {t.abandonments}")
        else:
            print("  queues: none on this camera")
    print(f"\noutputs: {out_dir}/ (detections.json, journeys.json, queue_metrics.json, heatmap.json, alerts.json"
          f"{', heatmap PNGs' if any(out_dir.glob('*.png')) else ''})")
    goals = accuracy_goals(clips or [], tally)
    if goals:
        print("\nagainst the simulator's ground truth:")
        print("\n".join(g.text for g in goals))
        if notice:
            print("  (placeholder detector: these errors are what detecting nothing costs, not the analytics' accuracy)")
    print(f"wall time {summary.wall_s:.1f} s, {summary.frames_processed} frames, "
          f"client CPU {summary.to_dict()['client_cpu_ms_per_frame']:.1f} ms/frame")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.split("\n")[0])
    # the defaults: the store-level run (all four cameras, 5 minutes of the 17:30 rush: the visit goals are this
    # window's); a quicker look: --cameras 2 --seconds 120 --fps 5 --start 2024-01-15T18:30:00Z
    ap.add_argument("--seconds", type=float, default=300.0, help="length of the rendered clip per camera")
    ap.add_argument("--cameras", type=int, default=4, choices=range(1, len(DEMO_CAMERAS) + 1),
                    help=f"how many of the simulated store's cameras, in this order: {', '.join(DEMO_CAMERAS)}")
    ap.add_argument("--fps", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default="2024-01-15T17:30:00Z",
                    help="simulated time of the first frame (17:30-18:30: evening rush, people queue at the tills)")
    ap.add_argument("--metrics-interval", type=float, default=10.0,
                    help="seconds between queue/footfall reports (configs/store.yaml says 60; shorter for a short clip)")
    ap.add_argument("--triton-url", default="localhost:8001")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "demo")
    ap.add_argument("--clips-dir", type=Path, default=DEMO_DATA, help="where the rendered clips go")
    ap.add_argument("--keep-triton", action="store_true", help="leave a Triton this demo started running")
    ap.add_argument("--no-visits", dest="visits", action="store_false",
                    help="per-camera journeys only: no store visit linking and scores")
    a = ap.parse_args(argv)
    one_blas_thread()  # core/blas.py: a second BLAS thread only spins in a per-frame process
    frame_paced_collector()  # core/collector.py: the young generation's passes at a per-frame pace
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from modelops.build import ensure_models

    print("checking models ...", flush=True)
    ensure_models()
    source, manifest = detector_source()
    notice = placeholder_notice(source)
    if notice:
        print(notice, flush=True)
    r_notice = reid_notice(detector_source(model="osnet_x0_25")[0]) if a.visits else None
    if r_notice:
        print(r_notice, flush=True)
    server = ensure_triton(a.triton_url)
    try:
        t = time.monotonic()
        clips = render_clips(a.clips_dir, a.seconds, a.cameras, a.fps, a.seed, a.start)
        print(f"rendered {len(clips)} camera clip(s) of {a.seconds:g} s in {time.monotonic() - t:.1f} s: "
              + ", ".join(str(c["path"]) for c in clips), flush=True)
        a.out.mkdir(parents=True, exist_ok=True)
        store_cfg = demo_store_config(a.metrics_interval)
        if a.visits:
            store_cfg, filled = with_visits(store_cfg)
            if filled:
                print(f"store visits: configs/store.yaml has no {', '.join(filled)}: taken from the simulator's "
                      "floor plan (simulator/world.py)", flush=True)
        config = demo_app_config(clips, a.triton_url, a.out, a.start, store_cfg)
        factory = build_processor_factory(config)
        finals: list = []
        if factory.link is not None:
            factory.link.on_tracklet = lambda tl: finals.append(tl) if tl.final else None
        print(f"running the stream clients on {len(clips)} camera(s) ...", flush=True)
        tally = SummarySink(keep_boxes=factory.link is not None)
        summary = run_pipeline(config, tally, factory)
        save_heatmaps(tally, clips, a.out)
        print_summary(summary, tally, a.out, notice, clips)
        report = {**summary.to_dict(), "accuracy": [g.to_dict() for g in accuracy_goals(clips, tally)]}
        if factory.link is not None:
            visits = score_visits(clips, tally, store_cfg, a, finals, factory.link)
            print_visits(visits)
            if notice or r_notice:
                print("  (placeholder model weights: see the notes above)")
            (a.out / "tracklet_truth.json").write_text(json.dumps(visits.pop("tracklet_truth"),
                                                                  separators=(",", ":")))
            report["visits"] = {**visits, "goals": [g.to_dict() for g in visits["goals"]]}
        elif a.visits:
            print("\nstore visits: the linker did not start (see the log above): per-camera journeys only")
        (a.out / "demo_summary.json").write_text(json.dumps(report, indent=2, default=str))
    finally:
        if server is not None and not a.keep_triton:
            server.stop()
        elif server is not None:
            print(f"Triton left running (pid {server.process.pid}, {server.keep()}): make triton-down stops it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
