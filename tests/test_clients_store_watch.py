"""The live store config without Triton: the camera-by-camera diff (analytics.changes), the
swap at a frame boundary (clients.camera.TrackedCamera.stage), the watch's checks
(clients.store_watch.StoreWatch) and the SIGHUP routing (clients.signals).

The same on a running pipeline with a real Triton: tests/test_clients_live_config.py.
"""
from __future__ import annotations

import asyncio
import copy
import os
import signal
from pathlib import Path

import numpy as np
import yaml

from analytics.changes import camera_changes, store_changes
from analytics.config import load_store_config, parse_store_config
from analytics.pipeline import StoreAnalytics
from analytics.records import DetectionRecord, JourneyRecord
from clients.camera import TrackedCamera
from clients.signals import RELOAD_SIGNAL, ignore_reload_signal, loop_signal_handlers
from clients.store_watch import StoreWatch
from core.types import Detections, Frame, Tracks
from tests.analytics_helpers import square

REPO = Path(__file__).resolve().parents[1]
CAMS = ("cam-a", "cam-b")


def raw_store() -> dict:
    return {"metrics_interval_s": 60,
            "cameras": {c: {"image_size": [640, 360], "zones": {"z": {"kind": "aisle", "polygon": square(0, 0, 320, 360)}},
                            "journeys": {"lost_after_s": 3, "min_duration_s": 1}} for c in CAMS},
            "alerts": [{"id": "crowd", "type": "occupancy", "cameras": ["cam-a"], "threshold": 5}]}


def write(path: Path, raw: dict | str) -> None:
    """A new version of the file (a distinct mtime even on coarse clocks)."""
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


# --------------------------------------------------------------------------- the diff

def test_store_changes_name_the_parts_of_changed_cameras_only():
    old = parse_store_config(raw_store(), "s.yaml")
    assert store_changes(old, parse_store_config(raw_store(), "s.yaml")) == {}
    r = raw_store()
    r["cameras"]["cam-a"]["zones"]["z"]["polygon"] = square(0, 0, 300, 360)
    r["store"] = {"name": "renamed"}  # shapes no analytics
    assert store_changes(old, parse_store_config(r, "s.yaml")) == {"cam-a": ["zones"]}
    r = raw_store()
    r["alerts"][0]["threshold"] = 7  # a rule of cam-a only
    r["cameras"]["cam-b"]["journeys"]["lost_after_s"] = 5
    assert store_changes(old, parse_store_config(r, "s.yaml")) == {"cam-a": ["alert rules"], "cam-b": ["journeys"]}
    r = raw_store()
    r["metrics_interval_s"] = 30  # store-wide: every camera
    assert store_changes(old, parse_store_config(r, "s.yaml")) == {c: ["report intervals"] for c in CAMS}
    r = raw_store()
    r["visits"] = {}  # turning store visits on: every camera's analytics now emit tracklets
    assert store_changes(old, parse_store_config(r, "s.yaml")) == {c: ["visits"] for c in CAMS}
    r["cameras"]["cam-a"]["floor_points"] = {"image": [[0, 0], [640, 0], [640, 360], [0, 360], [320, 180]],
                                             "floor": [[0, 0], [8, 0], [8, 4.5], [0, 4.5], [4, 2.25]]}
    with_floor = parse_store_config(r, "s.yaml")
    r["cameras"]["cam-a"]["floor_points"]["floor"][1] = [8.2, 0]  # recalibrated
    r["cameras"]["cam-a"]["floor_points"]["max_rms_m"] = 1.0
    assert store_changes(with_floor, parse_store_config(r, "s.yaml")) == {"cam-a": ["floor"]}
    r = raw_store()
    r["cameras"]["cam-c"] = r["cameras"].pop("cam-b")
    new = parse_store_config(r, "s.yaml")
    assert store_changes(old, new) == {"cam-b": ["removed"], "cam-c": ["added"]}
    assert camera_changes(old, new, "cam-zzz") == []


# --------------------------------------------------------------------------- the swap

class StubTracker:
    """Detections in, tracks out: row i is track i + 1 (ids continue across swaps)."""

    def __init__(self) -> None:
        self.calls = 0

    def update(self, xyxy, scores, class_ids, embeddings, timestamp=None) -> Tracks:
        self.calls += 1
        n = len(xyxy)
        return Tracks.detected(np.arange(1, n + 1, dtype=np.int64), xyxy, scores, class_ids)


