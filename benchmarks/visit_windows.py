"""Store visits on many demo windows: where one 5-minute window says little.

    python -m benchmarks.visit_windows [--windows 17:30/42 18:15/4 ...] [--no-report]
    python -m benchmarks.visit_windows --replay-only          # recorded windows only, no Triton
    python -m benchmarks.visit_windows --linker-only --replay-only   # linker changes: ~1 s a window
    make bench-visit-windows

One demo window has 20-50 customers: a single linking mistake moves its visit IDF1 by
0.01-0.03, and which windows fail depends on the seed (docs/visits.md, "Other windows"). So a
change to the tracker, the camera analytics or the linker is judged on many windows, on the
same detections each time:

* **record** (each window not recorded yet; ~2 min a window on 2 cores): the demo's pipeline
  (``clients.demo``: the four cameras rendered by the simulator, the served Triton ensemble,
  the tracker with configs/app_config.yaml's ``tracker:`` settings, the camera analytics, the
  store linker) runs the window. Kept: every frame's detections (boxes, scores, re-id
  embeddings; the frame without its pixels) in the order the cameras processed them, every
  call the ``StoreLink`` made to its linker, the store config, the true visits, the clips'
  per-frame truth.
* **replay** (every recorded window): by default the detections go through fresh trackers,
  camera analytics and a linker of the code and tracker settings as they are now (~10 s a
  window), and are scored like the demo scores them, against the tracks of this run
  (``simulator.score.visit_scores``; plus the demo's per-camera goals). ``--linker-only``
  replays the linker's recorded input instead (~1 s a window; the tracks of the tracker
  settings it was recorded with). Either reproduces what the demo printed for that window.

Recordings are local caches in ``outputs/visit-windows/<HHMM>-<seed>.pkl`` (pickles, ~65 MB
each, never committed; delete one to record it again, e.g. after a detector or re-id model
change). Load only recordings this tool wrote.
Reported (docs/benchmarks.md, "Store visits on many demo windows"): per window the customers,
visits found, visit IDF1, the oracle (every camera track in its main customer's visit: what
the tracks allow), store conversion error; then the mean and how many windows meet the demo
goal (visit IDF1 >= 0.9).
"""
from __future__ import annotations

import argparse
import logging
import pickle
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks._report import append_section

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / "outputs" / "visit-windows"
DAY = "2024-01-15"
# the evening rush (16:30-18:30 is the simulator's busiest) and one quiet noon; "17:30/7" is
# `make demo-store`. The tracker's reid_thresh was chosen on the first eleven and then checked on
# the last three (docs/tracking-tuning.md)
WINDOWS = ("17:30/7", "17:30/8", "17:30/42", "17:05/11", "17:15/21", "17:45/3", "17:50/17", "18:00/13",
           "18:15/4", "18:30/2", "12:30/5", "17:20/31", "17:40/55", "18:05/77")
SECONDS, FPS, CAMERAS = 300.0, 4.0, 4
GOAL = 0.9


class _CameraRecorder:
    """Stands in for a camera's processor (``clients.camera.TrackedCamera``): keeps each frame's
    detections (the frame without its pixels), then hands them on."""

    def __init__(self, camera: Any, events: list) -> None:
        self.camera, self.events = camera, events

    def process(self, frame, dets):
        self.events.append((frame.stream_id, replace(frame, image=None, encoded=None), dets))
        return self.camera.process(frame, dets)

    def flush(self, timestamp):
        self.events.append((self.camera.stream_id, None, timestamp))
        return self.camera.flush(timestamp)


class _Recorder:
    """Stands in for a ``StoreLink``'s linker: keeps each call, then makes it."""

    def __init__(self, linker: Any) -> None:
        self.linker = linker
        self.calls: list[tuple[str, list]] = []

    def process(self, records, now):
        self.calls.append(("process", [list(records), now]))
        return self.linker.process(records, now)

    def advance(self, now):
        self.calls.append(("advance", [now]))
        return self.linker.advance(now)

    def flush(self, now=None):
        self.calls.append(("flush", [now]))
        return self.linker.flush(now)

    def __getattr__(self, name: str) -> Any:  # stats, store_id, mode, ...
        return getattr(self.linker, name)


