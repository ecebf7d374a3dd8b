"""Store visits in the live clients (clients/store_link.py, clients/camera.py, clients/app.py):
cameras of one store share one linker; tracklets never reach a sink; the linker flushes once,
after the store's last camera."""
from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from analytics.config import CameraConfig, StoreConfig, VisitSettings
from analytics.floor import Door, FloorCalibration, FloorPlan
from analytics.pipeline import StoreAnalytics
from analytics.records import CameraJourneyRecord, JourneyRecord, StoreKpiRecord, VisitRecord
from analytics.tracklets import Tracklet
from clients.camera import TrackedCamera
from clients.store_link import StoreLink, without_tracklets
from core.types import Detections, Frame, Tracks
from visits.linker import VisitLinker


@pytest.fixture(autouse=True)
def floor_heatmap_module(monkeypatch):
    floor_heatmap_stand_in(monkeypatch)


def floor_heatmap_stand_in(monkeypatch) -> None:
    """The linker builds a ``visits.floor_heatmap.FloorHeatmap`` for a store with a floor plan;
    where that module is not there yet (it comes with the floor heatmap work), a stand-in."""
    try:
        import visits.floor_heatmap  # noqa: F401
    except ImportError:
        import types

        class FloorHeatmap:
            def __init__(self, plan, store_id, **kw):
                pass

            def add_path(self, path):
                pass

            def report(self, t):
                return None

        monkeypatch.setitem(sys.modules, "visits.floor_heatmap", types.SimpleNamespace(FloorHeatmap=FloorHeatmap))


FPS = 5.0
T0 = 1000.0  # see test_epoch_timestamps_keep_the_walking_direction
EPOCH = 1_705_339_800.0  # 2024-01-15T17:30:00Z


def calibration(x0: float) -> FloorCalibration:
    """Image pixels -> floor metres: 640x360 over x0..x0+20 m by 0..20 m (32 px/m, 18 px/m)."""
    H = np.array([[1 / 32, 0, x0], [0, 1 / 18, 0], [0, 0, 1]], np.float64)
    return FloorCalibration(np.zeros((4, 2)), np.zeros((4, 2)), H)


def store(visits: bool = True) -> StoreConfig:
    cams = {"cam-a": CameraConfig("cam-a", (640, 360), floor=calibration(0.0)),
            "cam-b": CameraConfig("cam-b", (640, 360), floor=calibration(20.0))}
    door = Door("main", np.array([2.0, 20.0]), np.array([6.0, 20.0]), np.array([0.0, -1.0]))
    plan = FloorPlan(np.array([[0, 0], [40, 0], [40, 20], [0, 20]], np.float64), {"main": door})
    return StoreConfig(Path("store.yaml"), cams, store_id="s1", floor=plan,
                       visits=VisitSettings() if visits else None)


class IdTracker:
    """Detections in, tracks out: the ids the test put in ``ids`` for this frame."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def update(self, xyxy, scores, class_ids, embeddings, timestamp=None) -> Tracks:
        return Tracks.detected(np.array(self.ids, np.int64), xyxy, scores, class_ids)


def look(seed: int, d: int = 64) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


def seen(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = base + 0.2 * rng.normal(size=base.shape) / np.sqrt(len(base))
    return (v / np.linalg.norm(v)).astype(np.float32)


def feet_to_box(x_m: float, y_m: float, x0: float) -> list[float]:
    """A 40x120 px person box whose feet stand at floor (x_m, y_m) on a camera starting at x0."""
    u, v = (x_m - x0) * 32.0, y_m * 18.0
    return [u - 20, v - 120, u + 20, v]


def walk(cam_x0: float, people: list[tuple[int, np.ndarray, callable]], t: float, rng):
    """This frame's detections of the people in view: (track id, look, floor position at t or None)."""
    boxes, ids, embs = [], [], []
    for tid, base, where in people:
        p = where(t)
        if p is None or not (cam_x0 <= p[0] < cam_x0 + 20):
            continue
        boxes.append(feet_to_box(p[0], p[1], cam_x0))
        ids.append(tid)
        embs.append(seen(base, rng))
    n = len(boxes)
    dets = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9, np.float32),
                      np.zeros(n, np.int32), ("person",) * n,
                      np.array(embs, np.float32).reshape(n, -1) if n else np.zeros((0, 64), np.float32))
    return dets, ids


