"""sinks/retention config validation and the retention setup command (real influxd)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clients.app import sinks_from_config as build_sinks
from sinks.config import (
    SEED_RETENTION_DAYS,
    ConfigError,
    InfluxConfig,
    RetentionConfig,
    load_sinks_config,
    load_sinks_section,
)
from sinks.line_protocol import DATA_TYPES
from sinks.setup import main as setup_main
from sinks.setup import setup_v1

ROOT = Path(__file__).resolve().parents[1]
APP_CONFIG = ROOT / "configs" / "app_config.yaml"


def test_repo_config_loads_with_the_seed_retention():
    cfg = load_sinks_config(APP_CONFIG)
    for k, days in SEED_RETENTION_DAYS.items():
        assert cfg.retention.days[k] == days
    assert set(cfg.retention.days) == set(DATA_TYPES)
    assert cfg.influxdb.version in (1, 2) and cfg.json.enabled
    assert cfg.influxdb.health_interval_s == 10.0  # sink_health points by default
    off = load_sinks_section({"sinks": {"influxdb": {"health_interval_s": 0}}}, "a.yaml").influxdb
    assert off.health_interval_s == 0


def test_clients_loader_composes_the_sinks_section():
    from clients.config import load_app_config

    cfg = load_app_config(APP_CONFIG)
    assert cfg.sinks == load_sinks_config(APP_CONFIG)


@pytest.mark.parametrize("patch, field, value", [
    ({"sinks": {"influxdb": {"version": 3}}}, "sinks.influxdb.version", "3"),
    ({"sinks": {"influxdb": {"url": "localhost:8086"}}}, "sinks.influxdb.url", "'localhost:8086'"),
    ({"sinks": {"influxdb": {"batch_size": 0}}}, "sinks.influxdb.batch_size", "0"),
    ({"sinks": {"influxdb": {"batch_size": 100, "max_buffer_points": 10}}}, "sinks.influxdb.max_buffer_points", "10"),
    ({"sinks": {"influxdb": {"retry": {"initial_s": 5, "max_s": 1}}}}, "sinks.influxdb.retry.max_s", "1"),
    ({"sinks": {"influxdb": {"batchsize": 10}}}, "sinks.influxdb.batchsize", "10"),
    ({"sinks": {"influxdb": {"enabled": "yes"}}}, "sinks.influxdb.enabled", "'yes'"),
    ({"sinks": {"influxdb": {"health_interval_s": -1}}}, "sinks.influxdb.health_interval_s", "-1"),
    ({"sinks": {"json": {"flush_every": 1.5}}}, "sinks.json.flush_every", "1.5"),
    ({"retention": {"detections": -1}}, "retention.detections", "-1"),
    ({"retention": {"detection": 7}}, "retention.detection", "7"),
    ({"retention": {"alerts": "1y"}}, "retention.alerts", "'1y'"),
])
def test_errors_name_file_field_and_value(tmp_path, patch, field, value):
    p = tmp_path / "app.yaml"
    p.write_text(yaml.safe_dump(patch))
    with pytest.raises(ConfigError) as e:
        load_sinks_config(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg and value in msg, msg


def test_secrets_come_from_the_environment_only(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"sinks.influxdb.token.*token_env"):
        load_sinks_section({"sinks": {"influxdb": {"token": "s3cret"}}}, tmp_path / "a.yaml")
    monkeypatch.setenv("MY_TOKEN", "abc")
    cfg = load_sinks_section({"sinks": {"influxdb": {"token_env": "MY_TOKEN"}}}, tmp_path / "a.yaml")
    assert cfg.influxdb.token == "abc"
    monkeypatch.delenv("MY_TOKEN")
    assert load_sinks_section({"sinks": {"influxdb": {"token_env": "MY_TOKEN"}}}, "a.yaml").influxdb.token is None


def test_build_sinks_follows_the_config(tmp_path):
    raw = {"sinks": {"json": {"output_dir": str(tmp_path / "out")},
                     "influxdb": {"enabled": True, "url": "http://127.0.0.1:9", "spill_dir": str(tmp_path / "sp")}}}
    sinks = build_sinks(load_sinks_section(raw, tmp_path / "a.yaml"))
    assert [type(s).__name__ for s in sinks] == ["JsonFilesSink", "InfluxSink"]
    for s in sinks:
        s.close() if type(s).__name__ == "JsonFilesSink" else s.close(timeout=0)


def test_build_sinks_closes_what_it_started_when_a_later_sink_fails(tmp_path, monkeypatch):
    """A failing Triton-metrics collector must not leave the JSON sink open or the Influx writer running
    (``clients.run --wait-on-error`` retries start-up, and each try would leak another writer thread)."""
    import threading

    import clients.app
    import sinks.json_files as json_files

    closed = []
    real_close = json_files.JsonFilesSink.close
    monkeypatch.setattr(json_files.JsonFilesSink, "close", lambda self: (closed.append(self), real_close(self)))

    def broken(*a, **k):
        raise OSError("metrics endpoint misconfigured")

    monkeypatch.setattr(clients.app, "TritonMetricsCollector", broken)
    raw = {"sinks": {"json": {"output_dir": str(tmp_path / "out")},
                     "influxdb": {"enabled": True, "url": "http://127.0.0.1:9", "spill_dir": str(tmp_path / "sp"),
                                  "close_timeout_s": 0,
                                  "triton_metrics": {"enabled": True}}}}
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(OSError, match="misconfigured"):
        build_sinks(load_sinks_section(raw, tmp_path / "a.yaml"))
    assert len(closed) == 1
    left = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert not any(n.startswith("influxdb") for n in left), left


def _rps(server, db):
    return {r[0]: r[1] for r in server.values("SHOW RETENTION POLICIES", db)}


def test_setup_creates_retention_policies_and_is_idempotent(influxd_server):
    cfg = InfluxConfig(url=influxd_server.url, database="setup_test")
    setup_v1(cfg, RetentionConfig())
    rps = _rps(influxd_server, "setup_test")
    assert rps["detections"] == "168h0m0s" and rps["journeys"] == "2160h0m0s"
    assert rps["queue_metrics"] == "2160h0m0s" and rps["heatmaps"] == "720h0m0s" and rps["alerts"] == "8760h0m0s"
    days = dict(RetentionConfig().days, detections=3, alerts=0)
    stmts = setup_v1(cfg, RetentionConfig(days))  # run again with changed retention: altered in place
    assert any(s.startswith('ALTER RETENTION POLICY "detections"') for s in stmts)
    rps = _rps(influxd_server, "setup_test")
    assert rps["detections"] == "72h0m0s" and rps["alerts"] == "0s"  # 0 days = keep forever


def test_setup_cli(influxd_server, tmp_path, capsys):
    p = tmp_path / "app.yaml"
    p.write_text(yaml.safe_dump({"sinks": {"influxdb": {"url": influxd_server.url, "database": "cli_db"}},
                                 "retention": {"heatmaps": 14}}))
    assert setup_main(["--config", str(p)]) == 0
    assert _rps(influxd_server, "cli_db")["heatmaps"] == "336h0m0s"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"retention": {"heatmaps": "x"}}))
    assert setup_main(["--config", str(bad)]) == 2
    assert "retention.heatmaps" in capsys.readouterr().err
    assert setup_main(["--config", str(p), "--url", "http://127.0.0.1:9"]) == 3  # nothing listens there


def test_setup_module_runs_as_documented(influxd_server, tmp_path):
    p = tmp_path / "app.yaml"
    p.write_text(yaml.safe_dump({"sinks": {"influxdb": {"url": influxd_server.url, "database": "mod_db"}}}))
    r = subprocess.run([sys.executable, "-m", "sinks.setup", "--config", str(p)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert set(DATA_TYPES) <= set(_rps(influxd_server, "mod_db"))


def test_environment_overrides_for_deployments(tmp_path, monkeypatch):
    monkeypatch.setenv("RVA_INFLUXDB_VERSION", "2")
    monkeypatch.setenv("RVA_INFLUXDB_URL", "http://influxdb:8086")
    monkeypatch.setenv("RVA_INFLUXDB_ENABLED", "true")
    monkeypatch.setenv("RVA_TRITON_METRICS_URL", "http://triton:8002/metrics")
    cfg = load_sinks_config(APP_CONFIG).influxdb
    assert (cfg.version, cfg.url, cfg.enabled) == (2, "http://influxdb:8086", True)
    assert cfg.triton_metrics.url == "http://triton:8002/metrics"
    monkeypatch.setenv("RVA_INFLUXDB_VERSION", "3")
    with pytest.raises(ConfigError, match=r"sinks.influxdb.version: 3"):
        load_sinks_config(APP_CONFIG)
