"""Load and validate the store configuration (``configs/store.yaml``).

One file describes the cameras of a store: per camera its image size, zones (polygons in
image pixels), counting lines (with the direction that means "in"), checkout lanes (a
queue zone plus a service zone) and the heatmap grid; plus alert rules. Everything is
checked once at load; a mistake raises ``ConfigError`` naming the file, the field (a
dotted path that includes the camera and zone) and the value.

Store-level visits (optional; docs/visits.md): ``store: {id, name}`` names the store
(``StoreConfig.store_id``, default "store"); ``floor:`` is the plan in metres (outline,
doors with their ``in`` direction on the plan, heatmap ``cell_m``, an optional
``plan_image`` relative to this file) -> ``FloorPlan``; each camera's ``floor_points:
{image: [[x, y], ...], floor: [[x, y], ...]}`` (>= 4 pairs, pixels and metres) fit its
image -> floor homography (normalised DLT) -> ``CameraConfig.floor``. The fit is refused when
the pairs are degenerate (three of four on a line), miss by more than ``max_rms_m`` (0.25 m
RMS), or put the horizon across the lower half of the image; every zone vertex must map in
front of the camera and, with a ``floor:`` outline, within 0.5 m of it. ``visits:`` tunes
the linker (``VisitSettings``, ``appearance`` -> ``AppearanceModel``); ``{}`` is the
defaults, absent is None (per-camera journeys only).

    store = load_store_config("configs/store.yaml")
    cam = store.camera("cam-checkout-1")      # ConfigError for an unknown camera
    cam.zones["queue-1"].polygon               # float64[V, 2]

Settings change in code without writing YAML: ``overrides`` set dotted keys of the file's
mapping before validation (``core.config.apply_overrides``), so they are checked like the file:

    store = load_store_config("configs/store.yaml", overrides={"metrics_interval_s": 10})

``load_analytics_section(raw, path)`` is what ``clients.config`` calls for the
``analytics:`` section of ``configs/app_config.yaml`` (``store_config: path``).
Errors are ``core.config.ConfigError`` (re-exported here).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analytics.floor import Door, FloorCalibration, FloorPlan
from analytics.geometry import points_in_polygon, polygon_area, polygon_self_intersects
from core.config import ConfigError, Fields, apply_overrides, field_path, read_yaml

ZONE_KINDS = ("entrance", "aisle", "checkout", "queue", "service", "exit", "other")
ALERT_TYPES = ("queue_length", "wait_time", "occupancy", "dwell")
SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


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
class AppearanceModel:
    """Cosine similarity of two tracklets' mean embeddings across cameras, as the served re-id
    model scores them (``python -m benchmarks.reid --cross-camera`` measures these)."""

    same_mean: float = 0.90
    same_sd: float = 0.05
    diff_mean: float = 0.70
    diff_sd: float = 0.10


@dataclass(frozen=True)
class VisitSettings:
    """The store-level linker (``visits.linker``): camera tracks -> one visit per customer."""

    timeout_s: float = 120.0  # a visit unseen on every camera this long has ended
    head_after_s: float = 6.0  # a camera track reports its head (start, look so far) once it has lasted this long
    decision_delay_s: float = 6.0  # ... and its link is decided this long after: the head time plus this
    # must cover the camera's lost_after_s and how long two views may both see one person, so the
    # track it continues has ended and reported by then
    max_speed_mps: float = 2.5  # no one walks faster between two sightings
    position_slack_m: float = 1.5  # calibration and box noise on a floor position
    overlap_s: float = 1.0  # one visit's tracklets may overlap in time this much (more: positions must agree)
    door_radius_m: float = 2.0  # a track beginning/ending this close to a door enters/leaves the store
    door_close_s: float = 5.0  # a visit whose last track left through a door closes this long after
    appearance: AppearanceModel = AppearanceModel()


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


def _is_xy(v: Any) -> bool:
    """[x, y] of two finite numbers."""
    return (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v))


def _point(fields: Fields, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
    if not _is_xy(v):
        raise fields.error(fld, v, "must be a point [x, y]")
    w, h = size
    if not (0 <= v[0] <= w and 0 <= v[1] <= h):
        raise fields.error(fld, v, f"lies outside the {w}x{h} frame")
    return np.array(v, dtype=np.float64)


def _polygon(fields: Fields, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
    if not isinstance(v, (list, tuple)) or len(v) < 3:
        raise fields.error(fld, v, "must be a list of at least 3 points [x, y]")
    poly = np.stack([_point(fields, p, field_path(fld, i), size) for i, p in enumerate(v)])
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
        a, b = (_point(fields, p, field_path(f"{lf}.points", i), size) for i, p in enumerate(pts))
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


# --------------------------------------------------------------------------- floor plan, calibration, visits

MAX_RMS_M = 0.25  # default ``floor_points.max_rms_m``: the largest fit residual accepted, metres
OUTLINE_MARGIN_M = 0.5  # a zone vertex may land this far outside the floor outline (calibration error)
DOOR_MARGIN_M = 1.0  # a door's points lie within this of the outline's bounding box
COLLINEAR = 0.02  # three points this close to one line (off it by < 2% of their spread) are collinear
DEGENERATE = 5e-3  # conditioning of the normalised fit below this: the pairs fix no homography (good: ~0.1)
MAX_GRID_CELLS = 4096  # floor heatmap cells along a side of the outline's bounding box
_W_EPS = 1e-6  # homogeneous w (1 at the calibration points) at or below this: beyond the horizon


def _positive(fields: Fields, d: Mapping, key: str, field: str, default: float, hi: float | None = None) -> float:
    v = fields.number(d, key, field, default, hi=hi)
    if v <= 0:
        raise fields.error(f"{field}.{key}", v, "must be > 0")
    return v


def _floor_point(fields: Fields, v: Any, fld: str) -> np.ndarray:
    if not _is_xy(v):
        raise fields.error(fld, v, "must be a point [x, y] in metres")
    return np.array(v, dtype=np.float64)


def _outline(fields: Fields, v: Any, fld: str) -> np.ndarray:
    if not isinstance(v, (list, tuple)) or len(v) < 3:
        raise fields.error(fld, v, "must be a list of at least 3 points [x, y] in metres")
    poly = np.stack([_floor_point(fields, p, field_path(fld, i)) for i, p in enumerate(v)])
    hit = polygon_self_intersects(poly)
    if hit is not None:
        raise fields.error(fld, v, f"polygon crosses itself (edges {hit[0]} and {hit[1]})")
    if polygon_area(poly) < 1.0:
        raise fields.error(fld, v, "polygon has no area (less than 1 m2)")
    return poly


def _outline_distance(p: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """float64[N]: distance (metres) from each point to the outline's edges."""
    a, d = outline, np.roll(outline, -1, axis=0) - outline  # edge i: a[i] -> a[i] + d[i]
    rel = p[:, None, :] - a[None]
    u = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0.0, 1.0)
    off = rel - u[..., None] * d
    return np.hypot(off[..., 0], off[..., 1]).min(axis=1)


