"""The store simulator and the sample-data generator: determinism, the seed schemas,
streaming in chunks, and rendered frames that match the ground truth."""
from __future__ import annotations

import json

import numpy as np
import pytest

from analytics.records import parse_iso_utc
from simulator import day as gen
from simulator import world as W
from simulator.agents import positions, simulate
from simulator.score import SCHEMAS, score, validate_dir, validate_record

SEED_FILES = list(SCHEMAS)
BUSY = "2024-01-15T18:30:00Z"  # people in every camera


def _run(out, **kw):
    args = dict(hours=0.01, seed=3, start=BUSY, png=False, log=None)
    args.update(kw)
    return gen.generate(out, **args)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-a")
    summary = _run(out, workers=2)
    return out, summary


def _files(d):
    return {n: (d / n).read_bytes() for n in SEED_FILES + ["ground_truth.json", "footfall.json"]}


def test_same_seed_gives_identical_files_whatever_the_workers(short_run, tmp_path):
    out, summary = short_run
    assert summary["frames"] == 4 * int(round(0.01 * 3600 * 15))
    again = _run(tmp_path / "b", workers=1)
    assert again["files"] == summary["files"]
    assert _files(out) == _files(tmp_path / "b")


def test_another_seed_gives_other_data(short_run, tmp_path):
    out, _ = short_run
    _run(tmp_path / "c", seed=4, workers=1, cameras=["cam-entrance-1"])
    a = json.loads((out / "detections.json").read_text())
    b = json.loads((tmp_path / "c" / "detections.json").read_text())
    a = [r for r in a if r["stream_id"] == "cam-entrance-1"]
    assert a and b and a != b


def test_the_five_files_match_the_seed_schema_and_score(short_run):
    out, summary = short_run
    counts = validate_dir(out)
    assert counts == summary["files"]
    assert counts["detections.json"] > 0 and counts["queue_metrics.json"] > 0 and counts["heatmap.json"] == 4
    journeys = json.loads((out / "journeys.json").read_text())
    ids = [j["journey_id"] for j in journeys]
    assert ids == [f"journey-{i:06d}" for i in range(1, len(ids) + 1)]  # renumbered store-wide
    det = json.loads((out / "detections.json").read_text())
    ts = [parse_iso_utc(r["timestamp"]) for r in det]
    assert ts == sorted(ts)  # cameras merged in time order
    # the sample store links visits: journeys.json holds them, the camera journeys sit beside it
    assert journeys and all(j["tracklets"] and j["cameras"] for j in journeys)
    cam_journeys = json.loads((out / "camera_journeys.json").read_text())
    assert sum(len(j["tracklets"]) for j in journeys) == len(cam_journeys)  # every camera journey in one visit
    s = score(out)
    for k in ("footfall_error_pct", "queue_length_mae", "conversion_error_points", "visit_idf1",
              "store_conversion_error_points"):
        assert k in s
    sm = json.loads((out / "generation_summary.json").read_text())
    assert sm["visits"]["visits"] == len(journeys) and sm["visits"]["camera_journeys"] == len(cam_journeys)
    assert set(sm["cpu_split_s"]) == {"plan_s", "sim_s", "tracker_s", "analytics_s", "write_s"}
    assert sm["peak_rss_mb"] > 0 and sm["cpu_s"] > 0


def test_schema_validation_rejects_bad_records():
    good = {"lane_id": "l", "stream_id": "c", "timestamp": "2024-01-15T10:30:00Z", "queue_length": 1,
            "avg_wait_time_seconds": 1.0, "max_wait_time_seconds": 2, "service_rate": 0.5, "abandonment_count": 0}
    assert validate_record("queue_metrics.json", good) is None
    assert "fields" in validate_record("queue_metrics.json", {k: v for k, v in good.items() if k != "lane_id"})
    assert "bool" in validate_record("queue_metrics.json", {**good, "queue_length": True})
    assert "ISO" in validate_record("queue_metrics.json", {**good, "timestamp": "yesterday"})


def test_chunking_streams_without_changing_the_truth(short_run, tmp_path):
    """Time advances in chunks (memory holds one chunk of frames, never the run): the ground
    truth, accumulated chunk by chunk, must not depend on the chunk length. (The detector
    noise is drawn per chunk, so the analytics' numbers may differ in detail.)"""
    out, _ = short_run
    _run(tmp_path / "d", workers=1, chunk_s=7.0)
    assert (out / "ground_truth.json").read_bytes() == (tmp_path / "d" / "ground_truth.json").read_bytes()
    validate_dir(tmp_path / "d")


