"""Load and validate the store configuration (``configs/store.yaml``).

One file describes the cameras of a store: per camera its image size, zones (polygons in
image pixels), counting lines (with the direction that means "in"), checkout lanes (a
queue zone plus a service zone) and the heatmap grid; plus alert rules. Everything is
checked once at load; a mistake raises ``ConfigError`` naming the file, the field (a
dotted path that includes the camera and zone) and the value.

Store-level visits (optional; docs/visits.md): ``store: {id, name}`` names the store
(``StoreConfig.store_id``, default "store"); ``floor:`` is the plan in metres ->
``StoreConfig.floor`` (``FloorPlan``); each camera's ``floor_points`` fit its image -> floor
homography -> ``CameraConfig.floor`` (``FloorCalibration``); ``visits:`` tunes the linker ->
``StoreConfig.visits`` (``VisitSettings``; absent is None: per-camera journeys only). Those
three sections are parsed and checked by ``analytics.floor_config`` (what is refused: its
docstring), which this module calls; ``VisitSettings`` is defined there and importable from
here too, beside the ``StoreConfig`` it types.

    store = load_store_config("configs/store.yaml")
    cam = store.camera("cam-checkout-1")      # ConfigError for an unknown camera
    cam.zones["queue-1"].polygon               # float64[V, 2]

Settings change in code without writing YAML: ``overrides`` set dotted keys of the file's
mapping before validation (``core.config.apply_overrides``), so they are checked like the file:

    store = load_store_config("configs/store.yaml", overrides={"metrics_interval_s": 10})

``load_analytics_section(raw, path)`` is what ``clients.config`` calls for the
``analytics:`` section of ``configs/app_config.yaml`` (``store_config: path``).
Errors are ``core.config.ConfigError`` (re-exported here).
May import: analytics.floor_config, analytics.config_fields, analytics.floor, analytics.geometry,
core.config, numpy, the standard library.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analytics.config_fields import DIRECTIONS, image_point
from analytics.floor import FloorCalibration, FloorPlan
from analytics.floor_config import VisitSettings, parse_calibration, parse_floor, parse_visits
from analytics.geometry import polygon_area, polygon_self_intersects
from core.config import ConfigError, Fields, apply_overrides, field_path, read_yaml

ZONE_KINDS = ("entrance", "aisle", "checkout", "queue", "service", "exit", "other")
ALERT_TYPES = ("queue_length", "wait_time", "occupancy", "dwell")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: np.ndarray  # float64[V, 2], image pixels
    kind: str = "other"
    converts: bool = False  # a journey that dwells here counts as converted


@dataclass(frozen=True)
class CountingLine:
    name: str
    a: np.ndarray  # float64[2]
    b: np.ndarray  # float64[2]
    in_direction: np.ndarray  # unit float64[2]: crossing this way counts as "in"
    band_px: float = 6.0  # a crossing needs the feet this far past the line on both sides (jitter)


# Box jitter grows with the resolution: the default band is a fixed share of the image height
# (6 px at 360p, 12 at 720p, 18 at 1080p), so settings copied between cameras keep working.
BAND_PER_IMAGE_HEIGHT = 1 / 60


def default_band_px(image_height: int) -> float:
    return round(image_height * BAND_PER_IMAGE_HEIGHT, 2)


@dataclass(frozen=True)
class Lane:
    lane_id: str
    queue_zone: str
    service_zone: str


@dataclass(frozen=True)
class HeatmapSettings:
    resolution: tuple[int, int] = (96, 54)  # (columns, rows), the seed's default
    half_life_s: float = 900.0  # time decay of the occupancy grid
    hotspots: int = 5
    hotspot_min: float = 0.5  # a hotspot is a local maximum at least this (normalised) intense


@dataclass(frozen=True)
class JourneySettings:
    lost_after_s: float = 3.0  # a track unseen this long ends its journey
    min_duration_s: float = 2.0  # shorter tracks (flicker, false positives) make no journey
    min_zone_dwell_s: float = 1.0  # a zone visit shorter than this is jitter at the edge
    min_conversion_dwell_s: float = 5.0
    cart_max_distance: float = 0.9  # cart-to-feet distance, in person heights
    cart_min_fraction: float = 0.5  # of the person's frames with a cart near


@dataclass(frozen=True)
class CameraConfig:
    camera_id: str
    image_size: tuple[int, int]  # (width, height)
    zones: dict[str, Zone] = field(default_factory=dict)
    lines: dict[str, CountingLine] = field(default_factory=dict)
    lanes: dict[str, Lane] = field(default_factory=dict)
    heatmap: HeatmapSettings = HeatmapSettings()
    journeys: JourneySettings = JourneySettings()
    floor: FloorCalibration | None = None  # image -> floor metres (``floor_points``); None: not calibrated


@dataclass(frozen=True)
class AlertRule:
    rule_id: str
    type: str  # queue_length | wait_time | occupancy | dwell
    threshold: float
    clear_below: float  # hysteresis: the alert clears only once the value falls below this
    cameras: tuple[str, ...] = ()  # empty: every camera
    target: str | None = None  # lane (queue rules) or zone (occupancy, dwell); None: each
    for_s: float = 0.0  # the value must stay above the threshold this long
    cooldown_s: float = 300.0  # after clearing, no new alert for this rule+target before this
    severity: str = "warning"
    message: str = ""


@dataclass(frozen=True)
class StoreConfig:
    path: Path
    cameras: dict[str, CameraConfig]
    alerts: tuple[AlertRule, ...] = ()
    metrics_interval_s: float = 60.0  # queue metrics, footfall and occupancy records
    heatmap_interval_s: float = 900.0  # heatmap records
    detections_every_s: float = 0.0  # 0: a detection record per track per frame
    store_id: str = "store"  # ``store.id``
    floor: FloorPlan | None = None  # ``floor:``: the plan in metres (doors, heatmap grid)
    visits: VisitSettings | None = None  # ``visits:``: link camera tracks into store visits; None: per-camera journeys

    def camera(self, camera_id: str) -> CameraConfig:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise ConfigError(f"{self.path}: cameras: {camera_id!r}: unknown camera (configured: "
                              f"{', '.join(self.cameras) or 'none'})", file=str(self.path),
                              field="cameras", value=camera_id) from None


def _polygon(fields: Fields, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
    if not isinstance(v, (list, tuple)) or len(v) < 3:
        raise fields.error(fld, v, "must be a list of at least 3 points [x, y]")
    poly = np.stack([image_point(fields, p, field_path(fld, i), size) for i, p in enumerate(v)])
    hit = polygon_self_intersects(poly)
    if hit is not None:
        raise fields.error(fld, v, f"polygon crosses itself (edges {hit[0]} and {hit[1]})")
    if polygon_area(poly) < 1.0:
        raise fields.error(fld, v, "polygon has no area")
    return poly


def _size(fields: Fields, v: Any, fld: str, lo: int, hi: int, problem: str) -> tuple[int, int]:
    """A pair of whole numbers in [lo, hi]: image size, heatmap resolution."""
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and lo <= c <= hi for c in v)):
        raise fields.error(fld, v, problem)
    return int(v[0]), int(v[1])


def _zones(fields: Fields, raw: Any, base: str, size: tuple[int, int]) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    for zname, zraw in fields.mapping(raw, f"{base}.zones").items():
        zf = f"{base}.zones.{zname}"
        fields.name(zname, zf)
        if isinstance(zraw, list):
            zraw = {"polygon": zraw}
        zraw = fields.mapping(zraw, zf, optional=False)
        fields.unknown(zraw, {"polygon", "kind", "converts"}, zf)
        kind = fields.choice(zraw.get("kind", "other"), f"{zf}.kind", ZONE_KINDS)
        conv = fields.boolean(zraw, "converts", zf, False)
        zones[zname] = Zone(zname, _polygon(fields, zraw.get("polygon"), f"{zf}.polygon", size), kind, conv)
    return zones


def _lines(fields: Fields, raw: Any, base: str, size: tuple[int, int]) -> dict[str, CountingLine]:
    lines: dict[str, CountingLine] = {}
    for lname, lraw in fields.mapping(raw, f"{base}.lines").items():
        lf = f"{base}.lines.{lname}"
        fields.name(lname, lf)
        lraw = fields.section(fields.mapping(lraw, lf, optional=False), lf, {"points", "in", "band_px"})
        pts = lraw.get("points")
        if not isinstance(pts, (list, tuple)) or len(pts) != 2:
            raise fields.error(f"{lf}.points", pts, "must be two points [[x1, y1], [x2, y2]]")
        a, b = (image_point(fields, p, field_path(f"{lf}.points", i), size) for i, p in enumerate(pts))
        if np.hypot(*(b - a)) < 2.0:
            raise fields.error(f"{lf}.points", pts, "the two points must be at least 2 px apart")
        d_in = fields.choice(lraw.get("in"), f"{lf}.in", DIRECTIONS,
                             f"must be one of {', '.join(DIRECTIONS)} (the direction that counts as in)")
        vec = np.array(DIRECTIONS[d_in])
        d = (b - a) / np.hypot(*(b - a))
        if abs(float(vec @ np.array([-d[1], d[0]]))) < 0.2:
            raise fields.error(f"{lf}.in", d_in, "is (nearly) parallel to the line: nobody could cross it that way")
        band = fields.number(lraw, "band_px", lf, default_band_px(size[1]), lo=0.0, hi=200.0)
        lines[lname] = CountingLine(lname, a, b, vec, band)
    return lines


def _lanes(fields: Fields, raw: Any, base: str, cam_id: str, zones: dict[str, Zone]) -> dict[str, Lane]:
    lanes: dict[str, Lane] = {}
    for lane_id, lraw in fields.mapping(raw, f"{base}.lanes").items():
        lf = f"{base}.lanes.{lane_id}"
        fields.name(lane_id, lf)
        lraw = fields.section(fields.mapping(lraw, lf, optional=False), lf, {"queue_zone", "service_zone"})
        for key in ("queue_zone", "service_zone"):
            z = lraw.get(key)
            if z is None:
                raise fields.error(f"{lf}.{key}", z, f"a checkout lane needs a {key.replace('_', ' ')} (a zone name)")
            if z not in zones:
                raise fields.error(f"{lf}.{key}", z,
                                   f"no such zone on camera {cam_id} (zones: {', '.join(zones) or 'none'})")
        if lraw["queue_zone"] == lraw["service_zone"]:
            raise fields.error(f"{lf}.service_zone", lraw["service_zone"], "must differ from the queue zone")
        lanes[lane_id] = Lane(lane_id, lraw["queue_zone"], lraw["service_zone"])
    return lanes


def _heatmap(fields: Fields, raw: Any, base: str) -> HeatmapSettings:
    hf = f"{base}.heatmap"
    hraw = fields.section(raw, hf, {"resolution", "half_life_s", "hotspots", "hotspot_min"})
    res = _size(fields, hraw.get("resolution", [96, 54]), f"{hf}.resolution", 1, 1024,
                "must be [columns, rows], each 1..1024")
    return HeatmapSettings(res, fields.number(hraw, "half_life_s", hf, 900.0, lo=1.0),
                           int(fields.number(hraw, "hotspots", hf, 5, lo=0, hi=100)),
                           fields.number(hraw, "hotspot_min", hf, 0.5, lo=0.0, hi=1.0))


def _journeys(fields: Fields, raw: Any, base: str) -> JourneySettings:
    jf = f"{base}.journeys"
    jraw = fields.section(raw, jf, set(JourneySettings.__dataclass_fields__))
    jd = JourneySettings()
    return JourneySettings(**{k: fields.number(jraw, k, jf, getattr(jd, k), lo=0.0)
                              for k in JourneySettings.__dataclass_fields__})


def _store_id(fields: Fields, raw: Any) -> str:
    sraw = fields.section(raw, "store", {"id", "name"})
    fields.string(sraw, "name", "store", None, optional=True)
    return fields.name(sraw.get("id", "store"), "store.id")


def _camera(fields: Fields, cam_id: str, raw: Any, defaults: dict, floor: FloorPlan | None) -> CameraConfig:
    base = f"cameras.{cam_id}"
    raw = fields.mapping(raw, base, optional=False)
    fields.unknown(raw, {"image_size", "zones", "lines", "lanes", "heatmap", "journeys", "description",
                         "floor_points"}, base)
    size = _size(fields, raw.get("image_size", defaults.get("image_size", [640, 360])), f"{base}.image_size",
                 16, 16384, "must be [width, height] in pixels")
    zones = _zones(fields, raw.get("zones"), base, size)
    return CameraConfig(cam_id, size, zones, _lines(fields, raw.get("lines"), base, size),
                        _lanes(fields, raw.get("lanes"), base, cam_id, zones),
                        _heatmap(fields, raw.get("heatmap", defaults.get("heatmap")), base),
                        _journeys(fields, raw.get("journeys", defaults.get("journeys")), base),
                        parse_calibration(fields, raw.get("floor_points"), base, size,
                                          {n: z.polygon for n, z in zones.items()}, floor))


_ALERT_KEYS = {"id", "type", "threshold", "clear_below", "cameras", "target", "for_s", "cooldown_s", "severity",
               "message"}


def _alert(fields: Fields, i: int, raw: Any, cameras: dict[str, CameraConfig]) -> AlertRule:
    f = field_path("alerts", i)
    raw = fields.section(fields.mapping(raw, f, optional=False), f, _ALERT_KEYS)
    rid = fields.name(raw.get("id"), f"{f}.id")
    f = f"alerts.{rid}"
    typ = fields.choice(raw.get("type"), f"{f}.type", ALERT_TYPES)
    thr = fields.number(raw, "threshold", f, None, lo=0.0)
    clear = fields.number(raw, "clear_below", f, thr, lo=0.0)
    if clear > thr:
        raise fields.error(f"{f}.clear_below", clear, f"must not exceed the threshold {thr:g} (hysteresis)")
    cams = raw.get("cameras", [])
    if isinstance(cams, str):
        cams = [cams]
    if not isinstance(cams, list):
        raise fields.error(f"{f}.cameras", cams, "must be a list of camera ids")
    for c in cams:
        fields.choice(c, f"{f}.cameras", cameras, f"unknown camera (configured: {', '.join(cameras)})")
    target = raw.get("target")
    if target is not None:
        queue = typ in ("queue_length", "wait_time")
        scope = [cameras[c] for c in cams] or list(cameras.values())
        names = {n for c in scope for n in (c.lanes if queue else c.zones)}
        fields.choice(target, f"{f}.target", names, f"no such {'lane' if queue else 'zone'} on the rule's cameras")
    sev = fields.choice(raw.get("severity", "warning"), f"{f}.severity", SEVERITIES)
    msg = raw.get("message", "")
    if not isinstance(msg, str):
        raise fields.error(f"{f}.message", msg, "must be a string")
    return AlertRule(rid, typ, thr, clear, tuple(cams), target, fields.number(raw, "for_s", f, 0.0, lo=0.0),
                     fields.number(raw, "cooldown_s", f, 300.0, lo=0.0), sev, msg)


_TOP_KEYS = {"store", "defaults", "cameras", "alerts", "metrics_interval_s", "heatmap_interval_s",
             "detections_every_s", "floor", "visits"}


def parse_store_config(raw: Any, path: str | Path = "<store config>") -> StoreConfig:
    """A parsed store mapping (``path`` names it in errors) -> the validated StoreConfig."""
    path = Path(path)
    fields = Fields(path)
    top = "(top level)"
    raw = fields.section(fields.mapping(raw, top, optional=False), top, _TOP_KEYS)
    store_id = _store_id(fields, raw.get("store"))
    floor = parse_floor(fields, raw.get("floor"))
    defaults = fields.mapping(raw.get("defaults"), "defaults")
    cams_raw = fields.mapping(raw.get("cameras"), "cameras", optional=False)
    if not cams_raw:
        raise fields.error("cameras", cams_raw, "at least one camera is needed")
    cameras = {fields.name(cid, f"cameras.{cid}"): _camera(fields, cid, c, defaults, floor)
               for cid, c in cams_raw.items()}
    alerts_raw = raw.get("alerts") or []
    if not isinstance(alerts_raw, list):
        raise fields.error("alerts", alerts_raw, "must be a list of rules")
    alerts = tuple(_alert(fields, i, a, cameras) for i, a in enumerate(alerts_raw))
    ids = [a.rule_id for a in alerts]
    dup = next((x for x in ids if ids.count(x) > 1), None)
    if dup:
        raise fields.error(f"alerts.{dup}.id", dup, "duplicate alert rule id")
    return StoreConfig(path, cameras, alerts,
                       fields.number(raw, "metrics_interval_s", top, 60.0, lo=1.0),
                       fields.number(raw, "heatmap_interval_s", top, 900.0, lo=1.0),
                       fields.number(raw, "detections_every_s", top, 0.0, lo=0.0),
                       store_id, floor, parse_visits(fields, raw.get("visits")))


def load_store_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> StoreConfig:
    """Read and validate a store file; ``overrides`` (dotted keys) adjust it before validation."""
    raw = read_yaml(path, "store config")
    if overrides:
        raw = apply_overrides(Fields(path).mapping(raw, "(top level)", optional=False), overrides)
    return parse_store_config(raw, path)


def load_analytics_section(raw: dict, path: str | Path) -> StoreConfig | None:
    """The ``analytics:`` section of the app config -> the validated store config (None when absent).

    ``store_config`` may be absolute, relative to the working directory, or relative to the
    app config's directory (or its parent, the repo root for ``configs/app_config.yaml``)."""
    path = Path(path)
    fields = Fields(path)
    sec = fields.section(raw.get("analytics"), "analytics", {"store_config"})
    if not sec:
        return None
    sc = sec.get("store_config")
    if not isinstance(sc, str) or not sc:
        raise fields.error("analytics.store_config", sc, "must be the path of the store config (configs/store.yaml)")
    cand = Path(sc)
    if not cand.is_absolute():
        for base in (Path.cwd(), path.parent, path.parent.parent):
            if (base / cand).exists():
                cand = base / cand
                break
    if not cand.exists():
        raise fields.error("analytics.store_config", sc, "file not found")
    return load_store_config(cand)
