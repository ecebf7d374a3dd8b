"""Simulate a store and write the seed's five files by running the real tracker and analytics.

    python scripts/generate_sample_data.py --output data/sample/ --hours 24 [--seed 42]
    python scripts/generate_sample_data.py --render-camera cam-checkout-1 --render-seconds 20 \\
        --render-output data/demo/cam-checkout-1.mp4

Customers arrive by a time-of-day profile, shop, queue and pay (simulator/agents.py);
four cameras see parts of the store (simulator/world.py); a detector model turns
what each camera sees into noisy detections (simulator/camera.py); those go through
``tracking.Tracker`` and ``analytics.pipeline`` exactly as live detections would,
and the records go to ``sinks.json_files.JsonFilesSink``. Beside the five files:
``ground_truth.json`` (true queue lengths, waits, dwell, footfall, purchases), ``footfall.json``
(the analytics' line counts, which have no seed file) and ``heatmap_<camera>.png``.
``python -m scripts.score_sample --input DIR`` compares the two. Time advances in chunks
of ``--chunk-s`` simulated seconds and records stream to disk, so memory does not grow
with ``--hours``. Cameras are independent (own detector-noise RNG, tracker, analytics), so
they run in ``--workers`` processes side by side, each writing its own files, which are
then merged (journey and alert ids renumbered store-wide); the files are identical for any
``--workers``. Frames where nothing is detected and nothing is tracked skip the tracker
(its update would be a no-op) but still go through the analytics.
"""
from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import re
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics.config import load_store_config
from analytics.journeys import counter_ids
from analytics.pipeline import StoreAnalytics
from analytics.records import FootfallRecord, HeatmapRecord, iso_utc, parse_iso_utc
from analytics.tracklets import Tracklet
from core.blas import one_blas_thread
from core.types import Tracks
from simulator import world as W
from simulator.agents import positions, simulate
from simulator.camera import CLASS_NAMES, detect, objects_in_view
from simulator.truth import Truth, add_track_runs

REPO_ROOT = Path(__file__).resolve().parents[1]
CAMERAS = list(W.CAMERA_IDS)
DEMO_CAMERAS = ["cam-checkout-1", "cam-entrance-1", "cam-aisles-1", "cam-checkout-2"]
DEFAULT_START = "2024-01-15T08:00:00Z"
STORE_CONFIG = REPO_ROOT / "configs" / "store.yaml"


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
        return Tracks.detected(ids, xyxy, scores, np.asarray(class_ids, np.int32))


def make_tracker(kind: str, fps: float):
    if kind == "truth":
        return TruthTracker()
    from tracking import Tracker, TrackerConfig

    return Tracker(TrackerConfig(frame_rate=fps))


_NO_TRACKS = Tracks.empty()


def _json_records(path: Path, records: list) -> None:
    """Footfall records (no seed file) as a JSON array in the seed's style."""
    path.write_text(json.dumps(records, indent=1))


def _footfall_dict(r: FootfallRecord) -> dict:
    return {"stream_id": r.stream_id, "timestamp": iso_utc(r.timestamp), "line_id": r.line_id,
            "count_in": r.count_in, "count_out": r.count_out, "occupancy": r.occupancy}


@dataclass
class _Job:
    """What every camera run needs; set before the worker processes fork (they inherit it)."""

    store: object
    cfg: object
    cameras: list
    t0: float
    t1: float
    fps: float
    seed: int
    tracker: str
    detections_every_s: float
    chunk_s: float
    tmp: Path
    log: object


_JOB: _Job | None = None


def _cpu() -> float:
    return time.process_time()


