"""InfluxDB 2.x paths (setup_v2, V2Transport) against a recording stand-in of the 2.x HTTP API.

This is a protocol-level check, not a server test: no InfluxDB 2.x can run here (see
docs/platform.md), so a small ``http.server`` in a thread answers the requests that
``influxdb-client`` makes the way the 2.x API documents them (``/api/v2/orgs``,
``/api/v2/buckets``, ``/api/v2/dbrps``, ``/api/v2/write``), keeps buckets and DBRP
mappings as state, and records every request. The tests assert what the client sent:
buckets named ``<bucket_prefix><data type>`` with the expiry of configs/app_config.yaml's
retention table, DBRP mappings ``<database>/<data type> -> bucket``, the token, and line
protocol written to the right bucket. Whether a real 2.x server then behaves as documented
(expiry enforced, InfluxQL through the mappings) is not proven here.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sinks.config import InfluxConfig, load_sinks_config
from sinks.influx import InfluxSink, RejectedError, RetryableError, V2Transport
from sinks.line_protocol import DATA_TYPES, Point
from sinks.setup import DEFAULT_DATA_TYPE, SetupError, setup_v2

ROOT = Path(__file__).resolve().parents[1]
APP_CONFIG = ROOT / "configs" / "app_config.yaml"
TOKEN = "test-token-123"
ORG_ID = "0a1b2c3d4e5f6789"


class FakeInflux2:
    """State and request log of the stand-in server."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.buckets: dict[str, dict] = {}  # id -> bucket
        self.dbrps: dict[str, dict] = {}  # id -> mapping
        self.writes: list[dict] = []
        self.write_status = 204  # what /api/v2/write answers (tests set 400 / 503)
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    def new_id(self) -> str:
        return f"{next(self._ids):016x}"


def _handler(state: FakeInflux2):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

        def log_message(self, *a):  # quiet
            pass

        def _reply(self, status: int, body: dict | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("X-Influxdb-Build", "OSS")
            self.send_header("X-Influxdb-Version", "v2.7.10")
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            u = urllib.parse.urlsplit(self.path)
            q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            req = {"method": self.command, "path": u.path, "query": q, "auth": self.headers.get("Authorization"),
                   "body": raw}
            with state.lock:
                state.requests.append(req)
                self._route(req, q, raw)

        def _route(self, req: dict, q: dict, raw: bytes) -> None:
            m, path = req["method"], req["path"]
            if path == "/ping":
                return self._reply(204)
            if req["auth"] != f"Token {TOKEN}":
                return self._reply(401, {"code": "unauthorized", "message": "unauthorized access"})
            if m == "GET" and path == "/api/v2/orgs":
                orgs = [{"id": ORG_ID, "name": "retail"}]
                return self._reply(200, {"orgs": [o for o in orgs if q.get("org") in (None, o["name"])]})
            if m == "GET" and path == "/api/v2/buckets":
                bs = [b for b in state.buckets.values() if q.get("name") in (None, b["name"])]
                return self._reply(200, {"buckets": bs})
            if m == "POST" and path == "/api/v2/buckets":
                body = json.loads(raw)
                if any(b["name"] == body["name"] for b in state.buckets.values()):
                    return self._reply(422, {"code": "conflict",
                                             "message": f"bucket with name {body['name']} already exists"})
                b = {"id": state.new_id(), "orgID": body["orgID"], "name": body["name"],
                     "description": body.get("description", ""), "retentionRules": body.get("retentionRules", []),
                     "type": "user"}
                state.buckets[b["id"]] = b
                return self._reply(201, b)
            if m == "PATCH" and path.startswith("/api/v2/buckets/"):
                bid = path.rsplit("/", 1)[1]
                if bid not in state.buckets:
                    return self._reply(404, {"code": "not found", "message": "bucket not found"})
                body = json.loads(raw)
                b = state.buckets[bid]
                b["retentionRules"] = body.get("retentionRules", b["retentionRules"])
                b["name"] = body.get("name", b["name"])
                return self._reply(200, b)
            if m == "GET" and path == "/api/v2/dbrps":
                hits = [d for d in state.dbrps.values() if d["orgID"] == q.get("orgID")
                        and q.get("db") in (None, d["database"]) and q.get("rp") in (None, d["retention_policy"])]
                return self._reply(200, {"content": hits})
            if m == "POST" and path == "/api/v2/dbrps":
                body = json.loads(raw)
                if body.get("bucketID") not in state.buckets:
                    return self._reply(404, {"code": "not found", "message": "bucket not found"})
                d = {"id": state.new_id(), "orgID": body["orgID"], "bucketID": body["bucketID"],
                     "database": body["database"], "retention_policy": body["retention_policy"],
                     "default": bool(body.get("default")), "virtual": False}
                state.dbrps[d["id"]] = d
                return self._reply(201, d)
            if m == "POST" and path == "/api/v2/write":
                state.writes.append({"query": q, "body": raw.decode(), "status": state.write_status})
                if state.write_status == 204:
                    return self._reply(204)
                code = {400: "invalid", 503: "unavailable"}.get(state.write_status, "internal error")
                return self._reply(state.write_status, {"code": code, "message": "failure writing points"})
            return self._reply(404, {"code": "not found", "message": f"path not found: {m} {path}"})

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake2():
    state = FakeInflux2()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    th.start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
    srv.server_close()


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
    assert by_name["retail_alerts"]["retentionRules"] == []  # 0 days: keep forever (no expiry rule)


def test_setup_v2_errors_are_setup_errors(fake2):
    sinks = load_sinks_config(APP_CONFIG)
    with pytest.raises(SetupError, match="organization 'nope' not found"):
        setup_v2(replace(_v2_cfg(fake2.url), org="nope"), sinks.retention)
    with pytest.raises(SetupError, match="needs a token"):
        setup_v2(replace(_v2_cfg(fake2.url), token=None), sinks.retention)
    assert setup_v2(_v2_cfg(fake2.url), sinks.retention, dry_run=True)[0].startswith("bucket retail_detections")


def test_v2_transport_writes_line_protocol_to_the_data_types_bucket(fake2):
    cfg = _v2_cfg(fake2.url)
    t = V2Transport(cfg)
    body = b"stream_health,stream=cam-1 fps=5 1700000000000000000\n"
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
    t0 = 1_700_000_000.0
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
