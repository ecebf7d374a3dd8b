"""Sinks: records -> seed JSON files and InfluxDB time series.

    from sinks import build_sinks
    sinks = build_sinks(load_sinks_config("configs/app_config.yaml"))

See docs/influxdb.md for the measurement schema, retention and dashboards.
"""
from __future__ import annotations

import contextlib

from core.config import ConfigError
from sinks.base import Sink
from sinks.config import InfluxConfig, SinksConfig, load_sinks_config, load_sinks_section

__all__ = ["Sink", "ConfigError", "InfluxConfig", "SinksConfig", "load_sinks_config", "load_sinks_section",
           "build_sinks"]


def build_sinks(cfg: SinksConfig) -> list[Sink]:
    """The enabled sinks of a validated config (JSON files first: cheap and local)."""
    out: list[Sink] = []
    started: list[Sink] = []  # closed again if a later one fails (no stray writer threads on a retry)
    try:
        if cfg.json.enabled:
            from sinks.json_files import JsonFilesSink

            out.append(JsonFilesSink.from_config(cfg.json))
            started.append(out[-1])
        if cfg.influxdb.enabled:
            from sinks.influx import InfluxSink

            influx = InfluxSink(cfg.influxdb)
            started.append(influx)
            if cfg.influxdb.triton_metrics.enabled:
                from monitoring.triton_metrics import TritonMetricsCollector

                # before the Influx sink: closed first, so its last scrape still gets written
                out.append(TritonMetricsCollector(cfg.influxdb.triton_metrics, influx))
            out.append(influx)
    except BaseException:
        for sink in reversed(started):
            with contextlib.suppress(Exception):
                sink.close()
        raise
    return out
