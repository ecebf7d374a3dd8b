"""Per-stream health: counters, end-to-end latency percentiles and fps over a window.

Also the runner's health file (``--health-file``), rewritten at every health report, and
its check for container health checks::

    python -m clients.health /tmp/clients-health.json --max-age 60   # exit 0 healthy, 1 not
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from analytics.records import StreamHealthRecord
from core.files import atomic_write_text


class LatencyWindow:
    """The last ``capacity`` latencies (seconds) in a ring buffer; percentiles in ms."""

    def __init__(self, capacity: int = 2048) -> None:
        self._buf = np.zeros(capacity, np.float64)
        self._n = 0  # total ever added

    def add(self, seconds: float) -> None:
        self._buf[self._n % self._buf.size] = seconds
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._buf.size)

    def percentiles_ms(self, qs=(50, 95)) -> tuple[float, ...]:
        n = len(self)
        if n == 0:
            return tuple(0.0 for _ in qs)
        return tuple(float(v) * 1000.0 for v in np.percentile(self._buf[:n], qs))


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        # intervals over the time since the oldest tick: decays to 0 when a stream stalls
        return (len(self._times) - 1) / max(now - self._times[0], 1e-6)


@dataclass
class StreamStats:
    """Everything the runner counts for one stream (totals since the start)."""

    stream_id: str
    frames_read: int = 0
    frames_sent: int = 0
    frames_processed: int = 0  # went through tracker -> analytics -> sinks with detections
    frames_dropped: int = 0  # evicted by backpressure (live streams) or discarded at shutdown
    frames_lost: int = 0  # sent but no answer after retries (Triton away) or a failed request
    inference_errors: int = 0  # non-retryable request failures (the frame was fine)
    bad_frames: int = 0  # frames the server refused as invalid (INVALID_ARGUMENT), never retried
    inference_retries: int = 0
    analytics_errors: int = 0  # frames whose tracking/analytics raised (logged, skipped)
    reconnects: int = 0
    decode_errors: int = 0
    shutdown_discarded: int = 0  # read but not sent: stopping while Triton was away (in frames_dropped)
    bytes_sent: int = 0
    detections: int = 0
    frames_total: int | None = None  # known length of a file source, for progress
    error: str | None = None  # the source's fatal error, if it stopped on one
    finished: bool = False
    started_at: float = field(default_factory=time.monotonic)
    first_result_at: float | None = None
    last_result_at: float | None = None
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    rate: RateMeter = field(default_factory=RateMeter)

    def on_result(self, latency_s: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.latency.add(latency_s)
        self.rate.tick(now)
        if self.first_result_at is None:
            self.first_result_at = now
        self.last_result_at = now

    def mean_fps(self) -> float:
        """Frames through the whole pipeline per second since the first result."""
        done = self.frames_processed + self.frames_lost
        if self.first_result_at is None or self.last_result_at is None or done < 2:
            return 0.0
        return (done - 1) / max(self.last_result_at - self.first_result_at, 1e-6)

    def bytes_per_frame(self) -> float:
        return self.bytes_sent / self.frames_sent if self.frames_sent else 0.0

    def to_record(self, timestamp: float | None = None) -> StreamHealthRecord:
        p50, p95 = self.latency.percentiles_ms()
        return StreamHealthRecord(
            stream_id=self.stream_id,
            timestamp=time.time() if timestamp is None else timestamp,
            fps=round(self.rate.rate(), 3),
            latency_p50_ms=round(p50, 2),
            latency_p95_ms=round(p95, 2),
            frames_processed=self.frames_processed,
            frames_dropped=self.frames_dropped,
            reconnects=self.reconnects,
            inference_errors=self.inference_errors,
            extra={"frames_read": self.frames_read, "frames_sent": self.frames_sent,
                   "frames_lost": self.frames_lost, "inference_retries": self.inference_retries,
                   "bad_frames": self.bad_frames, "analytics_errors": self.analytics_errors,
                   "decode_errors": self.decode_errors,
                   "bytes_per_frame": round(self.bytes_per_frame(), 1)},
        )

    def summary(self) -> dict:
        p50, p95 = self.latency.percentiles_ms()
        return {
            "stream_id": self.stream_id, "frames_read": self.frames_read, "frames_sent": self.frames_sent,
            "frames_processed": self.frames_processed, "frames_dropped": self.frames_dropped,
            "frames_lost": self.frames_lost, "inference_errors": self.inference_errors,
            "inference_retries": self.inference_retries, "bad_frames": self.bad_frames,
            "analytics_errors": self.analytics_errors, "reconnects": self.reconnects,
            "decode_errors": self.decode_errors, "detections": self.detections,
            "fps": round(self.mean_fps(), 3), "latency_p50_ms": round(p50, 1), "latency_p95_ms": round(p95, 1),
            "bytes_per_frame": round(self.bytes_per_frame(), 1), "error": self.error,
        }

    def progress_line(self) -> str:
        p50, p95 = self.latency.percentiles_ms()
        done = self.frames_processed + self.frames_lost
        prog = f"{done}"
        if self.frames_total:
            pct = 100.0 * done / self.frames_total
            fps = self.rate.rate()
            eta = (self.frames_total - done) / fps if fps > 0 else float("nan")
            prog = f"{done}/{self.frames_total} ({pct:.0f}%, eta {eta:.0f}s)"
        return (f"{self.stream_id}: frames {prog} fps {self.rate.rate():.2f} "
                f"latency p50 {p50:.0f}ms p95 {p95:.0f}ms dropped {self.frames_dropped} "
                f"lost {self.frames_lost} errors {self.inference_errors} reconnects {self.reconnects} "
                f"{self.bytes_per_frame() / 1024:.1f} KiB/frame")


# --------------------------------------------------------------------------- health file

HEALTHY_STATUS = "running"


class HealthFile:
    """A small JSON file the runner rewrites (atomically) at every health report:
    ``{"status", "time", "pid", "detail", "triton_available", "streams": {...}}``.

    status: ``starting`` | ``running`` | ``waiting`` (no streams / config or sink error:
    the runner waits for the files to change) | ``stopping`` | ``stopped``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)

    def write(self, status: str, detail: str = "", **extra) -> None:
        doc = {"status": status, "time": time.time(), "pid": os.getpid(), "detail": detail, **extra}
        try:
            d = os.path.dirname(self.path)
            if d:
                os.makedirs(d, exist_ok=True)
            atomic_write_text(self.path, json.dumps(doc, default=str), fsync=False,
                              tmp=f"{self.path}.{os.getpid()}.tmp")
        except OSError as e:  # health reporting must never stop the job
            print(f"health file {self.path}: cannot write: {e}", file=sys.stderr)


