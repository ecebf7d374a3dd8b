"""Write transports for InfluxSink: one request of line protocol in, success or a typed failure out.

    t = make_transport(cfg)                  # cfg: sinks.config.InfluxConfig
    t.send("detections", b"m,tag=v f=1i 1700000000000000000\n")   # data type -> retention policy / bucket
    t.close()

``send()`` returns when the server accepted the body, or raises:

- ``RetryableError``: the server is away or unhappy now (connection refused/reset,
  timeouts, 401/403/404, 429, 5xx); the same body may succeed later. ``retry_after``: the
  seconds the server asked for in ``Retry-After`` (429/503; None without one).
- ``MissingStorageError`` (a ``RetryableError``): 404 (1.x: 500 for a retention policy)
  because the database / retention policy (1.x) or the DBRP mapping / bucket (2.x) does not exist: ``make influx-setup`` has
  not run against this server. Retried like any outage (setup may run meanwhile), but the
  sink says so clearly.
- ``RejectedError``: the server refused points (400: bad line, field type conflict; 422:
  2.x's partial write, e.g. beyond retention; 413: body too large); resending would not
  help. ``refused`` is the number of points the server says it dropped (parsed from
  ``dropped=N``, which 1.x's 400 and 2.x's 422 both carry), None for the whole request.
  ``too_large`` (413): the sink splits the batch and sends the halves.

Two transports, one schema: ``V1Transport`` posts to ``/write?db=<database>&rp=<data
type>&precision=ns`` (InfluxDB 1.x, and 2.x's v1 compatibility API with DBRP mappings)
over one keep-alive connection; ``V2Transport`` uses ``influxdb-client``'s synchronous
write API to the bucket ``<bucket_prefix><data type>`` (its own batching and retries are
off: retrying and spilling are the sink's job).

Imports: the standard library, ``sinks.config`` (InfluxConfig), and ``influxdb_client``
lazily for version 2. Never the sink itself, monitoring or clients.
"""
from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import logging
import re
import time
import urllib.parse
from typing import Protocol

from sinks.config import InfluxConfig

__all__ = ["RetryableError", "MissingStorageError", "RejectedError", "retry_after_s", "Transport", "V1Transport", "V2Transport", "make_transport"]

log = logging.getLogger("sinks.influx")


class RetryableError(Exception):
    """The server is away or unhappy now; the same batch may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked for (Retry-After), None: our own backoff


class MissingStorageError(RetryableError):
    """404: the database / retention policy (1.x) or DBRP mapping / bucket (2.x) is not there (setup not run)."""


class RejectedError(Exception):
    """The server refused points in the batch (bad data); resending would not help."""

    def __init__(self, message: str, refused: int | None = None, too_large: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # None: the whole request
        self.too_large = too_large  # 413: the body was too large (the sink splits the batch)


class Transport(Protocol):
    def send(self, data_type: str, body: bytes) -> None: ...
    def close(self) -> None: ...


_DROPPED_RE = re.compile(r"dropped=(\d+)")
# 404 bodies that mean "setup has not run": 1.x `database not found: "retail"` / `retention policy not found`,
# 2.x's v1 API `no dbrp mapping found` (or a bucket not found), 2.x's /api/v2/write `bucket "..." not found`
_MISSING_RE = re.compile(r"database not found|retention policy not found|dbrp|bucket[^\n]*not found", re.I)
RETRY_AFTER_MAX_S = 600.0  # a Retry-After beyond this is taken as this (a misconfigured proxy must not stall us for days)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP-date, RFC 9110 10.2.3); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        secs = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    return min(max(secs, 0.0), RETRY_AFTER_MAX_S)


def classify(status: int, text: str, retry_after: str | None, where: str) -> Exception:
    """The exception for a failed write answer (both transports; ``where``: database/rp or bucket, for messages)."""
    text = text.strip()
    if status in (400, 422):  # 422: 2.x partial write (beyond retention, type conflict): the others were stored
        m = _DROPPED_RE.search(text)
        return RejectedError(f"HTTP {status}: {text[:300]}", int(m.group(1)) if m else None)
    if status == 413:
        return RejectedError(f"HTTP 413 (request too large): {text[:200]}", too_large=True)
    # 1.6.7 answers a missing retention policy with 500 `retention policy not found: <rp>`
    if status in (404, 500) and _MISSING_RE.search(text):
        return MissingStorageError(
            f"HTTP 404: {where} does not exist on the server ({text[:200]}): run `make influx-setup` "
            "(python -m sinks.setup) against it: 1.x needs the database and retention policies, "
            "2.x the buckets and the DBRP mappings (database/retention policy -> bucket) that its v1 API writes through")
    return RetryableError(f"HTTP {status}: {text[:300]}",
                          retry_after_s(retry_after) if status in (429, 503) else None)


class V1Transport:
    """Line protocol to ``POST /write?db=<database>&rp=<data type>&precision=ns`` (keep-alive)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        u = urllib.parse.urlsplit(cfg.url)
        self._https = u.scheme == "https"
        self._host = u.hostname or "localhost"
        self._port = u.port or (443 if self._https else 8086)
        self._prefix = u.path.rstrip("/")
        self._timeout = cfg.timeout_s
        self._db = cfg.database
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if cfg.token:  # 2.x v1 API accepts the token
            self._headers["Authorization"] = f"Token {cfg.token}"
        elif cfg.username and cfg.password:
            cred = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {cred}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def send(self, data_type: str, body: bytes) -> None:
        q = urllib.parse.urlencode({"db": self._db, "rp": data_type, "precision": "ns"})
        try:
            conn = self._connection()
            conn.request("POST", f"{self._prefix}/write?{q}", body=body, headers=self._headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise RetryableError(f"{type(e).__name__}: {e}") from None
        if resp.status in (200, 204):
            return
        # 401/403/404 (auth, database not created yet), 429, 5xx: keep the points, retry, shout in the log
        raise classify(resp.status, text, resp.getheader("Retry-After"),
                       f"database {self._db!r} / retention policy {data_type!r}") from None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class V2Transport:
    """InfluxDB 2.x through ``influxdb-client`` (token, org, bucket ``<prefix><data type>``)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        if not cfg.token:
            log.warning("InfluxDB 2.x without a token: set the environment variable named by sinks.influxdb.token_env")
        self._cfg = cfg
        # retries=False: retrying is this module's job (with spill), the client's urllib3 must not hide failures
        self._client = InfluxDBClient(url=cfg.url, token=cfg.token or "", org=cfg.org,
                                      timeout=int(cfg.timeout_s * 1000), retries=False)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def send(self, data_type: str, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._cfg.bucket(data_type), org=self._cfg.org, record=body,
                            write_precision="ns")
        except ApiException as e:
            text = (e.body or e.reason or "")
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            headers = e.headers or {}
            raise classify(int(e.status or 0), str(text), headers.get("Retry-After"),
                           f"bucket {self._cfg.bucket(data_type)!r} (org {self._cfg.org!r})") from None
        except Exception as e:  # noqa: BLE001 (urllib3 connection errors, timeouts)
            raise RetryableError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()
        with contextlib.suppress(Exception):
            self._client.close()


def make_transport(cfg: InfluxConfig) -> Transport:
    return V2Transport(cfg) if cfg.version == 2 else V1Transport(cfg)