def _doors(fields: Fields, raw: Any, outline: np.ndarray) -> dict[str, Door]:
    lo, hi = outline.min(axis=0) - DOOR_MARGIN_M, outline.max(axis=0) + DOOR_MARGIN_M
    doors: dict[str, Door] = {}
    for name, draw in fields.mapping(raw, "floor.doors").items():
        df = f"floor.doors.{name}"
        fields.name(name, df)
        draw = fields.section(fields.mapping(draw, df, optional=False), df, {"points", "in"})
        pts = draw.get("points")
        if not isinstance(pts, (list, tuple)) or len(pts) != 2:
            raise fields.error(f"{df}.points", pts, "must be two points [[x1, y1], [x2, y2]] in metres")
        a, b = (_floor_point(fields, p, field_path(f"{df}.points", i)) for i, p in enumerate(pts))
        for i, q in enumerate((a, b)):
            if not (np.all(q >= lo) and np.all(q <= hi)):
                raise fields.error(field_path(f"{df}.points", i), pts[i],
                                   f"lies more than {DOOR_MARGIN_M:g} m outside the floor outline's bounds")
        if np.hypot(*(b - a)) < 0.1:
            raise fields.error(f"{df}.points", pts, "the two points must be at least 0.1 m apart")
        d_in = fields.choice(draw.get("in"), f"{df}.in", DIRECTIONS,
                             f"must be one of {', '.join(DIRECTIONS)} (the plan direction that enters the store; "
                             "up: toward smaller y)")
        vec = np.array(DIRECTIONS[d_in])
        d = (b - a) / np.hypot(*(b - a))
        if abs(float(vec @ np.array([-d[1], d[0]]))) < 0.2:
            raise fields.error(f"{df}.in", d_in, "is (nearly) parallel to the door: nobody could walk in that way")
        doors[name] = Door(name, a, b, vec)
    return doors


_FLOOR_KEYS = {"outline", "doors", "cell_m", "plan_image", "plan_px_per_m"}