def person_at(x: float, y: float) -> Detections:
    return Detections(np.array([[x - 10, y - 50, x + 10, y]], np.float32), np.array([0.9], np.float32),
                      np.array([0], np.int32), ("person",))


def frame(k: int) -> Frame:
    return Frame("cam-a", k, 1000.0 + 0.2 * k, width=640, height=360)


def test_staged_analytics_take_over_between_two_frames_and_the_old_journeys_close():
    store = parse_store_config(raw_store(), "s.yaml")
    multi = StoreAnalytics(store)
    tracker = StubTracker()
    cam = TrackedCamera("cam-a", tracker, multi.for_stream("cam-a"))
    old = cam.analytics
    out = []
    for k in range(20):  # 4 s in zone z: a journey is open
        out += cam.process(frame(k), person_at(100, 200))
    assert not [r for r in out if isinstance(r, JourneyRecord)]
    r = raw_store()
    r["cameras"]["cam-a"]["zones"]["z"]["polygon"] = square(0, 0, 300, 360)
    multi.reconfigure(parse_store_config(r, "s.yaml"))
    cam.stage(multi.fresh("cam-a"), "zones")
    assert cam.analytics is old and cam.staged  # nothing happens before the next frame
    recs = cam.process(frame(20), person_at(100, 200))
    assert cam.analytics is not old and not cam.staged and tracker.calls == 21  # the tracker kept going
    assert cam.analytics.camera.zones["z"].polygon[1, 0] == 300
    journeys = [x for x in recs if isinstance(x, JourneyRecord)]
    assert len(journeys) == 1 and journeys[0].end_time <= frame(19).timestamp  # closed at the old last frame
    assert recs.index(journeys[0]) < max(i for i, x in enumerate(recs) if isinstance(x, DetectionRecord))
    swap, = cam.swaps
    assert (swap.frame_number, swap.timestamp, swap.old_last_timestamp) == (20, frame(20).timestamp,
                                                                           frame(19).timestamp)
    assert swap.journeys_closed == 1 and swap.why == "zones"
    for k in range(21, 30):
        cam.process(frame(k), person_at(100, 200))
    end = [x for x in cam.flush(frame(29).timestamp) if isinstance(x, JourneyRecord)]
    assert len(end) == 1 and end[0].start_time >= frame(20).timestamp  # the new journey began at the swap
    assert end[0].journey_id != journeys[0].journey_id  # ids continue across the swap


def test_removed_camera_is_tracked_only_and_a_swap_staged_at_the_end_is_dropped():
    store = parse_store_config(raw_store(), "s.yaml")
    multi = StoreAnalytics(store)
    cam = TrackedCamera("cam-a", StubTracker(), multi.for_stream("cam-a"))
    for k in range(10):
        cam.process(frame(k), person_at(100, 200))
    cam.stage(None, "removed")
    recs = cam.process(frame(10), person_at(100, 200))
    assert cam.analytics is None
    assert any(isinstance(x, JourneyRecord) for x in recs) and isinstance(recs[-1], DetectionRecord)
    assert cam.flush(frame(10).timestamp) == []
    cam.stage(multi.fresh("cam-a"), "added")
    assert cam.flush(frame(10).timestamp) == [] and not cam.staged and len(cam.swaps) == 1


# --------------------------------------------------------------------------- the watch

def make_watch(tmp_path: Path) -> tuple[StoreWatch, dict[str, TrackedCamera], Path]:
    path = tmp_path / "store.yaml"
    write(path, raw_store())
    store = load_store_config(path)
    multi = StoreAnalytics(store)
    watch = StoreWatch(store, multi, poll_s=0.05, settle_s=0.01)
    cams = {c: TrackedCamera(c, StubTracker(), multi.for_stream(c)) for c in CAMS}
    cams["cam-x"] = TrackedCamera("cam-x", StubTracker(), None)  # a stream that is no camera of the store
    for c in cams.values():
        watch.register(c)
    return watch, cams, path