def test_a_short_window_shows_the_same_people_as_a_longer_one():
    """Clips of different lengths from one start agree where they overlap (benchmarks pick
    frames from one, the demo renders another)."""
    t0 = parse_iso_utc(BUSY)
    short, long_ = simulate(5, t0, t0 + 16), simulate(5, t0, t0 + 600)
    assert 0 < len(short.customers) < len(long_.customers)
    assert all(c.arrival < t0 + 16 for c in short.customers)
    times = t0 + np.arange(0, 16, 0.5)
    a, b = positions(short, times), positions(long_, times)
    assert len(a.frame) > 0
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.cid, b.cid)
    np.testing.assert_array_equal(a.xy, b.xy)


def test_positions_cover_only_the_asked_frames():
    t0 = parse_iso_utc(BUSY)
    store = simulate(5, t0, t0 + 3600)
    times = t0 + 600 + np.arange(150) / 15.0
    pos = positions(store, times)
    assert len(pos.frame) and pos.frame.min() >= 0 and pos.frame.max() < len(times)
    assert np.all(np.diff(pos.frame) >= 0)
    # nobody twice in a frame, and the rows scale with people x frames, not with the run
    pairs = pos.frame * 1_000_000 + pos.cid
    assert len(np.unique(pairs)) == len(pairs)
    assert len(pos.frame) <= len(times) * len(store.customers)


def test_render_camera_draws_people_at_the_ground_truth_boxes():
    from simulator.camera import PERSON
    from simulator.render import background, render_camera

    cid, seed = "cam-checkout-1", 7
    bg = background(W.CAMERAS[cid], seed=seed).astype(np.int16)
    frames = list(render_camera(cid, seconds=0.4, fps=5.0, seed=seed))
    assert len(frames) == 2
    checked = 0
    for img, t, boxes, cls, ids in frames:
        assert img.shape == (360, 640, 3) and img.dtype == np.uint8
        assert len(boxes) == len(cls) == len(ids) > 0
        changed = np.abs(img.astype(np.int16) - bg).max(axis=2) > 0
        near = np.zeros(changed.shape, bool)
        for (x1, y1, x2, y2), c in zip(boxes, cls):
            w, h = x2 - x1, y2 - y1
            near[max(int(y1 - 0.1 * h), 0):int(y2 + 3), max(int(x1 - 0.5 * w), 0):int(x2 + 0.5 * w) + 1] = True
            if c == PERSON and w > 8 and h > 20:
                inner = changed[int(y1):int(y2), int(x1):int(x2)]
                assert inner.mean() > 0.2, f"no one drawn in the person box {(x1, y1, x2, y2)} at {t}"
                checked += 1
        # nothing drawn away from the true boxes (a few pixels of people at the frame edge,
        # listed only once 30 % of them is in view, may be)
        assert changed[~near].mean() < 0.01
    assert checked >= 2


def test_render_camera_is_deterministic_and_training_frames_vary():
    from simulator.render import render_camera, training_frames

    a = next(render_camera("cam-entrance-1", seconds=0.2, fps=5.0, seed=1))
    b = next(render_camera("cam-entrance-1", seconds=0.2, fps=5.0, seed=1))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2])
    (img1, box1, cls1), (img2, _, _) = list(training_frames(2, seed=3))
    assert img1.shape == (360, 640, 3) and box1.dtype == np.float32 and cls1.dtype == np.int32
    assert not np.array_equal(img1, img2)


def test_generator_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gen.main(["--output", str(tmp_path), "--hours", "0"])
    with pytest.raises(SystemExit):
        gen.main(["--output", str(tmp_path), "--cameras", "cam-nowhere"])


def test_lanes_follow_the_staffing_schedule_and_the_rush_builds_queues():
    from simulator.agents import OFF_PEAK_LANES, lanes_open

    day = parse_iso_utc("2024-01-15T00:00:00Z")
    assert lanes_open(day + 15 * 3600) == list(OFF_PEAK_LANES)
    assert lanes_open(day + 18 * 3600) == list(W.LANE_X)
    store = simulate(5, day + 17 * 3600, day + 21 * 3600)
    joined = [c for c in store.customers if c.lane is not None]
    # a customer picks a lane when reaching the checkout; after 20:00 only the off-peak lanes take newcomers
    late = [c for c in joined if c.path.t[0] > day + 20.25 * 3600]
    assert late and {c.lane for c in late} <= set(OFF_PEAK_LANES)
    rush = [c for c in joined if day + 18 * 3600 <= c.arrival < day + 19 * 3600]
    assert {c.lane for c in rush} == set(W.LANE_X)
    assert any(c.abandoned for c in joined)  # the rush is long enough for some to give up