def _floor(fields: Fields, raw: Any) -> FloorPlan | None:
    if raw is None:
        return None
    fraw = fields.section(fields.mapping(raw, "floor", optional=False), "floor", _FLOOR_KEYS)
    outline = _outline(fields, fraw.get("outline"), "floor.outline")
    doors = _doors(fields, fraw.get("doors"), outline)
    cell = _positive(fields, fraw, "cell_m", "floor", 0.5)
    span = outline.max(axis=0) - outline.min(axis=0)
    cells = np.ceil(span / cell).astype(int)
    if cells.max() > MAX_GRID_CELLS:
        raise fields.error("floor.cell_m", cell, f"makes a {cells[0]}x{cells[1]} grid over the outline "
                                                 f"(at most {MAX_GRID_CELLS} cells a side)")
    plan = fraw.get("plan_image")
    if plan is not None:
        if not isinstance(plan, str) or not plan.strip():
            raise fields.error("floor.plan_image", plan,
                               "must be the path of an image file (relative to the store file's directory)")
        p = Path(plan.strip())
        plan = p if p.is_absolute() else fields.path.parent / p
        if not plan.is_file():
            raise fields.error("floor.plan_image", fraw["plan_image"], f"file not found ({plan})")
    return FloorPlan(outline, doors, cell, plan, _positive(fields, fraw, "plan_px_per_m", "floor", 20.0))


def _collinear_triple(p: np.ndarray) -> tuple[int, int, int] | None:
    """The first three points (indices) that lie (nearly) on one line: the third is off the line
    through the two farthest apart by less than COLLINEAR of their distance."""
    for tri in itertools.combinations(range(len(p)), 3):
        q = p[list(tri)]
        longest = max(float(np.hypot(*(q[i] - q[j]))) for i, j in ((0, 1), (1, 2), (0, 2)))
        if longest == 0 or 2 * polygon_area(q) / longest < COLLINEAR * longest:
            return tri
    return None


