"""Triton's Prometheus metrics (port 8002, ``/metrics``) -> InfluxDB points.

    collector = TritonMetricsCollector(cfg.influxdb.triton_metrics, influx_sink)   # scrapes in a thread
    points = TritonMetricsParser().points(text, time.time())                       # or by hand

Per model and version (measurement ``triton``, tags ``model``, ``version``): Triton's
cumulative counters as fields (``request_success``, ``inference_count``,
``exec_count``, ``queue_duration_us``, ``compute_infer_duration_us``, ...) and, from the
difference to the previous scrape, what the pipeline-health dashboard plots directly:
``avg_queue_ms`` and ``avg_compute_ms`` per request, ``inferences_per_s``,
``executions_per_s`` and ``avg_batch`` (inferences per execution: dynamic batching at work).
GPU metrics (label ``gpu_uuid``) go to ``triton_gpu`` (tag ``gpu``); unlabelled ones
(``nv_cpu_utilization``, ...) to ``triton_server``.
"""
from __future__ import annotations

import logging
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterable

from sinks.line_protocol import Point

log = logging.getLogger("monitoring.triton_metrics")

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?\s*$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> (name, labels, value); comments and bad lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        try:
            v = float(value)
        except ValueError:
            continue
        lab = {k: bytes(val, "utf-8").decode("unicode_escape") for k, val in _LABEL.findall(labels or "")}
        out.append((name, lab, v))
    return out


_MODEL_PREFIX = "nv_inference_"
# Triton counter name (without the prefix) -> field name
_RENAME = {"count": "inference_count"}


class TritonMetricsParser:
    """Stateful: keeps the previous scrape's counters to turn them into per-interval averages."""

    def __init__(self) -> None:
        self._prev: dict[tuple[str, str], tuple[float, dict[str, float]]] = {}

    def points(self, text: str, timestamp: float) -> list[Point]:
        models: dict[tuple[str, str], dict[str, float]] = {}
        gpus: dict[str, dict[str, float]] = {}
        server: dict[str, float] = {}
        for name, labels, v in parse_prometheus(text):
            if "model" in labels and name.startswith(_MODEL_PREFIX):
                key = (labels["model"], labels.get("version", ""))
                f = name[len(_MODEL_PREFIX):]
                f = _RENAME.get(f, f)
                d = models.setdefault(key, {})
                d[f] = d.get(f, 0.0) + v  # e.g. failures are split by a `reason` label: sum them
            elif "gpu_uuid" in labels:
                gpus.setdefault(labels["gpu_uuid"], {})[name.removeprefix("nv_")] = v
            elif not labels and name.startswith("nv_"):
                server[name.removeprefix("nv_")] = v
        out: list[Point] = []
        for (model, version), f in models.items():
            fields: dict[str, Any] = dict(f)
            prev = self._prev.get((model, version))
            if prev is not None:
                fields.update(_rates(prev[1], f, timestamp - prev[0]))
            self._prev[(model, version)] = (timestamp, f)
            out.append(Point.make("triton", {"model": model, "version": version}, fields, timestamp))
        for gpu, f in gpus.items():
            out.append(Point.make("triton_gpu", {"gpu": gpu}, f, timestamp))
        if server:
            out.append(Point.make("triton_server", {}, server, timestamp))
        return out


def _rates(prev: dict[str, float], cur: dict[str, float], dt: float) -> dict[str, float]:
    def delta(k: str) -> float | None:
        if k not in cur or k not in prev or cur[k] < prev[k]:  # missing or reset (server restarted)
            return None
        return cur[k] - prev[k]

    out: dict[str, float] = {}
    req, inf, exe = delta("request_success"), delta("inference_count"), delta("exec_count")
    if dt > 0:
        if inf is not None:
            out["inferences_per_s"] = inf / dt
        if exe is not None:
            out["executions_per_s"] = exe / dt
        if req is not None:
            out["requests_per_s"] = req / dt
    if req:
        for src, dst in (("queue_duration_us", "avg_queue_ms"), ("compute_infer_duration_us", "avg_compute_ms"),
                         ("request_duration_us", "avg_request_ms")):
            d = delta(src)
            if d is not None:
                out[dst] = d / req / 1000.0
    if exe and inf is not None:
        out["avg_batch"] = inf / exe
    return out


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


class TritonMetricsCollector:
    """Scrapes ``url`` every ``interval_s`` in a thread and writes the points to ``sink``.

    A sink itself (write is a no-op) so the runner closes it with the others; a scrape
    failure (Triton restarting) is logged once per outage and counted, never raised.
    """

    def __init__(self, cfg: Any, sink: Any) -> None:
        self.url, self.interval_s = cfg.url, cfg.interval_s
        self.sink = sink
        self.parser = TritonMetricsParser()
        self.scrapes = 0
        self.failures = 0
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="triton-metrics", daemon=True)
        self._thread.start()

    def scrape_once(self) -> int:
        try:
            text = scrape(self.url, timeout=min(5.0, self.interval_s))
        except (OSError, urllib.error.URLError) as e:
            self.failures += 1
            if not self._failing:
                log.warning("cannot scrape Triton metrics at %s: %s (will keep trying)", self.url, e)
            self._failing = True
            return 0
        self._failing = False
        pts = self.parser.points(text, time.time())
        self.sink.write(pts)
        self.scrapes += 1
        return len(pts)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scrape_once()
            except Exception:  # noqa: BLE001 (never kill the thread: metrics are best effort)
                log.exception("Triton metrics scrape failed")

    def write(self, records: Iterable[Any]) -> None:  # records are not for us
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 6)
        try:  # the last interval, so a short run still has its rates
            self.scrape_once()
        except Exception:  # noqa: BLE001
            log.debug("final Triton metrics scrape failed", exc_info=True)

    def stats(self) -> dict:
        return {"scrapes": self.scrapes, "failures": self.failures}