def test_score_without_the_door_camera_marks_footfall_and_conversion_na(tmp_path):
    out = tmp_path / "checkout-only"
    _run(out, cameras=["cam-checkout-1"])
    s = score(out)
    assert np.isnan(s["footfall_error_pct"]) and np.isnan(s["conversion_error_points"])
    assert "queue_length_mae" in s["passed"]
    assert not {"footfall_error_pct", "conversion_error_points"} & set(s["passed"])


GOOD = {
    "detections.json": {"stream_id": "c", "frame_number": 1, "timestamp": "2024-01-15T10:30:00Z",
                        "class_name": "person", "confidence": 0.9,
                        "bbox": {"x": 1.0, "y": 2, "width": 3.5, "height": 9.0}, "track_id": 4},
    "journeys.json": {"journey_id": "journey-000001", "track_id": 1, "stream_id": "c",
                      "start_time": "2024-01-15T10:15:00Z", "end_time": "2024-01-15T10:28:00Z", "duration_seconds": 780,
                      "zones_visited": ["a", "b"], "zone_dwell_times": {"a": 30, "b": 4.5}, "converted": True,
                      "cart_detected": False},
    "heatmap.json": {"stream_id": "c", "resolution": [3, 2], "cell_size": 20, "data": [[0.0, 0.5, 1], [0, 0, 0.25]],
                     "hotspots": [{"x": 0.5, "y": 0.25, "intensity": 1.0}]},
}


@pytest.mark.parametrize("name,change,expect", [
    ("detections.json", {"bbox": {"x": "1", "y": 2, "width": 3, "height": 9}}, "bbox.x"),
    ("detections.json", {"bbox": {"x": 1, "y": True, "width": 3, "height": 9}}, "bbox.y"),
    ("detections.json", {"bbox": {"x": 1, "y": 2, "width": -3, "height": 9}}, "negative"),
    ("detections.json", {"confidence": 1.5}, "confidence"),
    ("journeys.json", {"zones_visited": ["a", 2]}, "zones_visited"),
    ("journeys.json", {"zone_dwell_times": {"a": "30", "b": 4.5}}, "zone_dwell_times['a']"),
    ("journeys.json", {"zone_dwell_times": {"a": 30, "b": -1}}, "zone_dwell_times['b']"),
    ("journeys.json", {"zone_dwell_times": {"a": 30, "c": 1}}, "not in zones_visited"),
    ("journeys.json", {"end_time": "2024-01-15T10:00:00Z"}, "before"),
    ("heatmap.json", {"resolution": [3]}, "resolution"),
    ("heatmap.json", {"resolution": [3, True]}, "resolution"),
    ("heatmap.json", {"data": [[0.0, 0.5, 1], [0, "0", 0.25]]}, "data[1][1]"),
    ("heatmap.json", {"data": [[0.0, 0.5, 1.2], [0, 0, 0.25]]}, "data[0][2]"),
    ("heatmap.json", {"data": [[0.0, 0.5], [0, 0, 0.25]]}, "rows x"),
    ("heatmap.json", {"hotspots": [{"x": 1.5, "y": 0.25, "intensity": 1.0}]}, "hotspots[0].x"),
    ("heatmap.json", {"hotspots": [{"x": 0.5, "y": 0.25, "intensity": None}]}, "hotspots[0].intensity"),
    ("heatmap.json", {"hotspots": [{"x": 0.5, "y": 0.25}]}, "x, y, intensity"),
])
def test_schema_validation_checks_nested_values(name, change, expect):
    assert validate_record(name, GOOD[name]) is None
    err = validate_record(name, {**GOOD[name], **change})
    assert err is not None and expect in err


T0 = 1705312800.0  # 2024-01-15T10:00:00Z


