"""End to end: the stream runner into InfluxDB, then every panel query of every provisioned dashboard.

The real parts, nothing stubbed: the application (``clients.app.run_app``) against the real Triton (fixture,
CPU ensemble with the shipped demo detector), the real tracker and store analytics
(configs/store.yaml), and the sinks the runner builds from the app config (JSON files,
``InfluxSink``, Triton metrics collector) into a real influxd 1.6.7 whose retention policies
the real setup command (``python -m sinks.setup``) created. Input: the store
simulator's rendered clips (``simulator.day.render_camera``, as
``make demo`` does) of the checkout and the entrance camera, 20 s at 5 fps each.

A 20 s clip is short for a store, so the store config is tuned, not the dashboards: a 10 s
metrics interval (queue, footfall, occupancy reports; ``make demo`` does the same) and
alert rules with thresholds of one person / one second, so alerts are raised within
seconds. Then each panel's InfluxQL (extracted and macro-filled by the helpers in
tests/fixtures/influx.py, shared with tests/test_grafana.py) must return data, for "All" and
for chosen variable values.

One panel is exempt, explicitly and only while the cause holds: "GPU utilisation" reads
Triton's ``nv_gpu_*`` metrics, which a CPU-only Triton does not export; the test checks
Triton's /metrics really has none (on a GPU server the panel is checked like the others).
tests/test_grafana.py checks that panel's query on a scrape that has GPU metrics.
"""
from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.fixtures.influx import dashboard_files, dashboard_variables, run_panel_queries

REPO = Path(__file__).resolve().parents[1]
DB = "retail_e2e"
CAMERAS = ("cam-checkout-1", "cam-entrance-1")
SECONDS, FPS = 20.0, 5.0
INTERVALS = ("1s", "5s")  # what Grafana picks for a range of minutes; the run spans ~20 s of wall time

# thresholds a 20 s clip crosses: every rule type that these two cameras can raise
LOW_ALERTS = [
    {"id": "e2e-queue", "type": "queue_length", "threshold": 1, "clear_below": 1, "for_s": 0, "cooldown_s": 0,
     "severity": "warning", "message": "{target}: {value:.0f} waiting"},
    {"id": "e2e-wait", "type": "wait_time", "threshold": 1, "clear_below": 0, "for_s": 0, "cooldown_s": 0,
     "severity": "critical", "message": "{target}: waited {value:.0f} s"},
    {"id": "e2e-crowd", "type": "occupancy", "cameras": ["cam-entrance-1"], "threshold": 1, "clear_below": 1,
     "for_s": 0, "cooldown_s": 0, "severity": "info", "message": "{target}: {value:.0f} people"},
]


def _gpu_panel_exempt(metrics_url: str) -> bool:
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    return "nv_gpu_utilization" not in text


@pytest.fixture(scope="module")
def e2e(triton_server, influxd_server, tmp_path_factory):
    from analytics.config import load_store_config
    from clients.app import build_sinks, run_app
    from clients.config import load_app_config
    from simulator.day import render_camera
    from sinks.setup import main as influx_setup

    tmp = tmp_path_factory.mktemp("e2e")
    clips = {cam: render_camera(cam, tmp / f"{cam}.mp4", seconds=SECONDS, fps=FPS, seed=7) for cam in CAMERAS}
    store = load_store_config(REPO / "configs" / "store.yaml",
                              overrides={"metrics_interval_s": 10, "alerts": LOW_ALERTS})
    # frame 0 a minute ago: inside retention, and the clip's timestamps never run ahead of "now"
    start = time.time() - 60
    app = {
        "triton": {"url": triton_server.grpc_url},
        # paced at the clip's fps: the run spans ~20 s of wall time however fast the server is, so
        # the 5 s panel buckets (rates, differences) get more than one point per stream
        "streams": [{"id": cam, "source": str(clips[cam].video_path), "start_time": start, "realtime": True}
                    for cam in CAMERAS],
        "sinks": {"json": {"output_dir": str(tmp / "out"), "rotate": "none", "detections": "all"},
                  "influxdb": {"enabled": True, "version": 1, "url": influxd_server.url, "database": DB,
                               "batch_size": 1000, "flush_interval_s": 0.2, "spill_dir": str(tmp / "spill"),
                               "health_interval_s": 1, "close_timeout_s": 30,
                               "triton_metrics": {"enabled": True, "url": triton_server.metrics_url,
                                                  "interval_s": 1}}},
    }
    cfg_path = tmp / "app.yaml"  # a file: the setup command reads it, as `make influx-setup` does
    cfg_path.write_text(yaml.safe_dump(app))
    assert influx_setup(["--config", str(cfg_path)]) == 0  # retention policies, as `make influx-setup`

    config = replace(load_app_config(cfg_path), analytics=store)
    sinks = build_sinks(config)
    assert [type(s).__name__ for s in sinks] == ["JsonFilesSink", "TritonMetricsCollector", "InfluxSink"]
    t = time.monotonic()
    summary = run_app(config, sinks=sinks, health_interval_s=1.0)  # closes the sinks
    wall = time.monotonic() - t
    stats = {type(s).__name__: s.stats() for s in sinks}
    return {"server": influxd_server, "start": start, "summary": summary, "stats": stats, "out": tmp / "out",
            "frames": {cam: clips[cam].frames for cam in CAMERAS}, "wall": wall,
            "gpu_exempt": _gpu_panel_exempt(triton_server.metrics_url)}


