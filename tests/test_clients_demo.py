"""clients.demo (make demo) helpers: the detector's provenance notice and the per-camera tally;
clients.demo_visits: the store-visit truth and scores."""
from __future__ import annotations

import dataclasses
import json

import pytest

from analytics.records import DetectionRecord, FootfallRecord, JourneyRecord, QueueMetricsRecord
from clients.demo import SummarySink, detector_source, placeholder_notice


def test_detector_source_reads_the_newest_manifest(tmp_path):
    for v, src in ((1, "deterministic-placeholder (untrained)"), (2, "ultralytics yolov8n.pt")):
        d = tmp_path / "yolov8n" / str(v)
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"source": src}))
    (tmp_path / "yolov8n" / "10").mkdir()  # numeric order, not text order; no manifest: skipped
    source, path = detector_source(tmp_path)
    assert source == "ultralytics yolov8n.pt" and path.parent.name == "2"
    assert placeholder_notice(source) is None
    note = placeholder_notice("deterministic-placeholder (untrained)")
    assert note and "PLACEHOLDER" in note and "detects nothing" in note
    assert detector_source(tmp_path / "none")[0].startswith("unknown")


def test_summary_sink_tallies_per_camera():
    s = SummarySink()
    s.write([DetectionRecord("a", 1, 0.0, "person", 0.9, 0, 0, 10, 20, 7),
             DetectionRecord("a", 2, 0.1, "person", 0.9, 0, 0, 10, 20, 7),
             DetectionRecord("a", 2, 0.1, "person", 0.9, 0, 0, 10, 20, 8),
             FootfallRecord("a", 1.0, "door", 3, 1, 2), FootfallRecord("a", 2.0, "door", 1, 0, 3),
             QueueMetricsRecord("checkout-1", "b", 1.0, 4, 30.0, 60.0, 1.0, 1),
             QueueMetricsRecord("checkout-1", "b", 2.0, 2, 50.0, 90.0, 1.0, 2),
             JourneyRecord("j1", 9, "b", 0.0, 10.0, ("entrance",), {"entrance": 10.0}, True, False)])
    a, b = s.cams["a"], s.cams["b"]
    assert len(a.tracks) == 2 and a.detections == 3 and (a.footfall_in, a.footfall_out) == (4, 1)
    assert b.queue_lengths == [4, 2] and b.queue_max_wait == 90.0 and b.abandonments == 2
    assert b.journeys == 1 and b.converted == 1


def test_demo_end_to_end(triton_server, tmp_path, capsys, monkeypatch):
    """`make demo`'s path on a short clip: simulator -> Triton -> tracker -> analytics -> files."""
    from clients.demo import main
    from tests.test_clients_store_link import floor_heatmap_stand_in

    floor_heatmap_stand_in(monkeypatch)

    out = tmp_path / "out"
    assert main(["--seconds", "3", "--cameras", "2", "--fps", "5", "--triton-url", triton_server.grpc_url,
                 "--out", str(out), "--clips-dir", str(tmp_path / "clips")]) == 0
    text = capsys.readouterr().out
    assert "per-camera summary" in text and "cam-checkout-1" in text and "cam-entrance-1" in text
    assert "against the simulator's ground truth" in text
    for name in ("detections.json", "journeys.json", "queue_metrics.json", "heatmap.json", "alerts.json"):
        assert isinstance(json.loads((out / name).read_text()), list)
    assert sorted(p.name for p in out.glob("heatmap-*.png")) == ["heatmap-cam-checkout-1.png",
                                                                 "heatmap-cam-entrance-1.png"]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert {s["frames_processed"] for s in summary["streams"].values()} == {15}
    source, _ = detector_source()
    assert ("PLACEHOLDER" in text) == ("placeholder" in source.lower())
    # store visits: the two cameras' tracks linked by one linker, scored against the simulator's customers
    assert "store visits" in text and "visit IDF1" in text
    visits = summary["visits"]
    assert {g["metric"] for g in visits["goals"]} == {"visit_idf1", "store_conversion_error_points"}
    assert visits["linker"]["flushes"] == 1 and visits["linker"]["errors"] == 0
    assert isinstance(json.loads((out / "tracklet_truth.json").read_text()), dict)


