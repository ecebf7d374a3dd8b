"""Load and validate the ``sinks`` and ``retention`` sections of configs/app_config.yaml.

Every mistake raises ``ConfigError`` (``core.config``, re-exported here) naming the file,
the field (dotted path) and the value. ``load_sinks_config(path, overrides={"sinks.json.
output_dir": "out"})`` adjusts the file's settings in code before they are validated.
Secrets never live in the YAML: the InfluxDB token / password are read from the
environment variables the config names (``token_env``, ...; docker compose fills them
from the env file). ``RVA_INFLUXDB_{ENABLED,VERSION,URL,ORG,DATABASE}`` and
``RVA_TRITON_METRICS_{URL,ENABLED}`` override the file (compose sets them); their values
are validated like the file's.

    sinks:
      json:
        enabled: true
        output_dir: outputs
        flush_every: 500
        rotate: daily              # outputs/YYYY-MM-DD/<seed file> per UTC day, expired per retention:
                                   #   (none: the five files in output_dir, truncated at start, never expired)
        detections: {every_s: 1}   # one detection record per track per second; all | off
      influxdb:
        enabled: false
        version: 1                 # 1: line protocol on /write (1.x, or 2.x's v1 API); 2: influxdb-client
        url: http://localhost:8086
        database: retail           # 1.x database; on 2.x the DBRP database mapped to the buckets
        org: retail                # 2.x only
        bucket_prefix: retail_     # 2.x buckets are <prefix><data type>
        token_env: INFLUXDB_TOKEN  # 2.x token (also accepted by 2.x's v1 API)
        health_interval_s: 10      # the sink's own counters as sink_health points (0 = off)
        ...
    retention: {detections: 7, journeys: 90, ...}   # days per data type: InfluxDB retention policies /
                                                    # bucket expiry, and the JSON sink's dated files
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.config import ConfigError, Fields, apply_overrides, read_mapping  # noqa: F401 (ConfigError re-exported)
from sinks.line_protocol import DATA_TYPES

# The seed's storage table (days), plus the time series that have no seed file.
SEED_RETENTION_DAYS = {"detections": 7, "journeys": 90, "queue_metrics": 90, "heatmaps": 30, "alerts": 365}
DEFAULT_RETENTION_DAYS = {**SEED_RETENTION_DAYS, "occupancy": 30, "footfall": 90, "health": 7}
assert set(DEFAULT_RETENTION_DAYS) == set(DATA_TYPES)


@dataclass(frozen=True, slots=True)
class JsonSinkConfig:
    enabled: bool = True
    output_dir: Path = Path("outputs")
    flush_every: int = 500  # records; the files are valid JSON after every flush
    rotate: str = "daily"  # "daily": output_dir/YYYY-MM-DD/ per UTC day, expired per retention; "none": one set
    detections: str | float = 1.0  # seconds between a track's detection records; "all" or "off"


@dataclass(frozen=True, slots=True)
class TritonMetricsConfig:
    enabled: bool = False
    url: str = "http://localhost:8002/metrics"
    interval_s: float = 10.0


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    enabled: bool = False
    version: int = 1
    url: str = "http://localhost:8086"
    database: str = "retail"
    org: str = "retail"
    bucket_prefix: str = "retail_"
    token: str | None = None  # resolved from token_env
    username: str | None = None  # resolved from username_env (1.x auth)
    password: str | None = None
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_buffer_points: int = 100_000
    spill_dir: Path | None = Path(".run/influx-spill")
    max_spill_points: int = 5_000_000
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    timeout_s: float = 10.0
    close_timeout_s: float = 10.0
    health_interval_s: float = 10.0  # seconds between the sink's own sink_health points; 0 = none
    triton_metrics: TritonMetricsConfig = field(default_factory=TritonMetricsConfig)

    def bucket(self, data_type: str) -> str:
        return f"{self.bucket_prefix}{data_type}"


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))

    def duration(self, data_type: str) -> str:
        """InfluxQL duration literal; 0 days means keep forever (INF)."""
        d = self.days[data_type]
        return "INF" if d == 0 else f"{d}d"

    def seconds(self, data_type: str) -> int:
        return self.days[data_type] * 86400


@dataclass(frozen=True, slots=True)
class SinksConfig:
    json: JsonSinkConfig = field(default_factory=JsonSinkConfig)
    influxdb: InfluxConfig = field(default_factory=InfluxConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)


def _secret(fields: Fields, d: dict, key: str, fld: str, default_env: str | None) -> str | None:
    """``<key>_env`` names an environment variable; inline secrets are refused."""
    if key in d:
        raise fields.error(f"{fld}.{key}", "***", f"secrets do not belong in the config: set {fld}.{key}_env "
                           "to the name of an environment variable (docker compose: the env file)")
    env = fields.string(d, f"{key}_env", fld, default_env, optional=True)
    if env is None:
        return None
    return os.environ.get(env) or None


_JSON_KEYS = {"enabled", "output_dir", "flush_every", "rotate", "detections"}
_DETECTIONS_PROBLEM = "must be off, all or {every_s: N} (at most one record per track every N > 0 seconds)"
_INFLUX_KEYS = {"enabled", "version", "url", "database", "org", "bucket_prefix", "token", "token_env",
                "username", "username_env", "password", "password_env", "batch_size", "flush_interval_s",
                "max_buffer_points", "spill_dir", "max_spill_points", "retry", "timeout_s", "close_timeout_s",
                "health_interval_s", "triton_metrics"}


def parse_json(raw: Any, fields: Fields) -> JsonSinkConfig:
    d = fields.section(raw, "sinks.json", _JSON_KEYS)
    out = fields.string(d, "output_dir", "sinks.json", "outputs")
    return JsonSinkConfig(
        enabled=fields.boolean(d, "enabled", "sinks.json", True),
        output_dir=Path(out),  # relative paths are relative to the working directory (the repo root)
        flush_every=fields.number(d, "flush_every", "sinks.json", 500, lo=1, hi=10_000_000, integer=True),
        rotate=fields.choice(d.get("rotate", "daily"), "sinks.json.rotate", ("daily", "none"),
                             "must be daily (a directory per UTC day, expired per retention:) or none (one set "
                             "of files, truncated at start, never expired)"),
        detections=parse_detections(d.get("detections", {"every_s": 1}), fields),
    )


def parse_detections(v: Any, fields: Fields) -> str | float:
    """``off`` (YAML reads an unquoted off as false) | ``all`` | ``{every_s: N}`` -> "off" | "all" | N."""
    f = "sinks.json.detections"
    if v is False or v == "off":
        return "off"
    if v == "all":
        return "all"
    if not isinstance(v, dict):
        raise fields.error(f, v, _DETECTIONS_PROBLEM)
    fields.unknown(v, {"every_s"}, f)
    if "every_s" not in v:
        raise fields.error(f, v, _DETECTIONS_PROBLEM)
    return fields.number(v, "every_s", f, None, lo=0.001, hi=86400)


# Deployment overrides (docker compose sets them): same config file on a laptop and in compose.
ENV_OVERRIDES = {"RVA_INFLUXDB_ENABLED": "enabled", "RVA_INFLUXDB_VERSION": "version", "RVA_INFLUXDB_URL": "url",
                 "RVA_INFLUXDB_ORG": "org", "RVA_INFLUXDB_DATABASE": "database",
                 "RVA_TRITON_METRICS_URL": "triton_metrics.url", "RVA_TRITON_METRICS_ENABLED": "triton_metrics.enabled"}


def _apply_env(d: dict) -> dict:
    d = dict(d)
    for env, key in ENV_OVERRIDES.items():
        text = os.environ.get(env)
        if text is None or text == "":
            continue
        try:
            value = yaml.safe_load(text)  # "2" -> 2, "true" -> True, URLs stay strings
        except yaml.YAMLError:
            value = text
        if "." in key:
            outer, inner = key.split(".")
            sub = d.get(outer)
            d[outer] = {**(sub if isinstance(sub, dict) else {}), inner: value}
        else:
            d[key] = value
    return d


def parse_influx(raw: Any, fields: Fields) -> InfluxConfig:
    f = "sinks.influxdb"
    d = _apply_env(fields.section(raw, f, _INFLUX_KEYS))
    version = fields.choice(d.get("version", 1), f"{f}.version", (1, 2),
                            "must be 1 (line protocol on /write) or 2 (influxdb-client)")
    url = fields.string(d, "url", f, "http://localhost:8086")
    if not url.startswith(("http://", "https://")):
        raise fields.error(f"{f}.url", url, "must start with http:// or https://")
    retry = fields.section(d.get("retry"), f"{f}.retry", {"initial_s", "max_s"})
    initial = fields.number(retry, "initial_s", f"{f}.retry", 0.5, lo=0.001, hi=600)
    max_s = fields.number(retry, "max_s", f"{f}.retry", 30.0, lo=0.001, hi=3600)
    if max_s < initial:
        raise fields.error(f"{f}.retry.max_s", max_s, f"must be >= retry.initial_s ({initial:g})")
    spill = d.get("spill_dir", ".run/influx-spill")
    if spill is not None and (not isinstance(spill, str) or not spill.strip()):
        raise fields.error(f"{f}.spill_dir", spill, "must be a directory path or null (no spilling)")
    spill_p = None if spill is None else Path(spill)
    tm = fields.section(d.get("triton_metrics"), f"{f}.triton_metrics", {"enabled", "url", "interval_s"})
    tm_url = fields.string(tm, "url", f"{f}.triton_metrics", "http://localhost:8002/metrics")
    if not tm_url.startswith(("http://", "https://")):
        raise fields.error(f"{f}.triton_metrics.url", tm_url, "must start with http:// or https://")
    batch = fields.number(d, "batch_size", f, 5000, lo=1, hi=1_000_000, integer=True)
    buf = fields.number(d, "max_buffer_points", f, 100_000, lo=1, hi=100_000_000, integer=True)
    if buf < batch:
        raise fields.error(f"{f}.max_buffer_points", buf, f"must be >= batch_size ({batch})")
    return InfluxConfig(
        enabled=fields.boolean(d, "enabled", f, False),
        version=version,
        url=url.rstrip("/"),
        database=fields.string(d, "database", f, "retail"),
        org=fields.string(d, "org", f, "retail"),
        bucket_prefix=fields.string(d, "bucket_prefix", f, "retail_"),
        token=_secret(fields, d, "token", f, "INFLUXDB_TOKEN"),
        username=_secret(fields, d, "username", f, None),
        password=_secret(fields, d, "password", f, None),
        batch_size=batch,
        flush_interval_s=fields.number(d, "flush_interval_s", f, 1.0, lo=0.01, hi=3600),
        max_buffer_points=buf,
        spill_dir=spill_p,
        max_spill_points=fields.number(d, "max_spill_points", f, 5_000_000, lo=0, hi=10**10, integer=True),
        retry_initial_s=initial,
        retry_max_s=max_s,
        timeout_s=fields.number(d, "timeout_s", f, 10.0, lo=0.1, hi=600),
        close_timeout_s=fields.number(d, "close_timeout_s", f, 10.0, lo=0, hi=3600),
        health_interval_s=fields.number(d, "health_interval_s", f, 10.0, lo=0, hi=86400),
        triton_metrics=TritonMetricsConfig(
            enabled=fields.boolean(tm, "enabled", f"{f}.triton_metrics", False),
            url=tm_url,
            interval_s=fields.number(tm, "interval_s", f"{f}.triton_metrics", 10.0, lo=0.1, hi=3600)),
    )


def parse_retention(raw: Any, fields: Fields) -> RetentionConfig:
    d = fields.section(raw, "retention", set(DEFAULT_RETENTION_DAYS))
    days = {}
    for k, default in DEFAULT_RETENTION_DAYS.items():
        # 0 = keep forever; InfluxDB's shortest retention is 1 hour, so at least 1 day here
        days[k] = fields.number(d, k, "retention", default, lo=0, hi=36500, integer=True)
    return RetentionConfig(days)


def load_sinks_section(raw: dict, path: str | Path) -> SinksConfig:
    """The loader ``clients.config.load_app_config`` calls with the whole parsed file."""
    fields = Fields(path)
    if not isinstance(raw, dict):
        raise fields.error("(top level)", raw, "must be a mapping of sections")
    sinks = fields.section(raw.get("sinks"), "sinks", {"json", "influxdb"})
    return SinksConfig(json=parse_json(sinks.get("json"), fields),
                       influxdb=parse_influx(sinks.get("influxdb"), fields),
                       retention=parse_retention(raw.get("retention"), fields))


def load_sinks_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> SinksConfig:
    """Read the file and validate only the sinks + retention sections; ``overrides`` (dotted
    keys such as ``"sinks.json.output_dir"``) adjust the file's mapping before validation."""
    raw = read_mapping(path, "config file")
    return load_sinks_section(apply_overrides(raw, overrides), path)
