"""The main job: N camera streams in one asyncio process, through Triton, tracking and analytics.

    python -m clients.run --config configs/app_config.yaml [--max-seconds S] [--streams a b]

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
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from analytics.records import DetectionRecord
from analytics.types import Detections, Frame
from clients.config import AppConfig, ConfigError, StreamSpec, load_app_config, open_source
from clients.flow import Backpressure, PendingFrames, QueueClosed, ReorderBuffer
from clients.health import StreamStats
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
                 triton_wait_s: float = 60.0) -> None:
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
        async with EnsembleClient(self.config.triton) as client:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/app_config.yaml"))
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (cleanly) after this many seconds")
    ap.add_argument("--streams", nargs="+", default=None, help="only these stream ids")
    ap.add_argument("--health-interval", type=float, default=10.0, help="seconds between health reports")
    ap.add_argument("--triton-wait", type=float, default=60.0, help="seconds to wait for Triton at start")
    ap.add_argument("--summary-json", type=Path, default=None, help="write the run summary here")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_app_config(a.config).select(a.streams)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if not config.streams:
        print(f"{a.config}: streams: no streams configured (add some under `streams:`)", file=sys.stderr)
        return 2
    sinks = build_sinks(config)
    runner = Runner(config, build_processor_factory(config), sinks, a.health_interval, a.max_seconds,
                    a.triton_wait)
    try:
        summary = asyncio.run(runner.run())
    except InferenceLost as e:
        print(f"error: {e}", file=sys.stderr)
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