def lerp(path: list[tuple[float, float, float]]):
    """Floor position at t along (t, x, y) waypoints; None outside the path's time span."""
    ts = [p[0] for p in path]

    def at(t):
        if t < ts[0] or t > ts[-1]:
            return None
        return float(np.interp(t, ts, [p[1] for p in path])), float(np.interp(t, ts, [p[2] for p in path]))
    return at


def run_store(cams: dict[str, TrackedCamera], people_of: dict[str, list], seconds: float, order=None):
    """Frames of every camera in time order (``order``: the cameras' order at each instant);
    returns (records per camera per call, flush records per camera in flush order)."""
    rng = np.random.default_rng(0)
    trackers = {c: cam.tracker for c, cam in cams.items()}
    x0 = {"cam-a": 0.0, "cam-b": 20.0}
    out: dict[str, list] = {c: [] for c in cams}
    for k in range(int(seconds * FPS)):
        t = T0 + k / FPS
        for c in (order or list(cams)):
            dets, ids = walk(x0[c], people_of[c], t, rng)
            trackers[c].ids = ids
            out[c] += cams[c].process(Frame(c, k, t, width=640, height=360), dets)
    flushed = {}
    t_end = T0 + seconds
    for c in cams:
        flushed[c] = cams[c].flush(t_end)
    return out, flushed


def shopper_paths():
    """Shopper 1 enters at the door (cam-a), walks right out of cam-a into cam-b and stays;
    shopper 2 enters, browses on cam-a and leaves through the door."""
    p1 = lerp([(T0, 4.0, 19.9), (T0 + 4, 10.0, 12.0), (T0 + 10, 19.9, 10.0),
               (T0 + 11, 20.5, 10.0), (T0 + 30, 30.0, 8.0)])
    p2 = lerp([(T0 + 1, 5.0, 19.9), (T0 + 8, 8.0, 10.0), (T0 + 16, 5.5, 19.95)])
    return p1, p2


def two_cameras(link: StoreLink | None, visits: bool = True):
    cfg = store(visits)
    multi = StoreAnalytics(cfg)
    cams = {c: TrackedCamera(c, IdTracker(), multi.for_stream(c), link=link) for c in ("cam-a", "cam-b")}
    return cfg, multi, cams


def test_a_shopper_walking_from_camera_a_into_camera_b_is_one_visit():
    check_shoppers()


def test_epoch_timestamps_keep_the_walking_direction(monkeypatch):
    """Paths hold epoch seconds (float64): velocities, hence door entries and exits, still work."""
    monkeypatch.setattr(sys.modules[__name__], "T0", EPOCH)
    check_shoppers()


def check_shoppers():
    cfg = store()
    link = StoreLink(VisitLinker(cfg))
    _, _, cams = two_cameras(link)
    p1, p2 = shopper_paths()
    a, b = look(1), look(2)
    people = {"cam-a": [(1, a, p1), (2, b, p2)], "cam-b": [(7, a, p1)]}
    out, flushed = run_store(cams, people, 40.0)
    every = [r for recs in (*out.values(), *flushed.values()) for r in recs]
    assert not any(isinstance(r, Tracklet) for r in every)  # tracklets never leave the link
    visits = [r for r in every if isinstance(r, VisitRecord)]
    assert len(visits) == 2, [v.tracklets for v in visits]
    walked = next(v for v in visits if len(v.tracklets) == 2)
    assert walked.tracklets == ("cam-a:1", "cam-b:7") and walked.cameras == ("cam-a", "cam-b")
    assert walked.closed_by == "end"
    browsed = next(v for v in visits if v is not walked)
    assert browsed.tracklets == ("cam-a:2",) and browsed.closed_by == "door"
    assert sum(isinstance(r, CameraJourneyRecord) for r in every) == 3
    assert not any(type(r) is JourneyRecord for r in every)  # camera journeys come as CameraJourneyRecord
    # flush order: the first camera's flush closes no visit; the last one's flushes the linker once
    assert not any(isinstance(r, VisitRecord) and r.closed_by == "end" for r in flushed["cam-a"])
    assert walked in flushed["cam-b"] and any(isinstance(r, StoreKpiRecord) for r in flushed["cam-b"])
    assert link.flushes == 1 and not link.linker.visits and link.stats()["waiting"] == 0
    assert link.stats()["cameras_done"] == ["cam-a", "cam-b"]



