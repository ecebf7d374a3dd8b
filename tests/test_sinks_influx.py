"""InfluxSink against a real InfluxDB 1.6.7 (Debian's influxd, started by tests/fixtures/influx.py).

Outages are real: the server process is stopped and started again on the same port
and data directory. Counts are read back with InfluxQL.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from analytics.records import AlertRecord, JourneyRecord
from analytics.sinks.config import InfluxConfig, RetentionConfig
from analytics.sinks.influx import InfluxSink, V1Transport, V2Transport
from analytics.sinks.line_protocol import MEASUREMENT_DATA_TYPE, Point
from analytics.sinks.setup import setup_v1
from tests.fixtures.influx import pipeline_records

ROOT = Path(__file__).resolve().parents[1]
_db_ids = itertools.count()


def _cfg(server, tmp_path, db: str, **kw) -> InfluxConfig:
    base = InfluxConfig(enabled=True, url=server.url, database=db, batch_size=500, flush_interval_s=0.05,
                        max_buffer_points=10_000, spill_dir=tmp_path / "spill", max_spill_points=100_000,
                        retry_initial_s=0.02, retry_max_s=0.2, timeout_s=2.0, close_timeout_s=5.0,
                        handle_sigterm=False)
    cfg = replace(base, **kw)
    setup_v1(cfg, RetentionConfig())
    return cfg


def _db() -> str:
    return f"t{os.getpid()}_{next(_db_ids)}"


def _count_points(server, db: str) -> int:
    """Points in the database: per measurement, the count of its most complete field."""
    total = 0
    for meas, dt in MEASUREMENT_DATA_TYPE.items():
        rows = server.values(f'SELECT count(*) FROM "{dt}"."{meas}"', db)
        if rows:
            total += max(v for v in rows[0][1:] if v is not None)
    return total


def _seq_points(n: int, t0: float, start: int = 0) -> list[Point]:
    """n distinct points of one series (field seq = index), 1 ms apart."""
    t0_ns = int(t0 * 1e9)
    return [Point.make("stream_health", {"stream": "cam-seq"}, {"seq": i}, time_ns=t0_ns + i * 1_000_000)
            for i in range(start, start + n)]


def _seq_count(server, db: str) -> int:
    rows = server.values('SELECT count("seq") FROM "health"."stream_health"', db)
    return rows[0][1] if rows else 0


def test_pipeline_run_arrives_complete(influxd_server, tmp_path):
    db = _db()
    cfg = _cfg(influxd_server, tmp_path, db)
    with InfluxSink(cfg) as sink:
        for b in pipeline_records(time.time() - 600, seconds=120):
            sink.write(b)
        assert sink.flush(timeout=30)
        st = sink.stats()
    assert st["written"] == st["queued"] > 0
    assert st["dropped"] == st["rejected"] == st["retried"] == 0
    assert _count_points(influxd_server, db) == st["written"]
    # detections are per-frame counts per class: one point per (stream, frame, class)
    frames = influxd_server.values('SELECT count("count") FROM "detections"."detections" GROUP BY "class"', db)
    assert frames and all(r[1] > 0 for r in frames)
    # never a track id or journey id as a tag
    tag_keys = {r[0] for r in influxd_server.values('SHOW TAG KEYS FROM "journeys"."journeys"', db)}
    tag_keys |= {r[0] for r in influxd_server.values('SHOW TAG KEYS FROM "detections"."detections"', db)}
    assert tag_keys == {"stream", "class"}


def test_records_closed_on_the_same_frame_do_not_overwrite(influxd_server, tmp_path):
    db = _db()
    cfg = _cfg(influxd_server, tmp_path, db)
    t = time.time() - 60
    js = [JourneyRecord(f"journey-{i}", i, "cam-1", t - 100, t, ("entrance",), {"entrance": 5.0}, False, False)
          for i in range(5)]
    with InfluxSink(cfg) as sink:
        sink.write(js)
        sink.write(js[:1])  # the very same record again (a resend) may overwrite itself...
        assert sink.flush(timeout=10)
    ids = sorted(r[1] for r in influxd_server.values('SELECT "journey_id" FROM "journeys"."journeys"', db))
    # ...but five different journeys ending at the same instant are five points
    assert ids[:5] == [f"journey-{i}" for i in range(5)]
    assert influxd_server.scalar('SELECT count("dwell_s") FROM "journeys"."zone_dwell"', db) >= 5


def test_outage_mid_run_every_point_arrives_once(own_influxd, tmp_path):
    """influxd stopped in the middle of a run and started again: nothing lost, nothing doubled."""
    db = _db()
    cfg = _cfg(own_influxd, tmp_path, db, max_buffer_points=300, batch_size=100, max_spill_points=50_000)
    batches = pipeline_records(time.time() - 900, seconds=120)
    third = len(batches) // 3
    with InfluxSink(cfg) as sink:
        for b in batches[:third]:
            sink.write(b)
        assert sink.flush(timeout=20)
        own_influxd.stop()
        for i, b in enumerate(batches[third:2 * third]):
            sink.write(b)  # returns at once although the server is down
            if i % 50 == 0:
                time.sleep(0.02)  # let the sender fail and back off a few times
        deadline = time.monotonic() + 20  # a loaded machine may not have run the sender yet: wait for it
        while sink.stats()["failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = sink.stats()
        assert st["dropped"] == 0, st  # the buffer (memory + spill) holds
        assert st["on_disk"] > 0 and st["failures"] > 0 and not st["server_up"], st
        assert not sink.flush(timeout=0.3)  # honest: not everything is in InfluxDB
        own_influxd.start()
        for b in batches[2 * third:]:
            sink.write(b)
        assert sink.flush(timeout=60), sink.stats()
        st = sink.stats()
    assert st["dropped"] == 0 and st["rejected"] == 0 and st["on_disk"] == 0
    assert st["written"] == st["queued"]
    assert _count_points(own_influxd, db) == st["queued"]  # every point exactly once
    assert not list((tmp_path / "spill").glob("spill-*"))


def test_past_the_buffer_losses_are_counted_exactly(own_influxd, tmp_path):
    db = _db()
    cfg = _cfg(own_influxd, tmp_path, db, max_buffer_points=1000, batch_size=200, max_spill_points=2000)
    own_influxd.stop()
    n = 6000
    pts = _seq_points(n, time.time() - 300)
    with InfluxSink(cfg) as sink:
        for i in range(0, n, 100):
            sink.write(pts[i:i + 100])
        st = sink.stats()
        dropped = st["dropped"]
        # what is kept: 1000 in memory, 2000 on disk, at most one batch in flight
        assert n - 1000 - 2000 - 200 <= dropped <= n - 3000, st
        assert st["on_disk"] == 2000
        own_influxd.start()
        assert sink.flush(timeout=30), sink.stats()
        st = sink.stats()
    assert st["dropped"] == dropped
    assert st["written"] == n - dropped
    assert _seq_count(own_influxd, db) == n - dropped  # the counter is exact: arrived + dropped == sent


def test_close_while_server_is_down_spills_and_next_run_sends(own_influxd, tmp_path):
    db = _db()
    cfg = _cfg(own_influxd, tmp_path, db)
    own_influxd.stop()
    pts = _seq_points(1233, time.time() - 120)
    sink = InfluxSink(cfg)
    sink.write(pts)
    sink.write([AlertRecord("a-1", "cam-1", time.time() - 100, "wait_time", "critical", "line one\nline \"two\"",
                            300.0, 240.0, "checkout-1")])  # a newline inside a string field survives the spill
    sink.close(timeout=0.3)
    st = sink.stats()
    assert st["dropped"] == 0 and st["written"] == 0 and st["on_disk"] == 1234, st
    with pytest.raises(RuntimeError, match="after close"):
        sink.write(pts[:1])
    own_influxd.start()
    with InfluxSink(cfg) as again:  # same spill_dir: the previous run's points go first
        assert again.stats()["recovered_from_disk"] == 1234
        assert again.flush(timeout=20)
        assert again.stats()["written"] == 1234
    assert _seq_count(own_influxd, db) == 1233
    assert own_influxd.values('SELECT "message" FROM "alerts"."alerts"', db)[0][1] == 'line one\nline "two"'


def test_refused_points_are_counted_not_retried(influxd_server, tmp_path):
    db = _db()
    cfg = _cfg(influxd_server, tmp_path, db)
    t = int((time.time() - 60) * 1e9)
    good = Point.make("stream_health", {"stream": "cam-x"}, {"fps": 5.0}, time_ns=t)
    bad = Point.make("stream_health", {"stream": "cam-x"}, {"fps": "fast"}, time_ns=t + 1)  # type conflict
    with InfluxSink(cfg) as sink:
        sink.write([good])
        assert sink.flush(timeout=10)
        sink.write([bad, Point.make("stream_health", {"stream": "cam-x"}, {"fps": 6.0}, time_ns=t + 2)])
        assert sink.flush(timeout=10)
        st = sink.stats()
    assert st["rejected"] == 1 and st["written"] == 2 and st["retried"] == 0, st
    assert "field type conflict" in st["last_error"]


def test_sigterm_flushes_buffered_points(influxd_server, tmp_path):
    """A process killed with SIGTERM still delivers what it buffered (atexit flush)."""
    db = _db()
    cfg = _cfg(influxd_server, tmp_path, db)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from analytics.sinks.config import InfluxConfig
        from analytics.sinks.influx import InfluxSink
        from tests.test_sinks_influx import _seq_points
        from pathlib import Path
        # batch far larger than the data and a one-hour flush interval: only the exit flush sends
        cfg = InfluxConfig(enabled=True, url={cfg.url!r}, database={db!r}, batch_size=100000,
                           max_buffer_points=100000, flush_interval_s=3600, spill_dir=Path({str(tmp_path / 'sp')!r}))
        sink = InfluxSink(cfg)
        sink.write(_seq_points(777, {time.time() - 100}))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert _seq_count(influxd_server, db) == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _seq_count(influxd_server, db) == 777


def test_write_does_not_wait_for_an_unreachable_server(tmp_path):
    """The frame path: write() only queues; with nothing listening it returns and counts nothing lost."""
    from tests.fixtures.influx import free_port

    cfg = InfluxConfig(enabled=True, url=f"http://127.0.0.1:{free_port()}", spill_dir=tmp_path / "s",
                       max_buffer_points=500, batch_size=100, max_spill_points=10_000, retry_initial_s=0.05,
                       retry_max_s=0.1, handle_sigterm=False)
    sink = InfluxSink(cfg)
    for i in range(20):
        sink.write(_seq_points(100, time.time(), start=100 * i))
    st = sink.stats()
    assert st["queued"] == 2000 and st["dropped"] == 0 and st["buffered"] + st["on_disk"] == 2000
    sink.close(timeout=0.1)
    assert sink.stats()["on_disk"] == 2000


def test_v2_transport_reports_an_unreachable_v2_api_as_retryable(influxd_server):
    """influxdb-client's write path: 1.6.7 has no /api/v2/write (404), which must be retried, not lost."""
    from analytics.sinks.influx import RetryableError

    t = V2Transport(InfluxConfig(version=2, url=influxd_server.url, token="x", org="o"))
    with pytest.raises(RetryableError, match="404"):
        t.send("health", b"stream_health,stream=a fps=1 1\n")
    t.close()
    v1 = V1Transport(InfluxConfig(url=influxd_server.url, database="no_such_db"))
    with pytest.raises(RetryableError, match="404|database not found"):
        v1.send("health", b"stream_health,stream=a fps=1 1\n")
    v1.close()
