"""Queues, footfall, heatmaps and alerts on hand-made track sequences with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from analytics.alerts import AlertEngine
from analytics.config import AlertRule, HeatmapSettings
from analytics.heatmap import Heatmap, overlay, save_overlay
from analytics.journeys import counter_ids
from analytics.pipeline import CameraAnalytics
from analytics.records import AlertRecord, FootfallRecord, HeatmapRecord, QueueMetricsRecord
from tests.analytics_helpers import NAMES, square, store, tracks

LANE_STORE = dict(zones={"queue": square(100, 0, 300, 200), "till": square(100, 200, 300, 300)},
                  lanes={"lane-1": {"queue_zone": "queue", "service_zone": "till"}})


def _run(cam, frames):
    out = []
    for t, tr in frames:
        out += cam.update(t, tr, NAMES)
    return out


def test_queue_length_waits_service_rate_abandonment():
    s = store(**LANE_STORE, _top={"metrics_interval_s": 60})
    cam = CameraAnalytics(s.camera("cam"), metrics_interval_s=60)
    frames = []
    for k in range(600):  # 60 s at 10 fps
        t = k * 0.1
        items = []
        # A: queues 0-20 s, served at 20 s (wait 20), stays at the till to 30 s, leaves
        if t < 20:
            items.append((1, 200, 150))
        elif t < 30:
            items.append((1, 200, 250))
        # B: queues 5-40 s (wait 35), at the till 40-50 s
        if 5 <= t < 40:
            items.append((2, 180, 120))
        elif 40 <= t < 50:
            items.append((2, 200, 250))
        # C: queues 10-25 s then walks away sideways (abandons)
        if 10 <= t < 25:
            items.append((3, 220, 100))
        elif 25 <= t < 35:
            items.append((3, 400, 100))
        frames.append((960.0 + t, tracks(*items)))  # 960: a multiple of the 60 s window
    out = _run(cam, frames)
    out += cam.update(1020.0, tracks(), NAMES)
    q = [r for r in out if isinstance(r, QueueMetricsRecord)]
    assert len(q) == 1
    r = q[0]
    assert r.lane_id == "lane-1" and r.timestamp == 1020.0
    assert r.queue_length == 0
    assert r.avg_wait_time_seconds == pytest.approx((20 + 35) / 2, abs=0.2)
    assert r.max_wait_time_seconds == pytest.approx(35, abs=0.2)
    assert r.service_rate == pytest.approx(2.0)  # 2 served in a 60 s window: per minute
    assert r.abandonment_count == 1
    d = r.to_dict()
    assert list(d) == ["lane_id", "stream_id", "timestamp", "queue_length", "avg_wait_time_seconds",
                       "max_wait_time_seconds", "service_rate", "abandonment_count"]


def test_queue_length_is_robust_to_missed_frames_and_lost_tracks():
    s = store(**LANE_STORE)
    cam = CameraAnalytics(s.camera("cam"), metrics_interval_s=30)
    rng = np.random.default_rng(1)
    lengths = []
    for k in range(300):  # three people queue for 30 s; each missed in 20 % of frames
        t = k * 0.1
        items = [(i, 150 + 30 * i, 60 + 40 * i) for i in (1, 2, 3) if rng.random() > 0.2]
        # person 3's track is lost at 12 s and comes back as track 33 at 13 s nearby
        items = [(33 if (tid == 3 and t >= 13) else tid, x, y) for tid, x, y in items
                 if not (tid == 3 and 12 <= t < 13)]
        cam.update(t, tracks(*items), NAMES)
        lengths.append(cam.lanes[0].length_now)
    assert all(n == 3 for n in lengths[50:])
    # 33 inherited 3's join time: its wait, once served, counts from t=0
    out = []
    for k in range(25):  # at the till for 2.5 s: served (min_service_s 2)
        out += cam.update(30.0 + k * 0.1, tracks((33, 200, 250)), NAMES)
    out += cam.update(60.0, tracks(), NAMES)
    r = [x for x in out if isinstance(x, QueueMetricsRecord)][-1]
    assert r.avg_wait_time_seconds == pytest.approx(30.0, abs=0.2)
    assert r.abandonment_count == 0


def test_footfall_counts_in_and_out_and_ignores_jitter_and_line_ends():
    s = store(lines={"door": {"points": [[100, 200], [300, 200]], "in": "up", "band_px": 6}},
              _top={"metrics_interval_s": 100})
    cam = CameraAnalytics(s.camera("cam"), metrics_interval_s=100)
    frames = []
    for k in range(100):
        t = k * 0.1
        items = [(1, 200, 260 - 2 * k),  # walks up across the line: in
                 (2, 150, 150 + 2 * k),  # walks down: out
                 (3, 250, 200 + (4 if k % 2 else -4)),  # jitters across the line within the band
                 (4, 350, 260 - 2 * k)]  # crosses the infinite line beyond the segment's end
        if k == 50:
            items.append((5, 120, 180))  # one-frame track above the line
        frames.append((t, tracks(*items)))
    out = _run(cam, frames) + cam.flush(10.0)
    ff = [r for r in out if isinstance(r, FootfallRecord)]
    assert len(ff) == 1
    assert (ff[0].line_id, ff[0].count_in, ff[0].count_out, ff[0].occupancy) == ("door", 1, 1, 0)


def test_footfall_survives_a_track_dwelling_in_the_band():
    s = store(lines={"door": {"points": [[100, 200], [300, 200]], "in": "up", "band_px": 10}})
    cam = CameraAnalytics(s.camera("cam"))
    ys = [230] * 5 + [205, 195, 203, 198, 201] * 4 + [230] * 5 + [170] * 5  # hovers, goes back, then in
    for k, y in enumerate(ys):
        cam.update(k * 0.1, tracks((1, 200, y)), NAMES)
    assert (cam.lines[0].total_in, cam.lines[0].total_out) == (1, 0)


@pytest.mark.parametrize("scale", [1, 2, 3], ids=["640x360", "1280x720", "1920x1080"])
def test_footfall_with_the_sample_door_settings_holds_at_any_resolution(scale):
    """The sample store's door line copied to a camera of another resolution (points scaled, the
    other settings as shipped): 10 people walk in, 4 walk out, 3 hover a few pixels either side
    of the line and go back. Box jitter grows with the resolution, and so must the band."""
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    sample = yaml.safe_load((repo / "configs" / "store.yaml").read_text())["cameras"]["cam-entrance-1"]
    door = dict(sample["lines"]["door"])
    door["points"] = [[x * scale, y * scale] for x, y in door["points"]]
    s = store(image_size=[640 * scale, 360 * scale], lines={"door": door})
    cam = CameraAnalytics(s.camera("cam"))
    (x0, y_line), (x1, _) = door["points"]
    h = 90 * scale  # a person's box height on this camera
    hover = 4 * scale  # within the jitter a detector gives boxes of this size
    frames = []
    for k in range(80):
        items = []
        for i in range(10):  # in: walk up across the line
            items.append((100 + i, x0 + (i + 1) * (x1 - x0) / 16, y_line + (40 - 2 * k) * scale, 0, h))
        for i in range(4):  # out: walk down across the line
            items.append((200 + i, x0 + (i + 11) * (x1 - x0) / 16, y_line + (-40 + 2 * k) * scale, 0, h))
        for i in range(3):  # hover at the line, then walk back down where they came from
            y = y_line + (hover if k % 2 else -hover) if k < 60 else y_line + (k - 50) * 2 * scale
            items.append((300 + i, x0 + (i + 2) * (x1 - x0) / 5, y, 0, h))
        frames.append((k / 15, tracks(*items)))
    _run(cam, frames)
    line = cam.lines[0]
    assert (line.total_in, line.total_out) == (10, 4)


def test_heatmap_grid_decay_and_hotspot():
    hm = Heatmap("cam", (640, 360), HeatmapSettings((96, 54), half_life_s=10.0, hotspots=3, hotspot_min=0.3))
    for k in range(101):  # 10 s standing at (320, 180), 1 s at (100, 300)
        hm.update(k * 0.1, np.array([[320.0, 180.0]]))
    v = hm.values()
    assert v.shape == (54, 96)
    assert v[27, 48] == pytest.approx(sum(0.1 * 2 ** (-(10 - 0.1 * k) / 10) for k in range(1, 101)), rel=1e-6)
    assert hm.values(20.0)[27, 48] == pytest.approx(v[27, 48] / 2)  # one half-life later
    rec = hm.report(10.0)
    assert isinstance(rec, HeatmapRecord) and rec.cell_size == 7
    assert len(rec.data) == 54 and len(rec.data[0]) == 96 and max(map(max, rec.data)) == 1.0
    assert rec.hotspots[0].x == pytest.approx(48.5 / 96, abs=1e-4) and rec.hotspots[0].y == pytest.approx(27.5 / 54, abs=1e-4)
    assert list(rec.to_dict()) == ["stream_id", "resolution", "cell_size", "data", "hotspots"]


def test_heatmap_overlay_png(tmp_path):
    import cv2

    hm = Heatmap("cam", (640, 360))
    for k in range(20):
        hm.update(k * 0.5, np.array([[100.0, 100.0], [500.0, 300.0]]))
    bg = np.full((360, 640, 3), 128, np.uint8)
    img = overlay(hm.report(10.0).data, bg)
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8
    assert not np.array_equal(img[100, 100], bg[100, 100]) and np.array_equal(img[5, 320], bg[5, 320])
    p = save_overlay(tmp_path / "h.png", hm.report(10.0), bg)
    assert cv2.imread(str(p)).shape == (360, 640, 3)


def test_alert_hysteresis_hold_and_cooldown():
    rule = AlertRule("q", "queue_length", threshold=5, clear_below=3, for_s=2, cooldown_s=10, severity="critical",
                     message="{target}: {value:.0f} waiting")
    eng = AlertEngine("cam", [rule], counter_ids("alert-"))
    # 6 6 6: raised at t=2 (held 2 s); 4 5: inside the hysteresis band, stays raised; 2: cleared at t=5;
    # 7 from t=6: held long enough at t=8 but cooling down until t=15; 0 until 15; 7 7 at 16-17 (held only
    # 1 s), 2 at 18: nothing; 7 at 19: held 0 s
    values = [6, 6, 6, 4, 5, 2, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 7, 7, 2, 7]
    out = []
    for t, v in enumerate(values):
        out += eng.observe(float(t), "queue_length", "lane-1", v)
    assert [(r.timestamp, r.state) for r in out] == [(2.0, "raised"), (5.0, "cleared")]
    # after the cooldown, a value held long enough raises a new alert with a new id
    out += eng.observe(29.0, "queue_length", "lane-1", 0) + eng.observe(30.0, "queue_length", "lane-1", 9)
    out += eng.observe(32.0, "queue_length", "lane-1", 9)
    assert [(r.timestamp, r.state, r.alert_id) for r in out[2:]] == [(32.0, "raised", "alert-000002")]
    r = out[0]
    assert isinstance(r, AlertRecord) and r.severity == "critical" and r.message == "lane-1: 6 waiting"
    assert r.alert_id == out[1].alert_id == "alert-000001" and out[1].message.startswith("cleared:")


def test_alerts_from_pipeline_for_long_queue():
    s = store(**LANE_STORE, _top={"alerts": [{"id": "long", "type": "queue_length", "threshold": 3,
                                              "clear_below": 1, "for_s": 5, "severity": "warning"}]})
    cam = CameraAnalytics(s.camera("cam"), alert_rules=s.alerts)
    out = []
    for k in range(200):
        t = k * 0.1
        n = 4 if t < 12 else 0
        out += cam.update(t, tracks(*[(i, 150 + 20 * i, 50 + 30 * i) for i in range(n)]), NAMES)
    al = [r for r in out if isinstance(r, AlertRecord)]
    assert [a.state for a in al] == ["raised", "cleared"]
    assert 5.0 <= al[0].timestamp <= 10.0 and al[0].zone == "lane-1" and al[0].value == 4
    assert 12.0 <= al[1].timestamp <= 18.0


def _queue_record(out):
    q = [r for r in out if isinstance(r, QueueMetricsRecord)]
    assert len(q) == 1
    return q[0]


def test_a_waiting_track_that_vanishes_for_good_abandoned():
    """A joins at 0 s and is lost at 10 s in the queue; nobody takes the track over within
    inherit_within_s (8 s): abandoned once, no wait (waits cover served customers). B and D are
    lost together while walking out of the queue (out of both zones 1 s, under abandon_after_s):
    abandoned too."""
    s = store(**LANE_STORE)
    cam = CameraAnalytics(s.camera("cam"), metrics_interval_s=60)
    frames = []
    for k in range(300):
        t = k * 0.1
        items = [(1, 200, 150)] if t < 10 else []
        if 2 <= t < 12:
            items += [(2, 150, 60), (5, 250, 60)]
        elif 12 <= t < 13:
            items += [(2, 400, 60), (5, 450, 60)]
        frames.append((t, tracks(*items)))
    out = _run(cam, frames)
    assert cam.lanes[0].total_abandoned == 3  # all counted by 30 s (A at 18 s, B and D when released)
    r = _queue_record(out + cam.update(60.0, tracks(), NAMES))
    assert (r.abandonment_count, r.service_rate, r.avg_wait_time_seconds) == (3, 0.0, 0.0)


def test_vanished_tracks_that_are_not_abandonments():
    """Taken over at the till: A is lost in the queue at 10 s, a new track appears 60 px away in
    the service zone at 13 s and is served: one customer, wait 13 s, no abandonment.
    Lost at the till: C reached the service zone, then vanished: not abandoned (likely served
    hidden), nor served. A 1 s false positive in the queue that vanishes: nothing."""
    s = store(**LANE_STORE)
    cam = CameraAnalytics(s.camera("cam"), metrics_interval_s=60)
    frames = []
    for k in range(400):
        t = k * 0.1
        items = []
        if t < 10:
            items.append((1, 200, 190))
        elif 13 <= t < 20:
            items.append((11, 200, 250))
        if 21 <= t < 27:  # C: queue 21-25 s, till 25-26 s (not yet served), gone
            items.append((3, 150, 150) if t < 25 else (3, 150, 250))
        if 30 <= t < 31:
            items.append((4, 250, 100))
        frames.append((t, tracks(*items)))
    r = _queue_record(_run(cam, frames) + cam.update(60.0, tracks(), NAMES))
    assert r.abandonment_count == 0 and cam.lanes[0].total_abandoned == 0
    assert r.service_rate == pytest.approx(1.0)
    assert r.avg_wait_time_seconds == pytest.approx(13.0, abs=0.11)


def _alerts(out):
    return [(round(a.timestamp, 1), a.state, a.zone, a.alert_type, a.value) for a in out if isinstance(a, AlertRecord)]


def test_alerts_from_pipeline_for_long_wait():
    """Rules see the metrics once a second (at 0, 1, 2... s here). One person waits in the queue
    from 0 s, goes to the till at 8 s: the longest current wait reaches 5 s at 5 s (raised, for_s 0)
    and falls to 0 when they leave the queue (cleared at the next look, 8 s)."""
    s = store(**LANE_STORE, _top={"alerts": [{"id": "w", "type": "wait_time", "threshold": 5, "clear_below": 2}]})
    cam = CameraAnalytics(s.camera("cam"), alert_rules=s.alerts)
    out = []
    for k in range(120):
        t = k * 0.1
        out += cam.update(t, tracks((1, 200, 150) if t < 8 else (1, 200, 250)), NAMES)
    assert _alerts(out) == [(5.0, "raised", "lane-1", "wait_time", pytest.approx(5.0, abs=0.01)),
                            (8.0, "cleared", "lane-1", "wait_time", 0.0)]


def test_alerts_from_pipeline_for_occupancy_with_target_and_hold():
    """Zone a holds 3 people from 1 s to 6 s, zone b 3 people throughout; the rule targets a with
    for_s 2: raised at 3 s (3 people), cleared at 6 s when two leave a (1 < clear_below 2); none for b."""
    s = store(zones={"a": square(0, 0, 320, 360), "b": square(320, 0, 640, 360)},
              _top={"alerts": [{"id": "crowd", "type": "occupancy", "target": "a", "threshold": 3,
                                "clear_below": 2, "for_s": 2}]})
    cam = CameraAnalytics(s.camera("cam"), alert_rules=s.alerts)
    out = []
    for k in range(100):
        t = k * 0.1
        items = [(10 + i, 400 + 40 * i, 100) for i in range(3)]  # always in b
        if t >= 1:
            items += [(1, 100, 100)] + [(i, 150 + 20 * i if t < 6 else 600, 200) for i in (2, 3)]
        out += cam.update(t, tracks(*items), NAMES)
    assert _alerts(out) == [(3.0, "raised", "a", "occupancy", 3.0), (6.0, "cleared", "a", "occupancy", 1.0)]


def test_alerts_from_pipeline_for_dwell():
    """Dwell: the longest ongoing stay in a zone. Person 1 stays in a from 0 s to 15 s: raised at
    10 s (threshold 10), cleared at 15 s (nobody in a); person 2's 5 s in b raises nothing."""
    s = store(zones={"a": square(0, 0, 320, 360), "b": square(320, 0, 640, 360)},
              _top={"alerts": [{"id": "d", "type": "dwell", "threshold": 10, "clear_below": 5}]})
    cam = CameraAnalytics(s.camera("cam"), alert_rules=s.alerts)
    out = []
    for k in range(200):
        t = k * 0.1
        items = [(1, 100, 100) if t < 15 else (1, 100, 380)]  # below the frame at 15 s: in no zone
        if 2 <= t < 7:
            items.append((2, 500, 100))
        out += cam.update(t, tracks(*items), NAMES)
    assert _alerts(out) == [(10.0, "raised", "a", "dwell", pytest.approx(10.0, abs=0.01)),
                            (15.0, "cleared", "a", "dwell", 0.0)]
