"""Issue 21: the InfluxDB 2.x path as the documented server behaves, on the stand-in of
``tests/fixtures/influx2.py`` (each behaviour cited there), and on the real influxd 1.6.7 where
the behaviour is shared (a missing database answered with 404).

One test (or two) per defect: dashboard variables that find lanes and zones on 2.x; a 422
partial write counts only the dropped points; retention 0 reaches an existing bucket as
"keep forever"; ``python -m sinks.setup --version 2`` (as docs/influxdb.md writes it) never
sends CREATE DATABASE; ``version: 1`` without DBRP mappings says so once; Retry-After is
honoured and a 413 splits the batch; setup's hint on a changed token/org and Grafana's
read-only login.
"""
from __future__ import annotations

import json
import logging
import re
import shlex
import time
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from sinks.config import InfluxConfig, load_sinks_config
from sinks.influx import InfluxSink
from sinks.line_protocol import DATA_TYPES, Point
from sinks.setup import SetupError, setup_v2
from sinks.setup import main as setup_main
from sinks.setup_grafana import setup_grafana
from sinks.transports import retry_after_s
from tests.fixtures.influx import dashboard_files, pipeline_records, variable_query
from tests.fixtures.influx2 import TOKEN
from tests.store_helpers import store_records

ROOT = Path(__file__).resolve().parents[1]
APP_CONFIG = ROOT / "configs" / "app_config.yaml"
SINKS = load_sinks_config(APP_CONFIG)


def _cfg(url: str, version: int = 2, **kw) -> InfluxConfig:
    base = dict(enabled=True, version=version, url=url, token=TOKEN, timeout_s=5, spill_dir=None,
                flush_interval_s=0.05, health_interval_s=0, retry_initial_s=0.02, retry_max_s=0.2)
    base.update(kw)
    return replace(SINKS.influxdb, **base)


def _influxql(url: str, q: str, **auth) -> tuple[int, dict]:
    params = {"db": "retail", "q": q, **auth}
    headers = {} if auth else {"Authorization": f"Token {TOKEN}"}
    req = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _values(body: dict) -> list:
    return [row[1] for res in body.get("results", []) for s in res.get("series") or [] for row in s["values"]]


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ----------------------------------------------------------------- 1: dashboard variables on 2.x


@pytest.fixture
def populated2(fake2):
    """The stand-in after setup and a short pipeline run written through the sink (version 2)."""
    cfg = _cfg(fake2.url)
    setup_v2(cfg, SINKS.retention)
    t0 = time.time() - 1800
    with InfluxSink(cfg) as sink:
        for batch in pipeline_records(t0, seconds=60):
            sink.write(batch)
        for batch in store_records(t0, seconds=60):  # a store that links visits: the store variable's values
            sink.write(batch)
        assert sink.flush(timeout=30), sink.stats()
        assert sink.stats()["rejected"] == 0
    return fake2, t0


def test_every_dashboard_variable_finds_values_on_2x(populated2):
    """SHOW TAG VALUES reads only the default DBRP's bucket on 2.x (health): lanes and zones must come
    from a query routed to their own bucket (configs/grafana/generate.py, _tag_values)."""
    fake, t0 = populated2
    seen = {}
    for p in dashboard_files():
        for var in json.loads(p.read_text())["templating"]["list"]:
            status, body = _influxql(fake.url, variable_query(var, t0 - 600))
            assert status == 200, (p.name, var["name"], body)
            seen[(p.stem, var["name"])] = _values(body)
            assert seen[(p.stem, var["name"])], f"{p.name}: ${var['name']} ({var['query']}) is empty on 2.x"
    # the stand-in does route SHOW TAG VALUES to the default bucket (what the old variables did)
    status, body = _influxql(fake.url, 'SHOW TAG VALUES FROM "queue_metrics"."queue" WITH KEY = "lane"')
    assert status == 200 and _values(body) == []


# ----------------------------------------------------------------- 2: 422 partial writes


@pytest.mark.parametrize("version", [1, 2])
def test_a_partial_write_counts_only_the_dropped_points(fake2, version):
    cfg = _cfg(fake2.url, version=version)
    setup_v2(cfg, SINKS.retention)  # detections: 7 days
    now = time.time()
    old = [Point.make("detections", {"stream": "c", "class": "person"}, {"count": i}, now - 9 * 86400 + i)
           for i in range(3)]
    new = [Point.make("detections", {"stream": "c", "class": "person"}, {"count": i}, now - 60 + i) for i in range(7)]
    with InfluxSink(cfg) as sink:
        sink.write(old + new)
        assert sink.flush(timeout=10), sink.stats()
        st = sink.stats()
    assert (st["written"], st["rejected"], st["dropped"]) == (7, 3, 0), st
    assert [w["status"] for w in fake2.writes] == [422]  # not retried: resending cannot help
    assert "dropped=3" in st["last_error"]
    (bid,) = [b["id"] for b in fake2.buckets.values() if b["name"] == "retail_detections"]
    assert len(fake2.points[bid]) == 7