def check_health_file(path: str | os.PathLike, max_age_s: float = 60.0,
                      now: float | None = None) -> tuple[bool, str]:
    """(healthy, why): the file exists, is fresher than ``max_age_s`` and says ``running``."""
    now = time.time() if now is None else now
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return False, f"{path}: no health file (the runner has not started yet or cannot write it)"
    except (OSError, ValueError) as e:
        return False, f"{path}: unreadable health file: {e}"
    age = now - float(doc.get("time", 0))
    status = doc.get("status")
    detail = f": {doc['detail']}" if doc.get("detail") else ""
    if age > max_age_s:
        return False, f"{path}: stale: last report {age:.0f}s ago (status {status}{detail})"
    if status != HEALTHY_STATUS:
        return False, f"{path}: status {status}{detail}"
    streams = doc.get("streams") or {}
    return True, f"running, {len(streams)} stream(s), last report {age:.0f}s ago"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.health",
                                 description="Check the runner's health file (container health check).")
    ap.add_argument("path", help="the file given to `python -m clients.run --health-file`")
    ap.add_argument("--max-age", type=float, default=60.0, help="seconds a report stays valid")
    a = ap.parse_args(argv)
    ok, why = check_health_file(a.path, a.max_age)
    print(("healthy: " if ok else "unhealthy: ") + why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
