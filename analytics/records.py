"""Output records in the seed's schemas (``data/README.md`` of the user's seed).

Every record has ``to_dict()`` returning exactly the seed's JSON fields, in the
seed's order. Timestamps inside records are float seconds since the epoch (UTC);
``iso_utc`` turns them into the seed's ``2024-01-15T10:30:00Z`` form (milliseconds
are added only when the time is not a whole second).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field


def iso_utc(ts: float) -> str:
    """Seconds since the epoch -> ISO-8601 UTC with a ``Z`` suffix."""
    whole = int(ts // 1)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    base = _dt.datetime.fromtimestamp(whole, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


def parse_iso_utc(text: str) -> float:
    """Inverse of ``iso_utc``: ISO-8601 (``Z`` or offset) -> seconds since the epoch."""
    t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


@dataclass(frozen=True, slots=True)
class DetectionRecord:
    stream_id: str
    frame_number: int
    timestamp: float
    class_name: str
    confidence: float
    x: float
    y: float
    width: float
    height: float
    track_id: int | None

    def to_dict(self) -> dict:
        return {
            "stream_id": self.stream_id,
            "frame_number": int(self.frame_number),
            "timestamp": iso_utc(self.timestamp),
            "class_name": self.class_name,
            "confidence": round(float(self.confidence), 4),
            "bbox": {"x": round(float(self.x), 1), "y": round(float(self.y), 1),
                     "width": round(float(self.width), 1), "height": round(float(self.height), 1)},
            "track_id": None if self.track_id is None else int(self.track_id),
        }


@dataclass(frozen=True, slots=True)
class JourneyRecord:
    journey_id: str
    track_id: int
    stream_id: str
    start_time: float
    end_time: float
    zones_visited: tuple[str, ...]
    zone_dwell_times: dict[str, float]
    converted: bool
    cart_detected: bool

    @property
    def duration_seconds(self) -> float:
        return self.end_time - self.start_time

    def to_dict(self) -> dict:
        return {
            "journey_id": self.journey_id,
            "track_id": int(self.track_id),
            "stream_id": self.stream_id,
            "start_time": iso_utc(self.start_time),
            "end_time": iso_utc(self.end_time),
            "duration_seconds": round(self.duration_seconds, 1),
            "zones_visited": list(self.zones_visited),
            "zone_dwell_times": {k: round(float(v), 1) for k, v in self.zone_dwell_times.items()},
            "converted": bool(self.converted),
            "cart_detected": bool(self.cart_detected),
        }


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """One customer's store visit across cameras (``visits.linker``): the seed's journey record
    at store level, plus the cameras and camera tracks (tracklets) it was stitched from.

    ``track_id`` is the visit's number, ``stream_id`` the camera where it began; times are the
    first and last sighting on any camera; zones in the order first entered across cameras;
    dwell summed across cameras."""

    journey_id: str
    track_id: int
    stream_id: str
    start_time: float
    end_time: float
    zones_visited: tuple[str, ...]
    zone_dwell_times: dict[str, float]
    converted: bool
    cart_detected: bool
    cameras: tuple[str, ...] = ()
    tracklets: tuple[str, ...] = ()  # "<camera>:<track id>", in time order
    closed_by: str = "timeout"  # door | timeout | end (not in the file: why the visit ended)
    tracklet_spans: tuple[tuple[float, float], ...] = ()  # (start, end) of each of ``tracklets`` (a track
    # split at a gap is two tracklets with one label: the spans tell their detections apart)

    @property
    def duration_seconds(self) -> float:
        return self.end_time - self.start_time

    def to_dict(self) -> dict:
        d = JourneyRecord.to_dict(self)  # type: ignore[arg-type]
        d["cameras"] = list(self.cameras)
        d["tracklets"] = list(self.tracklets)
        if self.tracklet_spans:
            d["tracklet_spans"] = [[round(a, 3), round(b, 3)] for a, b in self.tracklet_spans]
        return d


@dataclass(frozen=True, slots=True)
class CameraJourneyRecord:
    """A per-camera journey when the store links visits: kept (``camera_journeys.json``, the
    ``camera_journeys`` measurement) beside the visits that took their place in ``journeys.json``."""

    journey: JourneyRecord

    @property
    def stream_id(self) -> str:
        return self.journey.stream_id

    @property
    def end_time(self) -> float:
        return self.journey.end_time

    def to_dict(self) -> dict:
        return self.journey.to_dict()


@dataclass(frozen=True, slots=True)
class StoreKpiRecord:
    """Store-level KPIs over a window (visits that ended in it): time series only."""

    store_id: str
    timestamp: float  # window end
    window_s: float
    visits: int  # visits that ended in the window
    converted: int
    avg_visit_duration_s: float  # 0 when no visit ended
    in_store: int  # open visits at the window end
    top_paths: tuple[tuple[str, int], ...] = ()  # ("entrance>aisle-1>queue-1>service-1", visits), busiest first

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.visits if self.visits else 0.0

    def to_dict(self) -> dict:
        """``store_kpis.json`` (the project's file, no seed schema): seed-style time and rounding."""
        return {
            "store_id": self.store_id,
            "timestamp": iso_utc(self.timestamp),
            "window_s": round(float(self.window_s), 1),
            "visits": int(self.visits),
            "converted": int(self.converted),
            "conversion_rate": round(float(self.conversion_rate), 4),
            "avg_visit_duration_s": round(float(self.avg_visit_duration_s), 1),
            "in_store": int(self.in_store),
            "top_paths": [{"path": p, "visits": int(n)} for p, n in self.top_paths],
        }


@dataclass(frozen=True, slots=True)
class FloorHeatmapRecord:
    """Where people were on the store floor across all cameras (one grid over the plan).

    ``data`` rows run down the plan (y), columns across (x); cell (r, c) covers
    x in [x0 + c * cell_m, ...), y in [y0 + r * cell_m, ...). Values normalised to [0, 1]."""

    store_id: str
    timestamp: float
    resolution: tuple[int, int]  # (columns, rows)
    cell_m: float
    origin: tuple[float, float]  # (x0, y0) metres: the top-left corner of cell (0, 0)
    data: list[list[float]]
    hotspots: tuple[Hotspot, ...] = ()  # x, y normalised [0, 1] over the grid, like HeatmapRecord

    def to_dict(self) -> dict:
        return {
            "store_id": self.store_id,
            "timestamp": iso_utc(self.timestamp),
            "resolution": [int(self.resolution[0]), int(self.resolution[1])],
            "cell_m": round(float(self.cell_m), 3),
            "origin": [round(float(self.origin[0]), 3), round(float(self.origin[1]), 3)],
            "data": [[round(float(v), 4) for v in row] for row in self.data],
            "hotspots": [{"x": round(h.x, 4), "y": round(h.y, 4), "intensity": round(h.intensity, 4)}
                         for h in self.hotspots],
        }


@dataclass(frozen=True, slots=True)
class QueueMetricsRecord:
    lane_id: str
    stream_id: str
    timestamp: float
    queue_length: int
    avg_wait_time_seconds: float
    max_wait_time_seconds: float
    service_rate: float  # customers served per minute over the metrics window
    abandonment_count: int

    def to_dict(self) -> dict:
        return {
            "lane_id": self.lane_id,
            "stream_id": self.stream_id,
            "timestamp": iso_utc(self.timestamp),
            "queue_length": int(self.queue_length),
            "avg_wait_time_seconds": round(float(self.avg_wait_time_seconds), 1),
            "max_wait_time_seconds": round(float(self.max_wait_time_seconds), 1),
            "service_rate": round(float(self.service_rate), 3),
            "abandonment_count": int(self.abandonment_count),
        }


@dataclass(frozen=True, slots=True)
class Hotspot:
    x: float  # normalised [0, 1] across the image width
    y: float  # normalised [0, 1] down the image height
    intensity: float  # [0, 1]


@dataclass(frozen=True, slots=True)
class HeatmapRecord:
    stream_id: str
    resolution: tuple[int, int]  # (columns, rows), seed default (96, 54)
    cell_size: int  # pixels per cell side in the camera image
    data: list[list[float]]  # rows x columns, normalised [0, 1]
    hotspots: tuple[Hotspot, ...]
    timestamp: float | None = None  # window end; not part of the seed file schema

    def to_dict(self) -> dict:
        return {
            "stream_id": self.stream_id,
            "resolution": [int(self.resolution[0]), int(self.resolution[1])],
            "cell_size": int(self.cell_size),
            "data": [[round(float(v), 4) for v in row] for row in self.data],
            "hotspots": [{"x": round(h.x, 4), "y": round(h.y, 4), "intensity": round(h.intensity, 4)}
                         for h in self.hotspots],
        }


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The seed names ``alerts.json`` without a schema; this is the project's."""

    alert_id: str
    stream_id: str
    timestamp: float
    alert_type: str  # queue_length | wait_time | occupancy | dwell | ...
    severity: str  # info | warning | critical
    message: str
    value: float
    threshold: float
    zone: str | None = None  # zone or lane the alert is about
    state: str = "raised"  # raised | cleared

    def to_dict(self) -> dict:
        return {
            "alert_id": self.alert_id,
            "stream_id": self.stream_id,
            "timestamp": iso_utc(self.timestamp),
            "alert_type": self.alert_type,
            "severity": self.severity,
            "message": self.message,
            "value": round(float(self.value), 3),
            "threshold": round(float(self.threshold), 3),
            "zone": self.zone,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class FootfallRecord:
    """Line crossings and occupancy over a window (time series only, no seed file)."""

    stream_id: str
    timestamp: float
    line_id: str
    count_in: int
    count_out: int
    occupancy: int


@dataclass(frozen=True, slots=True)
class ZoneOccupancyRecord:
    stream_id: str
    timestamp: float
    zone: str
    occupancy: int
    entries: int = 0
    exits: int = 0


@dataclass(frozen=True, slots=True)
class StreamHealthRecord:
    """Per-stream pipeline health over a reporting window."""

    stream_id: str
    timestamp: float
    fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    frames_processed: int
    frames_dropped: int
    reconnects: int
    inference_errors: int
    extra: dict = field(default_factory=dict)
