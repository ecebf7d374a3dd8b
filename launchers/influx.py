"""Run a real InfluxDB 1.x server locally, on loopback, from Debian's ``influxd`` (package ``influxdb``).

``make setup`` apt-installs it (InfluxDB 1.6.7). The server runs from its own config file
with meta/data/wal in ``root``, HTTP and RPC on free loopback ports, reporting, query and
HTTP logs off. Used by the tests (``tests/fixtures/influx.py``) and benchmarks
(``benchmarks/sinks.py``); the docker compose deployment runs InfluxDB 2.x instead.

    server = start_influx(Path("/tmp/influxd"))       # waits for /ping; InfluxServer
    server.url                                         # http://127.0.0.1:<port>
    server.values('SELECT count(*) FROM "m"', db)      # InfluxQL rows (query(): the raw results)
    server.stop(); server.start()                      # same port, same data: an outage and a recovery
    server.stop()

``start()`` raises ``InfluxStartError`` when the server cannot start: naming the missing
binary and how to install it, the port another server already holds, or with the exit
code / timeout and the tail of its log (``<root>/influxd.log``). ``stop()`` terminates it (SIGTERM, then SIGKILL after 15 s) and
waits until the port no longer answers, so a restart can bind it again.

Imports: the standard library only.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from launchers.ports import free_port

__all__ = ["InfluxStartError", "InfluxServer", "start_influx", "find_influxd", "free_port"]

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[coordinator]
  log-queries-after = "0s"
[retention]
  enabled = true
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
"""


class InfluxStartError(RuntimeError):
    """influxd is missing, exited, or did not answer /ping in time (the message says which, with its log)."""


def find_influxd() -> str:
    """Path of the ``influxd`` binary, or InfluxStartError saying how to install it."""
    exe = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None)
    if exe is None:
        raise InfluxStartError("influxd not found: install Debian's InfluxDB 1.x server "
                               "(`apt-get install influxdb`, or `make setup`)")
    return exe


class InfluxServer:
    """One influxd in ``root`` (config, data, log); ``start()``/``stop()`` keep the port and the data."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root / "influxd.log"
        self.conf = self.root / "influxd.conf"
        self.proc: subprocess.Popen | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(_CONFIG.format(root=self.root, port=self.port, rpc_port=self.rpc_port))

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 30.0) -> "InfluxServer":
        """Start (no-op when running) and wait for /ping; raises InfluxStartError with the log's tail."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        exe = find_influxd()
        if self.ping():  # /ping would be answered by that server, not by ours
            raise InfluxStartError(f"{self.url} already answers /ping: another InfluxDB holds port {self.port}")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe, "-config", str(self.conf)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfluxStartError(f"influxd exited with {self.proc.returncode}; log {self.log_path}:\n"
                                       f"{self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise InfluxStartError(f"influxd did not answer /ping on {self.url} within {timeout:g}s; log "
                               f"{self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate (kill after 15 s) and wait until the port no longer answers. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        # the port must really be free before a restart binds it again
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.ping(timeout=0.2):
            time.sleep(0.05)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------- HTTP
    def ping(self, timeout: float = 0.5) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=timeout) as r:
                return r.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def query(self, q: str, db: str | None = None, epoch: str | None = "ns") -> list[dict]:
        """Run InfluxQL; returns the ``results`` list. Raises RuntimeError with the server's error text."""
        params = {"q": q}
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        data = urllib.parse.urlencode(params).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.url}/query", data=data), timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"InfluxQL {q!r}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None
        for res in body.get("results", []):
            if "error" in res:
                raise RuntimeError(f"InfluxQL {q!r}: {res['error']}")
        return body.get("results", [])

    def values(self, q: str, db: str | None = None) -> list[list]:
        """All rows of all series of the first statement."""
        res = self.query(q, db)
        rows: list[list] = []
        for s in (res[0].get("series") or []) if res else []:
            rows.extend(s.get("values") or [])
        return rows

    def scalar(self, q: str, db: str | None = None):
        """The first value of the first row (None when there is none)."""
        rows = self.values(q, db)
        return rows[0][1] if rows else None

    def count_points(self, db: str, measurements: Mapping[str, str]) -> int:
        """Points stored in ``db``: per measurement (name -> retention policy), the count of its
        most complete field."""
        total = 0
        for meas, rp in measurements.items():
            rows = self.values(f'SELECT count(*) FROM "{rp}"."{meas}"', db)
            if rows:
                total += max(v for v in rows[0][1:] if v is not None)
        return total


def start_influx(root: Path, port: int | None = None, timeout: float = 30.0) -> InfluxServer:
    """An InfluxServer in ``root`` (created if missing) on ``port`` (default: a free one), started."""
    return InfluxServer(root, port).start(timeout)
