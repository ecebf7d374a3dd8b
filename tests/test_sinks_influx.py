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
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from analytics.records import AlertRecord, JourneyRecord
from launchers.ports import free_port
from sinks.config import InfluxConfig, RetentionConfig
from sinks.influx import InfluxSink, RetryableError, V1Transport, V2Transport
from sinks.line_protocol import MEASUREMENT_DATA_TYPE, Point
from sinks.setup import setup_v1
from tests.fixtures.influx import pipeline_records

ROOT = Path(__file__).resolve().parents[1]
_db_ids = itertools.count()


def _cfg(server, tmp_path, db: str, **kw) -> InfluxConfig:
    base = InfluxConfig(enabled=True, url=server.url, database=db, batch_size=500, flush_interval_s=0.05,
                        max_buffer_points=10_000, spill_dir=tmp_path / "spill", max_spill_points=100_000,
                        retry_initial_s=0.02, retry_max_s=0.2, timeout_s=2.0, close_timeout_s=5.0,
                        health_interval_s=0)  # exact counts: no sink_health points
    cfg = replace(base, **kw)
    setup_v1(cfg, RetentionConfig())
    return cfg


def _db() -> str:
    return f"t{os.getpid()}_{next(_db_ids)}"


def _count_points(server, db: str) -> int:
    return server.count_points(db, MEASUREMENT_DATA_TYPE)


def _seq_points(n: int, t0: float, start: int = 0) -> list[Point]:
    """n distinct points of one series (field seq = index), 1 ms apart."""
    t0_ns = int(t0 * 1e9)
    return [Point.make("stream_health", {"stream": "cam-seq"}, {"seq": i}, time_ns=t0_ns + i * 1_000_000)
            for i in range(start, start + n)]


def _seq_count(server, db: str) -> int:
    rows = server.values('SELECT count("seq") FROM "health"."stream_health"', db)
    return rows[0][1] if rows else 0


def _wait_for(condition, sink, timeout: float = 60.0) -> None:
    """Poll ``condition()`` until true; a loaded machine runs the sink's threads late, never early."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, sink.stats()
        time.sleep(0.01)


def _spill_settled(sink, timeout: float = 20.0) -> dict:
    """stats() once the spill thread has written every point handed to it (write() does not wait for the disk)."""
    deadline = time.monotonic() + timeout
    while (st := sink.stats())["spill_backlog"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return st


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
        st = _spill_settled(sink)
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
        st = _spill_settled(sink)
        dropped = st["dropped"]
        # what is kept: 1000 in memory, 2000 on disk, at most one batch in flight
        assert n - 1000 - 2000 - 200 <= dropped <= n - 3000, st
        # every point kept is in exactly one place (memory, in flight, disk); the sender may have taken
        # one chunk on its way to disk into flight, so the disk holds its budget less at most that batch
        assert st["buffered"] + st["on_disk"] == n - dropped, st
        assert 2000 - 200 <= st["on_disk"] <= 2000, st
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
    """A process killed with SIGTERM still delivers what it buffered (atexit flush).

    The sink installs no signal handler (the process owns signals): like any library user
    who wants it, the process turns SIGTERM into a normal exit itself, and atexit flushes."""
    db = _db()
    cfg = _cfg(influxd_server, tmp_path, db)
    script = textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # the process's choice
        from sinks.config import InfluxConfig
        from sinks.influx import InfluxSink
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
    cfg = InfluxConfig(enabled=True, url=f"http://127.0.0.1:{free_port()}", spill_dir=tmp_path / "s",
                       max_buffer_points=500, batch_size=100, max_spill_points=10_000, retry_initial_s=0.05,
                       retry_max_s=0.1, health_interval_s=0)
    sink = InfluxSink(cfg)
    for i in range(20):
        sink.write(_seq_points(100, time.time(), start=100 * i))
    st = sink.stats()
    assert st["queued"] == 2000 and st["dropped"] == 0 and st["buffered"] + st["on_disk"] == 2000
    sink.close(timeout=0.1)
    assert sink.stats()["on_disk"] == 2000


def test_v2_transport_reports_an_unreachable_v2_api_as_retryable(influxd_server):
    """influxdb-client's write path: 1.6.7 has no /api/v2/write (404), which must be retried, not lost."""
    from sinks.influx import RetryableError

    t = V2Transport(InfluxConfig(version=2, url=influxd_server.url, token="x", org="o"))
    with pytest.raises(RetryableError, match="404"):
        t.send("health", b"stream_health,stream=a fps=1 1\n")
    t.close()
    v1 = V1Transport(InfluxConfig(url=influxd_server.url, database="no_such_db"))
    with pytest.raises(RetryableError, match="404|database not found"):
        v1.send("health", b"stream_health,stream=a fps=1 1\n")
    v1.close()


# --------------------------------------------------------------------------- buffer and spill, no server needed

