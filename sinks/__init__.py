"""Sinks: records -> seed JSON files and InfluxDB time series.

    from sinks.json_files import JsonFilesSink      # the five seed files
    from sinks.influx import InfluxSink             # batched, retried, spilled InfluxDB writes

Every sink implements ``sinks.base.Sink`` (write / flush / close / stats). Which sinks a
run uses is decided by the application (``clients.app.build_sinks``), not here.
See docs/influxdb.md for the measurement schema, retention and dashboards.
"""
from __future__ import annotations

from core.config import ConfigError
from sinks.base import Sink
from sinks.config import InfluxConfig, SinksConfig, load_sinks_config, load_sinks_section

__all__ = ["Sink", "ConfigError", "InfluxConfig", "SinksConfig", "load_sinks_config", "load_sinks_section"]