def parse_window(w: str) -> tuple[str, int]:
    """'17:30/42' -> ('17:30', 42)."""
    try:
        hm, seed = w.split("/")
        h, m = (int(x) for x in hm.split(":"))
        if not (0 <= h < 24 and 0 <= m < 60):
            raise ValueError
        return f"{h:02d}:{m:02d}", int(seed)
    except ValueError:
        raise SystemExit(f"visit_windows: window {w!r} is not HH:MM/seed (e.g. 17:30/42)") from None


def cache_path(hm: str, seed: int) -> Path:
    return CACHE / f"{hm.replace(':', '')}-{seed}.pkl"


def record(hm: str, seed: int, url: str) -> dict:
    """Run one window through the demo pipeline (Triton must answer at ``url``) and keep every
    frame's detections, the linker's input and the truth."""
    from clients.app import build_processor_factory
    from clients.demo import SummarySink, demo_app_config, demo_store_config, render_clips, run_pipeline
    from clients.demo_visits import store_truth, tracklet_truth

    start = f"{DAY}T{hm}:00Z"
    with tempfile.TemporaryDirectory(prefix="visit-window-") as tmp:
        clips = render_clips(Path(tmp) / "clips", SECONDS, CAMERAS, FPS, seed, start)
        store = demo_store_config(10.0, visits=True)
        config = demo_app_config(clips, url, Path(tmp) / "out", start, store)
        factory = build_processor_factory(config)
        if factory.link is None:
            raise SystemExit("visit_windows: the store linker did not start (see the log above)")
        rec = factory.link.linker = _Recorder(factory.link.linker)
        events: list = []
        streams: dict[str, float] = {}

        def cameras(spec, source):  # the factory's cameras, recorded (no live store config in a benchmark)
            streams[spec.id] = getattr(source, "fps", None) or 25.0
            return _CameraRecorder(factory(spec, source), events)

        tally = SummarySink(keep_boxes=True)
        run_pipeline(config, tally, cameras)
        cams = [c["stream_id"] for c in clips]
        truth = store_truth(store, cams, SECONDS, FPS, seed, start)
        ttruth = tracklet_truth(clips, tally)
    return {"window": hm, "seed": seed, "store": store, "calls": rec.calls, "truth": truth, "ttruth": ttruth,
            "events": events, "streams": streams,
            "clips": [{"stream_id": c["stream_id"], "truth": c["truth"]} for c in clips]}


def relink(rec: dict, settings=None) -> list:
    """The window's linker input through a fresh ``VisitLinker`` (``settings``: the store's own
    ``visits:`` when None): everything it returns, in order."""
    from visits.linker import VisitLinker

    linker = VisitLinker(rec["store"], settings)
    out: list = []
    for name, args in rec["calls"]:
        out += getattr(linker, name)(*args) or []
    return out


def replay(rec: dict, settings=None) -> dict:
    """``relink``, scored as the demo scores its visits."""
    from analytics.records import VisitRecord
    from simulator.score import visit_scores

    visits = [r.to_dict() for r in relink(rec, settings) if isinstance(r, VisitRecord)]
    return visit_scores(visits, rec["truth"], rec["ttruth"])


