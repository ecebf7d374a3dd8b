"""clients.demo (make demo) helpers: the detector's provenance notice and the per-camera tally."""
from __future__ import annotations

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


def test_demo_end_to_end(triton_server, tmp_path, capsys):
    """`make demo`'s path on a short clip: simulator -> Triton -> tracker -> analytics -> files."""
    from clients.demo import main

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


def test_demo_meets_its_accuracy_goals(triton_server, tmp_path):
    """`make demo`'s own clip (the evening rush, 120 s, two cameras, the trained demo detector):
    footfall within 5 % and queue length MAE <= 1 per lane against the simulator's ground truth.
    About 2 minutes on 2 cores."""
    from clients.demo import main

    source, _ = detector_source()
    if "placeholder" in source.lower():
        pytest.skip("the detector has placeholder weights (no demo detector installed): its errors are not the "
                    "analytics' accuracy")
    out = tmp_path / "out"
    assert main(["--triton-url", triton_server.grpc_url, "--out", str(out), "--clips-dir", str(tmp_path / "clips")]) == 0
    goals = json.loads((out / "demo_summary.json").read_text())["accuracy"]
    metrics = {g["metric"] for g in goals}
    assert "footfall_error_pct" in metrics and any(m.startswith("queue_length_mae:") for m in metrics), goals
    assert all(g["met"] for g in goals), goals