def _run_camera(cid: str) -> dict:
    """One camera over the whole run: frames -> detector noise -> tracker -> analytics -> its own
    seed files in ``tmp/<camera>/`` (merged by ``_merge``). Cameras are independent (own RNG
    stream, tracker and analytics), so the result does not depend on how they are scheduled."""
    from sinks.json_files import JsonFilesSink

    job = _JOB
    cpu0, wall0 = _cpu(), time.monotonic()
    k = job.cameras.index(cid)
    cam = W.CAMERAS[cid]
    truth = Truth(job.store, job.cfg, [cid], job.fps)
    multi = StoreAnalytics(job.cfg, detections_every_s=job.detections_every_s)
    multi.next_journey_id = counter_ids(f"j{k}-", 9)  # provisional: renumbered store-wide by _merge
    multi.next_alert_id = counter_ids(f"a{k}-", 9)
    an = multi.for_stream(cid)
    trk = make_tracker(job.tracker, job.fps)
    idle = (lambda: trk.num_tracks == 0) if hasattr(trk, "num_tracks") else (lambda: False)
    cam_index = CAMERAS.index(cid) if cid in CAMERAS else 99
    rng = np.random.default_rng([job.seed, cam_index])
    sink = JsonFilesSink(job.tmp / cid, flush_every=20000)
    linking = an.emit_tracklets
    looks = None
    if linking:
        from simulator.appearance import AppearanceModel

        looks = AppearanceModel.from_calibration(seed=job.seed, rng=np.random.default_rng([job.seed, 77, cam_index]))
    # re-id vectors only for the frames the tracklets take crops from (a tick every 1 s), not every frame
    embed_every = max(1, int(round(1.0 * job.fps)))
    tracklets: list = []  # (emitted at, tracklet)
    who: dict[int, list] = {}  # track id -> runs [t_first, t_last, true customer id, detections]
    footfall, last_heatmap = [], None
    fps = job.fps
    n_total = int(round((job.t1 - job.t0) * fps))
    per_chunk = max(1, int(round(job.chunk_s * fps)))
    st = {"sim_s": 0.0, "tracker_s": 0.0, "analytics_s": 0.0, "write_s": 0.0, "frames": 0, "tracker_calls": 0,
          "detections": 0, "tracks": 0}
    next_log = time.monotonic() + 30
    truth_mode = job.tracker == "truth"
    for f0 in range(0, n_total, per_chunk):
        c0 = _cpu()
        n = min(per_chunk, n_total - f0)
        times = job.t0 + (f0 + np.arange(n)) / fps
        obj = objects_in_view(job.store, cam, positions(job.store, times))
        truth.add(cid, obj, times, f0)
        det = detect(obj, n, cam, rng)
        bounds = np.searchsorted(det.frame, np.arange(n + 1)).tolist()
        tl = times.tolist()
        emb_all = None
        if looks is not None:
            ef = ((f0 + det.frame) % embed_every) == 0  # frames with re-id crops
            emb_all = np.zeros((len(det.frame), looks.dim), np.float32)
            if np.count_nonzero(ef):
                emb_all[ef] = looks.embed(det.truth_id[ef], cam_index, t=times[det.frame[ef]])
            e_frame = ((f0 + np.arange(n)) % embed_every) == 0
        pair_t: list = []
        pair_c: list = []
        pair_s: list = []  # the detections' times
        c1 = _cpu()
        st["sim_s"] += c1 - c0
        st["detections"] += len(det.frame)
        ttrk = tana = 0.0
        recs: list = []
        calls = ntr = 0
        for f in range(n):
            a, b = bounds[f], bounds[f + 1]
            t = tl[f]
            c1 = _cpu()
            if a == b and idle():
                tr = _NO_TRACKS  # nothing detected and nothing tracked: the tracker's update is a no-op
            elif truth_mode:
                tr = trk.update(det.xyxy[a:b], det.scores[a:b], det.cls[a:b], None, timestamp=t,
                                truth_ids=det.truth_id[a:b])
                calls += 1
            else:
                tr = trk.update(det.xyxy[a:b], det.scores[a:b], det.cls[a:b], None, timestamp=t)
                calls += 1
            c2 = _cpu()
            ntr += len(tr.track_ids)
            if linking:
                emb = emb_all[a:b] if a < b and e_frame[f] else None
                r = an.update(t, tr, CLASS_NAMES, emb)
                if len(tr.track_ids):
                    d = tr.det_index >= 0
                    if np.count_nonzero(d):
                        pair_t.append(tr.track_ids[d])
                        pair_c.append(det.truth_id[a:b][tr.det_index[d]])
                        pair_s.append(np.full(int(np.count_nonzero(d)), t))
                if r:
                    recs += _take_tracklets(r, t, tracklets)
            else:
                r = an.update(t, tr, CLASS_NAMES)
                if r:
                    recs += r
            tana += _cpu() - c2
            ttrk += c2 - c1
        if pair_t:
            add_track_runs(who, np.concatenate(pair_t), np.concatenate(pair_s), np.concatenate(pair_c))
        st["tracker_s"] += ttrk
        st["analytics_s"] += tana
        st["tracks"] += ntr
        st["tracker_calls"] += calls
        st["frames"] += n
        c3 = _cpu()
        footfall, last_heatmap = _emit(sink, recs, footfall, last_heatmap)
        st["write_s"] += _cpu() - c3
        if job.log is not None and time.monotonic() >= next_log:
            next_log = time.monotonic() + 30
            job.log(f"  {cid} {iso_utc(times[-1])}: {(f0 + n) / max(n_total, 1):.0%}, "
                    f"{time.monotonic() - wall0:.0f} s, peak RSS {_peak_mb():.0f} MB")
    c3 = _cpu()
    last = an.flush(job.t1)
    if linking:
        last = _take_tracklets(last, job.t1, tracklets)
    footfall, last_heatmap = _emit(sink, last, footfall, last_heatmap)
    sink.close()
    st["write_s"] += _cpu() - c3
    st["cpu_s"] = _cpu() - cpu0
    st["wall_s"] = time.monotonic() - wall0
    st["peak_rss_mb"] = _peak_mb()
    return {"camera": cid, "truth": truth.cams[cid], "footfall": footfall, "heatmap": last_heatmap, "stats": st,
            "tracklets": tracklets, "who": who}


