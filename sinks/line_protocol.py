"""Records -> InfluxDB points (line protocol), one schema for InfluxDB 1.x and 2.x.

Tags are low-cardinality only (stream, zone, lane, line, class, alert type, severity, state,
store, a store's top paths, a floor grid's row); everything else is a field. A track id or
journey id is never a tag (one series per person would explode the index). Each point
carries an explicit nanosecond timestamp, so re-sending a batch after a failed attempt
overwrites instead of duplicating (InfluxDB keys a point by series + timestamp).

Every measurement belongs to a *data type* (the key of ``retention:`` in
configs/app_config.yaml); the data type is the retention policy on 1.x and the
bucket suffix on 2.x. Queries therefore read ``"<data type>"."<measurement>"``.

    measurement      data type      tags                                  one point per
    detections       detections     stream, class                         frame x class (counts)
    journeys         journeys       stream                                finished journey, or store visit
                                                                          (VisitRecord: where the store links
                                                                          visits; field cameras)
    zone_dwell       journeys       stream, zone                          (camera) journey x zone visited
    camera_journeys  journeys       stream                                per-camera journey of a linked store
    store_kpis       journeys       store                                 store KPI window
    store_paths      journeys       store, path                           store KPI window x top path
    queue            queue_metrics  stream, lane                          queue metrics window
    heatmap          heatmaps       stream                                heatmap window (summary)
    floor_heatmap    heatmaps       store                                 floor heatmap report (summary)
    floor_heatmap_rows heatmaps     store, row                            floor heatmap report x grid row
                                                                          (fields c000.. : the row's cells)
    zone_occupancy   occupancy      stream, zone                          occupancy window
    footfall         footfall       stream, line                          footfall window
    alerts           alerts         stream, alert_type, severity, state,  alert event
                                    zone
    stream_health    health         stream                                health report
    triton           health         model, version                        metrics scrape
    triton_gpu       health         gpu                                   metrics scrape (GPU)
    triton_server    health         (none)                                metrics scrape (CPU, memory)
    sink_health      health         sink                                  InfluxSink's own counters
                                                                          (every health_interval_s)

See docs/influxdb.md for the field lists and the dashboards that read them.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

from analytics.records import (
    AlertRecord,
    CameraJourneyRecord,
    DetectionRecord,
    FloorHeatmapRecord,
    FootfallRecord,
    HeatmapRecord,
    JourneyRecord,
    QueueMetricsRecord,
    StoreKpiRecord,
    StreamHealthRecord,
    VisitRecord,
    ZoneOccupancyRecord,
)

# measurement -> data type (retention policy / bucket). The dashboards and setup rely on it.
MEASUREMENT_DATA_TYPE: dict[str, str] = {
    "detections": "detections",
    "journeys": "journeys",
    "zone_dwell": "journeys",
    "camera_journeys": "journeys",
    "store_kpis": "journeys",
    "store_paths": "journeys",
    "queue": "queue_metrics",
    "heatmap": "heatmaps",
    "floor_heatmap": "heatmaps",
    "floor_heatmap_rows": "heatmaps",
    "zone_occupancy": "occupancy",
    "footfall": "footfall",
    "alerts": "alerts",
    "stream_health": "health",
    "triton": "health",
    "triton_gpu": "health",
    "triton_server": "health",
    "sink_health": "health",
}
DATA_TYPES: tuple[str, ...] = tuple(dict.fromkeys(MEASUREMENT_DATA_TYPE.values()))

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point. ``time_ns`` is nanoseconds since the epoch (UTC)."""

    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted by key (Influx's canonical series order)
    fields: tuple[tuple[str, FieldValue], ...]
    time_ns: int
    data_type: str = ""  # retention policy / bucket key; defaults from MEASUREMENT_DATA_TYPE

    @staticmethod
    def make(measurement: str, tags: dict[str, Any], fields: dict[str, Any], time_s: float | None = None,
             *, time_ns: int | None = None, data_type: str | None = None) -> "Point":
        if time_ns is None:
            if time_s is None:
                raise ValueError(f"point {measurement!r}: no timestamp")
            time_ns = seconds_to_ns(time_s)
        t = tuple(sorted((k, str(v)) for k, v in tags.items() if v is not None and str(v) != ""))
        f = tuple((k, v) for k, v in fields.items() if _keep_field(v))
        if not f:
            raise ValueError(f"point {measurement!r} {dict(t)}: no field values")
        return Point(measurement, t, f, int(time_ns), data_type or MEASUREMENT_DATA_TYPE.get(measurement, "health"))

    @property
    def series(self) -> tuple:
        return (self.data_type, self.measurement, self.tags)

    def with_time(self, time_ns: int) -> "Point":
        return Point(self.measurement, self.tags, self.fields, time_ns, self.data_type)

    def to_line(self) -> str:
        return encode_line(self.measurement, self.tags, self.fields, self.time_ns)


def seconds_to_ns(ts: float) -> int:
    # round through microseconds first: float seconds carry ~0.2 us of noise at today's epoch
    return int(round(float(ts) * 1e6)) * 1000


def _keep_field(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and not math.isfinite(v):
        return False  # Influx rejects NaN/inf; an absent field is the honest encoding
    return True


# ------------------------------------------------------------------ line protocol encoding

def _esc_key(s: str) -> str:  # tag keys/values, field keys
    # InfluxDB does not unescape backslashes here (only before , = and space); a newline cannot be carried
    return s.replace("\n", " ").replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def _esc_measurement(s: str) -> str:
    return s.replace("\n", " ").replace(",", "\\,").replace(" ", "\\ ")


def _field(v: FieldValue) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        # only \\ and " are escapes inside a string field; a newline stands as it is (within the quotes)
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # numpy scalars and friends
    if hasattr(v, "item"):
        return _field(v.item())
    raise TypeError(f"unsupported field value {v!r} ({type(v).__name__})")


def encode_line(measurement: str, tags: Iterable[tuple[str, str]], fields: Iterable[tuple[str, FieldValue]],
                time_ns: int) -> str:
    head = _esc_measurement(measurement)
    for k, v in tags:
        head += f",{_esc_key(k)}={_esc_key(v)}"
    body = ",".join(f"{_esc_key(k)}={_field(v)}" for k, v in fields)
    return f"{head} {body} {int(time_ns)}"


# ------------------------------------------------------------------ records -> points

class _Collisions:
    """Keeps two different points of one series off the same timestamp.

    Points of one series at the same nanosecond would overwrite each other in Influx
    (two journeys closed on the same frame, alerts raised together). The second one is
    moved 1 ns later, which no dashboard can see; the very same point written twice keeps
    its time (overwriting itself is harmless, doubling it is not). Bounded: remembers the last
    ``per_series`` timestamps of at most ``max_series`` series.
    """

    def __init__(self, per_series: int = 4096, max_series: int = 10000) -> None:
        self.per_series = per_series
        self.max_series = max_series
        self._seen: OrderedDict[tuple, OrderedDict[int, int]] = OrderedDict()  # series -> time -> hash(fields)
        self.nudged = 0

    def place(self, p: Point) -> Point:
        key = p.series
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = OrderedDict()
            if len(self._seen) > self.max_series:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        t, h = p.time_ns, hash(p.fields)
        while t in seen and seen[t] != h:  # the very same point again may overwrite itself: idempotent
            t += 1
        seen[t] = h
        if len(seen) > self.per_series:
            seen.popitem(last=False)
        if t != p.time_ns:
            self.nudged += 1
            return p.with_time(t)
        return p


@dataclass
class _FrameAcc:
    """Detections of one frame, aggregated per class (what analysts chart: counts, not boxes)."""

    frame_number: int
    timestamp: float
    per_class: dict[str, list] = field(default_factory=dict)  # class -> [count, conf_sum, tracked, area_sum]

    def add(self, d: DetectionRecord) -> None:
        acc = self.per_class.setdefault(d.class_name, [0, 0.0, 0, 0.0])
        acc[0] += 1
        acc[1] += float(d.confidence)
        acc[2] += d.track_id is not None
        acc[3] += float(d.width) * float(d.height)

    def points(self, stream_id: str) -> list[Point]:
        out = []
        for cls, (n, conf, tracked, area) in self.per_class.items():
            out.append(Point.make("detections", {"stream": stream_id, "class": cls},
                                  {"count": n, "tracked": tracked, "mean_confidence": conf / n,
                                   "mean_box_area": area / n, "frame_number": int(self.frame_number)},
                                  self.timestamp))
        return out


class PointMapper:
    """Stateful record -> point conversion.

    Detections are aggregated per (stream, frame, class); a frame's aggregate is emitted
    when a later frame of the same stream arrives or on ``drain()``, so a frame split over
    several ``map()`` calls still becomes one point per class.
    """

    def __init__(self) -> None:
        self._frames: dict[str, _FrameAcc] = {}
        self._collisions = _Collisions()
        self.unknown = 0  # records of a type this mapper does not know (counted, not fatal)

    @property
    def nudged(self) -> int:
        return self._collisions.nudged

    def map(self, records: Iterable[Any]) -> list[Point]:
        out: list[Point] = []
        for r in records:
            if isinstance(r, DetectionRecord):
                acc = self._frames.get(r.stream_id)
                if acc is not None and acc.frame_number != r.frame_number:
                    out.extend(acc.points(r.stream_id))
                    acc = None
                if acc is None:
                    acc = self._frames[r.stream_id] = _FrameAcc(r.frame_number, r.timestamp)
                acc.add(r)
            elif isinstance(r, Point):
                out.append(r)
            else:
                pts = record_points(r)
                if pts is None:
                    self.unknown += 1
                    continue
                out.extend(pts)
        return [self._collisions.place(p) for p in out]

    def drain(self) -> list[Point]:
        """Emit the frames still being aggregated (call on flush/close)."""
        out: list[Point] = []
        for sid, acc in self._frames.items():
            out.extend(acc.points(sid))
        self._frames.clear()
        return [self._collisions.place(p) for p in out]


def record_points(r: Any) -> list[Point] | None:
    """Points of one non-detection record (None for an unknown record type)."""
    if isinstance(r, QueueMetricsRecord):
        return [Point.make("queue", {"stream": r.stream_id, "lane": r.lane_id}, {
            "queue_length": int(r.queue_length), "avg_wait_s": float(r.avg_wait_time_seconds),
            "max_wait_s": float(r.max_wait_time_seconds), "service_rate": float(r.service_rate),
            "abandonment_count": int(r.abandonment_count)}, r.timestamp)]
    if isinstance(r, JourneyRecord):
        return [journey_point("journeys", r), *zone_dwell_points(r)]
    if isinstance(r, VisitRecord):
        # a store visit takes the camera journey's place (the dashboards' conversion reads it); its zone
        # dwell stays per camera: the CameraJourneyRecords it was stitched from write zone_dwell
        return [journey_point("journeys", r, cameras=len(r.cameras))]
    if isinstance(r, CameraJourneyRecord):
        return [journey_point("camera_journeys", r.journey), *zone_dwell_points(r.journey)]
    if isinstance(r, StoreKpiRecord):
        pts = [Point.make("store_kpis", {"store": r.store_id}, {
            "visits": int(r.visits), "converted": int(r.converted), "conversion_rate": float(r.conversion_rate),
            "avg_visit_duration_s": float(r.avg_visit_duration_s), "in_store": int(r.in_store),
            "window_s": float(r.window_s)}, r.timestamp)]
        for path, visits in r.top_paths:
            pts.append(Point.make("store_paths", {"store": r.store_id, "path": path}, {"visits": int(visits)},
                                  r.timestamp))
        return pts
    if isinstance(r, HeatmapRecord):
        return [heatmap_point(r)]
    if isinstance(r, FloorHeatmapRecord):
        return floor_heatmap_points(r)
    if isinstance(r, AlertRecord):
        return [Point.make("alerts", {"stream": r.stream_id, "alert_type": r.alert_type, "severity": r.severity,
                                      "state": r.state, "zone": r.zone}, {
            "alert_id": r.alert_id, "message": r.message, "value": float(r.value),
            "threshold": float(r.threshold), "active": int(r.state == "raised")}, r.timestamp)]
    if isinstance(r, FootfallRecord):
        return [Point.make("footfall", {"stream": r.stream_id, "line": r.line_id}, {
            "count_in": int(r.count_in), "count_out": int(r.count_out), "occupancy": int(r.occupancy)},
            r.timestamp)]
    if isinstance(r, ZoneOccupancyRecord):
        return [Point.make("zone_occupancy", {"stream": r.stream_id, "zone": r.zone}, {
            "occupancy": int(r.occupancy), "entries": int(r.entries), "exits": int(r.exits)}, r.timestamp)]
    if isinstance(r, StreamHealthRecord):
        f: dict[str, Any] = {"fps": float(r.fps), "latency_p50_ms": float(r.latency_p50_ms),
                             "latency_p95_ms": float(r.latency_p95_ms),
                             "frames_processed": int(r.frames_processed), "frames_dropped": int(r.frames_dropped),
                             "reconnects": int(r.reconnects), "inference_errors": int(r.inference_errors)}
        for k, v in (r.extra or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or k in f:
                continue  # only numbers: a string here would fix the field's type forever
            f[k] = float(v)  # floats always: an int on one report and a float on the next would conflict
        return [Point.make("stream_health", {"stream": r.stream_id}, f, r.timestamp)]
    return None


def journey_point(measurement: str, r: JourneyRecord | VisitRecord, **extra: Any) -> Point:
    """A finished journey (or store visit): ``journeys`` / ``camera_journeys``."""
    return Point.make(measurement, {"stream": r.stream_id}, {
        "journey_id": r.journey_id, "track_id": int(r.track_id),
        "duration_s": float(r.duration_seconds), "zones_visited": ",".join(r.zones_visited),
        "zone_count": len(r.zones_visited),
        # integers, not booleans: InfluxQL can mean()/sum() them into a conversion rate
        "converted": int(bool(r.converted)), "cart_detected": int(bool(r.cart_detected)), **extra},
        r.end_time)


def zone_dwell_points(r: JourneyRecord) -> list[Point]:
    return [Point.make("zone_dwell", {"stream": r.stream_id, "zone": zone},
                       {"dwell_s": float(dwell), "journey_id": r.journey_id, "converted": int(bool(r.converted))},
                       r.end_time) for zone, dwell in r.zone_dwell_times.items()]


def _grid_summary(grid, hotspots) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "max": float(grid.max()) if grid.size else 0.0,
        "mean": float(grid.mean()) if grid.size else 0.0,
        "active_fraction": float((grid > 0).mean()) if grid.size else 0.0,
        "hotspot_count": len(hotspots),
    }
    if hotspots:
        top = max(hotspots, key=lambda h: h.intensity)
        fields.update(top_hotspot_x=float(top.x), top_hotspot_y=float(top.y),
                      top_hotspot_intensity=float(top.intensity))
    return fields


def floor_heatmap_points(r: FloorHeatmapRecord) -> list[Point]:
    """The store's floor heatmap: a summary point like the camera heatmap's (``floor_heatmap``; top hotspot
    normalised over the grid and in floor metres), and the grid itself, one ``floor_heatmap_rows`` point
    per grid row (tag ``row`` "000".., fields ``c000``.. per column, values [0, 1]): the floor is one grid
    per store, small enough (a 40 m x 30 m floor at 0.5 m is 60 rows of 80 cells) for the dashboard to
    draw the latest one."""
    import numpy as np

    grid = np.asarray(r.data, dtype=np.float64).reshape(int(r.resolution[1]), int(r.resolution[0]))
    fields = _grid_summary(grid, r.hotspots)
    fields.update(columns=int(r.resolution[0]), rows=int(r.resolution[1]), cell_m=float(r.cell_m),
                  origin_x_m=float(r.origin[0]), origin_y_m=float(r.origin[1]))
    if "top_hotspot_x" in fields:
        fields.update(top_hotspot_x_m=float(r.origin[0] + fields["top_hotspot_x"] * grid.shape[1] * r.cell_m),
                      top_hotspot_y_m=float(r.origin[1] + fields["top_hotspot_y"] * grid.shape[0] * r.cell_m))
    pts = [Point.make("floor_heatmap", {"store": r.store_id}, fields, r.timestamp)]
    for i, row in enumerate(grid):
        pts.append(Point.make("floor_heatmap_rows", {"store": r.store_id, "row": f"{i:03d}"},
                              {f"c{j:03d}": round(float(v), 4) for j, v in enumerate(row)}, r.timestamp))
    return pts


def heatmap_point(r: HeatmapRecord) -> Point:
    """Summary of one heatmap window (the grid itself goes to heatmap.json, not to Influx)."""
    import time as _time

    import numpy as np

    grid = np.asarray(r.data, dtype=np.float64)
    fields = _grid_summary(grid, r.hotspots)
    fields.update(columns=int(r.resolution[0]), rows=int(r.resolution[1]), cell_size=int(r.cell_size))
    ts = r.timestamp if r.timestamp is not None else _time.time()
    return Point.make("heatmap", {"stream": r.stream_id}, fields, ts)