class CountedLink:
    """A camera's view of its link, counting the frames it feeds; ``every``: the link's next step
    never comes (``due`` -inf), so the camera feeds frames without records too."""

    def __init__(self, link: StoreLink, every: bool) -> None:
        self.link, self.every, self.fed = link, every, 0

    @property
    def due(self) -> float:
        return -float("inf") if self.every else self.link.due

    def register(self, camera_id):
        self.link.register(camera_id)

    def feed(self, *args):
        self.fed += 1
        return self.link.feed(*args)

    def finish(self, *args):
        return self.link.finish(*args)


def test_frames_without_records_before_the_next_step_are_not_fed():
    """A camera leaves out of its link the frames with no records before the link's ``due`` (most
    frames): the same visits and records as when it feeds every frame, in far fewer calls."""
    p1, p2 = shopper_paths()
    a, b = look(1), look(2)
    people = {"cam-a": [(1, a, p1), (2, b, p2)], "cam-b": [(7, a, p1)]}
    got, calls = [], []
    for every in (False, True):
        view = CountedLink(StoreLink(VisitLinker(store())), every)
        multi = StoreAnalytics(store())
        cams = {c: TrackedCamera(c, IdTracker(), multi.for_stream(c), link=view) for c in ("cam-a", "cam-b")}
        out, flushed = run_store(cams, people, 40.0)
        recs = [r for rs in (*out.values(), *flushed.values()) for r in rs]
        got.append(sorted((r.tracklets, r.start_time, r.end_time, r.closed_by) for r in recs
                          if isinstance(r, VisitRecord)))
        got[-1].append(sorted(repr(r) for r in recs if not isinstance(r, (VisitRecord, StoreKpiRecord))))
        calls.append(view.fed)
    assert got[0] == got[1] and len(got[0]) == 3  # two visits, then every other record
    frames = 2 * int(40.0 * FPS)
    assert calls[1] == frames and calls[0] < frames / 2, calls


def test_the_link_steps_at_the_linkers_decision_pace():
    for every in (2.0, 8.0):
        link = StoreLink(VisitLinker(dataclasses.replace(store(), visits=VisitSettings(decide_every_s=every))))
        link.register("cam-a")
        steps = []
        for i in range(int(40 * FPS)):
            before = link.due
            link.feed("cam-a", [], T0 + i / FPS)
            if link.due != before:
                steps.append(T0 + i / FPS)
        assert np.allclose(np.diff(steps), every, atol=1.0 / FPS), (every, steps)


