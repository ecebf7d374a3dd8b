"""benchmarks.visit_windows: a recorded window replays to exactly what the linker did live."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from analytics.records import VisitRecord
from benchmarks.visit_windows import _Recorder, parse_window, relink
from clients.store_link import StoreLink
from tests.test_visits_linker import CAMS, ident, noisy, store, tracklet
from visits.linker import VisitLinker


def test_windows_are_hh_mm_slash_seed():
    assert parse_window("7:05/3") == ("07:05", 3)
    for bad in ("17:30", "25:00/1", "17:30/x"):
        with pytest.raises(SystemExit, match="HH:MM/seed"):
            parse_window(bad)


def test_a_recorded_window_replays_to_the_same_visits():
    """Tracklets of several customers through a StoreLink whose linker is recorded, as the
    benchmark records a demo window; the calls, pickled and replayed into a fresh linker, give the
    same visit records (and the recorder changed nothing the StoreLink saw)."""
    rng = np.random.default_rng(3)
    looks = [ident(900 + k) for k in range(6)]
    tls = []
    for k in range(6):  # six customers, each seen on two cameras, a few seconds apart
        t0 = float(rng.uniform(0, 60))
        tls.append(tracklet(CAMS[0], t0, t0 + 15, (4, 27), (9, 16), noisy(looks[k], 10 + k)))
        tls.append(tracklet(CAMS[1], t0 + 18, t0 + 60, (10, 13), (20, 5), noisy(looks[k], 20 + k)))
    events = sorted([(t.end + 2.0, t) for t in tls], key=lambda e: e[0])
    cfg = store()
    live, plain = StoreLink(_Recorder(VisitLinker(cfg))), StoreLink(VisitLinker(cfg))
    got: dict[str, list] = {"live": [], "plain": []}
    for link, key in ((live, "live"), (plain, "plain")):
        link.register(CAMS[0])
        t = 0.0
        for at, tl in events:
            while t < at:
                got[key] += link.feed(CAMS[0], [], t)
                t += 0.25
            got[key] += link.feed(CAMS[0], [tl], at)
        got[key] += link.finish(CAMS[0], [], t + 400.0)
    visits = [r.to_dict() for r in got["live"] if isinstance(r, VisitRecord)]
    assert len(visits) == 6 and visits == [r.to_dict() for r in got["plain"] if isinstance(r, VisitRecord)]
    rec = pickle.loads(pickle.dumps({"store": cfg, "calls": live.linker.calls}))
    assert [r.to_dict() for r in relink(rec) if isinstance(r, VisitRecord)] == visits


def test_a_camera_is_recorded_without_its_pixels_in_the_order_it_ran():
    from benchmarks.visit_windows import _CameraRecorder
    from core.types import Detections, Frame

    class Camera:
        stream_id = "cam-a"

        def __init__(self):
            self.seen = []

        def process(self, frame, dets):
            self.seen.append(frame.image is not None)
            return ["records"]

        def flush(self, ts):
            return ["flushed"]

    events, cam = [], Camera()
    rec = _CameraRecorder(cam, events)
    dets = Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.zeros(1, np.int32), ("person",),
                      np.ones((1, 8), np.float32))
    frame = Frame("cam-a", 3, 12.5, image=np.zeros((4, 4, 3), np.uint8), encoded=b"jpeg", width=4, height=4)
    assert rec.process(frame, dets) == ["records"] and rec.flush(13.0) == ["flushed"]
    assert cam.seen == [True]  # the camera itself got the pixels
    (sid, kept, d), (sid2, none, ts) = pickle.loads(pickle.dumps(events))
    assert (sid, kept.frame_number, kept.timestamp, kept.image, kept.encoded, kept.width) == ("cam-a", 3, 12.5, None, None, 4)
    assert d.class_names == ("person",) and d.embeddings.shape == (1, 8)
    assert (sid2, none, ts) == ("cam-a", None, 13.0)
