"""Load and validate the store configuration (``configs/store.yaml``).

One file describes the cameras of a store: per camera its image size, zones (polygons in
image pixels), counting lines (with the direction that means "in"), checkout lanes (a
queue zone plus a service zone) and the heatmap grid; plus alert rules. Everything is
checked once at load; a mistake raises ``ConfigError`` naming the file, the field (a
dotted path that includes the camera and zone) and the value.

    store = load_store_config("configs/store.yaml")
    cam = store.camera("cam-checkout-1")      # ConfigError for an unknown camera
    cam.zones["queue-1"].polygon               # float64[V, 2]

``load_analytics_section(raw, path)`` is what ``clients.config`` calls for the
``analytics:`` section of ``configs/app_config.yaml`` (``store_config: path``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analytics.geometry import polygon_area, polygon_self_intersects


class ConfigError(ValueError):
    """Invalid configuration: file, field and value are in the message (and attributes)."""

    def __init__(self, message: str, *, file: str = "", field: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.file, self.field, self.value = file, field, value


ZONE_KINDS = ("entrance", "aisle", "checkout", "queue", "service", "exit", "other")
ALERT_TYPES = ("queue_length", "wait_time", "occupancy", "dwell")
SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


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

    def camera(self, camera_id: str) -> CameraConfig:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise ConfigError(f"{self.path}: cameras: {camera_id!r}: unknown camera (configured: "
                              f"{', '.join(self.cameras) or 'none'})", file=str(self.path),
                              field="cameras", value=camera_id) from None


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def err(self, fld: str, value: Any, problem: str) -> ConfigError:
        v = value if isinstance(value, (int, float, str, type(None))) else _short(value)
        return ConfigError(f"{self.path}: {fld}: {v!r}: {problem}", file=str(self.path), field=fld, value=value)

    def mapping(self, v: Any, fld: str, allow_none: bool = True) -> dict:
        if v is None and allow_none:
            return {}
        if not isinstance(v, dict):
            raise self.err(fld, v, "must be a mapping")
        return v

    def number(self, d: dict, key: str, fld: str, default: float | None, lo: float = -math.inf,
               hi: float = math.inf) -> float:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(f"{fld}.{key}", v, "must be a number")
        if not lo <= v <= hi:
            raise self.err(f"{fld}.{key}", v, f"must be within [{lo}, {hi}]")
        return float(v)

    def name(self, v: Any, fld: str) -> str:
        if not isinstance(v, str) or not _NAME_RE.match(v):
            raise self.err(fld, v, "must be a name of letters, digits, '_', '-', '.', ':'")
        return v

    def point(self, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
        if (not isinstance(v, (list, tuple)) or len(v) != 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)):
            raise self.err(fld, v, "must be a point [x, y]")
        w, h = size
        if not (0 <= v[0] <= w and 0 <= v[1] <= h):
            raise self.err(fld, v, f"lies outside the {w}x{h} frame")
        return np.array(v, dtype=np.float64)

    def unknown(self, d: dict, allowed: set[str], fld: str) -> None:
        extra = sorted(set(d) - allowed)
        if extra:
            raise self.err(f"{fld}.{extra[0]}", d[extra[0]], f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 120 else s[:117] + "..."


def _polygon(ctx: _Ctx, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
    if not isinstance(v, (list, tuple)) or len(v) < 3:
        raise ctx.err(fld, v, "must be a list of at least 3 points [x, y]")
    poly = np.stack([ctx.point(p, f"{fld}[{i}]", size) for i, p in enumerate(v)])
    hit = polygon_self_intersects(poly)
    if hit is not None:
        raise ctx.err(fld, v, f"polygon crosses itself (edges {hit[0]} and {hit[1]})")
    if polygon_area(poly) < 1.0:
        raise ctx.err(fld, v, "polygon has no area")
    return poly


def _camera(ctx: _Ctx, cam_id: str, raw: Any, defaults: dict) -> CameraConfig:
    base = f"cameras.{cam_id}"
    raw = ctx.mapping(raw, base, allow_none=False)
    ctx.unknown(raw, {"image_size", "zones", "lines", "lanes", "heatmap", "journeys", "description"}, base)
    size_v = raw.get("image_size", defaults.get("image_size", [640, 360]))
    if (not isinstance(size_v, (list, tuple)) or len(size_v) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and 16 <= c <= 16384 for c in size_v)):
        raise ctx.err(f"{base}.image_size", size_v, "must be [width, height] in pixels")
    size = (int(size_v[0]), int(size_v[1]))

    zones: dict[str, Zone] = {}
    for zname, zraw in ctx.mapping(raw.get("zones"), f"{base}.zones").items():
        zf = f"{base}.zones.{zname}"
        ctx.name(zname, zf)
        if isinstance(zraw, list):
            zraw = {"polygon": zraw}
        zraw = ctx.mapping(zraw, zf, allow_none=False)
        ctx.unknown(zraw, {"polygon", "kind", "converts"}, zf)
        kind = zraw.get("kind", "other")
        if kind not in ZONE_KINDS:
            raise ctx.err(f"{zf}.kind", kind, f"must be one of {', '.join(ZONE_KINDS)}")
        conv = zraw.get("converts", False)
        if not isinstance(conv, bool):
            raise ctx.err(f"{zf}.converts", conv, "must be true or false")
        zones[zname] = Zone(zname, _polygon(ctx, zraw.get("polygon"), f"{zf}.polygon", size), kind, conv)

    lines: dict[str, CountingLine] = {}
    for lname, lraw in ctx.mapping(raw.get("lines"), f"{base}.lines").items():
        lf = f"{base}.lines.{lname}"
        ctx.name(lname, lf)
        lraw = ctx.mapping(lraw, lf, allow_none=False)
        ctx.unknown(lraw, {"points", "in", "band_px"}, lf)
        pts = lraw.get("points")
        if not isinstance(pts, (list, tuple)) or len(pts) != 2:
            raise ctx.err(f"{lf}.points", pts, "must be two points [[x1, y1], [x2, y2]]")
        a, b = (ctx.point(p, f"{lf}.points[{i}]", size) for i, p in enumerate(pts))
        if np.hypot(*(b - a)) < 2.0:
            raise ctx.err(f"{lf}.points", pts, "the two points must be at least 2 px apart")
        d_in = lraw.get("in")
        if d_in not in DIRECTIONS:
            raise ctx.err(f"{lf}.in", d_in, f"must be one of {', '.join(DIRECTIONS)} (the direction that counts as in)")
        vec = np.array(DIRECTIONS[d_in])
        d = (b - a) / np.hypot(*(b - a))
        if abs(float(vec @ np.array([-d[1], d[0]]))) < 0.2:
            raise ctx.err(f"{lf}.in", d_in, "is (nearly) parallel to the line: nobody could cross it that way")
        band = ctx.number(lraw, "band_px", lf, 6.0, 0.0, 200.0)
        lines[lname] = CountingLine(lname, a, b, vec, band)

    lanes: dict[str, Lane] = {}
    for lane_id, lraw in ctx.mapping(raw.get("lanes"), f"{base}.lanes").items():
        lf = f"{base}.lanes.{lane_id}"
        ctx.name(lane_id, lf)
        lraw = ctx.mapping(lraw, lf, allow_none=False)
        ctx.unknown(lraw, {"queue_zone", "service_zone"}, lf)
        for key in ("queue_zone", "service_zone"):
            z = lraw.get(key)
            if z is None:
                raise ctx.err(f"{lf}.{key}", z, f"a checkout lane needs a {key.replace('_', ' ')} (a zone name)")
            if z not in zones:
                raise ctx.err(f"{lf}.{key}", z, f"no such zone on camera {cam_id} (zones: {', '.join(zones) or 'none'})")
        if lraw["queue_zone"] == lraw["service_zone"]:
            raise ctx.err(f"{lf}.service_zone", lraw["service_zone"], "must differ from the queue zone")
        lanes[lane_id] = Lane(lane_id, lraw["queue_zone"], lraw["service_zone"])

    hraw = ctx.mapping(raw.get("heatmap", defaults.get("heatmap")), f"{base}.heatmap")
    ctx.unknown(hraw, {"resolution", "half_life_s", "hotspots", "hotspot_min"}, f"{base}.heatmap")
    res = hraw.get("resolution", [96, 54])
    if (not isinstance(res, (list, tuple)) or len(res) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 1024 for c in res)):
        raise ctx.err(f"{base}.heatmap.resolution", res, "must be [columns, rows], each 1..1024")
    heat = HeatmapSettings((int(res[0]), int(res[1])),
                           ctx.number(hraw, "half_life_s", f"{base}.heatmap", 900.0, 1.0),
                           int(ctx.number(hraw, "hotspots", f"{base}.heatmap", 5, 0, 100)),
                           ctx.number(hraw, "hotspot_min", f"{base}.heatmap", 0.5, 0.0, 1.0))

    jraw = ctx.mapping(raw.get("journeys", defaults.get("journeys")), f"{base}.journeys")
    jf = f"{base}.journeys"
    ctx.unknown(jraw, set(JourneySettings.__dataclass_fields__), jf)
    jd = JourneySettings()
    journeys = JourneySettings(**{k: ctx.number(jraw, k, jf, getattr(jd, k), 0.0)
                                  for k in JourneySettings.__dataclass_fields__})
    return CameraConfig(cam_id, size, zones, lines, lanes, heat, journeys)


def _alert(ctx: _Ctx, i: int, raw: Any, cameras: dict[str, CameraConfig]) -> AlertRule:
    f = f"alerts[{i}]"
    raw = ctx.mapping(raw, f, allow_none=False)
    ctx.unknown(raw, {"id", "type", "threshold", "clear_below", "cameras", "target", "for_s", "cooldown_s",
                      "severity", "message"}, f)
    rid = ctx.name(raw.get("id"), f"{f}.id")
    f = f"alerts.{rid}"
    typ = raw.get("type")
    if typ not in ALERT_TYPES:
        raise ctx.err(f"{f}.type", typ, f"must be one of {', '.join(ALERT_TYPES)}")
    thr = ctx.number(raw, "threshold", f, None, 0.0)
    clear = ctx.number(raw, "clear_below", f, thr, 0.0)
    if clear > thr:
        raise ctx.err(f"{f}.clear_below", clear, f"must not exceed the threshold {thr:g} (hysteresis)")
    cams = raw.get("cameras", [])
    if isinstance(cams, str):
        cams = [cams]
    if not isinstance(cams, list):
        raise ctx.err(f"{f}.cameras", cams, "must be a list of camera ids")
    for c in cams:
        if c not in cameras:
            raise ctx.err(f"{f}.cameras", c, f"unknown camera (configured: {', '.join(cameras)})")
    target = raw.get("target")
    if target is not None:
        scope = [cameras[c] for c in cams] or list(cameras.values())
        names = {n for c in scope for n in (c.lanes if typ in ("queue_length", "wait_time") else c.zones)}
        if target not in names:
            what = "lane" if typ in ("queue_length", "wait_time") else "zone"
            raise ctx.err(f"{f}.target", target, f"no such {what} on the rule's cameras")
    sev = raw.get("severity", "warning")
    if sev not in SEVERITIES:
        raise ctx.err(f"{f}.severity", sev, f"must be one of {', '.join(SEVERITIES)}")
    msg = raw.get("message", "")
    if not isinstance(msg, str):
        raise ctx.err(f"{f}.message", msg, "must be a string")
    return AlertRule(rid, typ, thr, clear, tuple(cams), target, ctx.number(raw, "for_s", f, 0.0, 0.0),
                     ctx.number(raw, "cooldown_s", f, 300.0, 0.0), sev, msg)


def parse_store_config(raw: Any, path: str | Path = "<store config>") -> StoreConfig:
    path = Path(path)
    ctx = _Ctx(path)
    raw = ctx.mapping(raw, "(top level)", allow_none=False)
    ctx.unknown(raw, {"store", "defaults", "cameras", "alerts", "metrics_interval_s", "heatmap_interval_s",
                      "detections_every_s"}, "(top level)")
    defaults = ctx.mapping(raw.get("defaults"), "defaults")
    cams_raw = ctx.mapping(raw.get("cameras"), "cameras", allow_none=False)
    if not cams_raw:
        raise ctx.err("cameras", cams_raw, "at least one camera is needed")
    cameras = {ctx.name(cid, f"cameras.{cid}"): _camera(ctx, cid, c, defaults) for cid, c in cams_raw.items()}
    alerts_raw = raw.get("alerts") or []
    if not isinstance(alerts_raw, list):
        raise ctx.err("alerts", alerts_raw, "must be a list of rules")
    alerts = tuple(_alert(ctx, i, a, cameras) for i, a in enumerate(alerts_raw))
    ids = [a.rule_id for a in alerts]
    dup = next((x for x in ids if ids.count(x) > 1), None)
    if dup:
        raise ctx.err(f"alerts.{dup}.id", dup, "duplicate alert rule id")
    return StoreConfig(path, cameras, alerts,
                       ctx.number(raw, "metrics_interval_s", "(top level)", 60.0, 1.0),
                       ctx.number(raw, "heatmap_interval_s", "(top level)", 900.0, 1.0),
                       ctx.number(raw, "detections_every_s", "(top level)", 0.0, 0.0))


def load_store_config(path: str | Path) -> StoreConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read store config: {e.strerror}", file=str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}", file=str(path)) from None
    return parse_store_config(raw, path)


def load_analytics_section(raw: dict, path: str | Path) -> StoreConfig | None:
    """The ``analytics:`` section of the app config -> the validated store config (None when absent).

    ``store_config`` may be absolute, relative to the working directory, or relative to the
    app config's directory (or its parent, the repo root for ``configs/app_config.yaml``)."""
    path = Path(path)
    ctx = _Ctx(path)
    sec = ctx.mapping(raw.get("analytics"), "analytics")
    if not sec:
        return None
    ctx.unknown(sec, {"store_config"}, "analytics")
    sc = sec.get("store_config")
    if not isinstance(sc, str) or not sc:
        raise ctx.err("analytics.store_config", sc, "must be the path of the store config (configs/store.yaml)")
    cand = Path(sc)
    if not cand.is_absolute():
        for base in (Path.cwd(), path.parent, path.parent.parent):
            if (base / cand).exists():
                cand = base / cand
                break
    if not cand.exists():
        raise ctx.err("analytics.store_config", sc, "file not found")
    return load_store_config(cand)