def test_a_cameras_tracklets_lead_its_records_and_all_reach_the_linker():
    """``CameraAnalytics`` puts a frame's tracklets (finals, then heads) before its other records, and
    the link reads only those leading ones: every tracklet of a crowded camera reaches the linker and
    none passes on with the records (detection records every second, metrics, alerts among them)."""
    import dataclasses as dc

    from analytics.pipeline import CameraAnalytics
    from benchmarks.analytics import NAMES, bench_camera, synthetic_frames

    bench = bench_camera()
    cam = dc.replace(bench.camera("bench"), floor=calibration(0.0))
    an = CameraAnalytics(cam, alert_rules=bench.alerts, metrics_interval_s=5.0, detections_every_s=1.0,
                         tracklets=True)
    data = synthetic_frames(30, 900, mean_life_s=10.0)  # 60 s at 15 fps, ids ending every ~10 s
    rng = np.random.default_rng(0)
    link = StoreLink(VisitLinker(dc.replace(store(), cameras={"bench": cam})))
    link.register("bench")
    made, kinds = 0, set()
    for t, tr in data:
        recs = an.update(t, tr, NAMES, rng.normal(size=(len(tr.track_ids), 8)).astype(np.float32))
        is_tl = [type(r) is Tracklet for r in recs]  # noqa: E721
        assert is_tl == sorted(is_tl, reverse=True), t  # tracklets first
        made += sum(is_tl)
        kinds |= {type(r).__name__ for r in recs}
        assert not any(type(r) is Tracklet for r in link.feed("bench", recs, t))  # noqa: E721
    recs = an.flush()
    made += sum(type(r) is Tracklet for r in recs)  # noqa: E721
    assert not any(type(r) is Tracklet for r in link.finish("bench", recs, data[-1][0]))  # noqa: E721
    assert made > 100 and link.tracklets == made
    assert {"DetectionRecord", "Tracklet"} <= kinds


def test_tracklets_wait_for_the_slowest_camera():
    linker = VisitLinker(store())
    link = StoreLink(linker, max_lag_s=10.0, step_s=1.0)  # a step every second: the watermark holds tracklets
    link.register("cam-a")
    link.register("cam-b")
    tl = Tracklet("cam-a", 1, T0, T0 + 2, False, np.array([[T0, 4, 19.9], [T0 + 2, 5, 17]], np.float32), True,
                  look(3).astype(np.float32), 1.0)
    link.feed("cam-b", [], T0)
    link.feed("cam-a", [tl], T0 + 2)
    assert link.stats()["waiting"] == 1 and not linker.pending  # cam-b is still at T0
    link.feed("cam-a", [], T0 + 5)
    assert link.stats()["waiting"] == 1
    link.feed("cam-b", [], T0 + 2)  # cam-b has passed the tracklet's time
    assert link.stats()["waiting"] == 0 and tl.key in linker.pending
    tl2 = Tracklet("cam-a", 2, T0 + 5, T0 + 7, False, tl.path, True, None, 0.0)
    link.feed("cam-a", [tl2], T0 + 7)
    link.feed("cam-a", [], T0 + 17.5)  # cam-b stalled: released once 10 s older than the newest frame
    assert link.stats()["waiting"] == 0 and tl2.key in linker.pending


class BrokenLinker:
    store_id = "s1"

    def process(self, *args):
        raise RuntimeError("linker bug")

    advance = flush = process


def test_a_failing_linker_does_not_stop_the_camera_analytics(caplog):
    link = StoreLink(BrokenLinker())
    _, _, cams = two_cameras(link)
    p1, p2 = shopper_paths()
    people = {"cam-a": [(1, look(1), p1), (2, look(2), p2)], "cam-b": [(7, look(1), p1)]}
    with caplog.at_level(logging.ERROR, "clients.store_link"):
        out, flushed = run_store(cams, people, 40.0)
    every = [r for recs in (*out.values(), *flushed.values()) for r in recs]
    assert not any(isinstance(r, Tracklet) for r in every)
    assert sum(isinstance(r, CameraJourneyRecord) for r in every) == 3  # journeys still written
    assert any(type(r).__name__ == "DetectionRecord" for r in every)
    assert link.errors > 0 and "linker bug" in caplog.text
    assert len([m for m in caplog.messages if "failed" in m]) < link.errors  # not once per frame