def _tiny_run(d, queue_records, journeys=(), customers=()):
    """A hand-made output + truth directory for one hour from T0; queue_records: (seconds after
    T0, avg wait, service rate) of lane l1."""
    from analytics.records import iso_utc

    d.mkdir()
    for n in SEED_FILES:
        (d / n).write_text("[]")
    (d / "queue_metrics.json").write_text(json.dumps([
        {"lane_id": "l1", "stream_id": "cam", "timestamp": iso_utc(T0 + dt), "queue_length": 0,
         "avg_wait_time_seconds": w, "max_wait_time_seconds": w, "service_rate": rate, "abandonment_count": 0}
        for dt, w, rate in queue_records]))
    (d / "journeys.json").write_text(json.dumps(list(journeys)))
    (d / "ground_truth.json").write_text(json.dumps({"t0": T0, "t1": T0 + 3600, "fps": 15.0,
                                                     "footfall": {"in": 0, "out": 0}, "queue_length_per_second": {},
                                                     "customers": list(customers)}))


def test_score_weights_waits_by_the_customers_served_in_each_window(tmp_path):
    """A 20 s first window with 1 served (rate 3/min, wait 10 s), then a 60 s window with 3 served
    (rate 3/min, wait 30 s): mean wait (10 + 3 x 30) / 4 = 25 s over 4 served. (Rounding the rate,
    as if every window were 60 s, gave (3 x 10 + 3 x 30) / 6 = 20 s over 6.)"""
    from simulator.score import served_in_window

    assert served_in_window(3.0, 20.0) == 1 and served_in_window(0.999, 59.95) == 1
    _tiny_run(tmp_path / "r", [(20.0, 10.0, 3.0), (80.0, 30.0, 3.0)],
              customers=[{"id": 0, "cart": False, "cameras": {}, "service_start": T0 + 5, "wait_s": 25.0}])
    s = score(tmp_path / "r")
    assert s["wait"]["served"] == 4 and s["wait"]["mean_s"] == pytest.approx(25.0)
    assert s["wait_error_pct"] == pytest.approx(0.0)


def test_score_compares_cart_rates_per_camera(tmp_path):
    """2 of 4 journeys on cam with a cart vs 1 of 4 true visits by a cart customer: 25 points."""
    def journey(i, cart):
        return {"journey_id": f"journey-{i:06d}", "track_id": i, "stream_id": "cam",
                "start_time": "2024-01-15T10:00:10Z", "end_time": "2024-01-15T10:00:20Z", "duration_seconds": 10.0,
                "zones_visited": [], "zone_dwell_times": {}, "converted": False, "cart_detected": cart}
    visit = {"start": T0 + 10, "end": T0 + 20, "zone_dwell": {}}
    customers = [{"id": i, "cart": i == 0, "cameras": {"cam": {"last_seen": T0 + 20, "visits": [visit]}}}
                 for i in range(4)]
    customers.append({"id": 9, "cart": True, "cameras": {"cam": {"last_seen": T0 + 1, "visits": [
        {"start": T0 + 0.5, "end": T0 + 1.0, "zone_dwell": {}}]}}})  # a 0.5 s glimpse: no visit
    _tiny_run(tmp_path / "c", [], journeys=[journey(i, i < 2) for i in range(4)], customers=customers)
    s = score(tmp_path / "c")
    cam = s["cart"]["per_camera"]["cam"]
    assert (cam["rate"], cam["true_rate"], cam["true_visits"]) == (0.5, 0.25, 4)
    assert s["cart_error_points"] == pytest.approx(25.0)


def test_visit_idf1_counts_a_split_camera_track_once_per_visit():
    """The analytics split a track unseen past lost_after_s into two tracklets with one label:
    a visit holding both holds that track's detections once, and a perfect linking scores 1."""
    from simulator.score import visit_scores

    truth = {"t0": 0.0, "t1": 100.0, "customers": [
        {"id": 1, "visit": {"start": 0.0, "end": 50.0, "zones": [], "converted": False}},
        {"id": 2, "visit": {"start": 10.0, "end": 60.0, "zones": [], "converted": False}}]}
    tt = {"a:1": {"1": 40}, "b:7": {"1": 10}, "a:2": {"2": 30, "-1": 2}}

    def visit(c, labels):
        return {"tracklets": labels, "zones_visited": [], "converted": False, "duration_seconds": 50.0}

    s = visit_scores([visit(1, ["a:1", "a:1", "b:7"]), visit(2, ["a:2"])], truth, tt)
    assert s["idf1"] == pytest.approx(2 * 80 / (82 + 80))  # only the 2 false positives cost
    merged = visit_scores([visit(1, ["a:1", "b:7", "a:2"])], truth, tt)
    assert merged["idf1"] == pytest.approx(2 * 50 / (82 + 80))
    # the linking ceiling: the same tracks grouped by their main customer, whatever the visits say
    assert merged["oracle_idf1"] == pytest.approx(s["idf1"]) == pytest.approx(s["oracle_idf1"])
    assert merged["track_purity"] == pytest.approx(80 / 82)