def test_watch_stages_changed_cameras_only(tmp_path, caplog):
    watch, cams, path = make_watch(tmp_path)
    before = {c: cams[c].analytics for c in CAMS}
    assert watch.check("poll") == "same"
    r = raw_store()
    r["cameras"]["cam-a"]["zones"]["z"]["polygon"] = square(0, 0, 300, 360)
    r["cameras"]["cam-x"] = copy.deepcopy(r["cameras"]["cam-b"])
    write(path, r)
    with caplog.at_level("INFO", "clients.store_watch"):
        assert watch.check("poll") == "applied"
    assert cams["cam-a"].staged and cams["cam-x"].staged and not cams["cam-b"].staged
    assert cams["cam-b"].analytics is before["cam-b"]
    assert "store config reloaded (poll)" in caplog.text and "cam-a (zones: fresh analytics)" in caplog.text
    assert "cam-x (added: analytics start)" in caplog.text and "unchanged: cam-b" in caplog.text
    for k in range(2):
        for c in cams.values():
            c.process(frame(k), person_at(100, 200))
    assert cams["cam-x"].analytics is not None and cams["cam-b"].analytics is before["cam-b"]
    st = watch.stats()
    assert (st["applied"], st["refused"], st["cameras_replaced"], st["pending"]) == (1, 0, 2, [])
    assert watch.check("SIGHUP") == "unchanged" and watch.stats()["unchanged"] == 1


def test_invalid_edits_are_refused_once_and_the_running_config_stays(tmp_path, caplog):
    watch, cams, path = make_watch(tmp_path)
    before = {c: cams[c].analytics for c in CAMS}
    bad = raw_store()
    bad["cameras"]["cam-a"]["zones"]["z"]["polygon"] = [[0, 0], [300, 300], [300, 0], [0, 300]]  # crosses itself
    write(path, bad)
    with caplog.at_level("INFO", "clients.store_watch"):
        assert watch.check("poll") == "refused"
        assert watch.check("poll") == "same"  # the same version is not read again
        assert watch.check("SIGHUP") == "refused"  # read again on request, not logged as a new error
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert str(path) in errors[0].getMessage() and "cameras.cam-a.zones.z.polygon" in errors[0].getMessage()
    assert "crosses itself" in errors[0].getMessage() and "running configuration stays" in errors[0].getMessage()
    st = watch.stats()
    assert st["refused"] == 1 and st["applied"] == 0 and "cameras.cam-a.zones.z.polygon" in st["last_error"]
    write(path, "cameras: {cam-a: [unclosed\n")  # YAML syntax error
    assert watch.check("poll") == "refused" and "invalid YAML" in watch.last_error
    r = raw_store()
    r["cameras"]["cam-b"]["zonez"] = {}  # unknown field
    write(path, r)
    assert watch.check("poll") == "refused" and "cameras.cam-b.zonez" in watch.last_error
    assert not any(c.staged for c in cams.values())
    assert all(cams[c].analytics is before[c] for c in CAMS) and watch.stats()["refused"] == 3
    write(path, raw_store())  # fixed: back to what runs
    assert watch.check("poll") == "unchanged" and watch.last_error is None


def test_watch_loop_polls_and_serves_requests(tmp_path):
    watch, cams, path = make_watch(tmp_path)

    async def go():
        task = asyncio.create_task(watch.run())
        r = raw_store()
        r["cameras"]["cam-b"]["zones"]["z"]["kind"] = "queue"
        write(path, r)
        for _ in range(400):
            if watch.applied:
                break
            await asyncio.sleep(0.01)
        watch.poll_s = 0  # requests only from now on
        await asyncio.sleep(0.1)
        watch.request("SIGHUP")
        for _ in range(400):
            if watch.unchanged:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert watch.applied == 1 and watch.unchanged == 1 and cams["cam-b"].staged and not cams["cam-a"].staged


# --------------------------------------------------------------------------- SIGHUP

def test_sighup_is_routed_during_a_run_and_ignored_outside():
    before = signal.getsignal(RELOAD_SIGNAL)
    seen: list[str] = []
    try:
        ignore_reload_signal()
        os.kill(os.getpid(), RELOAD_SIGNAL)  # ignored: the test process lives on

        async def go():
            loop = asyncio.get_running_loop()
            with loop_signal_handlers(loop, seen.append, seen.append):
                os.kill(os.getpid(), RELOAD_SIGNAL)
                for _ in range(500):
                    if seen:
                        break
                    await asyncio.sleep(0.01)

        asyncio.run(go())
        assert seen == ["SIGHUP"]
        assert signal.getsignal(RELOAD_SIGNAL) == signal.SIG_IGN  # back to what it was, not the default
    finally:
        signal.signal(RELOAD_SIGNAL, before)
