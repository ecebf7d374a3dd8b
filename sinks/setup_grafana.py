"""A read-only InfluxDB 2.x login for Grafana, so Grafana never holds the all-access token.

    setup_grafana(cfg)            # cfg: sinks.config.InfluxConfig (version 2, the admin token)
    -> ["grafana read-only login 'grafana': created (read on 8 buckets)", ...]

Grafana's datasource speaks InfluxQL through 2.x's v1 compatibility API, which accepts v1
logins (user + password, sent as ``u``/``p``): a *v1 authorization* whose permissions are
``read`` on each data-type bucket (``<bucket_prefix><data type>``), nothing else. It is what
``influx v1 auth create --read-bucket <id> ... --username grafana`` makes, through the same
API (``/private/legacy/authorizations``, InfluxDB 2.7 ``v1/authorization/http_server.go``):
the login is created if missing (re-created if its buckets changed), and its password is set
every run (a password changed in ``.env`` takes effect on the next ``influx-setup``).

Settings come from the environment (docker compose passes them from ``.env``):
``GRAFANA_INFLUXDB_PASSWORD`` (unset or empty: nothing is done, with a log line) and
``GRAFANA_INFLUXDB_USER`` (default ``grafana``). Errors: ``sinks.setup.SetupError`` naming
the request and the server's message.

Imports: the standard library, ``sinks.config`` and ``sinks.line_protocol``; ``sinks.setup`` imports this module
(``SetupError`` is defined here and re-exported there), never the other way round.
"""
from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request

from sinks.config import InfluxConfig
from sinks.line_protocol import DATA_TYPES

log = logging.getLogger("sinks.setup")

LEGACY_AUTHS = "/private/legacy/authorizations"
USER_ENV, PASSWORD_ENV = "GRAFANA_INFLUXDB_USER", "GRAFANA_INFLUXDB_PASSWORD"
DESCRIPTION = "retail vision analytics: Grafana, read-only"


class SetupError(RuntimeError):
    """One line naming what failed and the server's answer."""


def api(cfg: InfluxConfig, method: str, path: str, body: dict | None = None,
        query: dict | None = None) -> dict:
    """One JSON request to the 2.x API with the admin token; raises SetupError on a non-2xx answer."""
    url = cfg.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Token {cfg.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_s) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise SetupError(f"{cfg.url}: {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") \
            from None
    except OSError as e:
        raise SetupError(f"{cfg.url}: cannot reach InfluxDB: {e}") from None
    return json.loads(raw) if raw else {}


def setup_grafana(cfg: InfluxConfig, dry_run: bool = False) -> list[str]:
    """Create/refresh Grafana's read-only v1 login on a 2.x server (after setup_v2 made the buckets)."""
    user = os.environ.get(USER_ENV) or "grafana"
    password = os.environ.get(PASSWORD_ENV) or ""
    if not password:
        log.info("%s is not set: no read-only Grafana login created", PASSWORD_ENV)
        return []
    if dry_run:
        return [f"grafana read-only login {user!r}: read on {', '.join(cfg.bucket(dt) for dt in DATA_TYPES)}"]
    orgs = api(cfg, "GET", "/api/v2/orgs", query={"org": cfg.org}).get("orgs") or []
    if not orgs:
        raise SetupError(f"{cfg.url}: organization {cfg.org!r} not found (sinks.influxdb.org)")
    org_id = orgs[0]["id"]
    ids = []
    for dt in DATA_TYPES:
        found = api(cfg, "GET", "/api/v2/buckets", query={"name": cfg.bucket(dt), "orgID": org_id}).get("buckets")
        if not found:
            raise SetupError(f"{cfg.url}: bucket {cfg.bucket(dt)!r} not found: run the bucket setup first")
        ids.append(found[0]["id"])
    perms = [{"action": "read", "resource": {"type": "buckets", "id": i, "orgID": org_id}} for i in ids]
    want = sorted(ids)
    existing = api(cfg, "GET", LEGACY_AUTHS, query={"token": user}).get("authorizations") or []
    action = "kept"
    auth = None
    for a in existing:
        have = sorted(p["resource"].get("id") for p in a.get("permissions", []) if p.get("action") == "read")
        writes = [p for p in a.get("permissions", []) if p.get("action") != "read"]
        if auth is None and have == want and not writes and a.get("status", "active") == "active":
            auth = a
        else:  # other buckets, or more than read: replace it (its permissions cannot be edited)
            api(cfg, "DELETE", f"{LEGACY_AUTHS}/{a['id']}")
            action = "re-created"
    if auth is None:
        auth = api(cfg, "POST", LEGACY_AUTHS, {"orgID": org_id, "token": user, "description": DESCRIPTION,
                                                "permissions": perms})
        action = "created" if action == "kept" else action
    api(cfg, "POST", f"{LEGACY_AUTHS}/{auth['id']}/password", {"password": password})
    msg = f"grafana read-only login {user!r}: {action} (read on {len(ids)} buckets), password set"
    log.info("%s", msg)
    return [msg]
