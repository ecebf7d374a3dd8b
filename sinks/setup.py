"""Create the storage the InfluxDB sink writes to, with the retention of configs/app_config.yaml.

    python -m sinks.setup --config configs/app_config.yaml [--dry-run]   (make influx-setup)
    python -m sinks.setup --version 2 --url http://localhost:8086        (a 2.x server; token from $INFLUXDB_TOKEN)

InfluxDB 1.x (``sinks.influxdb.version: 1``): the database, and one retention policy
per data type (``detections`` 7d, ``journeys`` 90d, ...); existing policies get their
duration altered. InfluxDB 2.x (``version: 2``, or ``--version 2`` / ``RVA_INFLUXDB_VERSION=2``):
one bucket per data type (``<bucket_prefix><data type>``) with an ``expire`` rule
(``everySeconds: 0`` = keep forever: an empty rule list would leave an existing bucket's
expiry as it was), and a DBRP mapping ``<database>/<data type> -> bucket`` so the v1
``/write`` and ``/query`` APIs (and the Grafana dashboards' InfluxQL) reach it; 2.x never
gets ``CREATE DATABASE``. With ``GRAFANA_INFLUXDB_PASSWORD`` set, 2.x also gets a read-only v1
login for Grafana (user ``GRAFANA_INFLUXDB_USER``, default ``grafana``; read on those
buckets only; ``sinks.setup_grafana``). Idempotent: run it again after changing retention.

Errors are ``SetupError`` with one line naming the problem; a refused token or a missing
organization on 2.x says why that usually happens with docker compose (the container's
init settings apply on its first start only).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

from core.config import ConfigError
from sinks import setup_grafana as setup_grafana_mod
from sinks.config import InfluxConfig, RetentionConfig, load_sinks_config
from sinks.line_protocol import DATA_TYPES

log = logging.getLogger("sinks.setup")

# the default RP / DBRP: what an unqualified InfluxQL query (FROM "x" without "rp".) reads
DEFAULT_DATA_TYPE = "health"


SetupError = setup_grafana_mod.SetupError  # one error type for the whole setup (defined there: no import circle)
setup_grafana = setup_grafana_mod.setup_grafana


# docker compose: DOCKER_INFLUXDB_INIT_* are read on the container's first start only (docs: the influxdb
# image's "Automated setup"); a token/org changed in .env later is not the server's
INIT_HINT = ("with docker compose, the influxdb container applies INFLUXDB_TOKEN, INFLUXDB_ORG and the password "
             "from .env on its first start only: put back the values it was first started with, or start over "
             "with `docker compose down -v && docker compose up -d` (deletes the stored data)")


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influxql(cfg: InfluxConfig, q: str, db: str | None = None) -> list[dict]:
    """POST an InfluxQL statement to ``/query``; raises SetupError with the server's message."""
    params = {"q": q}
    if db:
        params["db"] = db
    headers = {}
    if cfg.token:
        headers["Authorization"] = f"Token {cfg.token}"
    elif cfg.username and cfg.password:
        params.update(u=cfg.username, p=cfg.password)
    req = urllib.request.Request(f"{cfg.url}/query", data=urllib.parse.urlencode(params).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_s) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SetupError(f"{cfg.url}: {q}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from None
    except OSError as e:
        raise SetupError(f"{cfg.url}: cannot reach InfluxDB: {e}") from None
    for res in body.get("results", []):
        if "error" in res:
            raise SetupError(f"{cfg.url}: {q}: {res['error']}")
    return body.get("results", [])


def plan_v1(cfg: InfluxConfig, retention: RetentionConfig, existing: dict[str, str]) -> list[str]:
    """InfluxQL statements that make the server match the config (``existing``: rp name -> duration)."""
    db = _quote(cfg.database)
    out = [f"CREATE DATABASE {db}"]
    for dt in DATA_TYPES:
        dur = retention.duration(dt)
        verb = "ALTER" if dt in existing else "CREATE"
        stmt = f"{verb} RETENTION POLICY {_quote(dt)} ON {db} DURATION {dur}"
        out.append(stmt + (" REPLICATION 1" if verb == "CREATE" else ""))
    return out


def setup_v1(cfg: InfluxConfig, retention: RetentionConfig, dry_run: bool = False) -> list[str]:
    existing: dict[str, str] = {}
    if not dry_run:
        influxql(cfg, f"CREATE DATABASE {_quote(cfg.database)}")
        res = influxql(cfg, "SHOW RETENTION POLICIES", db=cfg.database)
        for s in (res[0].get("series") or []) if res else []:
            for row in s.get("values") or []:
                existing[row[0]] = row[1]
    stmts = plan_v1(cfg, retention, existing)
    for q in stmts:
        log.info("%s", q)
        if not dry_run:
            influxql(cfg, q)
    return stmts


def setup_v2(cfg: InfluxConfig, retention: RetentionConfig, dry_run: bool = False) -> list[str]:
    """Buckets with expiry + DBRP mappings through influxdb-client (needs a token with write access)."""
    from influxdb_client import BucketRetentionRules, InfluxDBClient
    from influxdb_client.domain.dbrp_create import DBRPCreate
    from influxdb_client.service.dbr_ps_service import DBRPsService

    actions: list[str] = []
    plan = [(dt, cfg.bucket(dt), retention.seconds(dt)) for dt in DATA_TYPES]
    if dry_run:
        return [f"bucket {b} expire {s}s; dbrp {cfg.database}/{dt} -> {b}" for dt, b, s in plan]
    if not cfg.token:
        raise SetupError("InfluxDB 2.x needs a token: set the environment variable named by sinks.influxdb.token_env")
    with InfluxDBClient(url=cfg.url, token=cfg.token, org=cfg.org, timeout=int(cfg.timeout_s * 1000)) as client:
        org = _find_org(client, cfg)
        org_id = org.id
        buckets = client.buckets_api()
        dbrps = DBRPsService(client.api_client)
        for dt, name, secs in plan:
            # 0 = keep forever: an expire rule with everySeconds 0 (2.x's bucket update ignores an empty rule list)
            rules = [BucketRetentionRules(type="expire", every_seconds=secs)]
            b = buckets.find_bucket_by_name(name)
            if b is None:
                b = buckets.create_bucket(bucket_name=name, retention_rules=rules, org=org,
                                          description=f"retail vision analytics: {dt}")
                actions.append(f"created bucket {name} (expire {secs}s)")
            else:
                b.retention_rules = rules
                buckets.update_bucket(b)
                actions.append(f"updated bucket {name} (expire {secs}s)")
            found = dbrps.get_dbr_ps(org_id=org_id, db=cfg.database, rp=dt)
            if not (found and found.content):
                dbrps.post_dbrp(DBRPCreate(org_id=org_id, bucket_id=b.id, database=cfg.database,
                                           retention_policy=dt, default=(dt == DEFAULT_DATA_TYPE)))
                actions.append(f"mapped {cfg.database}/{dt} -> {name}")
    for a in actions:
        log.info("%s", a)
    return actions


def _find_org(client, cfg: InfluxConfig):
    from influxdb_client.rest import ApiException

    try:
        orgs = client.organizations_api().find_organizations(org=cfg.org)
    except ApiException as e:
        if e.status in (401, 403):
            raise SetupError(f"{cfg.url}: InfluxDB refused the token (HTTP {e.status}, the variable named by "
                             f"sinks.influxdb.token_env): {INIT_HINT}") from None
        if e.status == 404:  # 2.x answers an unknown org name with 404 "organization name ... not found"
            orgs = []
        else:
            raise SetupError(f"{cfg.url}: cannot list organization {cfg.org!r}: HTTP {e.status}: {e.body}") from None
    except Exception as e:  # noqa: BLE001
        raise SetupError(f"{cfg.url}: cannot list organization {cfg.org!r}: {e}") from None
    if not orgs:
        raise SetupError(f"{cfg.url}: organization {cfg.org!r} not found (sinks.influxdb.org, "
                         f"RVA_INFLUXDB_ORG): {INIT_HINT}")
    return orgs[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.setup", description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/app_config.yaml"))
    ap.add_argument("--url", default=None, help="override sinks.influxdb.url")
    ap.add_argument("--version", type=int, choices=(1, 2), default=None,
                    help="override sinks.influxdb.version (2: buckets + DBRP mappings, never CREATE DATABASE; "
                         "also RVA_INFLUXDB_VERSION)")
    ap.add_argument("--org", default=None, help="override sinks.influxdb.org (2.x; also RVA_INFLUXDB_ORG)")
    ap.add_argument("--dry-run", action="store_true", help="print what would be done")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_sinks_config(a.config)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    # the command line wins over the config file and the RVA_INFLUXDB_* environment
    flags = {"url": a.url.rstrip("/") if a.url else None, "version": a.version, "org": a.org}
    influx = replace(cfg.influxdb, **{k: v for k, v in flags.items() if v is not None})
    if not influx.enabled:
        log.warning("sinks.influxdb.enabled is false in %s: setting up %s anyway", a.config, influx.url)
    try:
        done = (setup_v2 if influx.version == 2 else setup_v1)(influx, cfg.retention, a.dry_run)
        if influx.version == 2:
            done += setup_grafana(influx, dry_run=a.dry_run)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    for line in done:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