def test_track_runs_follow_who_a_track_was_over_time():
    """tracklet_truth.json's runs: one per stretch of one customer on a track, cut where the
    customer changes or the track goes unseen past RUN_GAP_S, continued across chunks."""
    from simulator.truth import RUN_GAP_S, add_track_runs

    runs: dict = {}
    t = np.arange(8) * 0.25
    add_track_runs(runs, np.array([5] * 8 + [6]), np.append(t, 0.0), np.array([1, 1, 1, 2, 2, 2, 1, 1, -1]))
    assert runs == {5: [[0.0, 0.5, 1, 3], [0.75, 1.25, 2, 3], [1.5, 1.75, 1, 2]], 6: [[0.0, 0.0, -1, 1]]}
    add_track_runs(runs, np.array([5, 5]), np.array([2.0, 2.0 + RUN_GAP_S + 1.0]), np.array([1, 1]))
    assert runs[5][-2:] == [[1.5, 2.0, 1, 3], [4.0, 4.0, 1, 1]]  # continued, then a gap: a new run


def test_visit_idf1_counts_each_tracklet_of_a_split_track_by_its_time_span():
    """A camera track that followed customer 1, went unseen, and came back on customer 2 (the
    analytics split it into two tracklets with one label): with the visits' tracklet spans each
    tracklet counts its own detections, so linking each to its customer scores 1, and each
    detection counts once."""
    from simulator.score import track_counts, visit_scores

    truth = {"t0": 0.0, "t1": 100.0, "customers": [
        {"id": 1, "visit": {"start": 0.0, "end": 50.0, "zones": [], "converted": False}},
        {"id": 2, "visit": {"start": 10.0, "end": 90.0, "zones": [], "converted": False}}]}
    tt = {"a:1": [[0.0, 20.0, 1, 40], [30.0, 50.0, 2, 30]], "b:7": [[60.0, 80.0, 2, 20]]}
    assert track_counts(tt["a:1"], (30.0, 50.0)) == {"2": 30} and track_counts(tt["a:1"]) == {"1": 40, "2": 30}

    def visit(labels, spans=None):
        v = {"tracklets": labels, "zones_visited": [], "converted": False, "duration_seconds": 50.0}
        return v if spans is None else {**v, "tracklet_spans": spans}

    right = [visit(["a:1"], [[0.0, 20.0]]), visit(["a:1", "b:7"], [[30.0, 50.0], [60.0, 80.0]])]
    s = visit_scores(right, truth, tt)
    assert s["idf1"] == pytest.approx(1.0) and s["oracle_idf1"] == pytest.approx(1.0)
    assert s["visit_detections"] == 90 and s["track_purity"] == pytest.approx(1.0)
    # without spans (an older journeys.json) each visit holding the label is charged all of it
    old = visit_scores([visit(["a:1"]), visit(["a:1", "b:7"])], truth, tt)
    assert old["visit_detections"] == 160 and old["idf1"] < 0.8


def test_the_linking_ceiling_counts_a_track_that_carries_two_customers_once():
    """A camera track holding two customers caps IDF1 below 1 whatever the linker does: the
    oracle groups it with its main customer, and its other detections are lost."""
    from simulator.score import visit_scores

    truth = {"t0": 0.0, "t1": 100.0, "customers": [
        {"id": 1, "visit": {"start": 0.0, "end": 50.0, "zones": [], "converted": False}},
        {"id": 2, "visit": {"start": 10.0, "end": 60.0, "zones": [], "converted": False}}]}
    tt = {"a:1": {"1": 30, "2": 10}, "b:2": {"2": 40}, "b:3": {"1": 20}}
    v = [{"tracklets": labels, "zones_visited": [], "converted": False, "duration_seconds": 50.0}
         for labels in (["a:1", "b:2"], ["b:3"])]  # the linker put a:1 with customer 2's track
    s = visit_scores(v, truth, tt)
    assert s["track_purity"] == pytest.approx(90 / 100)
    assert s["oracle_idf1"] == pytest.approx(2 * (50 + 40) / 200)  # a:1 + b:3 for 1, b:2 for 2
    assert s["idf1"] < s["oracle_idf1"]
