"""The seed's five JSON files: schema, streaming, valid after a crash."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from analytics.records import DetectionRecord, FootfallRecord, VisitRecord
from sinks.json_files import SEED_FILES, STORE_FILES, JsonFilesSink
from tests.fixtures.influx import pipeline_records
from tests.store_helpers import store_records

ROOT = Path(__file__).resolve().parents[1]
SEED_KEYS = {
    "detections.json": ["stream_id", "frame_number", "timestamp", "class_name", "confidence", "bbox", "track_id"],
    "journeys.json": ["journey_id", "track_id", "stream_id", "start_time", "end_time", "duration_seconds",
                      "zones_visited", "zone_dwell_times", "converted", "cart_detected"],
    "queue_metrics.json": ["lane_id", "stream_id", "timestamp", "queue_length", "avg_wait_time_seconds",
                           "max_wait_time_seconds", "service_rate", "abandonment_count"],
    "heatmap.json": ["stream_id", "resolution", "cell_size", "data", "hotspots"],
}


def test_five_files_in_the_seed_schema(tmp_path):
    batches = pipeline_records(time.time() - 300, seconds=60)
    records = [r for b in batches for r in b]
    sink = JsonFilesSink(tmp_path, flush_every=100)
    for b in batches:
        sink.write(b)
    sink.close()
    sink.close()  # idempotent
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SEED_FILES.values())
    for cls, name in SEED_FILES.items():
        data = json.loads((tmp_path / name).read_text())
        expected = [r.to_dict() for r in records if type(r) is cls]
        assert data == expected, name  # every record, in order, exactly its to_dict()
        if name in SEED_KEYS:
            assert list(data[0]) == SEED_KEYS[name]
    st = sink.stats()
    assert st["skipped"] == sum(1 for r in records if type(r) not in SEED_FILES)
    assert st["files"]["detections.json"] == sum(1 for r in records if isinstance(r, DetectionRecord))


def test_empty_run_leaves_empty_arrays(tmp_path):
    JsonFilesSink(tmp_path).close()
    for name in SEED_FILES.values():
        assert json.loads((tmp_path / name).read_text()) == []


def test_files_are_valid_json_after_every_flush_while_open(tmp_path):
    sink = JsonFilesSink(tmp_path, flush_every=10**6)
    t = time.time()
    for i in range(3):
        sink.write([DetectionRecord("cam", i, t + i, "person", 0.9, 1, 2, 3, 4, i)])
        sink.flush()
        data = json.loads((tmp_path / "detections.json").read_text())
        assert [d["frame_number"] for d in data] == list(range(i + 1))
    sink.write([FootfallRecord("cam", t, "door", 1, 0, 1)])  # no seed file: skipped, counted
    sink.close()
    assert sink.stats()["skipped"] == 1


def test_crash_mid_run_leaves_valid_json_up_to_the_last_flush(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from analytics.records import DetectionRecord
        from sinks.json_files import JsonFilesSink
        sink = JsonFilesSink({str(tmp_path)!r}, flush_every=50)
        t = time.time()
        for i in range(1020):
            sink.write([DetectionRecord("cam", i, t + i, "person", 0.9, 1, 2, 3, 4, i)])
        os._exit(9)  # no close(), no atexit: a crash
    """)
    assert subprocess.run([sys.executable, "-c", script], cwd=ROOT).returncode == 9
    data = json.loads((tmp_path / "detections.json").read_text())
    assert [d["frame_number"] for d in data] == list(range(1000))  # the last flush was at 1000 records


# --------------------------------------------------------------------------- store level (issue 17)

def test_store_records_go_to_their_files_and_visits_to_journeys(tmp_path):
    t = 1_765_000_000.0
    (stale := tmp_path / "store_kpis.json").write_text('[{"old": 1}]\n')  # an earlier run's store file
    sink = JsonFilesSink(tmp_path, flush_every=3)
    assert json.loads(stale.read_text()) == []  # truncated at start like the seed files
    batches = store_records(t, seconds=180)
    for b in batches:
        sink.write(b)
    sink.close()
    recs = [r for b in batches for r in b]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*SEED_FILES.values(), "camera_journeys.json", "floor_heatmap.json", "store_kpis.json"])
    for cls, name in STORE_FILES.items():
        assert json.loads((tmp_path / name).read_text()) == [r.to_dict() for r in recs if type(r) is cls], name
    journeys = json.loads((tmp_path / "journeys.json").read_text())
    assert journeys == [r.to_dict() for r in recs if isinstance(r, VisitRecord)] and len(journeys) == 9
    assert list(journeys[0]) == [*SEED_KEYS["journeys.json"], "cameras", "tracklets"]
    kpi = json.loads((tmp_path / "store_kpis.json").read_text())[0]
    assert kpi == {"store_id": "store-1", "timestamp": "2025-12-06T05:47:40Z", "window_s": 60.0, "visits": 3,
                   "converted": 2, "conversion_rate": 0.6667, "avg_visit_duration_s": 95.5, "in_store": 7,
                   "top_paths": [{"path": "entrance>aisle-1>checkout", "visits": 3},
                                 {"path": "entrance>aisle 2,b=c", "visits": 1}]}
    st = sink.stats()
    assert st["files"]["journeys.json"] == 9 and st["files"]["camera_journeys.json"] == 18
    assert st["files"]["floor_heatmap.json"] == st["files"]["store_kpis.json"] == 3 and st["skipped"] == 0
