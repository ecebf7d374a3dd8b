"""The main job: N camera streams in one asyncio process, through Triton, tracking and analytics.

    python -m clients.run --config configs/app_config.yaml [--max-seconds S] [--streams a b]
        [--streams-file configs/cameras.example.yaml] [--health-file F] [--wait-on-error]

Per stream (tasks in one event loop)::

    reader:     source.frames() -> PendingFrames (live: drop oldest when full; files: wait)
    dispatcher: pending -> [ready gate] -> JPEG -> async gRPC, at most max_in_flight at once
    completion: answers (any order) -> ReorderBuffer -> tracker -> analytics -> sinks

Requests of all streams share one gRPC channel, so Triton batches frames of different
cameras together (dynamic batching inside the ensemble). Every ``--health-interval``
seconds each stream's health (fps, latency p50/p95, dropped, lost, reconnects, errors,
progress of offline runs) is logged and written to the sinks as ``StreamHealthRecord``.

SIGINT/SIGTERM: stop reading, finish the frames already read and in flight, flush the
analytics (open journeys are closed) and the sinks, exit 0. A second signal aborts.

Start-up problems (config error, no streams configured, a sink that cannot start, e.g. an
output directory this user cannot write) are one clear line naming the file and field,
exit 2. ``--wait-on-error`` (docker compose) instead keeps the process up: it reports the
problem in the health file (status ``waiting``), waits until the config or streams file
changes (or ``--retry-interval`` passes) and tries again, so a container whose cameras are
not configured yet does not crash-loop. ``--health-file`` is rewritten at every health
report; ``python -m clients.health FILE`` checks it (the compose health check).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from analytics.records import DetectionRecord
from core.config import ConfigError
from core.types import Detections, Frame
from clients.config import AppConfig, StreamSpec, load_app_config, open_source
from clients.flow import Backpressure, PendingFrames, QueueClosed, ReorderBuffer
from clients.health import HealthFile, StreamStats
from clients.sources import FrameSource, SourceError
from clients.triton import EnsembleClient, InferenceFailed, InferenceLost, encode_jpeg

log = logging.getLogger("clients.run")


class Sink(Protocol):
    def write(self, records: Iterable[Any]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Processor(Protocol):
    """Per-stream tracking + analytics: frames in order in, records out."""

    def process(self, frame: Frame, dets: Detections | None) -> list[Any]: ...
    def flush(self, timestamp: float) -> list[Any]: ...


ProcessorFactory = Callable[[StreamSpec, FrameSource], Processor]


@dataclass
class RunSummary:
    streams: dict[str, dict] = field(default_factory=dict)
    wall_s: float = 0.0
    triton_outages: int = 0
    stopped_by: str = "end of streams"
    sink_stats: dict = field(default_factory=dict)
    client_cpu_s: float = 0.0

    @property
    def frames_processed(self) -> int:
        return sum(s["frames_processed"] for s in self.streams.values())

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 3), "stopped_by": self.stopped_by,
                "frames_processed": self.frames_processed, "fps": round(self.fps, 3),
                "client_cpu_ms_per_frame": round(1000 * self.client_cpu_s / max(self.frames_processed, 1), 3),
                "triton_outages": self.triton_outages,
                "streams": self.streams, "sinks": self.sink_stats}


class StreamPipeline:
    """One camera: reader, dispatcher and in-order completion (see module docstring)."""

    def __init__(self, spec: StreamSpec, source: FrameSource, client: EnsembleClient,
                 processor: Processor, sinks: list[Sink], stop: asyncio.Event) -> None:
        self.spec = spec
        self.source = source
        self.client = client
        self.processor = processor
        self.sinks = sinks
        self.stop = stop
        st = client.settings
        self.pending: PendingFrames[Frame] = PendingFrames(
            st.max_pending_per_stream, Backpressure.DROP_OLDEST if source.live else Backpressure.WAIT)
        self.in_flight = asyncio.Semaphore(st.max_in_flight_per_stream)
        self.reorder: ReorderBuffer[tuple[Frame, Detections | None]] = ReorderBuffer()
        self.stats = StreamStats(spec.id, frames_total=source.frames_total)
        self._tasks: set[asyncio.Task] = set()
        self._seq = 0
        self.last_timestamp: float | None = None
        self.client_cpu_s = 0.0  # encode + tracker + analytics + sinks, main thread CPU time

    async def run(self) -> None:
        reader = asyncio.create_task(self._read(), name=f"{self.spec.id}-reader")
        closer = asyncio.create_task(self._close_on_stop())
        try:
            await self._dispatch()
        finally:
            closer.cancel()
            # Not cancelled: a cancelled read would release the capture under a running read.
            await asyncio.gather(reader, closer, return_exceptions=True)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self.stats.finished = True

    def sync_dropped(self) -> None:
        self.stats.frames_dropped = self.pending.dropped + self.stats.shutdown_discarded

    async def _close_on_stop(self) -> None:
        await self.stop.wait()
        self.source.close()

    async def _read(self) -> None:
        try:
            async for frame in self.source.frames():
                self.stats.frames_read += 1
                self.stats.reconnects = self.source.reconnects
                await self.pending.put(frame)
                if self.stop.is_set():
                    break
        except SourceError as e:
            self.stats.error = str(e)
            log.error("%s", e)
        except QueueClosed:
            pass
        except Exception as e:  # noqa: BLE001 (a broken camera must not take the process down)
            self.stats.error = f"{self.spec.id}: {self.source.describe()}: {type(e).__name__}: {e}"
            log.exception("%s: source failed", self.spec.id)
        finally:
            self.stats.reconnects = self.source.reconnects
            self.stats.decode_errors = self.source.decode_errors
            self.sync_dropped()
            await self.pending.close()

    async def _dispatch(self) -> None:
        while True:
            await self.in_flight.acquire()
            try:
                frame = await self.pending.get()
            except QueueClosed:
                self.in_flight.release()
                return
            # Frames wait here while Triton is away; a live stream's queue keeps dropping the oldest.
            if not self.client.available:
                await _first(self.client.wait_ready(), self.stop.wait())
                if not self.client.available:  # stopping while Triton is away: do not wait for it
                    self.stats.shutdown_discarded += 1
                    self.sync_dropped()
                    self.in_flight.release()
                    continue
            self.sync_dropped()
            seq, self._seq = self._seq, self._seq + 1
            t = asyncio.create_task(self._infer(seq, frame))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _infer(self, seq: int, frame: Frame) -> None:
        dets: Detections | None = None
        try:
            c0 = time.thread_time()
            data = encode_jpeg(frame.image, self.client.settings.jpeg_quality)
            frame = replace(frame, image=None)  # pixels are not needed past here (no frames stored)
            self.client_cpu_s += time.thread_time() - c0
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(data)
            dets, retries = await self.client.infer_encoded(data)
            self.stats.inference_retries += retries
        except InferenceLost as e:
            self.stats.frames_lost += 1
            log.warning("%s: frame %d lost: %s", self.spec.id, frame.frame_number, e)
        except InferenceFailed as e:
            self.stats.frames_lost += 1
            self.stats.inference_errors += 1
            log.error("%s: frame %d: inference failed: %s", self.spec.id, frame.frame_number, e)
        except Exception as e:  # noqa: BLE001
            self.stats.frames_lost += 1
            self.stats.inference_errors += 1
            log.exception("%s: frame %d: unexpected inference error: %s", self.spec.id, frame.frame_number, e)
        finally:
            self.in_flight.release()
        for _, (f, d) in self.reorder.push(seq, (frame, dets)):
            self._complete(f, d)

    def _complete(self, frame: Frame, dets: Detections | None) -> None:
        c0 = time.thread_time()
        try:
            if dets is not None:
                records = self.processor.process(frame, dets)
                self.stats.frames_processed += 1
                self.stats.detections += len(dets)
                self.last_timestamp = frame.timestamp
                if records:
                    for s in self.sinks:
                        s.write(records)
        except Exception as e:  # noqa: BLE001 (analytics bug on one frame: log, count, go on)
            self.stats.analytics_errors += 1
            if self.stats.analytics_errors == 1:  # the traceback once; then one line per frame
                log.exception("%s: frame %d: tracking/analytics failed", self.spec.id, frame.frame_number)
            else:
                log.error("%s: frame %d: tracking/analytics failed (%d so far): %s: %s", self.spec.id,
                          frame.frame_number, self.stats.analytics_errors, type(e).__name__, e)
        finally:
            self.client_cpu_s += time.thread_time() - c0
        if dets is not None:
            self.stats.on_result(time.monotonic() - frame.meta.get("t_read", time.monotonic()))

    def flush(self) -> list[Any]:
        ts = self.last_timestamp if self.last_timestamp is not None else time.time()
        try:
            return list(self.processor.flush(ts) or [])
        except Exception:  # noqa: BLE001
            log.exception("%s: analytics flush failed", self.spec.id)
            return []


async def _first(*aws) -> None:
    """Wait until the first of the awaitables finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- processors

