"""InfluxDB sink: batched, retried, buffered, spilled, never silently lossy.

    sink = InfluxSink(cfg.influxdb)     # starts the sender thread
    sink.write(records)                  # maps to points and queues them; never waits on the network
    sink.flush(timeout=5)                # True when everything queued so far is in InfluxDB
    sink.close()                         # flush, then spill what is left to disk
    sink.stats()                         # written / retried / dropped / rejected / buffered / spilled
                                         # (also written to InfluxDB as ``sink_health`` points)

Path of a point::

    write() -> PointMapper -> memory deque (<= max_buffer_points)
                 |  full: the oldest points are handed to the spill thread, which writes them to
                 |        spill files (fsynced, <= max_spill_points) while write() returns at once
                 |  what neither memory nor the spill budget can hold is dropped: exactly the points
                 |        that do not fit, oldest first, counted in ``dropped`` and logged
    sender thread: spill files first (oldest data), then points still on their way to disk, then
                   memory, in batches of batch_size, one request per data type (retention policy /
                   bucket); a failed batch is retried with exponential backoff (+ jitter) until it
                   succeeds or is refused.

``write()`` never waits on the network or the disk: the sink's lock is held only for
bookkeeping, never across a request, a file read, a write or an fsync. Points waiting for
the disk are bounded too (at most ``max(max_buffer_points, 50 000)`` of them: a burst may
outrun the fsyncs for a moment, a hung disk must not grow memory without bound); past that
bound they count as dropped like any other overflow.

Every ``health_interval_s`` (and at close) the sink writes its own counters as a
``sink_health`` point (data type ``health``, tag ``sink``): the pipeline-health dashboard
shows buffered / on-disk / dropped / rejected points from it. Those points travel the same
path (they are counted in ``queued``/``written`` like any other), so an outage's record of
buffering and losses arrives once the server is back.

A batch is resent whole after a failure. Points carry explicit timestamps, so a batch
that reached the server before the connection broke overwrites itself on resend
instead of duplicating. The server refusing points (HTTP 400: bad line, field type
conflict; 2.x's 422 partial write) is not retried: the points it says it dropped
(``dropped=N``) count as ``rejected``, the rest as ``written``, and it is logged. A 413
(request too large) splits the batch in halves (``split_batches``) instead of refusing it. A
``Retry-After`` on 429/503 is the least wait before the next attempt. Missing storage (404:
no database / DBRP mapping / bucket: setup has not run) is retried like an outage, logged
once at ERROR with the fix, and counted in ``missing_storage``.

Two transports, one schema (``sinks/transports.py``): ``version: 1`` posts line protocol to
``/write?db=&rp=`` (InfluxDB 1.x, and 2.x's v1 compatibility API with DBRP mappings);
``version: 2`` uses ``influxdb-client``'s synchronous write API to the bucket
``<bucket_prefix><data type>`` (its own batching is not used: it is what loses points on
outages and at exit).

Spill files (``sinks/spill.py``: ``spill_dir/spill-<n>.lp``) survive a restart: a new sink
with the same ``spill_dir`` sends them first. One process per spill_dir.

Exit: ``close()`` is also registered with ``atexit`` (a normal interpreter exit flushes and
spills). The sink installs no signal handlers: the process owns them. The stream runner
closes its sinks on SIGINT/SIGTERM itself; a library user who wants a flush on SIGTERM turns
it into a normal exit in their own process, e.g.
``signal.signal(signal.SIGTERM, lambda n, f: sys.exit(128 + n))``.

Imports: ``sinks.config``, ``sinks.line_protocol``, ``sinks.transports``, ``sinks.spill``
(and through them ``core.files``); never monitoring or clients.
"""
from __future__ import annotations

import atexit
import logging
import math
import random
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Iterable

from sinks.config import InfluxConfig
from sinks.line_protocol import Point, PointMapper
from sinks.spill import Entry, SpillStore, unlink
from sinks.transports import (  # noqa: F401
    MissingStorageError,
    RejectedError,
    RetryableError,
    Transport,
    V1Transport,
    V2Transport,
    make_transport,
)

__all__ = ["InfluxSink", "SINK_HEALTH_FIELDS", "RetryableError", "MissingStorageError", "RejectedError", "Transport", "V1Transport",
           "V2Transport", "make_transport", "SpillStore"]

log = logging.getLogger("sinks.influx")