def fit_homography(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised DLT: the 3x3 H with dst ~ H @ src (float64[K, 2] each, K >= 4), least squares
    on the algebraic error, and its conditioning (the 8th singular value of the normalised system
    over the first: about 0 when the pairs leave the homography undetermined)."""
    def similarity(p: np.ndarray) -> np.ndarray:
        c = p.mean(axis=0)
        s = math.sqrt(2.0) / max(float(np.hypot(*(p - c).T).mean()), 1e-12)
        return np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])

    ts, td = similarity(src), similarity(dst)
    a = np.c_[src, np.ones(len(src))] @ ts.T
    b = np.c_[dst, np.ones(len(dst))] @ td.T
    m = np.zeros((2 * len(src), 9))
    m[0::2, 0:3], m[0::2, 6:9] = -a, a * b[:, 0:1]
    m[1::2, 3:6], m[1::2, 6:9] = -a, a * b[:, 1:2]
    _, sv, vt = np.linalg.svd(m)
    h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
    return h, float(sv[7] / sv[0])


def _calibration(fields: Fields, raw: Any, base: str, size: tuple[int, int], zones: dict[str, Zone],
                 floor: FloorPlan | None) -> FloorCalibration | None:
    if raw is None:
        return None
    cf = f"{base}.floor_points"
    craw = fields.section(fields.mapping(raw, cf, optional=False), cf, {"image", "floor", "max_rms_m"})
    iraw, fraw = craw.get("image"), craw.get("floor")
    for key, v in (("image", iraw), ("floor", fraw)):
        if not isinstance(v, (list, tuple)) or len(v) < 4:
            raise fields.error(f"{cf}.{key}", v, "must be a list of at least 4 points [x, y] (4 pairs fix the "
                                                 "homography; 5 or more also check it)")
    if len(iraw) != len(fraw):
        raise fields.error(f"{cf}.floor", fraw, f"has {len(fraw)} points but image has {len(iraw)}: the "
                                                "floor point at each index pairs with the image point at it")
    img = np.stack([_point(fields, p, field_path(f"{cf}.image", i), size) for i, p in enumerate(iraw)])
    flo = np.stack([_floor_point(fields, p, field_path(f"{cf}.floor", i)) for i, p in enumerate(fraw)])
    for key, pts, v in (("image", img, iraw), ("floor", flo, fraw)):
        if len(pts) == 4:
            tri = _collinear_triple(pts)
            if tri is not None:
                raise fields.error(f"{cf}.{key}", v, f"points {tri[0]}, {tri[1]} and {tri[2]} lie (nearly) on one "
                                                     "line: with 4 pairs no three may (spread them over the floor)")
        else:
            sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
            if sv[1] <= COLLINEAR * sv[0]:
                raise fields.error(f"{cf}.{key}", v, "the points lie (nearly) on one line (spread them over the floor)")
    h, cond = fit_homography(img, flo)
    if cond < DEGENERATE:
        raise fields.error(cf, raw, "the point pairs do not fix a homography: at least 4 of them must be "
                                    "spread out with no three on one line")
    w = np.c_[img, np.ones(len(img))] @ h[2]
    h = h / float(np.median(w))  # w = 1 at a typical calibration point, > 0 on the floor side of the horizon
    w = np.c_[img, np.ones(len(img))] @ h[2]
    for i in np.flatnonzero(w <= _W_EPS):
        raise fields.error(field_path(f"{cf}.image", int(i)), iraw[i],
                           "lies beyond the fitted horizon (the pairs disagree: mismeasured or out of order?)")
    cal = FloorCalibration(img, flo, h)
    miss = np.hypot(*(cal.to_floor(img) - flo).T)
    rms = float(np.sqrt(np.mean(miss ** 2)))
    max_rms = _positive(fields, craw, "max_rms_m", cf, MAX_RMS_M)
    if rms > max_rms:
        k = int(np.argmax(miss))
        raise fields.error(cf, round(rms, 3), f"the fit residual is {rms:.3f} m RMS over {len(img)} pairs, more "
                                              f"than max_rms_m {max_rms:g}; the largest miss is pair {k} (image "
                                              f"{iraw[k]}, floor {fraw[k]}) by {miss[k]:.2f} m: a point is "
                                              "mismeasured or the pairs are out of order")
    wd, ht = size
    corners = np.array([[0, 0, 1], [wd, 0, 1], [wd, ht, 1], [0, ht, 1]], np.float64)
    if (corners @ h[2] <= _W_EPS).any():  # the horizon crosses the image: its lower half must be floor
        lower = np.array([[0, ht / 2, 1], [wd, ht / 2, 1], [wd, ht, 1], [0, ht, 1]], np.float64)
        if (lower @ h[2] <= _W_EPS).any():
            raise fields.error(cf, raw, "the fit puts the horizon across the lower half of the image (the floor "
                                        "must fill the bottom of the image): mismeasured or out of order?")
    for zname, zone in zones.items():
        zf = f"{base}.zones.{zname}.polygon"
        zw = np.c_[zone.polygon, np.ones(len(zone.polygon))] @ h[2]
        for i in np.flatnonzero(zw <= _W_EPS):
            raise fields.error(field_path(zf, int(i)), zone.polygon[i].tolist(),
                               f"lies beyond the horizon of camera {base.split('.', 1)[1]}'s floor calibration "
                               "(floor_points): not on the floor")
        if floor is not None:
            fp = cal.to_floor(zone.polygon)
            off = ~points_in_polygon(fp, floor.outline) & (_outline_distance(fp, floor.outline) > OUTLINE_MARGIN_M)
            for i in np.flatnonzero(off):
                raise fields.error(field_path(zf, int(i)), zone.polygon[i].tolist(),
                                   f"lands at ({fp[i, 0]:.2f}, {fp[i, 1]:.2f}) m on the floor, more than "
                                   f"{OUTLINE_MARGIN_M:g} m outside floor.outline (camera "
                                   f"{base.split('.', 1)[1]}'s floor_points or the zone is wrong)")
    return FloorCalibration(img, flo, h, rms)


def _appearance(fields: Fields, raw: Any) -> AppearanceModel:
    af = "visits.appearance"
    araw = fields.section(raw, af, set(AppearanceModel.__dataclass_fields__))
    d = AppearanceModel()
    same = fields.number(araw, "same_mean", af, d.same_mean, lo=-1.0, hi=1.0)
    same_sd = _positive(fields, araw, "same_sd", af, d.same_sd, hi=2.0)
    diff = fields.number(araw, "diff_mean", af, d.diff_mean, lo=-1.0, hi=1.0)
    diff_sd = _positive(fields, araw, "diff_sd", af, d.diff_sd, hi=2.0)
    if same <= diff:
        raise fields.error(f"{af}.same_mean", same, f"must be greater than diff_mean {diff:g} (one person's "
                                                    "tracklets look more alike than two people's)")
    return AppearanceModel(same, same_sd, diff, diff_sd)


_VISITS_POSITIVE = {"timeout_s", "max_speed_mps"}  # the rest may be 0


def _visits(fields: Fields, raw: Any) -> VisitSettings | None:
    if raw is None:
        return None
    keys = [k for k in VisitSettings.__dataclass_fields__ if k != "appearance"]
    vraw = fields.section(fields.mapping(raw, "visits", optional=False), "visits", set(keys) | {"appearance"})
    vd = VisitSettings()
    nums = {k: (_positive(fields, vraw, k, "visits", getattr(vd, k)) if k in _VISITS_POSITIVE
                else fields.number(vraw, k, "visits", getattr(vd, k), lo=0.0)) for k in keys}
    return VisitSettings(**nums, appearance=_appearance(fields, vraw.get("appearance")))


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
                        _calibration(fields, raw.get("floor_points"), base, size, zones, floor))


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
    floor = _floor(fields, raw.get("floor"))
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
                       store_id, floor, _visits(fields, raw.get("visits")))


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
