"""Write the provisioned Grafana dashboards (configs/grafana/dashboards/*.json).

    python -m configs.grafana.generate        # or: python configs/grafana/generate.py

The JSON files are committed (Grafana reads them from the compose volume); this script
is their source, so the five dashboards share one style and every query reads the
measurements of docs/influxdb.md. tests/test_grafana.py checks the files equal this
output and runs every panel query against a real InfluxDB.

All queries are InfluxQL with retention-policy-qualified measurements
(``"<data type>"."<measurement>"``): InfluxDB 1.x resolves them directly, 2.x through
the DBRP mappings ``make influx-setup`` creates, so one dashboard serves both.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "influxdb", "uid": "influxdb-retail"}
STREAM = '"stream" =~ /^$stream$/'


def _var(name: str, label: str, query: str) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": query,
            "definition": query, "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1, "hide": 0}


def _tag_values(tag: str, field: str, rp_measurement: str) -> str:
    """A tag's values in the time range, from the retention policy / bucket that holds the measurement.

    Not ``SHOW TAG VALUES FROM "rp"."m"``: through 2.x's v1 API that reads the bucket of the
    database's *default* DBRP mapping whatever the ``"rp".`` prefix says (influxdata/influxdb#23058;
    here ``health``), so it finds no lanes or zones. An rp-qualified SELECT is routed by that rp's
    DBRP mapping on 2.x and reads that RP on 1.x; the subquery turns the tag into a column that
    DISTINCT can take (the outer value is column 1, as Grafana reads it).
    """
    return f'SELECT DISTINCT("{tag}") FROM (SELECT "{field}", "{tag}" FROM {rp_measurement} WHERE $timeFilter)'


# stream: SHOW TAG VALUES is fine on both: the default RP/bucket (health) has every camera's stream_health
STREAM_VAR = _var("stream", "Camera", 'SHOW TAG VALUES WITH KEY = "stream"')
LANE_VAR = _var("lane", "Lane", _tag_values("lane", "queue_length", '"queue_metrics"."queue"'))
ZONE_VAR = _var("zone", "Zone", _tag_values("zone", "occupancy", '"occupancy"."zone_occupancy"'))
STORE_VAR = _var("store", "Store", _tag_values("store", "visits", '"journeys"."store_kpis"'))
STORE = '"store" =~ /^$store$/'


class _Layout:
    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos


def _target(query: str, ref: str, fmt: str) -> dict:
    return {"refId": ref, "datasource": DS, "rawQuery": True, "query": query, "resultFormat": fmt}


def panel(lay: _Layout, kind: str, title: str, queries: list[str], *, w: int = 12, h: int = 8, unit: str = "short",
          description: str = "", fmt: str | None = None, options: dict | None = None,
          alias: str | None = None) -> dict:
    fmt = fmt or ("table" if kind == "table" else "time_series")
    targets = [_target(q, chr(ord("A") + i), fmt) for i, q in enumerate(queries)]
    if alias:
        for t in targets:
            t["alias"] = alias
    p = {"id": lay.next_id, "type": kind, "title": title, "description": description, "datasource": DS,
         "gridPos": lay.place(w, h), "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": options or {}}
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                  "spanNulls": True}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"},
                        **(options or {})}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", **(options or {})}
    if kind == "bargauge":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "orientation": "horizontal", "displayMode": "gradient", **(options or {})}
    lay.next_id += 1
    return p


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict],
              time_from: str = "now-12h") -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["retail-vision"],
        "editable": False, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": time_from, "to": "now"}, "timezone": "browser",
        "templating": {"list": variables}, "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["retail-vision"], "asDropdown": True, "title": "Retail dashboards"}],
        "panels": panels,
    }


def store_overview() -> dict:
    L = _Layout()
    ps = [
        panel(L, "stat", "Visitors in (footfall)", [
            f'SELECT sum("count_in") FROM "footfall"."footfall" WHERE {STREAM} AND $timeFilter'],
            w=6, h=5, description="Line crossings into the store over the selected time range."),
        panel(L, "stat", "Conversion rate", [
            f'SELECT sum("converted") / sum("visits") * 100 FROM "journeys"."store_kpis" WHERE {STORE} '
            'AND $timeFilter'],
            w=6, h=5, unit="percent",
            description="The store's conversion: converted visits / visits (a visit follows one customer across "
                        "cameras, entrance to exit) that ended in the selected time range."),
        panel(L, "stat", "Average visit", [
            f'SELECT mean("duration_s") FROM "journeys"."journeys" WHERE {STREAM} AND $timeFilter'],
            w=6, h=5, unit="s"),
        panel(L, "stat", "Cart or basket", [
            f'SELECT mean("cart_detected") * 100 FROM "journeys"."journeys" WHERE {STREAM} AND $timeFilter'],
            w=6, h=5, unit="percent", description="Share of journeys with a cart or basket associated."),
        panel(L, "timeseries", "Footfall in / out", [
            f'SELECT sum("count_in") AS "in", sum("count_out") AS "out" FROM "footfall"."footfall" '
            f'WHERE {STREAM} AND $timeFilter GROUP BY time($__interval) fill(0)'], w=12),
        panel(L, "timeseries", "Occupancy", [
            f'SELECT last("occupancy") FROM "footfall"."footfall" WHERE {STREAM} AND $timeFilter '
            'GROUP BY time($__interval), "stream" fill(previous)'], w=12, alias="$tag_stream"),
        panel(L, "timeseries", "Conversion rate and journeys", [
            f'SELECT mean("converted") * 100 AS "conversion %" FROM "journeys"."journeys" WHERE {STREAM} '
            'AND $timeFilter GROUP BY time($__interval) fill(none)',
            f'SELECT count("duration_s") AS "journeys" FROM "journeys"."journeys" WHERE {STREAM} AND $timeFilter '
            'GROUP BY time($__interval) fill(0)'], w=12),
        panel(L, "bargauge", "Average dwell by zone", [
            f'SELECT mean("dwell_s") FROM "journeys"."zone_dwell" WHERE {STREAM} AND $timeFilter GROUP BY "zone"'],
            w=12, unit="s", alias="$tag_zone"),
        panel(L, "timeseries", "People and objects per frame, by class", [
            f'SELECT mean("count") FROM "detections"."detections" WHERE {STREAM} AND $timeFilter '
            'GROUP BY time($__interval), "class" fill(0)'], w=24, alias="$tag_class",
            description="Detections per frame, averaged over the interval (detections are stored as per-frame "
                        "counts per class, not boxes)."),
        panel(L, "timeseries", "Visits", [
            f'SELECT sum("visits") AS "visits", sum("converted") AS "converted" FROM "journeys"."store_kpis" '
            f'WHERE {STORE} AND $timeFilter GROUP BY time($__interval) fill(0)'], w=12,
            description="Store visits (one customer across cameras) that ended in each interval, and how many "
                        "of them converted."),
        panel(L, "stat", "Mean visit duration", [
            # weighted by the visits of each KPI window (a window without visits reports 0 s)
            'SELECT sum("seconds") / sum("visits") FROM (SELECT "avg_visit_duration_s" * "visits" AS "seconds", '
            f'"visits" FROM "journeys"."store_kpis" WHERE {STORE} AND $timeFilter)'],
            w=6, unit="s", description="Mean duration of the store visits that ended in the selected time range."),
        panel(L, "stat", "In store now", [
            f'SELECT last("in_store") FROM "journeys"."store_kpis" WHERE {STORE} AND $timeFilter'],
            w=6, description="Open store visits at the latest KPI report."),
        panel(L, "table", "Top paths", [
            'SELECT top("visits", "path", 10) AS "visits" FROM (SELECT sum("visits") AS "visits" '
            f'FROM "journeys"."store_paths" WHERE {STORE} AND $timeFilter GROUP BY "path")'], w=12, h=10,
            description="The 10 zone sequences (across cameras) most visits followed in the selected time range "
                        "(summed over the KPI windows' top paths).",
            options={"showHeader": True, "sortBy": [{"displayName": "visits", "desc": True}]}),
        _floor_heatmap_panel(L),
    ]
    return dashboard("retail-store-overview", "Store overview",
                     "Footfall, occupancy, conversion and dwell by zone; store visits across cameras, their paths "
                     "and the floor heatmap.", ps, [STREAM_VAR, STORE_VAR])


def _floor_heatmap_panel(L: _Layout) -> dict:
    """The latest floor heatmap grid of the store: one table row per grid row (``floor_heatmap_rows``),
    one column per grid column, each cell coloured by its value (0..1) so the table reads as the floor
    plan seen from above (row 000 at the top of the plan). PNG overlays on the plan are in outputs/."""
    p = panel(L, "table", "Floor heatmap (latest)", [
        f'SELECT last(*) FROM "heatmaps"."floor_heatmap_rows" WHERE {STORE} AND $timeFilter GROUP BY "row"'],
        w=12, h=10, unit="none",
        description="Where people were on the store floor across all cameras (cells of the floor plan, "
                    "normalised to the hottest cell; time-decayed), from the latest report. Rows run down "
                    "the plan, columns across it.",
        options={"showHeader": False, "cellHeight": "sm", "footer": {"show": False}})
    p["fieldConfig"]["defaults"].update(
        min=0, max=1, decimals=2, color={"mode": "continuous-BlYlRd"},
        custom={"align": "center", "cellOptions": {"type": "color-background", "mode": "basic"}, "minWidth": 20})
    p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "row": True}}},
                            {"id": "renameByRegex", "options": {"regex": "last_c(\\d+)", "renamePattern": "$1"}}]
    return p


def checkout() -> dict:
    L = _Layout()
    lane = '"lane" =~ /^$lane$/'
    ps = [
        panel(L, "timeseries", "Queue length", [
            f'SELECT mean("queue_length") FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter '
            'GROUP BY time($__interval), "lane" fill(none)'], w=12, alias="$tag_lane"),
        panel(L, "timeseries", "Wait time (average and maximum)", [
            f'SELECT mean("avg_wait_s") AS "average" FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter '
            'GROUP BY time($__interval), "lane" fill(none)',
            f'SELECT max("max_wait_s") AS "maximum" FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter '
            'GROUP BY time($__interval), "lane" fill(none)'], w=12, unit="s", alias="$tag_lane $col"),
        panel(L, "timeseries", "Abandonment", [
            f'SELECT sum("abandonment_count") FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter '
            'GROUP BY time($__interval), "lane" fill(0)'], w=12, alias="$tag_lane",
            description="People who left a queue without being served."),
        panel(L, "timeseries", "Service rate", [
            f'SELECT mean("service_rate") FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter '
            'GROUP BY time($__interval), "lane" fill(none)'], w=12, unit="short", alias="$tag_lane",
            description="Customers served per minute."),
        panel(L, "table", "Lanes over the time range", [
            f'SELECT max("queue_length") AS "max queue", mean("avg_wait_s") AS "avg wait s", '
            f'max("max_wait_s") AS "max wait s", sum("abandonment_count") AS "abandoned" '
            f'FROM "queue_metrics"."queue" WHERE {lane} AND $timeFilter GROUP BY "lane"'], w=24, h=7),
    ]
    return dashboard("retail-checkout", "Checkout", "Queue length, waits and abandonment per lane.", ps,
                     [LANE_VAR])


def zones() -> dict:
    L = _Layout()
    zone = '"zone" =~ /^$zone$/'
    ps = [
        panel(L, "timeseries", "Zone occupancy", [
            f'SELECT mean("occupancy") FROM "occupancy"."zone_occupancy" WHERE {STREAM} AND {zone} AND $timeFilter '
            'GROUP BY time($__interval), "zone" fill(none)'], w=12, alias="$tag_zone"),
        panel(L, "bargauge", "Zone entries", [
            f'SELECT sum("entries") FROM "occupancy"."zone_occupancy" WHERE {STREAM} AND {zone} AND $timeFilter '
            'GROUP BY "zone"'], w=12, alias="$tag_zone"),
        panel(L, "timeseries", "Heatmap intensity", [
            f'SELECT max("max") AS "peak", mean("mean") AS "mean" FROM "heatmaps"."heatmap" WHERE {STREAM} '
            'AND $timeFilter GROUP BY time($__interval), "stream" fill(none)'], w=12, alias="$tag_stream $col",
            description="Per camera: the hottest cell and the mean of the occupancy grid (full grids and PNG "
                        "overlays are in heatmap.json / outputs)."),
        panel(L, "timeseries", "Active area and hotspots", [
            f'SELECT mean("active_fraction") * 100 AS "active area %", mean("hotspot_count") AS "hotspots" '
            f'FROM "heatmaps"."heatmap" WHERE {STREAM} AND $timeFilter GROUP BY time($__interval), "stream" '
            'fill(none)'], w=12, alias="$tag_stream $col"),
        panel(L, "table", "Top hotspot per camera", [
            f'SELECT last("top_hotspot_x") AS "x", last("top_hotspot_y") AS "y", '
            f'last("top_hotspot_intensity") AS "intensity" FROM "heatmaps"."heatmap" WHERE {STREAM} '
            'AND $timeFilter GROUP BY "stream"'], w=24, h=7,
            description="x, y normalised to the image (0..1, y down)."),
    ]
    return dashboard("retail-zones", "Heatmap and zone occupancy", "Where people are and how many, per zone.",
                     ps, [STREAM_VAR, ZONE_VAR])


def alerts() -> dict:
    L = _Layout()
    ps = [
        panel(L, "stat", "Alerts raised", [
            f'SELECT count("value") FROM "alerts"."alerts" WHERE {STREAM} AND "state" = \'raised\' AND $timeFilter'],
            w=8, h=5),
        panel(L, "bargauge", "Raised by severity", [
            f'SELECT count("value") FROM "alerts"."alerts" WHERE {STREAM} AND "state" = \'raised\' AND $timeFilter '
            'GROUP BY "severity"'], w=8, h=5, alias="$tag_severity"),
        panel(L, "bargauge", "Raised by type", [
            f'SELECT count("value") FROM "alerts"."alerts" WHERE {STREAM} AND "state" = \'raised\' AND $timeFilter '
            'GROUP BY "alert_type"'], w=8, h=5, alias="$tag_alert_type"),
        panel(L, "timeseries", "Alerts over time", [
            f'SELECT count("value") FROM "alerts"."alerts" WHERE {STREAM} AND "state" = \'raised\' AND $timeFilter '
            'GROUP BY time($__interval), "alert_type" fill(0)'], w=24, alias="$tag_alert_type",
            options={"drawStyle": "bars"}),
        panel(L, "table", "Alert log", [
            f'SELECT "stream", "alert_type", "severity", "state", "zone", "message", "value", "threshold" '
            f'FROM "alerts"."alerts" WHERE {STREAM} AND $timeFilter ORDER BY time DESC LIMIT 500'], w=24, h=10),
    ]
    return dashboard("retail-alerts", "Alerts", "Rules on the metrics: long queues, long waits, crowding.", ps,
                     [STREAM_VAR], time_from="now-7d")


def pipeline_health() -> dict:
    L = _Layout()
    ps = [
        panel(L, "timeseries", "Frames per second", [
            f'SELECT mean("fps") FROM "health"."stream_health" WHERE {STREAM} AND $timeFilter '
            'GROUP BY time($__interval), "stream" fill(none)'], w=12, unit="short", alias="$tag_stream"),
        panel(L, "timeseries", "End-to-end latency (p50, p95)", [
            f'SELECT mean("latency_p50_ms") AS "p50", mean("latency_p95_ms") AS "p95" FROM "health"."stream_health" '
            f'WHERE {STREAM} AND $timeFilter GROUP BY time($__interval), "stream" fill(none)'], w=12, unit="ms",
            alias="$tag_stream $col"),
        panel(L, "timeseries", "Dropped frames", [
            f'SELECT non_negative_difference(last("frames_dropped")) FROM "health"."stream_health" WHERE {STREAM} '
            'AND $timeFilter GROUP BY time($__interval), "stream" fill(none)'], w=12, alias="$tag_stream",
            description="Frames dropped per interval (live sources drop the oldest frame when inference lags)."),
        panel(L, "table", "Stream totals", [
            f'SELECT last("frames_processed") AS "processed", last("frames_dropped") AS "dropped", '
            f'last("reconnects") AS "reconnects", last("inference_errors") AS "inference errors" '
            f'FROM "health"."stream_health" WHERE {STREAM} AND $timeFilter GROUP BY "stream"'], w=12),
        panel(L, "timeseries", "Triton queue time per request", [
            'SELECT mean("avg_queue_ms") FROM "health"."triton" WHERE $timeFilter '
            'GROUP BY time($__interval), "model" fill(none)'], w=12, unit="ms", alias="$tag_model"),
        panel(L, "timeseries", "Triton compute time per request", [
            'SELECT mean("avg_compute_ms") FROM "health"."triton" WHERE $timeFilter '
            'GROUP BY time($__interval), "model" fill(none)'], w=12, unit="ms", alias="$tag_model"),
        panel(L, "timeseries", "Triton inferences and executions", [
            'SELECT mean("inferences_per_s") AS "inferences/s", mean("executions_per_s") AS "executions/s" '
            'FROM "health"."triton" WHERE $timeFilter GROUP BY time($__interval), "model" fill(none)'], w=12,
            alias="$tag_model $col",
            description="More inferences than executions means dynamic batching is grouping requests."),
        panel(L, "timeseries", "Triton average batch size", [
            'SELECT mean("avg_batch") FROM "health"."triton" WHERE $timeFilter '
            'GROUP BY time($__interval), "model" fill(none)'], w=12, alias="$tag_model"),
        panel(L, "timeseries", "GPU utilisation", [
            'SELECT mean("gpu_utilization") * 100 FROM "health"."triton_gpu" WHERE $timeFilter '
            'GROUP BY time($__interval), "gpu" fill(none)'], w=12, unit="percent", alias="$tag_gpu"),
        panel(L, "timeseries", "Triton server CPU", [
            'SELECT mean("cpu_utilization") * 100 FROM "health"."triton_server" WHERE $timeFilter '
            'GROUP BY time($__interval) fill(none)'], w=12, unit="percent"),
        panel(L, "timeseries", "InfluxDB writer: buffered and on disk", [
            'SELECT last("buffered") AS "in memory", last("on_disk") AS "on disk" FROM "health"."sink_health" '
            'WHERE $timeFilter GROUP BY time($__interval), "sink" fill(none)'], w=12, alias="$tag_sink $col",
            description="Points the InfluxDB writer holds because the server is away or slow: in memory "
                        "(sinks.influxdb.max_buffer_points), then spilled to disk (max_spill_points). A gap in "
                        "this series that fills in later is an outage whose reports arrived after it."),
        panel(L, "table", "InfluxDB writer: points lost", [
            'SELECT last("dropped") AS "dropped", last("rejected") AS "rejected", last("spilled_total") AS "spilled", '
            'last("retried") AS "retried", last("written") AS "written", last("server_up") AS "server up" '
            'FROM "health"."sink_health" WHERE $timeFilter GROUP BY "sink"'], w=12,
            description="Counters of the writer's latest report, since that process started: dropped = past both "
                        "the memory and the disk budget; rejected = refused by InfluxDB (bad point, beyond "
                        "retention). Anything but 0 here means missing data in the other panels."),
    ]
    return dashboard("retail-pipeline-health", "Pipeline health",
                     "Per-stream fps, latency and drops; Triton queue/compute time and batching; the InfluxDB "
                     "writer's own buffer and losses.", ps, [STREAM_VAR], time_from="now-6h")


DASHBOARDS = {"store_overview.json": store_overview, "checkout.json": checkout, "zones.json": zones,
              "alerts.json": alerts, "pipeline_health.json": pipeline_health}


def render() -> dict[str, str]:
    return {name: json.dumps(fn(), indent=2) + "\n" for name, fn in DASHBOARDS.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(OUT / name)


if __name__ == "__main__":
    main()
