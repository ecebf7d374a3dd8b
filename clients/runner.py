"""All camera streams in one asyncio event loop: the ``Runner`` and its ``RunSummary``.

    summary = await Runner(config, processor_factory, sinks).run()

Opens every configured stream (a source that cannot be opened is reported, the others
run), runs one ``clients.pipeline.StreamPipeline`` per stream over one shared gRPC channel
(so Triton batches frames of different cameras together), logs and writes each stream's
health every ``health_interval_s`` (``StreamHealthRecord`` to the sinks, the health file),
and at the end flushes the analytics (open journeys are closed) and the sinks. It does not
close the sinks: whoever built them does (``clients.app.run_app``).

Stop requests (SIGINT/SIGTERM while ``run()`` runs, ``max_seconds``, ``request_stop``)
follow ``clients.signals``: the first stops cleanly, repeats are the same request, and
only a second SIGINT >= 1 s after the first forces the fast exit (sinks spilled, exit 130).

Live configuration: given a ``ConfigWatch`` (``clients.store_watch.StoreWatch``), the runner
runs its ``run()`` as one more task of the loop (the file is polled there, never on a
frame's path), routes SIGHUP to ``request("SIGHUP")`` (without a watch SIGHUP is logged and
ignored) and puts ``stats()`` in the health file and the summary (``config_reloads``).

Inputs: an ``AppConfig``, a ``ProcessorFactory``, the sinks (``sinks.base.Sink``).
Outputs: records in the sinks, ``RunSummary`` (per-stream stats, sink stats, wall/CPU time,
config reloads).
May import: clients.config/health/pipeline/signals/sources/triton, sinks.base.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from clients.config import AppConfig, open_source
from clients.health import HealthFile, StreamStats
from clients.pipeline import ProcessorFactory, StreamPipeline
from clients.signals import StopAction, StopSignals, fast_exit, loop_signal_handlers
from clients.sources import SourceError
from clients.triton import EnsembleClient
from sinks.base import Sink

log = logging.getLogger("clients.run")


class ConfigWatch(Protocol):
    """A watched configuration file (``clients.store_watch.StoreWatch``)."""

    async def run(self) -> None: ...  # until cancelled
    def request(self, reason: str) -> None: ...  # check now
    def stats(self) -> dict: ...


@dataclass
class RunSummary:
    streams: dict[str, dict] = field(default_factory=dict)
    wall_s: float = 0.0
    triton_outages: int = 0
    stopped_by: str = "end of streams"
    sink_stats: dict = field(default_factory=dict)
    client_cpu_s: float = 0.0
    config_reloads: dict | None = None  # the store watch's counters (None: no watch)
    # the live per-stream counters behind ``streams`` (latency samples, first/last result times), for
    # benchmarks; not part of to_dict()
    stats: dict[str, StreamStats] = field(default_factory=dict, repr=False)

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
                **({"config_reloads": self.config_reloads} if self.config_reloads is not None else {}),
                "streams": self.streams, "sinks": self.sink_stats}


class Runner:
    """See the module docstring. ``signals``: the process's stop policy, shared with whoever
    closes the sinks afterwards (``clients.app.run_app``); a fresh one if not given."""

    def __init__(self, config: AppConfig, processor_factory: ProcessorFactory, sinks: list[Sink],
                 health_interval_s: float = 10.0, max_seconds: float | None = None,
                 triton_wait_s: float = 60.0, health_file: HealthFile | None = None,
                 signals: StopSignals | None = None, store_watch: ConfigWatch | None = None) -> None:
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
        self.signals = signals if signals is not None else StopSignals()
        self.store_watch = store_watch

    def request_stop(self, why: str) -> None:
        """A stop request (``why``: "SIGINT", "SIGTERM", or any other reason); see clients.signals."""
        action = self.signals.classify(why)
        if action is StopAction.FAST_EXIT:
            fast_exit(self.sinks, f"second SIGINT {self.signals.since_first_sigint():.1f} s after the first",
                      lambda: self._write_health_file("stopped", "fast exit: second SIGINT"))
        if action is StopAction.REPEAT or self.stop.is_set():
            log.info("stop requested again (%s): already stopping (%s); finishing in-flight frames and flushing",
                     why, self.stopped_by)
            return
        log.warning("stopping (%s): no new frames; finishing in-flight frames and flushing", why)
        self.stopped_by = why
        self.stop.set()

    def request_reload(self, why: str) -> None:
        """SIGHUP: read the store config now (never a stop)."""
        if self.store_watch is None:
            log.warning("%s: no store config is watched (no analytics section): nothing to reload", why)
            return
        log.info("%s: reading the store config now", why)
        self.store_watch.request(why)

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
        extra = {} if self.store_watch is None else {"config_reloads": self.store_watch.stats()}
        self.health_file.write(status, detail, config=str(self.config.path),
                               triton_available=None if self._client is None else self._client.available,
                               streams=streams, **extra)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            self._health()

    async def run(self) -> RunSummary:
        t0 = time.monotonic()
        cpu0 = time.process_time()
        loop = asyncio.get_running_loop()
        summary = RunSummary()
        with loop_signal_handlers(loop, self.request_stop, self.request_reload):
            summary.triton_outages = await self._run_streams(loop)
        summary.wall_s = time.monotonic() - t0
        # The client process never runs a model: all of its CPU time is client overhead
        # (decode, JPEG, gRPC, tracking, analytics, sinks).
        summary.client_cpu_s = time.process_time() - cpu0
        self._summarize(summary)
        return summary

    async def _open_streams(self, client: EnsembleClient) -> None:
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

    async def _run_streams(self, loop: asyncio.AbstractEventLoop) -> int:
        """Open, run and flush every stream; returns the number of Triton outages seen."""
        self._write_health_file("starting", f"waiting for Triton at {self.config.triton.url}")
        async with EnsembleClient(self.config.triton) as client:
            self._client = client
            await client.check(timeout=self.triton_wait_s)
            await self._open_streams(client)
            self._write_health_file("running" if self.pipelines else "stopping",
                                    "" if self.pipelines else "no stream could be opened")
            health = asyncio.create_task(self._health_loop())
            watch = None if self.store_watch is None else asyncio.create_task(self.store_watch.run())
            timer = None
            if self.max_seconds is not None:
                timer = loop.call_later(self.max_seconds, lambda: self.stop.is_set() or self.request_stop(
                    f"--max-seconds {self.max_seconds:g}"))
            try:
                await asyncio.gather(*(p.run() for p in self.pipelines))
            finally:
                for task in (health, watch):
                    if task is not None:
                        task.cancel()
                await asyncio.gather(*(t for t in (health, watch) if t is not None), return_exceptions=True)
                if timer is not None:
                    timer.cancel()
                for p in self.pipelines:
                    self._write_all(p.flush())
                self._health(final=True)
                for s in self.sinks:
                    with contextlib.suppress(Exception):
                        s.flush()
            return client.outages

    def _summarize(self, summary: RunSummary) -> None:
        summary.stopped_by = self.stopped_by
        if self.store_watch is not None:
            summary.config_reloads = self.store_watch.stats()
        for p in self.pipelines:
            d = p.stats.summary()
            d["main_thread_cpu_ms_per_frame"] = round(1000 * p.client_cpu_s / max(p.stats.frames_sent, 1), 3)
            summary.streams[p.spec.id] = d
            summary.stats[p.spec.id] = p.stats
        for sid, err in self.failed.items():
            summary.streams[sid] = StreamStats(sid, error=err).summary()
        for s in self.sinks:
            st = getattr(s, "stats", None)
            if callable(st):
                with contextlib.suppress(Exception):
                    summary.sink_stats[type(s).__name__] = st()