def test_runner_writes_every_record_to_influxdb(e2e):
    server, summary = e2e["server"], e2e["summary"]
    for cam in CAMERAS:
        st = summary.streams[cam]
        assert st["error"] is None and st["frames_processed"] == e2e["frames"][cam] > 0, st
    influx = e2e["stats"]["InfluxSink"]
    assert influx["dropped"] == influx["rejected"] == influx["pending"] == 0, influx
    assert influx["written"] == influx["queued"] > 0
    assert e2e["stats"]["TritonMetricsCollector"]["scrapes"] >= 2

    # the same analytics reached both sinks: InfluxDB holds what the seed's JSON files hold
    files = {f.stem: json.loads(f.read_text()) for f in e2e["out"].glob("*.json")}

    def count(q):
        return sum(r[1] for r in server.values(q, DB))

    assert count('SELECT count("duration_s") FROM "journeys"."journeys"') == len(files["journeys"]) > 0
    assert count('SELECT count("queue_length") FROM "queue_metrics"."queue"') == len(files["queue_metrics"]) > 0
    assert count('SELECT count("value") FROM "alerts"."alerts"') == len(files["alerts"]) > 0
    # detections: one point per (stream, frame, class); every frame with a detection has one
    det_frames = {(d["stream_id"], d["frame_number"]) for d in files["detections"]}
    n_points = count('SELECT count("count") FROM "detections"."detections" GROUP BY "class"')
    assert n_points >= len(det_frames) > 0
    streams = {r[1] for r in server.values('SHOW TAG VALUES FROM "health"."stream_health" WITH KEY = "stream"', DB)}
    assert streams == set(CAMERAS)
    assert server.values('SELECT last("written") FROM "health"."sink_health"', DB)


def test_template_variables_have_values(e2e):
    for p in dashboard_files():
        dash = json.loads(p.read_text())
        # raises naming the variable if empty
        assert dashboard_variables(e2e["server"], DB, dash, "chosen", e2e["start"] - 60)


@pytest.mark.parametrize("dashboard", dashboard_files(), ids=lambda p: p.stem)
@pytest.mark.parametrize("selection", ["all", "chosen"])
def test_every_panel_query_returns_data_from_a_real_run(e2e, dashboard, selection):
    dash = json.loads(dashboard.read_text())
    exempt = {("pipeline_health.json", "GPU utilisation")} if e2e["gpu_exempt"] else set()
    results = run_panel_queries(e2e["server"], DB, dash, e2e["start"] - 60, selection, INTERVALS)
    assert len(results) == len(INTERVALS) * sum(len(pn.get("targets", [])) for pn in dash["panels"])
    empty = [f"{pn['title']} ({t['refId']}, {q})" for pn, t, q, ok in results
             if not ok and (dashboard.name, pn["title"]) not in exempt]
    assert not empty, f"{dashboard.name}: no data after a real run of the runner:\n" + "\n".join(empty)
