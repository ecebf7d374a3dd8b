"""The application in one place: wire the parts and run them.

    config, sinks = prepare(Path("configs/app_config.yaml"))      # or StartupError (exit 2)
    summary = run_app(config, sinks=sinks, max_seconds=60)         # -> RunSummary

``run_app`` is the one sequence every caller uses (the CLI ``python -m clients.run``,
``make demo``, benchmarks, tests): build the sinks (unless given), build the processor
factory (tracker + per-camera store analytics, and the store's visit linker when the store
config has ``visits:``, unless given), run the ``Runner`` in
``asyncio.run``, then close the sinks (flush, InfluxDB: spill what is left) whatever
happened. The store config is watched while the run goes on (``clients.store_watch``: an edit
of ``configs/store.yaml`` or SIGHUP swaps the changed cameras' analytics at a frame boundary;
``store_reload_s`` is the poll interval, 0: SIGHUP only). While the sinks close, SIGINT/SIGTERM follow the same ``clients.signals`` policy
as during the run: the close is already the bounded "put everything to disk" step, so a
repeat is logged and a second Ctrl-C makes the sinks not yet closed use the short bound.

Inputs: a loaded, validated ``AppConfig`` (``clients.config.load_app_config``).
Outputs: ``RunSummary``; records in the sinks. Raises ``InferenceLost`` when Triton is not
ready within ``triton_wait_s`` (the CLI's exit 3).
May import: clients.*, tracking, analytics (config, pipeline), visits (linker), sinks, monitoring
(Triton metrics).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Sequence

from analytics.config import StoreConfig
from analytics.pipeline import StoreAnalytics
from clients.camera import TrackedCamera
from clients.config import AppConfig, StreamSpec, load_app_config
from clients.health import HealthFile
from clients.pipeline import ProcessorFactory
from clients.runner import Runner, RunSummary
from clients.signals import FAST_EXIT_FLUSH_S, StopAction, StopSignals, close_sink, process_signal_handlers
from clients.sources import FrameSource
from clients.store_link import StoreLink
from clients.store_watch import DEFAULT_POLL_S, StoreWatch
from core.config import ConfigError
from monitoring.triton_metrics import TritonMetricsCollector
from sinks import SinksConfig
from sinks.base import Sink
from sinks.influx import InfluxSink
from sinks.json_files import JsonFilesSink
from tracking import Tracker, TrackerConfig

log = logging.getLogger("clients.app")


# --------------------------------------------------------------------------- processors

class CameraFactory:
    """The application's ``ProcessorFactory``: a tracker per stream; store analytics for streams
    that are cameras of the store config; every camera registered with ``watch`` (the live
    store config; None without an ``analytics:`` section) and, when the store config links
    visits (``visits:``), with ``link``: the store's one ``VisitLinker`` behind a
    ``clients.store_link.StoreLink`` (None otherwise, or when the linker cannot start: then
    the cameras write their camera journeys as usual)."""

    def __init__(self, config: AppConfig, store_reload_s: float = DEFAULT_POLL_S) -> None:
        store = config.analytics
        self.tracker = dict(config.tracker)  # TrackerConfig fields (validated with the config)
        self.store_analytics = None if store is None else StoreAnalytics(store)
        self.watch = None if store is None else StoreWatch(store, self.store_analytics, poll_s=store_reload_s)
        self.link = None if store is None or store.visits is None else build_store_link(store)
        if store is not None:
            missing = [s.id for s in config.streams if s.id not in store.cameras]
            if missing:
                log.warning("stream(s) %s are not cameras in %s: tracked, but no zone analytics (add them "
                            "there, live, to get zone analytics)", ", ".join(missing), store.path)

    def __call__(self, spec: StreamSpec, source: FrameSource) -> TrackedCamera:
        fps = getattr(source, "fps", None) or 25.0
        tracker = Tracker(TrackerConfig(frame_rate=fps, **self.tracker))
        analytics = None
        if self.store_analytics is not None and spec.id in self.store_analytics.store.cameras:
            analytics = self.store_analytics.for_stream(spec.id)
        camera = TrackedCamera(spec.id, tracker, analytics, link=self.link)
        if self.watch is not None:
            self.watch.register(camera)
        return camera


def build_store_link(store: StoreConfig) -> StoreLink | None:
    """The store's visit linker for its cameras in this process; None (logged) when it cannot
    start: the per-camera analytics must run anyway."""
    try:
        from visits.linker import VisitLinker

        linker = VisitLinker(store)
    except Exception:  # noqa: BLE001 (visits are an addition; the cameras' analytics go on without them)
        log.exception("%s: the store visit linker could not start: cameras write their camera journeys only",
                      store.path)
        return None
    log.info("%s: store visits linked across cameras (%s)", store.store_id, linker.mode)
    return StoreLink(linker, store_id=store.store_id)


def build_processor_factory(config: AppConfig, store_reload_s: float = DEFAULT_POLL_S) -> CameraFactory:
    """A tracker per stream; store analytics for streams that are cameras of the store config;
    the factory's ``watch`` keeps them in step with the store config file."""
    return CameraFactory(config, store_reload_s)