def test_demo_meets_its_accuracy_goals(triton_server, tmp_path):
    """The demo's quick look (``--cameras 2 --seconds 120 --fps 5 --start 18:30``: the evening rush at
    the checkout and the entrance, the trained demo detector): footfall within 5 % and queue length
    MAE <= 1 per lane against the simulator's ground truth. About 2 minutes on 2 cores."""
    from clients.demo import main

    source, _ = detector_source()
    if "placeholder" in source.lower():
        pytest.skip("the detector has placeholder weights (no demo detector installed): its errors are not the "
                    "analytics' accuracy")
    out = tmp_path / "out"
    assert main(["--cameras", "2", "--seconds", "120", "--fps", "5", "--start", "2024-01-15T18:30:00Z",
                 "--triton-url", triton_server.grpc_url, "--out", str(out), "--clips-dir", str(tmp_path / "clips")]) == 0
    goals = json.loads((out / "demo_summary.json").read_text())["accuracy"]
    metrics = {g["metric"] for g in goals}
    assert "footfall_error_pct" in metrics and any(m.startswith("queue_length_mae:") for m in metrics), goals
    assert all(g["met"] for g in goals), goals


# --------------------------------------------------------------------------- store visits

def test_with_visits_fills_in_only_what_the_store_config_lacks():
    import numpy as np

    from analytics.config import VisitSettings
    from clients.demo import demo_store_config, simulator_calibration, with_visits
    from simulator import world as W

    base = demo_store_config(10.0)
    store, filled = with_visits(base)
    assert store.visits is not None and store.floor is not None and "main" in store.floor.doors
    assert all(store.cameras[c].floor is not None for c in W.CAMERAS)
    for cid, cam in W.CAMERAS.items():  # image -> floor is the inverse of the simulator's floor -> image
        p = np.array([[cam.floor_rect[0] + 1.0, cam.floor_rect[1] + 2.0], [cam.floor_rect[2] - 0.5, cam.floor_rect[3]]])
        assert np.allclose(store.cameras[cid].floor.to_floor(cam.project(p)), p, atol=0.01)  # the file's pairs are rounded to 0.1 px
    if base.visits is None:
        assert "visits" in filled
    # sections the file has are kept as they are
    own = dataclasses.replace(base, visits=VisitSettings(timeout_s=77.0))
    cams = dict(own.cameras)
    cal = simulator_calibration(W.CAMERAS["cam-entrance-1"])
    cams["cam-entrance-1"] = dataclasses.replace(cams["cam-entrance-1"], floor=cal)
    kept, filled = with_visits(dataclasses.replace(own, cameras=cams))
    assert kept.visits.timeout_s == 77.0 and kept.cameras["cam-entrance-1"].floor is cal
    assert "visits" not in filled and "floor_points of cam-entrance-1" not in filled


