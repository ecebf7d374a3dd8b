"""InfluxDB sink: batched, retried, buffered, spilled, never silently lossy.

    sink = InfluxSink(cfg.influxdb)     # starts the sender thread
    sink.write(records)                  # maps to points and queues them; never waits on the network
    sink.flush(timeout=5)                # True when everything queued so far is in InfluxDB
    sink.close()                         # flush, then spill what is left to disk
    sink.stats()                         # written / retried / dropped / rejected / buffered / spilled

Path of a point::

    write() -> PointMapper -> memory deque (<= max_buffer_points)
                 |  full: the oldest points move to disk (spill files, <= max_spill_points)
                 |  spill full too: those points are dropped, counted in ``dropped`` and logged
    sender thread: spill files first (oldest data), then memory, in batches of batch_size,
                   one request per data type (retention policy / bucket); a failed batch is
                   retried with exponential backoff (+ jitter) until it succeeds or is refused.

A batch is resent whole after a failure. Points carry explicit timestamps, so a batch
that reached the server before the connection broke overwrites itself on resend
instead of duplicating. The server refusing points (HTTP 400: bad line, field type
conflict) is not retried: those points count as ``rejected`` and are logged.

Two transports, one schema: ``version: 1`` posts line protocol to ``/write?db=&rp=``
(InfluxDB 1.x, and 2.x's v1 compatibility API with DBRP mappings); ``version: 2`` uses
``influxdb-client``'s synchronous write API to the bucket ``<bucket_prefix><data type>``
(its own batching is not used: it is what loses points on outages and at exit).

Spill files (``spill_dir/spill-<n>.lp``, lines ``<data type>\\t<JSON-quoted line protocol>``) survive a
restart: a new sink with the same ``spill_dir`` sends them first. One process per spill_dir.
"""
from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import json
import logging
import os
import random
import re
import signal
import threading
import time
import urllib.parse
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Protocol

from analytics.sinks.config import InfluxConfig
from analytics.sinks.line_protocol import Point, PointMapper

log = logging.getLogger("analytics.sinks.influx")

Entry = tuple[str, str]  # (data type, line protocol)


class RetryableError(Exception):
    """The server is away or unhappy now; the same batch may succeed later."""


class RejectedError(Exception):
    """The server refused points in the batch (bad data); resending would not help."""

    def __init__(self, message: str, refused: int | None = None) -> None:
        super().__init__(message)
        self.refused = refused  # None: the whole request


class Transport(Protocol):
    def send(self, data_type: str, body: bytes) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- transports

_DROPPED_RE = re.compile(r"dropped=(\d+)")


class V1Transport:
    """Line protocol to ``POST /write?db=<database>&rp=<data type>&precision=ns`` (keep-alive)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        u = urllib.parse.urlsplit(cfg.url)
        self._https = u.scheme == "https"
        self._host = u.hostname or "localhost"
        self._port = u.port or (443 if self._https else 8086)
        self._prefix = u.path.rstrip("/")
        self._timeout = cfg.timeout_s
        self._db = cfg.database
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if cfg.token:  # 2.x v1 API accepts the token
            self._headers["Authorization"] = f"Token {cfg.token}"
        elif cfg.username and cfg.password:
            cred = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {cred}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def send(self, data_type: str, body: bytes) -> None:
        q = urllib.parse.urlencode({"db": self._db, "rp": data_type, "precision": "ns"})
        try:
            conn = self._connection()
            conn.request("POST", f"{self._prefix}/write?{q}", body=body, headers=self._headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise RetryableError(f"{type(e).__name__}: {e}") from None
        if resp.status in (200, 204):
            return
        if resp.status == 400:
            m = _DROPPED_RE.search(text)
            raise RejectedError(f"HTTP 400: {text.strip()[:300]}", int(m.group(1)) if m else None)
        if resp.status == 413:
            raise RejectedError(f"HTTP 413 (batch too large; lower batch_size): {text.strip()[:200]}")
        # 401/403/404 (auth, database not created yet), 5xx: keep the points, retry, shout in the log
        raise RetryableError(f"HTTP {resp.status}: {text.strip()[:300]}")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class V2Transport:
    """InfluxDB 2.x through ``influxdb-client`` (token, org, bucket ``<prefix><data type>``)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        if not cfg.token:
            log.warning("InfluxDB 2.x without a token: set the environment variable named by sinks.influxdb.token_env")
        self._cfg = cfg
        # retries=False: retrying is this module's job (with spill), the client's urllib3 must not hide failures
        self._client = InfluxDBClient(url=cfg.url, token=cfg.token or "", org=cfg.org,
                                      timeout=int(cfg.timeout_s * 1000), retries=False)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def send(self, data_type: str, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._cfg.bucket(data_type), org=self._cfg.org, record=body,
                            write_precision="ns")
        except ApiException as e:
            text = (e.body or e.reason or "")
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if e.status in (400, 413, 422):
                raise RejectedError(f"HTTP {e.status}: {str(text)[:300]}") from None
            raise RetryableError(f"HTTP {e.status}: {str(text)[:300]}") from None
        except Exception as e:  # noqa: BLE001 (urllib3 connection errors, timeouts)
            raise RetryableError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()
        with contextlib.suppress(Exception):
            self._client.close()