# ----------------------------------------------------------------- 3: keep forever on an existing bucket


def test_keep_forever_reaches_an_existing_bucket(fake2):
    cfg = _cfg(fake2.url)
    setup_v2(cfg, SINKS.retention)  # health: 7 days, like the compose init bucket retail_health
    setup_v2(cfg, replace(SINKS.retention, days=dict(SINKS.retention.days, health=0)))
    (b,) = [b for b in fake2.buckets.values() if b["name"] == "retail_health"]
    assert b["retentionRules"] == [{"type": "expire", "everySeconds": 0}]
    # and the server now keeps a month-old point instead of dropping it
    with InfluxSink(cfg) as sink:
        sink.write([Point.make("stream_health", {"stream": "c"}, {"fps": 5.0}, time.time() - 30 * 86400)])
        assert sink.flush(timeout=10)
        assert sink.stats()["rejected"] == 0 and sink.stats()["written"] == 1


# ----------------------------------------------------------------- 4: (re)applying retention on a 2.x server


def _documented_setup_commands() -> list[str]:
    """The ``python -m sinks.setup ...`` commands docs/influxdb.md gives for a 2.x server."""
    text = (ROOT / "docs" / "influxdb.md").read_text()
    cmds = re.findall(r"^\s*(?:\S+=\S+ )*(python -m sinks\.setup .*--version 2.*)$", text, re.M)
    assert cmds, "docs/influxdb.md: no `python -m sinks.setup --version 2` command"
    # `make influx-setup INFLUX_SETUP_ARGS="..."` runs the Makefile's recipe with those arguments
    recipe = re.search(r"^influx-setup:.*\n\t\$\(PY\) (-m sinks\.setup .*)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "$(INFLUX_SETUP_ARGS)" in recipe.group(1)
    for args in re.findall(r'make influx-setup INFLUX_SETUP_ARGS="([^"]*--version 2[^"]*)"', text):
        cmds.append("python " + recipe.group(1).replace("$(INFLUX_SETUP_ARGS)", args))
    assert len(cmds) >= 2
    return cmds


def test_the_documented_setup_command_works_on_2x_without_create_database(fake2, monkeypatch, capsys):
    monkeypatch.setenv("INFLUXDB_TOKEN", TOKEN)
    monkeypatch.delenv("RVA_INFLUXDB_VERSION", raising=False)
    monkeypatch.chdir(ROOT)
    for cmd in _documented_setup_commands():
        argv = shlex.split(cmd.split("#")[0])[3:]
        argv = [re.sub(r"^https?://localhost:8086$", fake2.url, a) for a in argv]
        assert fake2.url in argv, f"{cmd}: expected --url http://localhost:8086"
        assert setup_main(argv) == 0, capsys.readouterr().err
    assert not [r for r in fake2.requests if r["path"] == "/query"]  # never CREATE DATABASE on 2.x
    assert {b["name"] for b in fake2.buckets.values()} == {SINKS.influxdb.bucket(dt) for dt in DATA_TYPES}
    # the environment route too (what the compose service sets)
    monkeypatch.setenv("RVA_INFLUXDB_VERSION", "2")
    assert setup_main(["--url", fake2.url]) == 0
    monkeypatch.setenv("RVA_INFLUXDB_VERSION", "1")  # the flag wins over the environment
    assert setup_main(["--url", fake2.url, "--version", "2"]) == 0
    assert not [r for r in fake2.requests if r["path"] == "/query"]


# ----------------------------------------------------------------- 5: version 1 against 2.x without DBRP


def _missing_storage_once(url: str, caplog, version: int = 1, **kw) -> InfluxSink:
    sink = InfluxSink(_cfg(url, version=version, **kw))
    with caplog.at_level(logging.WARNING, logger="sinks.influx"):
        sink.write([Point.make("stream_health", {"stream": "c"}, {"fps": float(i)}, time.time() - 60 + i)
                    for i in range(5)])
        _wait(lambda: sink.stats()["missing_storage"] >= 3)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # said once, clearly
    db = kw.get("database", "retail")
    assert f"'{db}'" in errors[0] and "make influx-setup" in errors[0] and "DBRP" in errors[0], errors[0]
    assert sink.stats()["dropped"] == 0  # still buffered, retried
    return sink


def test_version_1_on_2x_without_dbrp_mappings_says_so_once_and_recovers(fake2, caplog):
    sink = _missing_storage_once(fake2.url, caplog)
    try:
        setup_v2(_cfg(fake2.url), SINKS.retention)  # the fix the message names
        assert sink.flush(timeout=10), sink.stats()
        assert sink.stats()["written"] == 5
    finally:
        sink.close()


@pytest.mark.parametrize("missing", ["database", "retention policy"])
def test_version_1_without_the_database_says_so_once_on_the_real_1x(influxd_server, caplog, missing):
    db = f"issue21_no_{missing.split()[0]}"
    if missing == "retention policy":  # the database alone (1.6.7 answers 500 "retention policy not found")
        influxd_server.query(f'CREATE DATABASE "{db}"', db)
    sink = _missing_storage_once(influxd_server.url, caplog, token=None, database=db)
    sink.close(timeout=0.5)


# ----------------------------------------------------------------- 6: Retry-After and 413


def test_retry_after_is_honoured(fake2):
    cfg = _cfg(fake2.url)
    setup_v2(cfg, SINKS.retention)
    fake2.write_status, fake2.retry_after = 503, "1"
    with InfluxSink(cfg) as sink:
        sink.write([Point.make("stream_health", {"stream": "c"}, {"fps": 1.0}, time.time())])
        _wait(lambda: fake2.writes)
        fake2.write_status = 204
        assert sink.flush(timeout=10)
    first, second = fake2.writes[0], fake2.writes[1]
    assert second["status"] == 204 and second["t"] - first["t"] >= 0.95  # not the 0.02 s backoff
    assert retry_after_s("120") == 120.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert 55 <= retry_after_s(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61


@pytest.mark.parametrize("version", [1, 2])
def test_a_413_splits_the_batch_instead_of_dropping_it(fake2, version):
    cfg = _cfg(fake2.url, version=version, batch_size=64)
    setup_v2(cfg, SINKS.retention)
    fake2.max_body_bytes = 1000  # about 15 lines of this size
    pts = [Point.make("stream_health", {"stream": "cam-1"}, {"seq": i, "fps": 5.0}, time.time() - 60 + i / 10)
           for i in range(64)]
    with InfluxSink(cfg) as sink:
        sink.write(pts)
        assert sink.flush(timeout=10), sink.stats()
        st = sink.stats()
    assert (st["written"], st["rejected"], st["dropped"]) == (64, 0, 0), st
    assert st["split_batches"] >= 3 and any(w["status"] == 413 for w in fake2.writes)
    assert sum(len(pp) for pp in fake2.points.values()) == 64


# ----------------------------------------------------------------- 7: a changed token/org, Grafana's login


def test_a_changed_token_or_org_gets_a_one_line_hint(fake2, capsys, monkeypatch):
    with pytest.raises(SetupError, match=r"refused the token.*first start only.*docker compose down -v"):
        setup_v2(_cfg(fake2.url, token="changed-in-env"), SINKS.retention)
    with pytest.raises(SetupError, match=r"organization 'shop' not found.*first start only"):
        setup_v2(_cfg(fake2.url, org="shop"), SINKS.retention)
    monkeypatch.setenv("INFLUXDB_TOKEN", "changed-in-env")
    assert setup_main(["--version", "2", "--url", fake2.url]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "INFLUXDB_TOKEN" in err and ".env" in err


def test_grafana_gets_a_read_only_login_of_its_own(populated2, monkeypatch):
    fake, t0 = populated2
    cfg = _cfg(fake.url)
    monkeypatch.setenv("GRAFANA_INFLUXDB_PASSWORD", "pw-1")
    assert "created" in setup_grafana(cfg)[0]
    (login,) = fake.legacy.values()
    assert login["token"] == "grafana" and {p["action"] for p in login["permissions"]} == {"read"}
    names = {fake.buckets[p["resource"]["id"]]["name"] for p in login["permissions"]}
    assert names == {cfg.bucket(dt) for dt in DATA_TYPES}
    # the dashboards' variables work with it, writes do not
    lane = next(v for p in dashboard_files() for v in json.loads(p.read_text())["templating"]["list"]
                if v["name"] == "lane")
    status, body = _influxql(fake.url, variable_query(lane, t0 - 600), u="grafana", p="pw-1")
    assert status == 200 and _values(body)
    req = urllib.request.Request(f"{fake.url}/write?db=retail&rp=health&u=grafana&p=pw-1", data=b"m f=1")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    # idempotent; a changed password takes effect, the old one stops working
    monkeypatch.setenv("GRAFANA_INFLUXDB_PASSWORD", "pw-2")
    assert "kept" in setup_grafana(cfg)[0] and len(fake.legacy) == 1
    assert _influxql(fake.url, variable_query(lane, t0 - 600), u="grafana", p="pw-1")[0] == 401
    assert _influxql(fake.url, variable_query(lane, t0 - 600), u="grafana", p="pw-2")[0] == 200
    monkeypatch.delenv("GRAFANA_INFLUXDB_PASSWORD")
    assert setup_grafana(cfg) == []