SPILL_BACKLOG_MIN = 50_000  # points the spill thread may have waiting (at least; or max_buffer_points)
_DROP_LOG_EVERY_S = 10.0  # losses are counted exactly; the ERROR line says so at most this often per reason


class InfluxSink:
    """Records in, points out to InfluxDB from a background thread (see the module doc)."""

    def __init__(self, cfg: InfluxConfig, transport: Transport | None = None, *, name: str = "influxdb") -> None:
        self.cfg = cfg
        self.name = name
        self._transport = transport or make_transport(cfg)
        self._mapper = PointMapper()
        self._spill = SpillStore(cfg.spill_dir, cfg.max_spill_points)
        self._mem: deque[Entry] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)        # sender thread and flush() waiters
        self._spill_wake = threading.Condition(self._lock)  # spill thread
        # chunks (<= batch_size) on their way to disk, oldest first; the spill thread writes them
        self._to_spill: deque[list[Entry]] = deque()
        self._to_spill_points = 0
        self._spilling_points = 0  # the chunk the spill thread is writing now
        # most points waiting for the disk: a burst may outrun the spill thread for a moment (it is fsyncing),
        # a hung disk must not grow memory without bound
        self._backlog_cap = max(cfg.max_buffer_points, SPILL_BACKLOG_MIN)
        self._inflight: list[Entry] = []
        self._inflight_spill: Path | None = None
        self._stop = False
        self._spill_stop = False
        self._closed = False
        self._flush_requested = False
        self._attempted = False  # the in-flight batch failed at least once (its resend counts as retried)
        self._server_up = True
        self._last_error: str | None = None
        self._drop_tally: dict[str, list] = {}  # reason -> [dropped, of which logged, last log time]
        self._counters = dict(queued=0, written=0, retried=0, dropped=0, rejected=0, spilled_total=0,
                              batches=0, failures=0, recovered_from_disk=self._spill.points,
                              missing_storage=0, split_batches=0)
        self._retry_after: float | None = None  # the last failure's Retry-After (seconds), None: own backoff
        if self._spill.points:
            log.warning("%s: %d points left on disk by an earlier run in %s: sending them first",
                        name, self._spill.points, cfg.spill_dir)
        self._health_every = cfg.health_interval_s
        self._last_health = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._thread.start()
        self._spill_thread: threading.Thread | None = None
        if self._spill.enabled:
            self._spill_thread = threading.Thread(target=self._spill_run, name=f"{name}-spill", daemon=True)
            self._spill_thread.start()
        ref = weakref.ref(self)
        atexit.register(lambda: (s := ref()) is not None and s.close())

    # ---------------------------------------------------------------- producer side (frame path)

    def write(self, records: Iterable[Any]) -> None:
        """Queue records (or ready ``Point``s). Never touches the network or the disk (the lock it takes is
        only ever held for bookkeeping, never across I/O)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: write() after close()")
            points = self._mapper.map(records)
            self._enqueue(points)

    def _backlog(self) -> int:  # lock held: points on their way to disk
        return self._to_spill_points + self._spilling_points

    def _spill_room(self) -> int:  # lock held: points the disk may still take (budget and hand-off bound)
        if not self._spill.enabled:
            return 0
        b = self._backlog()
        return max(min(self._spill.free - b, self._backlog_cap - b), 0)

    def _enqueue(self, points: list[Point]) -> None:  # lock held
        if not points:
            return
        self._mem.extend((p.data_type, p.to_line()) for p in points)
        self._counters["queued"] += len(points)
        over = len(self._mem) - self.cfg.max_buffer_points
        if over > 0:
            room = self._spill_room()
            # to disk: at least a batch when there is room (fewer, larger files, headroom for the next writes),
            # never more than the disk budget allows; what neither memory nor disk can hold is dropped, exactly
            move = min(len(self._mem), max(over, self.cfg.batch_size), room)
            lost = max(over - move, 0)
            if lost:
                for _ in range(lost):  # the oldest points go first
                    self._mem.popleft()
                if not self._spill.enabled:
                    why = "memory buffer full and spill disabled"
                elif self._spill.free - self._backlog() <= 0:
                    why = "memory buffer full and spill budget exhausted"
                else:
                    why = "memory buffer full and the disk behind (hand-off to the spill thread at its bound)"
                self._count_dropped(lost, why)
            if move:
                chunk = [self._mem.popleft() for _ in range(move)]
                bs = self.cfg.batch_size
                for i in range(0, move, bs):  # a spill file is sent as one batch: keep it within batch_size
                    self._to_spill.append(chunk[i:i + bs])
                self._to_spill_points += move
                self._spill_wake.notify()
        if len(self._mem) >= self.cfg.batch_size:
            self._wake.notify()

    def _count_dropped(self, n: int, why: str) -> None:  # lock held
        self._counters["dropped"] += n
        tally = self._drop_tally.setdefault(why, [0, 0, -math.inf])  # dropped, of which logged, last log time
        tally[0] += n
        now = time.monotonic()
        if now - tally[2] >= _DROP_LOG_EVERY_S:
            self._log_drops(why, tally, now)

    def _log_drops(self, why: str, tally: list, now: float) -> None:  # lock held
        log.error("%s: %s (%d/%d points on disk, %d on their way): dropped %d points (total dropped %d)",
                  self.name, why, self._spill.points, self._spill.max_points, self._backlog(), tally[0] - tally[1],
                  self._counters["dropped"])
        tally[1], tally[2] = tally[0], now

    # ---------------------------------------------------------------- spill thread

    def _spill_run(self) -> None:
        while True:
            with self._lock:
                while not self._to_spill and not self._spill_stop:
                    self._spill_wake.wait()
                if not self._to_spill:
                    return
                chunk = self._to_spill.popleft()
                self._to_spill_points -= len(chunk)
                self._spilling_points = len(chunk)
                path = self._spill.next_path()
            err: OSError | None = None
            try:
                SpillStore.write_file(path, chunk)  # fsync: off the frame path, outside the lock
            except OSError as e:
                err = e
            with self._lock:
                self._spilling_points = 0
                if err is None:
                    self._spill.commit(path, len(chunk))
                    self._counters["spilled_total"] += len(chunk)
                else:
                    self._last_error = f"spill: {err}"
                    # the reason is the tally key (one log line per reason per interval): no per-file names in it
                    self._count_dropped(len(chunk), f"cannot spill to {self.cfg.spill_dir} "
                                                    f"({err.strerror or type(err).__name__})")
                self._wake.notify_all()  # the sender (a file to send) and flush() waiters

    # ---------------------------------------------------------------- sender thread

    def _work_ready(self, last_send: float) -> bool:  # lock held
        if self._inflight or len(self._spill) or self._to_spill or len(self._mem) >= self.cfg.batch_size:
            return True
        due = time.monotonic() - last_send >= self.cfg.flush_interval_s
        return bool((due or self._flush_requested) and self._mem)

    def _health_due(self) -> float | None:  # lock held: seconds until the next sink_health point (None: off)
        if not self._health_every or self._closed:
            return None
        return self._health_every - (time.monotonic() - self._last_health)

    def _write_health(self) -> None:  # lock held
        self._last_health = time.monotonic()
        self._enqueue(self._mapper.map([self._health_point()]))

    def _health_point(self) -> Point:  # lock held
        st = self._stats_locked()
        fields = {k: int(st[k]) for k in SINK_HEALTH_FIELDS}
        return Point.make("sink_health", {"sink": self.name}, fields, time.time())

    def _take_batch(self) -> Path | None:  # lock held; fills _inflight, or returns a spill file to read
        if self._inflight:
            return None
        head = self._spill.head()
        if head is not None:
            return head[0]  # read outside the lock; only this thread removes files, so it stays the head
        if self._to_spill:  # on its way to disk but not there yet: send it from memory instead
            chunk = self._to_spill.popleft()
            self._to_spill_points -= len(chunk)
            self._inflight, self._inflight_spill = chunk, None
            return None
        n = min(len(self._mem), self.cfg.batch_size)
        if n:
            self._inflight = [self._mem.popleft() for _ in range(n)]
            self._inflight_spill = None
        return None

    def _load_spill_file(self, path: Path) -> None:  # lock NOT held
        try:
            entries = SpillStore.read(path)
            err = None
        except (OSError, ValueError) as e:
            entries, err = [], e
        with self._lock:
            if err is None and entries:
                self._inflight, self._inflight_spill = entries, path
                return
            head = self._spill.head()
            n = head[1] if head else 0
            self._spill.forget(path)
            if err is not None:
                self._last_error = f"spill file {path}: {err}"
                self._count_dropped(n, f"unreadable spill file in {self.cfg.spill_dir} ({type(err).__name__})")
        unlink(path)

    def _run(self) -> None:
        delay = self.cfg.retry_initial_s
        last_send = time.monotonic()
        while True:
            with self._lock:
                while not self._stop:
                    left = self._health_due()
                    if left is not None and left <= 0:
                        self._write_health()
                        continue
                    if self._work_ready(last_send):
                        break
                    self._flush_requested = False
                    wait = self.cfg.flush_interval_s if left is None else min(self.cfg.flush_interval_s, left)
                    self._wake.wait(timeout=max(wait, 0.001))
                if self._stop:
                    return
                to_read = self._take_batch()
            if to_read is not None:
                self._load_spill_file(to_read)
            with self._lock:
                if not self._inflight:
                    continue
                batch = self._inflight
                attempt_is_retry = self._attempted
            ok = self._send(batch, attempt_is_retry)
            last_send = time.monotonic()
            done_file = None
            with self._lock:
                if ok:
                    if self._inflight_spill is not None and self._spill.forget(self._inflight_spill):
                        done_file = self._inflight_spill
                    self._inflight, self._inflight_spill = [], None
                    self._attempted = False
                    delay = self.cfg.retry_initial_s
                    if not self._server_up:
                        log.warning("%s: server back; buffered %d, on disk %d", self.name, len(self._mem),
                                    self._spill.points)
                    self._server_up = True
                    self._wake.notify_all()  # flush() waiters
                else:
                    self._attempted = True
                    self._server_up = False
                    # backoff until a deadline: new points and spilled files notify this condition too and
                    # must not turn it into a retry per frame; close() and flush() cut it short
                    # a server that said when to come back (Retry-After on 429/503) is not asked sooner
                    # (flush() does not cut that wait short; close() does)
                    told = self._retry_after is not None
                    wait_s = max(delay * (0.5 + random.random() * 0.5), self._retry_after or 0.0)
                    self._retry_after = None
                    until = time.monotonic() + wait_s
                    while not self._stop and (told or not self._flush_requested) \
                            and (left := until - time.monotonic()) > 0:
                        self._wake.wait(timeout=left)
                    self._flush_requested = False
                    delay = min(delay * 2, self.cfg.retry_max_s)
            if done_file is not None:
                unlink(done_file)

    def _send(self, batch: list[Entry], is_retry: bool) -> bool:
        """One attempt at the whole batch, one request per data type. True: nothing left to retry."""
        by_type: dict[str, list[str]] = {}
        for dt, line in batch:
            by_type.setdefault(dt, []).append(line)
        for dt, lines in by_type.items():
            if is_retry:
                with self._lock:
                    self._counters["retried"] += len(lines)
            try:
                self._send_lines(dt, lines)
            except RetryableError as e:
                self._note_failure(e, len(batch))
                # already-sent data types of this batch are resent too: same timestamps, so no duplicates
                return False
        return True

    def _send_lines(self, dt: str, lines: list[str]) -> None:
        """Send one data type's lines; a 413 (too large) splits them in halves (down to one point)."""
        body = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            self._transport.send(dt, body)
        except RejectedError as e:
            if e.too_large and len(lines) > 1:
                with self._lock:
                    self._counters["split_batches"] += 1
                log.warning("%s: %s: %d points for %s in %d bytes; sending them in two halves "
                            "(lower batch_size, or raise the server's max body size)", self.name, e, len(lines), dt,
                            len(body))
                half = len(lines) // 2
                self._send_lines(dt, lines[:half])
                self._send_lines(dt, lines[half:])
                return
            refused = len(lines) if e.refused is None else min(e.refused, len(lines))
            with self._lock:
                self._counters["rejected"] += refused
                self._counters["written"] += len(lines) - refused
                self._last_error = str(e)
            log.error("%s: server refused %d of %d points for %s: %s", self.name, refused, len(lines), dt, e)
            return
        with self._lock:
            self._counters["written"] += len(lines)
            self._counters["batches"] += 1

    def _note_failure(self, e: RetryableError, n: int) -> None:
        with self._lock:
            self._counters["failures"] += 1
            self._last_error = str(e)
            self._retry_after = e.retry_after
            if isinstance(e, MissingStorageError):
                self._counters["missing_storage"] += 1
                if self._counters["missing_storage"] == 1:  # once per sink: the fix is the same every time
                    log.error("%s: %s; retrying with backoff, buffering meanwhile", self.name, e)
                    return
            if self._server_up:
                log.warning("%s: write of %d points failed (%s); retrying with backoff, buffering meanwhile",
                            self.name, n, e)

    # ---------------------------------------------------------------- flush / close

    def _in_memory(self) -> int:  # lock held: points held in this process's memory
        return len(self._mem) + self._backlog() + (len(self._inflight) if self._inflight_spill is None else 0)

    def _pending(self) -> int:  # lock held
        return self._in_memory() + self._spill.points

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued; True when all of it reached InfluxDB within ``timeout`` seconds."""
        deadline = time.monotonic() + (self.cfg.close_timeout_s if timeout is None else timeout)
        with self._lock:
            if not self._closed:
                self._enqueue(self._mapper.drain())
            while self._pending() and not self._stop:
                self._flush_requested = True
                self._wake.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(timeout=min(left, 0.05))
            return self._pending() == 0

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``close_timeout_s``), stop the threads, spill what is left. Idempotent."""
        if self._closed:
            return
        with self._lock:
            if self._health_every and not self._closed:
                self._enqueue(self._mapper.drain())
                self._write_health()  # the last report of this run goes out with the flush
        done = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._stop = True
            self._wake.notify_all()
        self._thread.join(timeout=self.cfg.timeout_s + 1)
        if self._spill_thread is not None:
            with self._lock:
                self._spill_stop = True  # it finishes the chunks handed to it, then exits
                self._spill_wake.notify_all()
            self._spill_thread.join(timeout=max(self.cfg.close_timeout_s, 5.0))
        with self._lock:
            left: list[Entry] = []
            if self._inflight and self._inflight_spill is None:
                left.extend(self._inflight)  # a batch taken from a spill file is still on disk
            for chunk in self._to_spill:  # only if the spill thread could not finish (disk hung)
                left.extend(chunk)
            left.extend(self._mem)
            self._inflight, self._mem, self._to_spill, self._to_spill_points = [], deque(), deque(), 0
            keep = min(len(left), self._spill.free) if self._spill.enabled else 0
        if left:  # the threads are gone: the disk writes need no lock (stats() meanwhile still answers)
            saved = 0
            bs = self.cfg.batch_size
            for i in range(0, keep, bs):
                chunk = left[i:i + bs]
                with self._lock:
                    path = self._spill.next_path()
                try:
                    SpillStore.write_file(path, chunk)
                except OSError as e:
                    log.error("%s: cannot spill to %s: %s", self.name, self.cfg.spill_dir, e)
                    break
                with self._lock:
                    self._spill.commit(path, len(chunk))
                    self._counters["spilled_total"] += len(chunk)
                saved += len(chunk)
            with self._lock:
                if len(left) - saved:
                    self._count_dropped(len(left) - saved, "closing with the server unreachable and no room on disk"
                                        if self._spill.enabled else "closing with the server unreachable and spill "
                                        "disabled")
            log.warning("%s: closed with %d points unsent: %d on disk in %s for the next run", self.name,
                        len(left), self._spill.points, self.cfg.spill_dir)
        elif not done:
            log.warning("%s: closed before the flush completed", self.name)
        with self._lock:
            for why, tally in self._drop_tally.items():
                if tally[0] > tally[1]:  # losses not logged yet (the log is rate-limited; the counter is exact)
                    self._log_drops(why, tally, time.monotonic())
        self._transport.close()
        log.info("%s: closed %s", self.name, self.stats())

    def _stats_locked(self) -> dict:
        return {**self._counters, "buffered": self._in_memory(), "spill_backlog": self._backlog(),
                "on_disk": self._spill.points, "pending": self._pending(), "server_up": self._server_up,
                "nudged_timestamps": self._mapper.nudged, "unknown_records": self._mapper.unknown,
                "last_error": self._last_error}

    def stats(self) -> dict:
        with self._lock:
            return self._stats_locked()

    def __enter__(self) -> "InfluxSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# the fields of the sink's own ``sink_health`` points (tag ``sink``): its stats() counters and gauges
SINK_HEALTH_FIELDS = ("queued", "written", "retried", "dropped", "rejected", "spilled_total", "buffered",
                      "spill_backlog", "on_disk", "pending", "failures", "batches", "recovered_from_disk",
                      "nudged_timestamps", "unknown_records", "server_up")