def make_transport(cfg: InfluxConfig) -> Transport:
    return V2Transport(cfg) if cfg.version == 2 else V1Transport(cfg)


# --------------------------------------------------------------------------- spill to disk

class SpillStore:
    """Append-only chunks of entries on disk, oldest first; bounded by ``max_points``."""

    def __init__(self, directory: Path | None, max_points: int) -> None:
        self.dir = directory
        self.max_points = max_points if directory is not None else 0
        self.points = 0
        self._files: deque[tuple[Path, int]] = deque()
        self._seq = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            for tmp in directory.glob("spill-*.lp.tmp"):
                tmp.unlink()  # a chunk half-written by a crash: its points were counted as buffered, not spilled
            for p in sorted(directory.glob("spill-*.lp")):
                n = _count_lines(p)
                self._files.append((p, n))
                self.points += n
                self._seq = max(self._seq, int(p.stem.split("-")[1]) + 1)

    @property
    def free(self) -> int:
        return max(self.max_points - self.points, 0)

    def __len__(self) -> int:
        return len(self._files)

    def put(self, entries: list[Entry]) -> None:
        assert self.dir is not None and len(entries) <= self.free
        path = self.dir / f"spill-{self._seq:012d}.lp"
        self._seq += 1
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            # JSON-quoted: a string field may hold a newline, and a spill file is one point per line
            f.writelines(f"{dt}\t{json.dumps(line, ensure_ascii=False)}\n" for dt, line in entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a chunk is on disk whole or not at all
        self._files.append((path, len(entries)))
        self.points += len(entries)

    def peek(self) -> tuple[Path, list[Entry]] | None:
        if not self._files:
            return None
        path, _ = self._files[0]
        with open(path, encoding="utf-8") as f:
            entries = []
            for ln in f:
                if ln.strip():
                    dt, quoted = ln.rstrip("\n").split("\t", 1)
                    entries.append((dt, json.loads(quoted)))
        return path, entries

    def remove(self, path: Path) -> None:
        if self._files and self._files[0][0] == path:
            _, n = self._files.popleft()
            self.points -= n
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _count_lines(p: Path) -> int:
    with open(p, "rb") as f:
        return sum(1 for ln in f if ln.strip())


# --------------------------------------------------------------------------- the sink

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
        self._wake = threading.Condition(self._lock)
        self._inflight: list[Entry] = []
        self._inflight_spill: Path | None = None
        self._stop = False
        self._closed = False
        self._flush_requested = False
        self._attempted = False  # the in-flight batch failed at least once (its resend counts as retried)
        self._server_up = True
        self._last_error: str | None = None
        self._counters = dict(queued=0, written=0, retried=0, dropped=0, rejected=0, spilled_total=0,
                              batches=0, failures=0, recovered_from_disk=self._spill.points)
        if self._spill.points:
            log.warning("%s: %d points left on disk by an earlier run in %s: sending them first",
                        name, self._spill.points, cfg.spill_dir)
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        atexit.register(lambda: (s := ref()) is not None and s.close())
        if cfg.handle_sigterm:
            _install_sigterm_exit()

    # ---------------------------------------------------------------- producer side (frame path)

    def write(self, records: Iterable[Any]) -> None:
        """Queue records (or ready ``Point``s). Never touches the network; spills to disk only when full."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: write() after close()")
            points = self._mapper.map(records)
            self._enqueue(points)

    def _enqueue(self, points: list[Point]) -> None:  # lock held
        if not points:
            return
        self._mem.extend((p.data_type, p.to_line()) for p in points)
        self._counters["queued"] += len(points)
        over = len(self._mem) - self.cfg.max_buffer_points
        if over > 0:
            # move at least a batch at a time: fewer, larger spill files, and headroom for the next writes
            n = min(len(self._mem), max(over, self.cfg.batch_size))
            chunk = [self._mem.popleft() for _ in range(n)]
            self._spill_or_drop(chunk, "memory buffer full")
        if len(self._mem) >= self.cfg.batch_size:
            self._wake.notify()

    def _spill_or_drop(self, chunk: list[Entry], why: str) -> None:  # lock held
        keep = min(len(chunk), self._spill.free)
        if keep:
            try:
                self._spill.put(chunk[:keep])
                self._counters["spilled_total"] += keep
            except OSError as e:
                log.error("%s: cannot spill to %s: %s", self.name, self.cfg.spill_dir, e)
                keep = 0
        lost = len(chunk) - keep
        if lost:
            self._counters["dropped"] += lost
            log.error("%s: %s and spill budget exhausted (%d/%d points on disk): dropped %d points "
                      "(total dropped %d)", self.name, why, self._spill.points, self._spill.max_points, lost,
                      self._counters["dropped"])

    # ---------------------------------------------------------------- sender thread

    def _next_batch(self) -> bool:  # lock held; fills _inflight
        if self._inflight:
            return True
        got = self._spill.peek() if len(self._spill) else None
        if got is not None:
            self._inflight_spill, self._inflight = got
            return True
        n = min(len(self._mem), self.cfg.batch_size)
        if n:
            self._inflight = [self._mem.popleft() for _ in range(n)]
            self._inflight_spill = None
            return True
        return False

    def _run(self) -> None:
        delay = self.cfg.retry_initial_s
        last_send = time.monotonic()
        while True:
            with self._lock:
                while not self._stop:
                    due = time.monotonic() - last_send >= self.cfg.flush_interval_s
                    if self._inflight or len(self._spill) or len(self._mem) >= self.cfg.batch_size or \
                            ((due or self._flush_requested) and self._mem):
                        break
                    self._flush_requested = False
                    self._wake.wait(timeout=self.cfg.flush_interval_s)
                if self._stop:
                    return
                self._next_batch()
                batch = self._inflight
                attempt_is_retry = self._attempted
            ok = self._send(batch, attempt_is_retry)
            last_send = time.monotonic()
            with self._lock:
                if ok:
                    if self._inflight_spill is not None:
                        self._spill.remove(self._inflight_spill)
                    self._inflight, self._inflight_spill = [], None
                    self._attempted = False
                    delay = self.cfg.retry_initial_s
                    if not self._server_up:
                        log.warning("%s: server back; buffered %d, on disk %d", self.name, len(self._mem),
                                    self._spill.points)
                    self._server_up = True
                    self._wake.notify_all()  # flush() waiters
                    continue
                self._attempted = True
                self._server_up = False
                # interruptible backoff: close() wakes us to hand over the batch
                self._wake.wait(timeout=delay * (0.5 + random.random() * 0.5))
                delay = min(delay * 2, self.cfg.retry_max_s)

    def _send(self, batch: list[Entry], is_retry: bool) -> bool:
        """One attempt at the whole batch, one request per data type. True: nothing left to retry."""
        by_type: dict[str, list[str]] = {}
        for dt, line in batch:
            by_type.setdefault(dt, []).append(line)
        for dt, lines in by_type.items():
            body = ("\n".join(lines) + "\n").encode("utf-8")
            if is_retry:
                with self._lock:
                    self._counters["retried"] += len(lines)
            try:
                self._transport.send(dt, body)
            except RetryableError as e:
                with self._lock:
                    self._counters["failures"] += 1
                    self._last_error = str(e)
                    if self._server_up:
                        log.warning("%s: write of %d points failed (%s); retrying with backoff, buffering meanwhile",
                                    self.name, len(batch), e)
                # already-sent data types of this batch are resent too: same timestamps, so no duplicates
                return False
            except RejectedError as e:
                refused = len(lines) if e.refused is None else min(e.refused, len(lines))
                with self._lock:
                    self._counters["rejected"] += refused
                    self._counters["written"] += len(lines) - refused
                    self._last_error = str(e)
                log.error("%s: server refused %d of %d points for %s: %s", self.name, refused, len(lines), dt, e)
                continue
            with self._lock:
                self._counters["written"] += len(lines)
                self._counters["batches"] += 1
        return True

    # ---------------------------------------------------------------- flush / close

    def _pending(self) -> int:  # lock held
        return len(self._mem) + len(self._inflight) + self._spill.points - (
            len(self._inflight) if self._inflight_spill is not None else 0)

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
        """Flush (up to ``close_timeout_s``), stop the thread, spill what is left. Idempotent."""
        if self._closed:
            return
        done = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._stop = True
            self._wake.notify_all()
        self._thread.join(timeout=self.cfg.timeout_s + 1)
        with self._lock:
            left: list[Entry] = []
            if self._inflight and self._inflight_spill is None:
                left.extend(self._inflight)  # a batch taken from a spill file is still on disk
            left.extend(self._mem)
            self._inflight, self._mem = [], deque()
            if left:
                self._spill_or_drop(left, "closing with the server unreachable")
                log.warning("%s: closed with %d points unsent: %d on disk in %s for the next run", self.name,
                            len(left), self._spill.points, self.cfg.spill_dir)
            elif not done:
                log.warning("%s: closed before the flush completed", self.name)
        self._transport.close()
        log.info("%s: closed %s", self.name, self.stats())

    def stats(self) -> dict:
        with self._lock:
            in_memory = len(self._mem) + (len(self._inflight) if self._inflight_spill is None else 0)
            return {**self._counters, "buffered": in_memory,
                    "on_disk": self._spill.points, "pending": self._pending(), "server_up": self._server_up,
                    "nudged_timestamps": self._mapper.nudged, "unknown_records": self._mapper.unknown,
                    "last_error": self._last_error}

    def __enter__(self) -> "InfluxSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_sigterm_installed = False


def _install_sigterm_exit() -> None:
    """Turn a default (silent, immediate) SIGTERM into SystemExit so atexit flushes the sinks.

    Only when nobody else handles SIGTERM (the stream runner installs its own, which
    closes the sinks itself) and only from the main thread (a signal rule of Python).
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
            _sigterm_installed = True


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