class GatedTransport:
    """A server that hangs: send() blocks until ``gate`` opens (then accepts). Records the lines it got."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.lines: list[str] = []

    def send(self, data_type: str, body: bytes) -> None:
        self.entered.set()
        if not self.gate.wait(30):
            raise RetryableError("gate never opened")
        self.lines.extend(body.decode().splitlines())

    def close(self) -> None:
        self.gate.set()


def _buffer_cfg(tmp_path, **kw) -> InfluxConfig:
    base = InfluxConfig(enabled=True, url="http://127.0.0.1:9", batch_size=500, max_buffer_points=1000,
                        flush_interval_s=3600, spill_dir=None, max_spill_points=0, close_timeout_s=10,
                        health_interval_s=0)
    return replace(base, **kw)


def _one_batch_in_flight(sink, transport, t0, n=500) -> list[Point]:
    """Write a first batch and wait until the (hung) server holds it: from then on memory alone fills."""
    first = _seq_points(n, t0)
    sink.write(first)
    assert transport.entered.wait(10), sink.stats()
    assert sink.stats()["buffered"] == n  # in flight, nothing else
    return first


def _seqs(lines: list[str]) -> list[int]:
    return sorted(int(ln.split("seq=")[1].split("i")[0]) for ln in lines if "seq=" in ln)


def test_overflow_without_spill_drops_exactly_the_points_that_do_not_fit(tmp_path):
    """Spill disabled: one point over the limit loses one point (not a batch), the oldest ones go first."""
    tr = GatedTransport()
    sink = InfluxSink(_buffer_cfg(tmp_path), transport=tr)
    t0 = time.time() - 60
    _one_batch_in_flight(sink, tr, t0)                       # seq 0..499 in flight
    sink.write(_seq_points(1000, t0, start=500))             # seq 500..1499: memory exactly full
    assert sink.stats()["dropped"] == 0
    sink.write(_seq_points(1, t0, start=1500))
    assert sink.stats()["dropped"] == 1                      # was max(over, batch_size) = 500
    sink.write(_seq_points(7, t0, start=1501))
    assert sink.stats()["dropped"] == 8
    sink.write(_seq_points(1500, t0, start=1508))            # a write larger than the whole buffer
    st = sink.stats()
    assert st["dropped"] == 8 + 1500 and st["buffered"] == 500 + 1000, st
    tr.gate.set()
    assert sink.flush(timeout=10), sink.stats()
    sink.close()
    st = sink.stats()
    assert st["written"] == st["queued"] - st["dropped"] == 1500
    # what arrived: the batch that was in flight and the newest 1000 points (the oldest were dropped)
    assert _seqs(tr.lines) == list(range(500)) + list(range(2008, 3008))


def test_overflow_with_a_full_spill_drops_exactly_the_points_that_do_not_fit(tmp_path):
    tr = GatedTransport()
    sink = InfluxSink(_buffer_cfg(tmp_path, spill_dir=tmp_path / "sp", max_spill_points=300), transport=tr)
    t0 = time.time() - 60
    _one_batch_in_flight(sink, tr, t0)
    sink.write(_seq_points(1000, t0, start=500))
    sink.write(_seq_points(1, t0, start=1500))               # over by 1: 300 (the spill budget) go to disk
    assert sink.stats()["dropped"] == 0
    sink.write(_seq_points(299, t0, start=1501))             # memory full again, disk budget all taken
    assert sink.stats()["dropped"] == 0
    sink.write(_seq_points(5, t0, start=1800))
    st = _spill_settled(sink)
    assert st["dropped"] == 5 and st["on_disk"] == 300 and st["buffered"] == 500 + 1000, st
    tr.gate.set()
    assert sink.flush(timeout=10), sink.stats()
    sink.close()
    st = sink.stats()
    assert st["written"] == st["queued"] - 5 == 1800 and st["on_disk"] == 0
    assert len(set(_seqs(tr.lines))) == 1800


def test_write_never_waits_for_the_disk(tmp_path, monkeypatch):
    """A disk that hangs in fsync (spilling) or in a read (sending a spill file) never holds up write()/stats()."""
    import sinks.influx as influx

    disk = threading.Event()
    real_fsync = os.fsync

    def hung_fsync(fd):
        disk.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", hung_fsync)  # the spill store writes through core.files
    tr = GatedTransport()
    cfg = _buffer_cfg(tmp_path, spill_dir=tmp_path / "sp", max_spill_points=100_000)
    sink = InfluxSink(cfg, transport=tr)
    t0 = time.time() - 60
    _one_batch_in_flight(sink, tr, t0)
    took = []

    def frames():
        for i in range(20):  # 2000 points past a full buffer: 4 spill chunks, each stuck in fsync
            t = time.perf_counter()
            sink.write(_seq_points(100, t0, start=1500 + 100 * i) if i else _seq_points(1100, t0, start=500))
            took.append(time.perf_counter() - t)
        sink.stats()

    th = threading.Thread(target=frames)
    th.start()
    th.join(5)
    assert not th.is_alive(), "write() blocked while the disk hung in fsync"
    st = sink.stats()
    assert st["dropped"] == 0 and st["on_disk"] == 0 and st["spill_backlog"] == 3000 - 1000, st
    assert max(took) < 0.5, took
    disk.set()
    st = _spill_settled(sink)
    assert st["on_disk"] == 2000 and st["dropped"] == 0, st
    tr.gate.set()
    assert sink.flush(timeout=10)
    sink.close()
    assert sink.stats()["written"] == 3500 and _seqs(tr.lines) == list(range(3500))

    # spill files left by a run; the next sink's sender reads them while the disk hangs in read()
    spill = tmp_path / "sp2"
    down = InfluxSink(_buffer_cfg(tmp_path, spill_dir=spill, max_spill_points=10_000,
                                  url=f"http://127.0.0.1:{free_port()}", close_timeout_s=0), )
    down.write(_seq_points(700, t0))
    down.close(timeout=0)
    assert down.stats()["on_disk"] == 700
    reading, release = threading.Event(), threading.Event()
    real_read = influx.SpillStore.read

    def hung_read(path):
        reading.set()
        release.wait(30)
        return real_read(path)

    monkeypatch.setattr(influx.SpillStore, "read", staticmethod(hung_read))
    tr2 = GatedTransport()
    tr2.gate.set()
    again = InfluxSink(_buffer_cfg(tmp_path, spill_dir=spill, max_spill_points=10_000), transport=tr2)
    assert reading.wait(10)
    th = threading.Thread(target=lambda: (again.write(_seq_points(10, t0, start=700)), again.stats()))
    th.start()
    th.join(5)
    assert not th.is_alive(), "write() blocked while the sender read a spill file"
    release.set()
    assert again.flush(timeout=10)
    again.close()
    assert _seqs(tr2.lines) == list(range(710))


def test_sink_health_points_record_the_writers_own_counters(own_influxd, tmp_path):
    """The sink writes its stats() as sink_health points; an outage's losses arrive once the server is back."""
    db = _db()
    cfg = _cfg(own_influxd, tmp_path, db, max_buffer_points=300, batch_size=100, spill_dir=None, max_spill_points=0,
               health_interval_s=0.2)
    own_influxd.stop()
    with InfluxSink(cfg) as sink:
        sink.write(_seq_points(1000, time.time() - 120))
        # wait for the condition, not for ticks: the sender knows the server is down, then at
        # least one sink_health point is queued after that (it carries server_up 0)
        _wait_for(lambda: sink.stats()["failures"] > 0, sink)
        queued = sink.stats()["queued"]
        _wait_for(lambda: sink.stats()["queued"] > queued, sink)
        st = sink.stats()
        assert st["dropped"] > 0 and not st["server_up"], st
        own_influxd.start()
        assert sink.flush(timeout=30), sink.stats()
    final = sink.stats()
    rows = own_influxd.values('SELECT "dropped", "server_up", "buffered", "written" FROM "health"."sink_health" '
                              'WHERE "sink" = \'influxdb\'', db)
    assert len(rows) >= 2, rows  # at least one while down and one after recovery (at close)
    assert rows[-1][1] == final["dropped"]  # the last report (at close) carries the exact loss count
    assert any(r[2] == 0 for r in rows) and rows[-1][2] == 1  # recorded while down; up again at the end
    tags = {r[0] for r in own_influxd.values('SHOW TAG KEYS FROM "health"."sink_health"', db)}
    assert tags == {"sink"}  # low cardinality: one series per sink
    # every point this sink queued is in InfluxDB or counted as dropped (its own sink_health points included)
    assert _count_points(own_influxd, db) == final["queued"] - final["dropped"] == final["written"]