def test_a_live_config_swap_sends_the_old_analytics_tracklets_through_the_linker():
    cfg = store()
    link = StoreLink(VisitLinker(cfg))
    _, multi, cams = two_cameras(link)
    p1, _ = shopper_paths()
    a = look(1)
    people = {"cam-a": [(1, a, p1)], "cam-b": [(7, a, p1)]}
    rng = np.random.default_rng(0)
    x0 = {"cam-a": 0.0, "cam-b": 20.0}
    got = []
    for k in range(int(40 * FPS)):
        t = T0 + k / FPS
        if k == int(6 * FPS):  # shopper 1 is mid-way across cam-a
            cams["cam-a"].stage(multi.fresh("cam-a"), "zones")
        for c in cams:
            dets, ids = walk(x0[c], people[c], t, rng)
            cams[c].tracker.ids = ids
            recs = cams[c].process(Frame(c, k, t, width=640, height=360), dets)
            got += recs
    assert cams["cam-a"].swaps[0].journeys_closed == 1
    got += cams["cam-a"].flush(T0 + 40) + cams["cam-b"].flush(T0 + 40)
    assert not any(isinstance(r, Tracklet) for r in got)
    journeys = [r for r in got if isinstance(r, CameraJourneyRecord)]
    assert len(journeys) == 3  # cam-a before the swap, cam-a after it, cam-b
    visits = [r for r in got if isinstance(r, VisitRecord)]
    assert sum(len(v.tracklets) for v in visits) >= 2 and any("cam-b:7" in v.tracklets for v in visits)


def test_without_a_link_tracklets_become_camera_journeys():
    _, _, cams = two_cameras(None)
    p1, p2 = shopper_paths()
    people = {"cam-a": [(1, look(1), p1), (2, look(2), p2)], "cam-b": [(7, look(1), p1)]}
    out, flushed = run_store(cams, people, 40.0)
    every = [r for recs in (*out.values(), *flushed.values()) for r in recs]
    assert not any(isinstance(r, Tracklet) for r in every)
    assert sum(type(r) is JourneyRecord for r in every) == 3
    assert without_tracklets([1, 2]) == [1, 2]


def test_the_app_factory_builds_one_link_per_store(monkeypatch, tmp_path):
    from clients.app import CameraFactory
    from clients.config import parse_app_config
    from clients.shard_run import run_shard

    base = parse_app_config({"streams": [{"id": c, "source": str(tmp_path)} for c in ("cam-a", "cam-b")],
                             "sinks": {"influxdb": {"enabled": False}, "json": {"enabled": False}}}, "<test>")
    cfg = base.__class__(**{**base.__dict__, "analytics": store()})

    class Src:
        fps = 5.0

    f = CameraFactory(cfg, store_reload_s=0)
    ca, cb = f(cfg.streams[0], Src()), f(cfg.streams[1], Src())
    assert f.link is not None and ca.link is f.link and cb.link is f.link
    assert sorted(f.link.last_t) == ["cam-a", "cam-b"]
    assert ca.analytics.emit_tracklets
    off = CameraFactory(base.__class__(**{**base.__dict__, "analytics": store(visits=False)}), store_reload_s=0)
    assert off.link is None and off(cfg.streams[0], Src()).link is None
    # a sharded process: each store's factory has its own link
    made = []
    import clients.shard_run as sr

    monkeypatch.setattr(sr, "build_processor_factory", lambda c: made.append(CameraFactory(c, 0)) or made[-1])
    monkeypatch.setattr(sr, "run_stores", lambda runners: _no_run(runners))
    run_shard([cfg, cfg])
    assert len(made) == 2 and made[0].link is not None and made[0].link is not made[1].link


async def _no_run(runners):
    return []


def test_a_linker_that_cannot_start_leaves_the_cameras_running(monkeypatch, caplog):
    import visits.linker as vl
    from clients.app import build_store_link

    def boom(*a, **k):
        raise RuntimeError("no floor heatmap")

    monkeypatch.setattr(vl, "VisitLinker", boom)
    with caplog.at_level(logging.ERROR, "clients.app"):
        assert build_store_link(store()) is None
    assert "could not start" in caplog.text
