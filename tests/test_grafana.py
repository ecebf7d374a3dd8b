"""Grafana provisioning: every panel query of every dashboard returns data from a real InfluxDB.

A short pipeline-like run (every record type, two cameras, five minutes of frames; and a
store that links visits across cameras: visits, camera journeys, store KPIs, floor heatmap)
goes through the real InfluxSink into Debian's influxd (1.6.7, started by the fixture),
with retention policies created by the real setup command. Then each panel's InfluxQL
(extracted from the JSON, Grafana's macros filled in the way Grafana fills them) must
return at least one non-null value.
"""
from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from sinks.config import InfluxConfig, RetentionConfig
from sinks.influx import InfluxSink
from sinks.setup import setup_v1
from tests.fixtures.influx import (
    GRAFANA_DIR,
    dashboard_files,
    panel_targets,
    pipeline_records,
    run_panel_queries,
    variable_query,
)
from tests.store_helpers import store_records

GRAFANA = GRAFANA_DIR
DASHBOARDS = dashboard_files()
DB = "retail_dash"


@pytest.fixture(scope="module")
def populated(influxd_server, tmp_path_factory):
    cfg = InfluxConfig(enabled=True, url=influxd_server.url, database=DB, batch_size=2000, flush_interval_s=0.1,
                       spill_dir=tmp_path_factory.mktemp("spill"),
                       health_interval_s=0.5)  # the writer's own sink_health points feed a pipeline-health panel
    setup_v1(cfg, RetentionConfig())
    t0 = time.time() - 1800  # half an hour ago: inside every dashboard's default range
    with InfluxSink(cfg) as sink:
        for batch in pipeline_records(t0, seconds=300):
            sink.write(batch)
        for batch in store_records(t0, seconds=300):  # the store-level linker's records (visits/)
            sink.write(batch)
        assert sink.flush(timeout=30), sink.stats()
        stats = sink.stats()
    assert stats["dropped"] == 0 and stats["rejected"] == 0, stats
    return influxd_server, t0


def test_dashboards_are_generated_output():
    from configs.grafana.generate import render

    rendered = render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for p in DASHBOARDS:
        assert p.read_text() == rendered[p.name], f"{p} differs from configs/grafana/generate.py: regenerate it"


def test_dashboards_cover_the_analysts_views():
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"Store overview", "Checkout", "Heatmap and zone occupancy", "Alerts", "Pipeline health"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for p in DASHBOARDS:
        dash = json.loads(p.read_text())
        ids = [pn["id"] for pn in dash["panels"]]
        assert len(set(ids)) == len(ids), f"{p.name}: duplicate panel ids"
        for pn, t in panel_targets(dash):
            assert pn["datasource"]["uid"] == "influxdb-retail" and t["rawQuery"] is True, (p.name, pn["title"])
            # every measurement read is retention-policy qualified: works on 1.x RPs and 2.x DBRP mappings
            for m in re.findall(r'FROM\s+("[^"]+"(?:\."[^"]+")?)', t["query"]):
                assert m.count('"."') == 1, f"{p.name} / {pn['title']}: {m} is not \"rp\".\"measurement\""


def test_provisioning_files_point_at_dashboards_and_datasource():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "influxdb.yaml").read_text())
    (d,) = ds["datasources"]
    assert d["type"] == "influxdb" and d["uid"] == "influxdb-retail"
    assert d["jsonData"]["dbName"] == "${INFLUXDB_DATABASE}"
    # Grafana's own read-only login (sinks/setup_grafana.py creates it), no secret in the repo, never the
    # all-access token
    assert d["user"] == "${GRAFANA_INFLUXDB_USER}" and d["secureJsonData"] == {"password": "${GRAFANA_INFLUXDB_PASSWORD}"}
    assert "INFLUXDB_TOKEN" not in json.dumps(d)
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "retail.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/retail"


def test_pipeline_health_shows_the_influx_writers_own_counters():
    dash = json.loads((GRAFANA / "dashboards" / "pipeline_health.json").read_text())
    queries = {pn["title"]: t["query"] for pn, t in panel_targets(dash)}
    lost = queries["InfluxDB writer: points lost"]
    assert '"health"."sink_health"' in lost and all(f'"{f}"' in lost for f in ("dropped", "rejected", "spilled_total"))
    assert '"buffered"' in queries["InfluxDB writer: buffered and on disk"]


def test_store_overview_reads_the_store_level_measurements():
    dash = json.loads((GRAFANA / "dashboards" / "store_overview.json").read_text())
    queries = {pn["title"]: t["query"] for pn, t in panel_targets(dash)}
    conv = queries["Conversion rate"]
    assert '"journeys"."store_kpis"' in conv and 'sum("converted") / sum("visits")' in conv
    assert '"journeys"."store_kpis"' in queries["Visits"] and 'sum("visits")' in queries["Visits"]
    assert '"avg_visit_duration_s"' in queries["Mean visit duration"]
    assert 'last("in_store")' in queries["In store now"]
    assert '"journeys"."store_paths"' in queries["Top paths"] and 'top("visits", "path", 10)' in queries["Top paths"]
    assert '"heatmaps"."floor_heatmap_rows"' in queries["Floor heatmap (latest)"]
    for title in ("Conversion rate", "Visits", "Mean visit duration", "In store now", "Top paths",
                  "Floor heatmap (latest)"):
        assert '"store" =~ /^$store$/' in queries[title], title
    assert [v["name"] for v in dash["templating"]["list"]] == ["stream", "store"]


def test_store_panels_compute_the_store_kpis(populated):
    """Conversion = converted / visits over the range; duration weighted by visits; the top paths; the grid."""
    server, t0 = populated
    dash = json.loads((GRAFANA / "dashboards" / "store_overview.json").read_text())
    results = {pn["title"]: server.values(q, DB)
               for pn, _, q, _ in run_panel_queries(server, DB, dash, t0 - 600, "all", intervals=("1m",))}
    assert results["Conversion rate"][0][1] == pytest.approx(2 / 3 * 100)  # store_records: 2 of 3 per window
    assert results["Mean visit duration"][0][1] == pytest.approx(95.5)
    assert results["In store now"][0][1] == 7
    assert sorted((r[2], r[1]) for r in results["Top paths"]) == [("entrance>aisle 2,b=c", 5),
                                                                   ("entrance>aisle-1>checkout", 15)]
    assert sum(r[1] for r in results["Visits"]) == 15
    grid = [[v for v in r[1:]] for r in results["Floor heatmap (latest)"]]
    assert grid == [[0.0, 0.25, 1.0], [0.5, 0.0, 0.0]]


def test_template_variables_return_values(populated):
    server, t0 = populated
    for p in DASHBOARDS:
        for var in json.loads(p.read_text())["templating"]["list"]:
            rows = server.values(variable_query(var, t0 - 600), DB)
            assert rows, f"{p.name}: variable ${var['name']} ({var['query']}) has no values"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.stem)
@pytest.mark.parametrize("selection", ["all", "chosen"])
def test_every_panel_query_returns_data(populated, dashboard, selection):
    server, t0 = populated
    dash = json.loads(dashboard.read_text())
    results = run_panel_queries(server, DB, dash, t0 - 600, selection, intervals=("10s", "1m"))
    empty = [f"{pn['title']} ({t['refId']}):\n{q}" for pn, t, q, ok in results if not ok]
    assert not empty, f"{dashboard.name}: panel queries returned no data:\n" + "\n".join(empty)
    assert len(results) >= 2 * len(dash["panels"])