class DownTransport:
    """A server that is away: every send() fails as retryable; counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def send(self, data_type: str, body: bytes) -> None:
        self.attempts += 1
        raise RetryableError("connection refused")

    def close(self) -> None:
        pass


def test_backoff_holds_while_frames_keep_writing(tmp_path):
    """During an outage every write() (a frame) and every spilled file notifies the sender; the failed
    batch must still wait out its backoff (0.4-0.8 s, then doubling), not be resent once per frame."""
    tr = DownTransport()
    sink = InfluxSink(_buffer_cfg(tmp_path, batch_size=100, max_buffer_points=100_000, retry_initial_s=0.8,
                                  retry_max_s=5.0), transport=tr)
    t0 = time.time() - 60
    started = time.monotonic()
    end = started + 2.0
    i = 0
    while time.monotonic() < end or tr.attempts == 0:  # ~100 frames/s, each above a batch
        sink.write(_seq_points(150, t0, start=150 * i))
        i += 1
        time.sleep(0.01)
        assert time.monotonic() - started < 60, "the sender never tried to send"
    attempts, st = tr.attempts, sink.stats()
    elapsed = time.monotonic() - started
    sink.close(timeout=0)
    # Backoffs are at least 0.4, 0.8, 1.6, ... s, so however long a loaded machine made the
    # loop take, the attempts fit that schedule: 1 + k where the first k backoffs fit in the
    # elapsed time (+1 for the clock's edges). A wake-up per write gave one attempt per frame.
    k, waited = 0, 0.0
    while waited + 0.4 * 2 ** k <= elapsed:
        waited += 0.4 * 2 ** k
        k += 1
    assert 1 <= attempts <= k + 2 < i, (attempts, k, i, elapsed)
    assert st["dropped"] == 0 and st["failures"] == attempts, st
