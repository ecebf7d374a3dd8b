"""Records -> points: schema, escaping (read back from a real influxd), Triton metrics."""
from __future__ import annotations

import math
import time

import pytest

from analytics.records import (
    AlertRecord,
    DetectionRecord,
    HeatmapRecord,
    Hotspot,
    JourneyRecord,
    StoreKpiRecord,
    StreamHealthRecord,
)
from monitoring.triton_metrics import TritonMetricsParser, parse_prometheus
from sinks.config import InfluxConfig, RetentionConfig
from sinks.influx import V1Transport
from sinks.line_protocol import MEASUREMENT_DATA_TYPE, Point, PointMapper, encode_line, record_points
from sinks.setup import setup_v1
from tests import store_helpers
from tests.fixtures.influx import TRITON_METRICS_TEMPLATE


def _det(frame, cls="person", tid=1, t=1000.0, stream="cam-1"):
    return DetectionRecord(stream, frame, t + frame * 0.04, cls, 0.8, 10, 20, 30, 40, tid)


def test_detections_become_per_frame_class_counts_even_when_split_across_calls():
    m = PointMapper()
    out = m.map([_det(0), _det(0, tid=2)])
    assert out == []  # frame 0 may still get more detections
    out = m.map([_det(0, "shopping_cart", None), _det(1)])  # frame 1 starts: frame 0 is complete
    by_class = {dict(p.tags)["class"]: dict(p.fields) for p in out}
    assert by_class["person"]["count"] == 2 and by_class["person"]["tracked"] == 2
    assert by_class["shopping_cart"]["count"] == 1 and by_class["shopping_cart"]["tracked"] == 0
    assert all(p.time_ns == 1000 * 10**9 for p in out)
    rest = m.drain()
    assert [dict(p.fields)["frame_number"] for p in rest] == [1]
    assert m.drain() == []


def test_no_identity_is_ever_a_tag():
    t = 1_700_000_000.0
    recs = [JourneyRecord("journey-000001", 42, "cam-1", t - 60, t, ("entrance", "checkout"),
                          {"entrance": 10.0, "checkout": 50.0}, True, False),
            AlertRecord("alert-1", "cam-1", t, "queue_length", "critical", "long", 9.0, 5.0, "checkout-1"),
            StreamHealthRecord("cam-1", t, 9.5, 30.0, 50.0, 100, 2, 0, 0, {"note": "text", "bytes_per_frame": 5}),
            HeatmapRecord("cam-1", (96, 54), 20, [[0.0, 0.5], [1.0, 0.0]], (Hotspot(0.2, 0.3, 0.9),), timestamp=t)]
    for r in recs:
        for p in record_points(r):
            tags = dict(p.tags)
            assert not {"track_id", "journey_id", "alert_id"} & set(tags), p
            assert p.data_type == MEASUREMENT_DATA_TYPE[p.measurement]
    j, dwell_in, dwell_co = record_points(recs[0])
    assert dict(j.fields)["converted"] == 1 and dict(j.fields)["track_id"] == 42 and j.tags == (("stream", "cam-1"),)
    assert {dict(d.tags)["zone"]: dict(d.fields)["dwell_s"] for d in (dwell_in, dwell_co)} == \
        {"entrance": 10.0, "checkout": 50.0}
    (h,) = record_points(recs[2])
    assert "note" not in dict(h.fields) and dict(h.fields)["bytes_per_frame"] == 5.0  # numbers only, as floats
    (hm,) = record_points(recs[3])
    f = dict(hm.fields)
    assert f["max"] == 1.0 and f["mean"] == 0.375 and f["active_fraction"] == 0.5 and f["hotspot_count"] == 1
    assert f["top_hotspot_intensity"] == 0.9


def test_non_finite_fields_are_left_out():
    p = Point.make("stream_health", {"stream": "a"}, {"fps": math.nan, "latency_p50_ms": 3.0}, 1.0)
    assert dict(p.fields) == {"latency_p50_ms": 3.0}


def test_escaping_round_trips_through_a_real_server(influxd_server):
    db = "escape_test"
    cfg = InfluxConfig(url=influxd_server.url, database=db)
    setup_v1(cfg, RetentionConfig())
    nasty_zone = 'aisle 1,=back\\"x"'
    t_ns = int(time.time() - 60) * 10**9 + 1  # inside the retention policy (older points are refused)
    nasty_msg = 'queue "long", at lane=1\nsecond line \\ end'
    line = encode_line("alerts", sorted({"stream": "cam 1", "zone": nasty_zone}.items()),
                       [("message", nasty_msg), ("value", 2.5), ("n", 3), ("ok", True)], t_ns)
    V1Transport(cfg).send("alerts", line.encode())
    rows = influxd_server.query('SELECT * FROM "alerts"."alerts"', db)[0]["series"][0]
    row = dict(zip(rows["columns"], rows["values"][0]))
    assert row["time"] == t_ns
    assert row["stream"] == "cam 1" and row["zone"] == nasty_zone
    assert row["message"] == nasty_msg and row["value"] == 2.5 and row["n"] == 3 and row["ok"] is True