def _take_tracklets(recs: list, t: float, into: list) -> list:
    """Move the tracklets out of a frame's records (to ``into``, with their time); a final
    tracklet's camera journey stays, for this camera's file."""
    keep = []
    for r in recs:
        if isinstance(r, Tracklet):
            into.append((t, r))
            if r.final and r.journey is not None:
                keep.append(r.journey)
        else:
            keep.append(r)
    return keep


def _emit(sink, recs, footfall, last_heatmap):
    keep = []
    for r in recs:
        if isinstance(r, FootfallRecord):
            footfall.append(_footfall_dict(r))
        elif isinstance(r, HeatmapRecord):
            last_heatmap = r
            keep.append(r)
        else:
            keep.append(r)
    if keep:
        sink.write(keep)
    return footfall, last_heatmap


def _lines(path: Path):
    """The records of a JsonFilesSink array file, one serialised object per line."""
    with open(path, "rb") as f:
        for line in f:
            s = line.strip()
            if s in (b"[", b"]", b"[]", b""):
                continue
            yield s[:-1] if s.endswith(b",") else s


_TS = re.compile(rb'"timestamp": "([^"]+)"')


def _ts_key(line: bytes) -> bytes:
    """Sortable form of a record's ISO timestamp (``...:05Z`` and ``...:05.250Z`` compare in time order)."""
    m = _TS.search(line)
    if m is None:
        return b""
    ts = m.group(1).rstrip(b"Z")
    return ts if b"." in ts else ts + b".000"