def test_store_truth_and_tracklet_truth_from_the_rendered_clips(tmp_path):
    """A perfect tracker (the true boxes, one track per customer and camera) gives a tracklet
    truth with one customer per track, and visits stitched from it score IDF1 1."""
    import argparse

    from analytics.records import DetectionRecord, VisitRecord
    from clients.demo import demo_store_config, render_clips, with_visits
    from clients.demo_visits import store_truth, tracklet_truth
    from simulator.score import visit_scores

    a = argparse.Namespace(seconds=4.0, fps=5.0, seed=7, start="2024-01-15T17:30:00Z")
    clips = render_clips(tmp_path, a.seconds, 4, a.fps, a.seed, a.start)
    store, _ = with_visits(demo_store_config(10.0))
    truth = store_truth(store, [c["stream_id"] for c in clips], a.seconds, a.fps, a.seed, a.start)
    true_visits = {c["id"]: c["visit"] for c in truth["customers"] if c.get("visit")}
    assert true_visits and all(v["start"] >= truth["t0"] for v in true_visits.values())
    sink = SummarySink(keep_boxes=True)
    t0 = truth["t0"]
    for c in clips:
        recs = []
        for f in c["truth"]["frames"]:
            for (x1, y1, x2, y2), cl, i in zip(f["boxes"], f["class_ids"], f["ids"]):
                if cl == 0:
                    recs.append(DetectionRecord(c["stream_id"], f["frame"], t0 + f["frame"] / a.fps, "person", 0.9,
                                                x1, y1, x2 - x1, y2 - y1, 1000 + i))
        sink.write(recs)
    tt = tracklet_truth(clips, sink)
    # runs [t_first, t_last, customer, detections]: one customer per track, all its frames (a person
    # leaving the view for a while and back is two runs of the same customer)
    assert tt and all({r[2] for r in runs} == {int(k.split(":")[1]) - 1000} for k, runs in tt.items())
    assert sum(r[3] for runs in tt.values() for r in runs) == sum(len(b) for b in sink.boxes.values())
    assert all(r[0] <= r[1] for runs in tt.values() for r in runs)
    by_customer: dict = {}
    for label in tt:
        by_customer.setdefault(int(label.split(":")[1]) - 1000, []).append(label)
    visits = [VisitRecord(f"v{c}", c, labels[0].split(":")[0], true_visits[c]["start"], true_visits[c]["end"],
                          tuple(true_visits[c]["zones"]), {}, true_visits[c]["converted"], False,
                          tracklets=tuple(labels)).to_dict() for c, labels in by_customer.items() if c in true_visits]
    s = visit_scores(visits, truth, tt)
    assert s["idf1"] == pytest.approx(1.0) and s["store_conversion_error_points"] == pytest.approx(0.0)


def test_visit_goals_and_summary_sink_store_records():
    import math

    from analytics.records import CameraJourneyRecord, StoreKpiRecord, VisitRecord
    from clients.demo_visits import visit_goals

    s = SummarySink()
    j = JourneyRecord("j1", 9, "b", 0.0, 10.0, ("entrance",), {"entrance": 10.0}, True, False)
    s.write([CameraJourneyRecord(j), VisitRecord("v1", 1, "b", 0.0, 10.0, (), {}, True, False),
             StoreKpiRecord("s", 10.0, 10.0, 1, 1, 10.0, 0)])
    assert s.cams["b"].journeys == 1 and s.cams["b"].converted == 1 and len(s.visits) == 1 and len(s.store_kpis) == 1
    assert "?" not in s.cams
    g = visit_goals({"idf1": 0.93, "store_conversion_error_points": 6.0, "conversion": 0.5, "true_conversion": 0.44})
    assert [x.met for x in g] == [True, False] and "goal >= 0.9: met" in g[0].text
    assert g[0].to_dict()["at_least"] and g[1].to_dict()["value"] == 6.0
    part = visit_goals({"idf1": 0.85, "store_conversion_error_points": 1.0, "conversion": 0.5,
                        "true_conversion": 0.49}, (2, 4))  # make demo: 2 of the store's 4 cameras
    assert not part[0].met and "2 of the store's 4 cameras" in part[0].text and "NOT met" not in part[0].text
    assert "goal >= 0.9: met" in visit_goals({**part[0].to_dict(), "idf1": 0.95, "store_conversion_error_points": 1.0,
                                              "conversion": 0.5, "true_conversion": 0.49}, (4, 4))[0].text
    nan = visit_goals({"idf1": math.nan, "store_conversion_error_points": math.nan, "conversion": math.nan,
                       "true_conversion": math.nan})
    assert not any(x.met for x in nan) and nan[0].to_dict()["value"] is None


def test_link_errors_count_merged_visits_and_split_customers():
    from clients.demo_visits import link_errors

    tt = {"a:1": {"5": 10}, "b:2": {"5": 8}, "a:3": {"6": 10, "-1": 4}, "b:4": {"6": 9}, "c:5": {"7": 10}}
    visits = [{"tracklets": ["a:1", "b:4"]}, {"tracklets": ["b:2"]}, {"tracklets": ["a:3"]}, {"tracklets": ["c:5"]}]
    assert link_errors(visits, tt) == {"merged_visits": 1, "split_customers": 2, "customers_seen": 3}