def test_prometheus_text_parsing():
    text = TRITON_METRICS_TEMPLATE.format(req=10, execs=4, queue_us=1000, compute_us=5000)
    samples = parse_prometheus(text + 'weird_metric{a="x\\"y"} 1.5 1700000000\nnot a sample\n')
    assert ("nv_inference_count", {"model": "yolov8n", "version": "1"}, 10.0) in samples
    assert ("weird_metric", {"a": 'x"y'}, 1.5) in samples
    assert ("nv_cpu_utilization", {}, 0.31) in samples


def test_triton_points_turn_counters_into_per_interval_averages():
    parser = TritonMetricsParser()
    first = parser.points(TRITON_METRICS_TEMPLATE.format(req=100, execs=40, queue_us=50_000, compute_us=900_000), 0.0)
    second = parser.points(TRITON_METRICS_TEMPLATE.format(req=300, execs=90, queue_us=150_000, compute_us=3_300_000),
                           10.0)
    y1 = next(p for p in first if dict(p.tags) == {"model": "yolov8n", "version": "1"})
    assert "avg_queue_ms" not in dict(y1.fields)  # no interval yet
    assert dict(y1.fields)["request_failure"] == 1.0  # summed over the `reason` label
    y2 = dict(next(p for p in second if dict(p.tags) == {"model": "yolov8n", "version": "1"}).fields)
    assert y2["inferences_per_s"] == 20.0 and y2["executions_per_s"] == 5.0 and y2["avg_batch"] == 4.0
    assert y2["avg_queue_ms"] == 0.5 and y2["avg_compute_ms"] == 12.0
    assert {p.measurement for p in second} == {"triton", "triton_gpu", "triton_server"}
    # a restarted server (counters went down) gives no bogus negative rates
    third = parser.points(TRITON_METRICS_TEMPLATE.format(req=5, execs=2, queue_us=10, compute_us=10), 20.0)
    y3 = dict(next(p for p in third if dict(p.tags) == {"model": "yolov8n", "version": "1"}).fields)
    assert "avg_queue_ms" not in y3 and "inferences_per_s" not in y3


def test_scrape_of_a_real_triton(triton_server):
    """The parser against the metrics a real tritonserver prints (CPU build from nvidia-pytriton)."""
    from monitoring.triton_metrics import scrape

    points = TritonMetricsParser().points(scrape(triton_server.metrics_url), time.time())
    models = {dict(p.tags)["model"] for p in points if p.measurement == "triton"}
    assert "yolov8n" in models or "retail_pipeline" in models, models
    fields = set().union(*(dict(p.fields) for p in points if p.measurement == "triton"))
    assert {"request_success", "inference_count", "exec_count", "queue_duration_us",
            "compute_infer_duration_us"} <= fields


# ----------------------------------------------------------------- store level (issue 17: visits across cameras)

def test_a_visit_is_a_journeys_point_with_its_camera_count():
    t = 1_700_000_000.0
    (v,) = record_points(store_helpers.visit(7, t))
    assert v.measurement == "journeys" and v.data_type == "journeys" and v.tags == (("stream", "cam-entrance-1"),)
    f = dict(v.fields)
    (j, *_) = record_points(JourneyRecord("j", 7, "cam-entrance-1", t - 120, t, ("entrance", "aisle-1", "checkout"),
                                          {"entrance": 10.0}, True, True))
    assert {k: f[k] for k in dict(j.fields)} == {**dict(j.fields), "journey_id": "visit-000007", "cart_detected": 0}
    assert f["cameras"] == 2 and f["converted"] == 1 and f["duration_s"] == 120.0
    assert v.time_ns == int(t) * 10**9  # end_time


def test_a_camera_journey_keeps_the_journey_fields_and_the_per_camera_zone_dwell():
    t = 1_700_000_000.0
    cj = store_helpers.camera_journey(3, t)
    pts = record_points(cj)
    plain = record_points(cj.journey)
    assert [p.measurement for p in pts] == ["camera_journeys", "zone_dwell"]
    assert pts[0].fields == plain[0].fields and pts[0].tags == plain[0].tags and pts[0].data_type == "journeys"
    assert pts[1] == plain[1]


