"""One camera stream: reader, dispatcher and in-order completion (tasks in one event loop).

    reader:     source.frames() -> PendingFrames (live: drop oldest when full; files: wait)
    dispatcher: pending -> [ready gate] -> JPEG -> async gRPC, at most max_in_flight at once
    completion: answers (any order) -> ReorderBuffer -> processor (tracker + analytics) -> sinks

Inputs: a ``StreamSpec`` and its opened ``FrameSource``, the shared ``EnsembleClient``, a
``Processor`` (frames in time order -> records) and the sinks (``sinks.base.Sink``); a stop
event (set: read no more, finish what was read and is in flight). Outputs: records written
to the sinks, ``StreamStats`` (``self.stats``), ``flush()``'s end-of-stream records.
May import: core, clients.config/flow/health/sources/triton, sinks.base.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

from clients.config import StreamSpec
from clients.flow import Backpressure, PendingFrames, QueueClosed, ReorderBuffer
from clients.health import StreamStats
from clients.sources import FrameSource, SourceError
from clients.triton import BadFrame, EnsembleClient, InferenceFailed, InferenceLost, encode_jpeg
from core.types import Detections, Frame
from sinks.base import Sink

log = logging.getLogger("clients.run")


class Processor(Protocol):
    """Per-stream tracking + analytics: frames in order in, records out."""

    def process(self, frame: Frame, dets: Detections) -> list[Any]: ...
    def flush(self, timestamp: float) -> list[Any]: ...


ProcessorFactory = Callable[[StreamSpec, FrameSource], Processor]


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
        except BadFrame as e:
            self.stats.frames_lost += 1
            self.stats.bad_frames += 1
            log.error("%s: frame %d refused by the server: %s", self.spec.id, frame.frame_number, e)
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