def retrack(rec: dict, tracker: dict | None = None, store=None) -> dict:
    """The window's recorded detections through the application's cameras (``CameraFactory``:
    a fresh tracker each, with ``tracker`` as its ``TrackerConfig`` fields, configs/app_config.yaml's
    ``tracker:`` when None; the camera analytics; the store linker of ``store``, the recorded
    config when None), in the recorded order; scored as the demo scores its visits, against this
    run's own tracks, plus the demo's per-camera goals met (``camera_goals``, "met/all"). For
    tracker and analytics changes (~3-10 s a window)."""
    from types import SimpleNamespace

    from clients.app import build_processor_factory
    from clients.config import StreamSpec, parse_app_config
    from clients.demo import SummarySink, accuracy_goals, app_tracker_settings
    from clients.demo_visits import tracklet_truth
    from simulator.score import visit_scores

    settings = app_tracker_settings() if tracker is None else tracker
    config = replace(parse_app_config({"tracker": settings}, "<benchmarks.visit_windows>"),
                     analytics=store or rec["store"])
    factory = build_processor_factory(config)
    cams = {sid: factory(StreamSpec(id=sid, source=sid, type="file"), SimpleNamespace(fps=fps))
            for sid, fps in rec["streams"].items()}
    tally = SummarySink(keep_boxes=True)
    for sid, frame, x in rec["events"]:
        tally.write(cams[sid].process(frame, x) if frame is not None else cams[sid].flush(x))
    visits = [v.to_dict() for v in tally.visits]
    goals = accuracy_goals(rec["clips"], tally)
    return {**visit_scores(visits, rec["truth"], tracklet_truth(rec["clips"], tally)),
            "camera_goals": f"{sum(g.met for g in goals)}/{len(goals)}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", nargs="+", default=list(WINDOWS), help="HH:MM/seed, 4 cameras x 300 s at 4 fps")
    ap.add_argument("--replay-only", action="store_true", help="score the recorded windows; record none")
    ap.add_argument("--linker-only", action="store_true",
                    help="replay the linker's recorded input (~1 s a window: for linker changes; the tracks are "
                         "those of the tracker settings it was recorded with), not the detections")
    ap.add_argument("--triton-url", default="localhost:8001")
    ap.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    windows = [parse_window(w) for w in a.windows]
    missing = [w for w in windows if not cache_path(*w).exists()
               or (not a.linker_only and "events" not in pickle.loads(cache_path(*w).read_bytes()))]
    if missing and not a.replay_only:
        from core.blas import one_blas_thread

        one_blas_thread()
        from clients.demo import ensure_triton
        from modelops.build import ensure_models

        ensure_models()
        server = ensure_triton(a.triton_url)
        try:
            CACHE.mkdir(parents=True, exist_ok=True)
            for hm, seed in missing:
                t0 = time.monotonic()
                print(f"recording {hm} seed {seed} ...", flush=True)
                rec = record(hm, seed, a.triton_url)
                tmp = cache_path(hm, seed).with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL))
                tmp.replace(cache_path(hm, seed))
                print(f"  {len(rec['calls'])} linker calls in {time.monotonic() - t0:.0f} s", flush=True)
        finally:
            if server is not None:
                server.stop()
    rows, scores = [], []
    for hm, seed in windows:
        path = cache_path(hm, seed)
        if not path.exists():
            print(f"{hm} seed {seed}: not recorded (run without --replay-only)")
            continue
        rec = pickle.loads(path.read_bytes())
        if not a.linker_only and "events" not in rec:
            print(f"{hm} seed {seed}: recorded without its detections (run without --replay-only)")
            continue
        t0 = time.perf_counter()
        s = replay(rec) if a.linker_only else retrack(rec)
        took = time.perf_counter() - t0
        scores.append(s["idf1"])
        rows.append(f"| {hm} | {seed} | {s['true_visits']} | {s['visits']} | **{s['idf1']:.3f}** | {s['oracle_idf1']:.3f} "
                    f"| {s['store_conversion_error_points']:.1f} | {took:.1f} |")
        print(f"{hm} seed {seed:3d}: visit IDF1 {s['idf1']:.3f} (oracle {s['oracle_idf1']:.3f}), visits "
              f"{s['visits']} / {s['true_visits']}, conversion error {s['store_conversion_error_points']:.1f} pt"
              + (f", per-camera goals met {s['camera_goals']}" if "camera_goals" in s else ""), flush=True)
    if not scores:
        return 1
    met = sum(x >= GOAL for x in scores)
    summary = (f"mean visit IDF1 {sum(scores) / len(scores):.3f}, lowest {min(scores):.3f}; "
               f"{met} of {len(scores)} windows meet the demo goal (>= {GOAL})")
    print(summary)
    if not a.no_report:
        table = "\n".join(["| window | seed | customers | visits | visit IDF1 | oracle | conversion error (pt) | replay s |",
                           "|---|---:|---:|---:|---:|---:|---:|---:|", *rows])
        append_section("Store visits on many demo windows (python -m benchmarks.visit_windows)", table,
                       f"4 cameras x {SECONDS:g} s at {FPS:g} fps of {DAY}, rendered and run through the served "
                       "ensemble once per window (recorded), then replayed "
                       + ("through the current linker from its recorded input (--linker-only)" if a.linker_only else
                          "from the recorded detections through the current trackers (configs/app_config.yaml "
                          "tracker:), camera analytics and linker")
                       + f". {summary}. Oracle: every camera track in its main customer's visit (what the tracks "
                       "allow). The tracker's reid_thresh was chosen on the first eleven windows (the last three "
                       "held out): docs/tracking-tuning.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