def test_store_kpis_and_one_store_paths_point_per_top_path():
    t = 1_700_000_000.0
    k, *paths = record_points(store_helpers.kpis(t))
    assert k.measurement == "store_kpis" and k.tags == (("store", "store-1"),) and k.data_type == "journeys"
    assert dict(k.fields) == {"visits": 4, "converted": 1, "conversion_rate": 0.25, "avg_visit_duration_s": 95.5,
                              "in_store": 7, "window_s": 60.0}
    assert [(dict(p.tags), dict(p.fields)) for p in paths] == [
        ({"store": "store-1", "path": "entrance>aisle-1>checkout"}, {"visits": 3}),
        ({"store": "store-1", "path": "entrance>aisle 2,b=c"}, {"visits": 1})]
    assert {p.measurement for p in paths} == {"store_paths"} and all(p.time_ns == k.time_ns for p in paths)
    (empty,) = record_points(StoreKpiRecord("s", t, 60.0, 0, 0, 0.0, 0))
    assert dict(empty.fields)["conversion_rate"] == 0.0


def test_floor_heatmap_summary_and_grid_rows():
    t = 1_700_000_000.0
    s, *rows = record_points(store_helpers.floor_heatmap(t))
    f = dict(s.fields)
    assert s.measurement == "floor_heatmap" and s.tags == (("store", "store-1"),) and s.data_type == "heatmaps"
    assert f["max"] == 1.0 and f["active_fraction"] == 0.5 and f["hotspot_count"] == 2
    assert (f["columns"], f["rows"], f["cell_m"], f["origin_x_m"], f["origin_y_m"]) == (3, 2, 0.5, 1.0, 2.0)
    assert f["top_hotspot_intensity"] == 1.0 and f["top_hotspot_x"] == 0.8333
    assert f["top_hotspot_x_m"] == pytest.approx(1.0 + 0.8333 * 1.5) and f["top_hotspot_y_m"] == 2.25
    assert [p.measurement for p in rows] == ["floor_heatmap_rows"] * 2
    assert [dict(p.tags)["row"] for p in rows] == ["000", "001"]
    assert dict(rows[0].fields) == {"c000": 0.0, "c001": 0.25, "c002": 1.0}
    assert all(p.data_type == "heatmaps" and p.time_ns == s.time_ns for p in rows)


def test_store_records_read_back_from_a_real_server(influxd_server):
    db = "store_level"
    cfg = InfluxConfig(url=influxd_server.url, database=db)
    setup_v1(cfg, RetentionConfig())
    t = float(int(time.time()) - 60)
    recs = [store_helpers.visit(1, t), store_helpers.visit(2, t, converted=False), store_helpers.camera_journey(1, t),
            store_helpers.kpis(t), store_helpers.floor_heatmap(t)]
    pts = PointMapper().map(recs)
    assert {p.measurement for p in pts} == {"journeys", "camera_journeys", "zone_dwell", "store_kpis", "store_paths",
                                            "floor_heatmap", "floor_heatmap_rows"}
    tr = V1Transport(cfg)
    for rp in {p.data_type for p in pts}:
        tr.send(rp, "\n".join(p.to_line() for p in pts if p.data_type == rp).encode())

    def rows(q):
        res = influxd_server.query(q, db)[0]["series"]
        return [dict(zip(s["columns"], v), **s.get("tags", {})) for s in res for v in s["values"]]

    visits = rows('SELECT * FROM "journeys"."journeys"')
    assert sorted((r["journey_id"], r["cameras"], r["converted"]) for r in visits) == [
        ("visit-000001", 2, 1), ("visit-000002", 2, 0)]  # same stream, same end: both kept
    assert influxd_server.scalar('SELECT mean("converted") FROM "journeys"."journeys"', db) == 0.5
    (cj,) = rows('SELECT * FROM "journeys"."camera_journeys"')
    assert cj["journey_id"] == "journey-cam-checkout-1-1" and cj["stream"] == "cam-checkout-1" and cj["zone_count"] == 1
    (k,) = rows('SELECT * FROM "journeys"."store_kpis"')
    assert (k["store"], k["visits"], k["converted"], k["conversion_rate"], k["avg_visit_duration_s"], k["in_store"],
            k["window_s"]) == ("store-1", 4, 1, 0.25, 95.5, 7, 60.0)
    paths = rows('SELECT sum("visits") FROM "journeys"."store_paths" GROUP BY "path"')
    assert {r["path"]: r["sum"] for r in paths} == {"entrance>aisle-1>checkout": 3, "entrance>aisle 2,b=c": 1}
    (fh,) = rows('SELECT * FROM "heatmaps"."floor_heatmap"')
    assert fh["store"] == "store-1" and fh["max"] == 1.0 and fh["columns"] == 3 and fh["cell_m"] == 0.5
    grid = rows('SELECT last(*) FROM "heatmaps"."floor_heatmap_rows" GROUP BY "row"')
    assert [[r[f"last_c{j:03d}"] for j in range(3)] for r in grid] == [[0.0, 0.25, 1.0], [0.5, 0.0, 0.0]]