class _Out:
    """A JSON array written like ``JsonFilesSink`` writes one (same separators and layout)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")
        self.f.write(b"[")
        self.count = 0

    def add(self, line: bytes) -> None:
        self.f.write((b",\n  " if self.count else b"\n  ") + line)
        self.count += 1

    def close(self) -> None:
        self.f.write(b"\n]\n" if self.count else b"]\n")
        self.f.close()


def _dumps(obj: dict) -> bytes:
    return json.dumps(obj, separators=(", ", ": "), ensure_ascii=False).encode("utf-8")


def _merge(tmp: Path, cameras: list[str], output: Path, journeys_name: str = "journeys.json") -> dict[str, int]:
    """Per-camera seed files -> the five store-wide files, streaming. Detections, queue metrics and
    heatmaps are merged in time order (ties: camera order); journeys and alerts are renumbered
    store-wide (``journey-000001``... by end time; ``alert-000001``... by first record)."""
    counts = {}
    for name in ("detections.json", "queue_metrics.json", "heatmap.json"):
        out = _Out(output / name)
        if name == "heatmap.json":  # no timestamp field: the k-th report of every camera is at the same instant
            its = [((i, k), ln) for k, c in enumerate(cameras) for i, ln in enumerate(_lines(tmp / c / name))]
            its.sort(key=lambda x: x[0])
            for _, ln in its:
                out.add(ln)
        else:
            streams = [((_ts_key(ln), k, ln) for ln in _lines(tmp / c / name)) for k, c in enumerate(cameras)]
            for _, _, ln in heapq.merge(*streams):
                out.add(ln)
        out.close()
        counts[name] = out.count
    journeys = []
    for k, c in enumerate(cameras):
        for ln in _lines(tmp / c / "journeys.json"):
            j = json.loads(ln)
            journeys.append((parse_iso_utc(j["end_time"]), parse_iso_utc(j["start_time"]), k, j["journey_id"], j))
    journeys.sort(key=lambda x: x[:4])
    out = _Out(output / journeys_name)
    for i, (*_, j) in enumerate(journeys, 1):
        j["journey_id"] = f"journey-{i:06d}"
        out.add(_dumps(j))
    out.close()
    counts[journeys_name] = out.count
    alerts = []
    for k, c in enumerate(cameras):
        for n, ln in enumerate(_lines(tmp / c / "alerts.json")):
            a = json.loads(ln)
            alerts.append((parse_iso_utc(a["timestamp"]), k, n, a))
    alerts.sort(key=lambda x: x[:3])
    ids: dict[str, str] = {}
    out = _Out(output / "alerts.json")
    for *_, a in alerts:
        a["alert_id"] = ids.setdefault(a["alert_id"], f"alert-{len(ids) + 1:06d}")
        out.add(_dumps(a))
    out.close()
    counts["alerts.json"] = out.count
    return {n: counts[n] for n in ("detections.json", journeys_name, "queue_metrics.json", "heatmap.json",
                                   "alerts.json")}


def link_visits(results: list[dict], cfg, cameras: list[str], output: Path, t1: float, png: bool = True) -> dict:
    """The store-level linker over every camera's tracklets, fed in the order the cameras emitted
    them (as one process running the store's cameras would): visits to ``journeys.json``, store
    KPIs to ``store_kpis.json``, the floor heatmap to ``floor_heatmap.json`` (+ PNG), and each
    tracklet's true customer to ``tracklet_truth.json`` (for ``simulator.score``)."""
    from analytics.records import FloorHeatmapRecord, StoreKpiRecord, VisitRecord
    from visits.linker import VisitLinker

    events = sorted(((t, cameras.index(r["camera"]), i, tl) for r in results
                     for i, (t, tl) in enumerate(r["tracklets"])), key=lambda e: e[:3])
    linker = VisitLinker(cfg)
    c0 = _cpu()
    out: list = []
    peak = {"open_visits": 0, "array_bytes": 0}
    for n, (t, _, _, tl) in enumerate(events):
        out += linker.process([tl], t)
        if n % 200 == 0 or len(linker.visits) > peak["open_visits"]:
            fp = linker.footprint()
            peak = {k: max(peak[k], fp[k]) for k in peak}
    before_flush = linker.footprint()
    out += linker.flush(t1)
    cpu = _cpu() - c0
    visits = [r for r in out if isinstance(r, VisitRecord)]
    visits.sort(key=lambda v: (v.end_time, v.start_time, v.track_id))
    o = _Out(output / "journeys.json")
    for i, v in enumerate(visits, 1):
        d = v.to_dict()
        d["journey_id"] = f"journey-{i:06d}"
        o.add(_dumps(d))
    o.close()
    kpis = [r for r in out if isinstance(r, StoreKpiRecord)]
    _json_records(output / "store_kpis.json", [k.to_dict() for k in kpis])
    heat = [r for r in out if isinstance(r, FloorHeatmapRecord)]
    _json_records(output / "floor_heatmap.json", [h.to_dict() for h in heat])
    if png and heat and cfg.floor is not None:
        from visits.floor_heatmap import save_floor_png

        save_floor_png(output / "floor_heatmap.png", heat[-1], cfg.floor)
    # detections of each true customer (-1: false positives) each camera track took, as runs in time
    truth = {f"{r['camera']}:{tid}": [[round(t0, 3), round(t1, 3), c, n] for t0, t1, c, n in runs]
             for r in results for tid, runs in r["who"].items()}
    (output / "tracklet_truth.json").write_text(json.dumps(truth, separators=(",", ":")))
    return {"tracklet_events": len(events), "visits": len(visits), "cpu_s": round(cpu, 2),
            "peak_open_visits": peak["open_visits"], "peak_array_bytes": peak["array_bytes"],
            "at_end": before_flush, "mode": linker.mode, **{k: int(v) for k, v in linker.stats.items()}}


def _busiest_first(store, cameras: list[str], t0: float, t1: float) -> list[str]:
    """Cameras in decreasing order of people in view (sampled every 30 s): the busiest start
    first, so no worker is left alone with a heavy camera at the end."""
    times = np.arange(t0, max(t1, t0 + 1.0), 30.0)
    xy = positions(store, times).xy
    return sorted(cameras, key=lambda c: -int(W.CAMERAS[c].sees(xy).sum()))


def default_workers(n_cameras: int) -> int:
    return max(1, min(n_cameras, os.cpu_count() or 1))


def generate(output: Path, hours: float, seed: int = 42, start: str = DEFAULT_START, fps: float = 15.0,
             cameras: list[str] | None = None, tracker: str = "project", detections_every_s: float = 1.0,
             chunk_s: float = 60.0, store_config: Path = STORE_CONFIG, png: bool = True, log=print,
             workers: int | None = None) -> dict:
    """Simulate ``hours`` and write the seed files (+ ground truth) to ``output``. Cameras run in
    ``workers`` processes (default: one per CPU core, at most one per camera); the files do
    not depend on ``workers``. Returns the run summary (also ``generation_summary.json``)."""
    global _JOB
    one_blas_thread()  # core/blas.py: the cameras' trackers, here or in the workers forked below
    wall0, cpu0 = time.monotonic(), _cpu()
    cameras = list(cameras or CAMERAS)
    cfg = load_store_config(store_config)
    for c in cameras:
        cfg.camera(c)
        if c not in W.CAMERAS:
            raise SystemExit(f"{c}: the simulator's floor plan has no such camera ({', '.join(W.CAMERAS)})")
    t0 = parse_iso_utc(start)
    t1 = t0 + hours * 3600.0
    store = simulate(seed, t0, t1)
    plan_cpu = _cpu() - cpu0
    output.mkdir(parents=True, exist_ok=True)
    workers = default_workers(len(cameras)) if workers is None else max(1, int(workers))
    with tempfile.TemporaryDirectory(prefix=".gen-", dir=output) as tmp:
        _JOB = _Job(store, cfg, cameras, t0, t1, fps, seed, tracker, detections_every_s, chunk_s, Path(tmp), log)
        try:
            if workers == 1 or len(cameras) == 1:
                results = [_run_camera(c) for c in cameras]
            else:
                ctx = mp.get_context("fork")
                with ctx.Pool(min(workers, len(cameras))) as pool:
                    done = {r["camera"]: r for r in pool.imap_unordered(_run_camera, _busiest_first(store, cameras,
                                                                                                  t0, t1))}
                results = [done[c] for c in cameras]
        finally:
            _JOB = None
        c0 = _cpu()
        linking = cfg.visits is not None
        files = _merge(Path(tmp), cameras, output, "camera_journeys.json" if linking else "journeys.json")
        merge_cpu = _cpu() - c0
    visits = link_visits(results, cfg, cameras, output, t1, png) if linking else None
    if visits is not None:  # the seed's journeys file holds the visits; the camera journeys sit beside it
        visits["camera_journeys"] = files.pop("camera_journeys.json")
        files["journeys.json"] = visits["visits"]
        files = {n: files[n] for n in ("detections.json", "journeys.json", "queue_metrics.json", "heatmap.json",
                                       "alerts.json")}
    truth = Truth(store, cfg, [], fps)
    for r in results:
        truth.cams[r["camera"]] = r["truth"]
    truth.write(output / "ground_truth.json")
    _json_records(output / "footfall.json", [f for r in results for f in r["footfall"]])
    if png:
        from analytics.heatmap import save_overlay
        from simulator.render import background

        for r in results:
            if r["heatmap"] is not None:
                save_overlay(output / f"heatmap_{r['camera']}.png", r["heatmap"], background(W.CAMERAS[r["camera"]]))
    per_cam = {r["camera"]: r["stats"] for r in results}
    tot = lambda k: sum(s[k] for s in per_cam.values())  # noqa: E731
    main_cpu = _cpu() - cpu0
    cpu = main_cpu + (0.0 if workers == 1 else tot("cpu_s"))
    wall = time.monotonic() - wall0
    split = {"plan_s": plan_cpu, "sim_s": tot("sim_s"), "tracker_s": tot("tracker_s"),
             "analytics_s": tot("analytics_s"), "write_s": tot("write_s") + merge_cpu}
    summary = {"hours": hours, "cameras": cameras, "fps": fps, "seed": seed, "start": start, "tracker": tracker,
               "workers": workers, "frames": tot("frames"), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
               "peak_rss_mb": round(max([_peak_mb()] + [s["peak_rss_mb"] for s in per_cam.values()]), 1),
               "customers": len(store.customers), "files": files,
               "detections": tot("detections"), "tracks": tot("tracks"), "tracker_calls": tot("tracker_calls"),
               "cpu_split_s": {k: round(v, 2) for k, v in split.items()}, "visits": visits,
               "per_camera": {c: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in s.items()}
                              for c, s in per_cam.items()}}
    (output / "generation_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def render_camera(camera_id: str = "cam-checkout-1", output: str | Path | None = None, seconds: float = 20.0,
                  fps: float = 15.0, seed: int = 7, start: str | None = None, **kw):
    """Render one camera to an mp4 (+ ``<output>.truth.json``); see simulator/render.py."""
    from simulator.render import DEFAULT_RENDER_START, render_camera_video

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
                    help="project: tracking.Tracker; truth: true identities (diagnostics)")
    ap.add_argument("--detections-every", type=float, default=1.0,
                    help="seconds between detection records per camera (0: every frame; a day of every frame "
                         "is tens of GB)")
    ap.add_argument("--chunk-s", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=None,
                    help="processes running cameras side by side (default: CPU cores, at most one per camera); "
                         "the output does not depend on it")
    ap.add_argument("--store-config", type=Path, default=STORE_CONFIG)
    ap.add_argument("--no-png", action="store_true")
    ap.add_argument("--render-camera", choices=CAMERAS, help="render this camera to a video instead")
    ap.add_argument("--render-seconds", type=float, default=20.0)
    ap.add_argument("--render-output", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.render_camera:
        from simulator.render import DEFAULT_RENDER_START

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
                 a.store_config, png=not a.no_png, workers=a.workers)
    print(f"done in {s['wall_s']:.1f} s wall, {s['cpu_s']:.1f} s CPU ({s['workers']} worker(s)): {s['frames']} camera "
          f"frames, {s['customers']} customers, peak RSS {s['peak_rss_mb']:.0f} MB; files: {s['files']}")
    print("CPU split: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in s["cpu_split_s"].items()))
    print(f"score it: python -m scripts.score_sample --input {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