class DetectionsOnly:
    """Tracker-free fallback: one DetectionRecord per box (used when no analytics is wired)."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id

    def process(self, frame: Frame, dets: Detections) -> list[Any]:
        return detection_records(self.stream_id, frame, dets.xyxy, dets.scores,
                                 list(dets.class_names) or ["object"] * len(dets), None)

    def flush(self, timestamp: float) -> list[Any]:
        return []


def detection_records(stream_id: str, frame: Frame, xyxy: np.ndarray, scores: np.ndarray,
                      names: list[str], track_ids: np.ndarray | None) -> list[DetectionRecord]:
    if len(xyxy) == 0:
        return []
    wh = xyxy[:, 2:4] - xyxy[:, 0:2]
    tids = [None] * len(xyxy) if track_ids is None else [int(t) for t in track_ids]
    return [DetectionRecord(stream_id, frame.frame_number, frame.timestamp, n, float(s),
                            float(b[0]), float(b[1]), float(w[0]), float(w[1]), t)
            for b, w, s, n, t in zip(xyxy.tolist(), wh.tolist(), scores.tolist(), names, tids)]


# --------------------------------------------------------------------------- runner

class Runner:
    def __init__(self, config: AppConfig, processor_factory: ProcessorFactory, sinks: list[Sink],
                 health_interval_s: float = 10.0, max_seconds: float | None = None,
                 triton_wait_s: float = 60.0, health_file: HealthFile | None = None) -> None:
        self.config = config
        self.processor_factory = processor_factory
        self.sinks = sinks
        self.health_interval_s = health_interval_s
        self.max_seconds = max_seconds
        self.triton_wait_s = triton_wait_s
        self.stop = asyncio.Event()
        self.stopped_by = "end of streams"
        self.pipelines: list[StreamPipeline] = []
        self.failed: dict[str, str] = {}  # streams whose source could not even be opened
        self.health_file = health_file
        self._client: EnsembleClient | None = None
        self._signals = 0

    def request_stop(self, why: str) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error("second stop request (%s): aborting without flushing", why)
            raise SystemExit(130)
        log.warning("stopping (%s): no new frames; finishing in-flight frames and flushing", why)
        self.stopped_by = why
        self.stop.set()

    def _write_all(self, records: list[Any]) -> None:
        if not records:
            return
        for s in self.sinks:
            try:
                s.write(records)
            except Exception:  # noqa: BLE001
                log.exception("sink %s failed to write %d records", type(s).__name__, len(records))

    def _health(self, final: bool = False) -> None:
        now = time.time()
        records = []
        for p in self.pipelines:
            p.sync_dropped()
            log.info("%s%s", "final " if final else "", p.stats.progress_line())
            records.append(p.stats.to_record(now))
        self._write_all(records)
        self._write_health_file("stopped" if final else ("stopping" if self.stop.is_set() else "running"))

    def _write_health_file(self, status: str, detail: str = "") -> None:
        if self.health_file is None:
            return
        streams = {p.spec.id: {"frames_processed": p.stats.frames_processed, "fps": round(p.stats.rate.rate(), 3),
                               "frames_lost": p.stats.frames_lost, "error": p.stats.error,
                               "finished": p.stats.finished} for p in self.pipelines}
        streams.update({sid: {"error": err} for sid, err in self.failed.items()})
        self.health_file.write(status, detail, config=str(self.config.path),
                               triton_available=None if self._client is None else self._client.available,
                               streams=streams)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            self._health()

    async def run(self) -> RunSummary:
        t0 = time.monotonic()
        cpu0 = time.process_time()
        loop = asyncio.get_running_loop()
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, name)
        summary = RunSummary()
        self._write_health_file("starting", f"waiting for Triton at {self.config.triton.url}")
        async with EnsembleClient(self.config.triton) as client:
            self._client = client
            await client.check(timeout=self.triton_wait_s)
            for spec in self.config.streams:
                try:
                    source = await asyncio.to_thread(open_source, spec)
                except SourceError as e:
                    log.error("%s", e)
                    self.failed[spec.id] = str(e)
                    continue
                log.info("%s: %s (%s)", spec.id, source.describe(), "live" if source.live else
                         ("real time" if spec.realtime else "as fast as possible"))
                self.pipelines.append(StreamPipeline(spec, source, client, self.processor_factory(spec, source),
                                                     self.sinks, self.stop))
            self._write_health_file("running" if self.pipelines else "stopping",
                                    "" if self.pipelines else "no stream could be opened")
            health = asyncio.create_task(self._health_loop())
            timer = None
            if self.max_seconds is not None:
                timer = loop.call_later(self.max_seconds, lambda: self.stop.is_set() or self.request_stop(
                    f"--max-seconds {self.max_seconds:g}"))
            try:
                await asyncio.gather(*(p.run() for p in self.pipelines))
            finally:
                health.cancel()
                await asyncio.gather(health, return_exceptions=True)
                if timer is not None:
                    timer.cancel()
                for p in self.pipelines:
                    self._write_all(p.flush())
                self._health(final=True)
                for s in self.sinks:
                    with contextlib.suppress(Exception):
                        s.flush()
                summary.triton_outages = client.outages
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        summary.wall_s = time.monotonic() - t0
        # The client process never runs a model: all of its CPU time is client overhead
        # (decode, JPEG, gRPC, tracking, analytics, sinks).
        summary.client_cpu_s = time.process_time() - cpu0
        summary.stopped_by = self.stopped_by
        for p in self.pipelines:
            d = p.stats.summary()
            d["main_thread_cpu_ms_per_frame"] = round(1000 * p.client_cpu_s / max(p.stats.frames_sent, 1), 3)
            summary.streams[p.spec.id] = d
        for sid, err in self.failed.items():
            summary.streams[sid] = StreamStats(sid, error=err).summary()
        for s in self.sinks:
            st = getattr(s, "stats", None)
            if callable(st):
                with contextlib.suppress(Exception):
                    summary.sink_stats[type(s).__name__] = st()
        return summary


# --------------------------------------------------------------------------- wiring

def build_processor_factory(config: AppConfig) -> ProcessorFactory:
    """Tracker + per-camera analytics; detections only if those parts are not installed."""
    from clients.wiring import make_processor_factory

    try:
        return make_processor_factory(config)
    except ImportError as e:  # a part not landed yet (or not installed)
        if not (e.name or "").startswith("analytics"):
            raise
        log.warning("%s is not available: writing detections without tracking or analytics", e.name)
        return lambda spec, source: DetectionsOnly(spec.id)


def build_sinks(config: AppConfig) -> list[Sink]:
    from clients.wiring import make_sinks

    return make_sinks(config)


class StartupError(Exception):
    """A problem found before any stream starts: the message names the file and field."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def sink_error_message(config: AppConfig, e: BaseException) -> str:
    """A sink that cannot start (e.g. an output directory this user cannot write)."""
    msg = f"{config.path}: sinks: cannot start the output sinks: {type(e).__name__}: {e}"
    out_dir = getattr(getattr(config.sinks, "json", None), "output_dir", None)
    failed = getattr(e, "filename", None)
    if isinstance(e, OSError) and out_dir is not None and failed is not None and \
            Path(os.path.abspath(failed)).is_relative_to(os.path.abspath(out_dir)):
        uid = os.getuid() if hasattr(os, "getuid") else "?"
        msg += (f" (sinks.json.output_dir is {str(out_dir)!r}: it must be a directory this user, uid {uid}, "
                f"can write; in docker compose the outputs live in the clients-outputs volume)")
    return msg


