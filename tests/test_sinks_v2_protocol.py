"""InfluxDB 2.x paths (setup_v2, V2Transport) against a recording stand-in of the 2.x HTTP API.

This is a protocol-level check, not a server test: no InfluxDB 2.x can run here (see
docs/platform.md), so the stand-in of ``tests/fixtures/influx2.py`` answers the requests that
``influxdb-client`` makes the way the 2.x API documents them (``/api/v2/orgs``,
``/api/v2/buckets``, ``/api/v2/dbrps``, ``/api/v2/write``), keeps buckets and DBRP
mappings as state, and records every request. The defects of issue 21 (dashboards, partial
writes, retention, setup, DBRP, Retry-After, 413, Grafana's login) are in
``tests/test_sinks_v2_server.py``. The tests assert what the client sent:
buckets named ``<bucket_prefix><data type>`` with the expiry of configs/app_config.yaml's
retention table, DBRP mappings ``<database>/<data type> -> bucket``, the token, and line
protocol written to the right bucket. Whether a real 2.x server then behaves as documented
(expiry enforced, InfluxQL through the mappings) is not proven here.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from sinks.config import InfluxConfig, load_sinks_config
from sinks.influx import InfluxSink, RejectedError, RetryableError, V2Transport
from sinks.line_protocol import DATA_TYPES, Point
from sinks.setup import DEFAULT_DATA_TYPE, SetupError, setup_v2
from tests.fixtures.influx2 import ORG_ID, TOKEN

ROOT = Path(__file__).resolve().parents[1]
APP_CONFIG = ROOT / "configs" / "app_config.yaml"


def _v2_cfg(url: str, **kw) -> InfluxConfig:
    base = load_sinks_config(APP_CONFIG).influxdb  # the repo's settings: database, org, bucket prefix
    return replace(base, enabled=True, version=2, url=url, token=TOKEN, timeout_s=5, **kw)


def test_setup_v2_creates_buckets_with_the_configured_retention_and_dbrp_mappings(fake2):
    sinks = load_sinks_config(APP_CONFIG)
    # the seed's storage table, as configs/app_config.yaml states it
    assert {k: sinks.retention.days[k] for k in ("detections", "journeys", "queue_metrics", "heatmaps", "alerts")} \
        == {"detections": 7, "journeys": 90, "queue_metrics": 90, "heatmaps": 30, "alerts": 365}
    cfg = _v2_cfg(fake2.url)
    actions = setup_v2(cfg, sinks.retention)
    assert all(r["auth"] == f"Token {TOKEN}" for r in fake2.requests if r["path"] != "/ping")

    by_name = {b["name"]: b for b in fake2.buckets.values()}
    assert set(by_name) == {f"{cfg.bucket_prefix}{dt}" for dt in DATA_TYPES}
    for dt in DATA_TYPES:
        b = by_name[cfg.bucket(dt)]
        assert b["orgID"] == ORG_ID
        rules = [(r["type"], r["everySeconds"]) for r in b["retentionRules"]]
        assert rules == [("expire", sinks.retention.days[dt] * 86400)], (dt, rules)
    assert by_name["retail_detections"]["retentionRules"][0]["everySeconds"] == 7 * 86400
    assert by_name["retail_journeys"]["retentionRules"][0]["everySeconds"] == 90 * 86400
    assert by_name["retail_queue_metrics"]["retentionRules"][0]["everySeconds"] == 90 * 86400
    assert by_name["retail_heatmaps"]["retentionRules"][0]["everySeconds"] == 30 * 86400
    assert by_name["retail_alerts"]["retentionRules"][0]["everySeconds"] == 365 * 86400

    maps = {d["retention_policy"]: d for d in fake2.dbrps.values()}
    assert set(maps) == set(DATA_TYPES)
    for dt, d in maps.items():
        assert d["database"] == cfg.database == "retail" and d["orgID"] == ORG_ID
        assert fake2.buckets[d["bucketID"]]["name"] == cfg.bucket(dt)
        assert d["default"] is (dt == DEFAULT_DATA_TYPE)
    assert sum(a.startswith("created bucket") for a in actions) == len(DATA_TYPES)
    assert sum(a.startswith("mapped ") for a in actions) == len(DATA_TYPES)

    # idempotent: a second run with a changed retention updates expiry in place, maps nothing twice
    n_posts = sum(r["method"] == "POST" for r in fake2.requests)
    days = dict(sinks.retention.days, detections=3, alerts=0)
    again = setup_v2(cfg, replace(sinks.retention, days=days))
    assert sum(r["method"] == "POST" for r in fake2.requests) == n_posts  # no new bucket, no new mapping
    assert len(fake2.buckets) == len(fake2.dbrps) == len(DATA_TYPES)
    assert sum(a.startswith("updated bucket") for a in again) == len(DATA_TYPES)
    by_name = {b["name"]: b for b in fake2.buckets.values()}
    assert by_name["retail_detections"]["retentionRules"][0]["everySeconds"] == 3 * 86400
    # 0 days: keep forever, as 2.x takes it: an expire rule of 0 s (an empty list would leave the old expiry)
    assert by_name["retail_alerts"]["retentionRules"] == [{"type": "expire", "everySeconds": 0}]


def test_setup_v2_errors_are_setup_errors(fake2):
    sinks = load_sinks_config(APP_CONFIG)
    with pytest.raises(SetupError, match="organization 'nope' not found"):
        setup_v2(replace(_v2_cfg(fake2.url), org="nope"), sinks.retention)
    with pytest.raises(SetupError, match="needs a token"):
        setup_v2(replace(_v2_cfg(fake2.url), token=None), sinks.retention)
    assert setup_v2(_v2_cfg(fake2.url), sinks.retention, dry_run=True)[0].startswith("bucket retail_detections")


def test_v2_transport_writes_line_protocol_to_the_data_types_bucket(fake2):
    cfg = _v2_cfg(fake2.url)
    setup_v2(cfg, load_sinks_config(APP_CONFIG).retention)  # the stand-in, like 2.x, writes only to existing buckets
    t = V2Transport(cfg)
    body = f"stream_health,stream=cam-1 fps=5 {time.time_ns()}\n".encode()  # inside retail_health's 7 days
    t.send("health", body)
    (w,) = fake2.writes
    assert w["query"] == {"org": "retail", "bucket": "retail_health", "precision": "ns"}
    assert w["body"] == body.decode()
    (req,) = [r for r in fake2.requests if r["path"] == "/api/v2/write"]
    assert req["auth"] == f"Token {TOKEN}"
    fake2.write_status = 400
    with pytest.raises(RejectedError, match="400"):
        t.send("health", body)
    fake2.write_status = 503
    with pytest.raises(RetryableError, match="503"):
        t.send("health", body)
    t.close()


def test_sink_with_version_2_delivers_every_point_to_its_bucket(fake2):
    cfg = _v2_cfg(fake2.url, spill_dir=None, flush_interval_s=0.05, health_interval_s=0)
    setup_v2(cfg, load_sinks_config(APP_CONFIG).retention)
    t0 = time.time() - 3600  # inside every bucket's retention
    pts = [Point.make("stream_health", {"stream": "cam-1"}, {"seq": i}, t0 + i) for i in range(30)]
    pts += [Point.make("queue", {"stream": "cam-1", "lane": "checkout-1"}, {"queue_length": i}, t0 + i)
            for i in range(20)]
    fake2.write_status = 503  # away first: retried, nothing lost
    with InfluxSink(cfg) as sink:
        sink.write(pts)
        deadline = time.monotonic() + 10
        while sink.stats()["failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        fake2.write_status = 204
        assert sink.flush(timeout=10), sink.stats()
        st = sink.stats()
    assert st["written"] == 50 and st["dropped"] == st["rejected"] == 0 and st["failures"] >= 1
    assert any(w["status"] == 503 for w in fake2.writes)
    got: dict[str, list[str]] = {}
    for w in fake2.writes:
        if w["status"] == 204:
            assert w["query"]["org"] == "retail" and w["query"]["precision"] == "ns"
            got.setdefault(w["query"]["bucket"], []).extend(w["body"].splitlines())
    # each point accepted exactly once, in the bucket of its data type
    assert {b: len(lines) for b, lines in got.items()} == {"retail_health": 30, "retail_queue_metrics": 20}
    assert all(len(set(lines)) == len(lines) for lines in got.values())