# --------------------------------------------------------------------------- sinks

def sinks_from_config(cfg: SinksConfig) -> list[Sink]:
    """The enabled sinks of a validated sinks section (JSON files first: cheap and local)."""
    out: list[Sink] = []
    started: list[Sink] = []  # closed again if a later one fails (no stray writer threads on a retry)
    try:
        if cfg.json.enabled:
            out.append(JsonFilesSink.from_config(cfg.json, cfg.retention.days))
            started.append(out[-1])
        if cfg.influxdb.enabled:
            influx = InfluxSink(cfg.influxdb)
            started.append(influx)
            if cfg.influxdb.triton_metrics.enabled:
                # before the Influx sink: closed first, so its last scrape still gets written
                out.append(TritonMetricsCollector(cfg.influxdb.triton_metrics, influx))
            out.append(influx)
    except BaseException:
        for sink in reversed(started):
            with contextlib.suppress(Exception):
                sink.close()
        raise
    return out


def build_sinks(config: AppConfig) -> list[Sink]:
    """The sinks an app config asks for."""
    return sinks_from_config(config.sinks)


def close_sinks(sinks: Sequence[Sink], signals: StopSignals) -> None:
    """Close every sink in order (flush; InfluxDB: up to its close timeout, then spill).
    A second Ctrl-C meanwhile makes the sinks not closed yet use the fast exit's short bound."""
    fast = False

    def on_signal(name: str) -> None:
        nonlocal fast
        action = signals.classify(name)
        if action is StopAction.FAST_EXIT:
            fast = True
            log.warning("second SIGINT: already closing the sinks; the rest flush for at most %.0f s, "
                        "then put what is left to disk", FAST_EXIT_FLUSH_S)
        else:
            log.info("%s: already stopping (closing the sinks)", name)

    with process_signal_handlers(on_signal):
        for sink in sinks:
            close_sink(sink, FAST_EXIT_FLUSH_S if fast else None)


# --------------------------------------------------------------------------- start-up

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


# --------------------------------------------------------------------------- the run

def run_app(config: AppConfig, *, sinks: list[Sink] | None = None, extra_sinks: Sequence[Sink] = (),
            processor_factory: ProcessorFactory | None = None, max_seconds: float | None = None,
            health_interval_s: float = 10.0, health_file: HealthFile | None = None,
            triton_wait_s: float = 60.0, store_reload_s: float = DEFAULT_POLL_S) -> RunSummary:
    """Run every stream of ``config`` to its end (or a stop request); the sinks are closed
    on return, also those passed in. ``sinks``: instead of the configured ones;
    ``extra_sinks``: beside them (e.g. an in-memory tally). The store config is watched when
    the processors are the application's (``processor_factory`` None or a ``CameraFactory``)."""
    all_sinks = (build_sinks(config) if sinks is None else list(sinks)) + list(extra_sinks)
    signals = StopSignals()
    try:
        factory = processor_factory if processor_factory is not None else \
            build_processor_factory(config, store_reload_s)
        watch = factory.watch if isinstance(factory, CameraFactory) else None
        runner = Runner(config, factory, all_sinks, health_interval_s=health_interval_s, max_seconds=max_seconds,
                        triton_wait_s=triton_wait_s, health_file=health_file, signals=signals, store_watch=watch)
        return asyncio.run(runner.run())
    finally:
        close_sinks(all_sinks, signals)