def prepare(config_path: Path, streams_file: Path | None = None,
            stream_ids: list[str] | None = None) -> tuple[AppConfig, list[Sink]]:
    """Config + sinks, or StartupError (config error, no streams, sinks that cannot start)."""
    try:
        config = load_app_config(config_path, streams_file=streams_file).select(stream_ids)
    except ConfigError as e:
        raise StartupError(f"config error: {e}") from None
    if not config.streams:
        raise StartupError(f"{config.streams_file}: streams: no streams configured (add cameras under "
                           f"`streams:`; examples in configs/cameras.example.yaml)")
    try:
        sinks = build_sinks(config)
    except Exception as e:  # noqa: BLE001 (a clear line, not a traceback)
        log.debug("sinks failed to start", exc_info=True)
        raise StartupError(sink_error_message(config, e)) from None
    return config, sinks


def _mtime(path: Path | None) -> tuple:
    if path is None:
        return ()
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return (None,)


def wait_for_change(paths: list[Path | None], timeout_s: float, poll_s: float = 0.5) -> bool:
    """Sleep until one of the files changes or ``timeout_s`` passes: True (try again), or
    False when SIGINT/SIGTERM arrived meanwhile (stop)."""
    stopped: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread: no handlers
            old[sig] = signal.signal(sig, lambda signum, _frame: stopped.append(signum))
    try:
        first = [_mtime(p) for p in paths]
        deadline = time.monotonic() + timeout_s
        while not stopped and time.monotonic() < deadline:
            time.sleep(poll_s)
            if [_mtime(p) for p in paths] != first:
                time.sleep(poll_s)  # let an editor finish writing
                break
        return not stopped
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/app_config.yaml"))
    ap.add_argument("--streams-file", type=Path, default=os.environ.get("RVA_STREAMS_FILE") or None,
                    help="take the streams from this YAML file (`streams:` list) instead of the config "
                         "(env RVA_STREAMS_FILE)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (cleanly) after this many seconds")
    ap.add_argument("--streams", nargs="+", default=None, help="only these stream ids")
    ap.add_argument("--health-interval", type=float, default=10.0, help="seconds between health reports")
    ap.add_argument("--health-file", type=Path, default=os.environ.get("RVA_HEALTH_FILE") or None,
                    help="rewrite this JSON file at every health report (env RVA_HEALTH_FILE); "
                         "check it with `python -m clients.health FILE`")
    ap.add_argument("--wait-on-error", action="store_true", default=_env_flag("RVA_WAIT_ON_ERROR"),
                    help="on a start-up problem (config, no streams, sinks) report it and wait for the files "
                         "to change instead of exiting (env RVA_WAIT_ON_ERROR=true)")
    ap.add_argument("--retry-interval", type=float, default=60.0,
                    help="--wait-on-error: also retry after this many seconds without a change")
    ap.add_argument("--triton-wait", type=float, default=60.0, help="seconds to wait for Triton at start")
    ap.add_argument("--summary-json", type=Path, default=None, help="write the run summary here")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    health = HealthFile(a.health_file) if a.health_file else None
    while True:
        try:
            config, sinks = prepare(a.config, a.streams_file, a.streams)
            break
        except StartupError as e:
            print(str(e) if str(e).startswith("config error") else f"error: {e}", file=sys.stderr, flush=True)
            if health is not None:
                health.write("waiting" if a.wait_on_error else "stopped", str(e))
            if not a.wait_on_error:
                return e.code
            watched = [a.config] + ([a.streams_file] if a.streams_file else [])
            print(f"waiting for a change of {', '.join(map(str, watched))} (retrying every "
                  f"{a.retry_interval:g}s; SIGTERM stops)", file=sys.stderr, flush=True)
            if not wait_for_change(watched, a.retry_interval):
                print("stopped while waiting for a usable configuration", file=sys.stderr)
                return 0
    runner = Runner(config, build_processor_factory(config), sinks, a.health_interval, a.max_seconds,
                    a.triton_wait, health_file=health)
    try:
        summary = asyncio.run(runner.run())
    except InferenceLost as e:
        print(f"error: {e}", file=sys.stderr)
        if health is not None:
            health.write("stopped", str(e))
        return 3
    finally:
        for s in sinks:
            with contextlib.suppress(Exception):
                s.close()
    text = json.dumps(summary.to_dict(), indent=2, default=str)
    if a.summary_json:
        a.summary_json.parent.mkdir(parents=True, exist_ok=True)
        a.summary_json.write_text(text)
    print(text)
    ok = [s for s in summary.streams.values() if not s.get("error")]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
