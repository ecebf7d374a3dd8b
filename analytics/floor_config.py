"""Parse the store config's floor and visit sections: the plan in metres, each camera's
image -> floor calibration, and the store-level linker's settings (docs/visits.md).

``analytics.config.parse_store_config`` calls these with its ``Fields`` (bound to the store
file) and the raw YAML values; each returns a validated object, or None where the section is
absent, and raises ``ConfigError`` naming the file, the dotted field and the value:

    parse_floor(fields, raw["floor"])               # -> FloorPlan | None
    parse_calibration(fields, raw_cam["floor_points"], "cameras.cam-1", (640, 360),
                      {"queue-1": polygon}, floor)  # -> FloorCalibration | None
    parse_visits(fields, raw["visits"])             # -> VisitSettings | None

``floor:`` is the plan in metres (outline, doors with their ``in`` direction on the plan,
heatmap ``cell_m``, an optional ``plan_image`` relative to the store file) -> ``FloorPlan``.
A camera's ``floor_points: {image: [[x, y], ...], floor: [[x, y], ...]}`` (>= 4 pairs, pixels
and metres) fit its image -> floor homography (normalised DLT, ``fit_homography``) ->
``FloorCalibration``. The fit is refused when the pairs are degenerate (three of four on a
line), miss by more than ``max_rms_m`` (0.25 m RMS), or put the horizon across the lower half
of the image; every zone vertex must map in front of the camera and, with a ``floor:``
outline, within 0.5 m of it. ``visits:`` tunes the linker (``VisitSettings``, ``appearance``
-> ``AppearanceModel``); ``{}`` is the defaults, absent is None (per-camera journeys only).

May import: analytics.floor, analytics.geometry, analytics.config_fields, core.config, numpy,
the standard library (never analytics.config: it imports this module).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.config_fields import DIRECTIONS, image_point, is_xy
from analytics.floor import Door, FloorCalibration, FloorPlan
from analytics.geometry import points_in_polygon, polygon_area, polygon_self_intersects
from core.config import Fields, field_path


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
    decide_every_s: float = 8.0  # heads due are decided together this often (at the linker's steps, which the
    # clients' clients.store_link.StoreLink takes at this pace, ``VisitLinker.step_s``): fewer decisions with more
    # heads each cost less, and a head decided later has more evidence, but on the 24 h sample day 4 s scored
    # visit IDF1 0.964, 6 s 0.962, 8 s 0.959 (200-people benchmark: 4 -> 8 s ~1.5 us/frame less)
    max_speed_mps: float = 2.5  # no one walks faster between two sightings
    position_slack_m: float = 1.5  # calibration and box noise on a floor position
    overlap_s: float = 1.0  # one visit's tracklets may overlap in time this much (more: positions must agree)
    door_radius_m: float = 2.0  # a track beginning/ending this close to a door enters/leaves the store
    door_close_s: float = 5.0  # a visit whose last track left through a door closes this long after
    appearance: AppearanceModel = AppearanceModel()


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
    if not is_xy(v):
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


def parse_floor(fields: Fields, raw: Any) -> FloorPlan | None:
    """``floor:`` -> the plan in metres; None when the section is absent."""
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


def parse_calibration(fields: Fields, raw: Any, base: str, size: tuple[int, int],
                      zones: Mapping[str, np.ndarray], floor: FloorPlan | None) -> FloorCalibration | None:
    """``<base>.floor_points`` of a camera (``base``: "cameras.<id>") with image ``size`` (width,
    height) -> its image -> floor calibration; None when absent. ``zones``: the camera's zone
    polygons by name (float64[V, 2] pixels), each checked to lie in front of the camera (and,
    with ``floor``, within OUTLINE_MARGIN_M of its outline)."""
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
    img = np.stack([image_point(fields, p, field_path(f"{cf}.image", i), size) for i, p in enumerate(iraw)])
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
    for zname, poly in zones.items():
        zf = f"{base}.zones.{zname}.polygon"
        zw = np.c_[poly, np.ones(len(poly))] @ h[2]
        for i in np.flatnonzero(zw <= _W_EPS):
            raise fields.error(field_path(zf, int(i)), poly[i].tolist(),
                               f"lies beyond the horizon of camera {base.split('.', 1)[1]}'s floor calibration "
                               "(floor_points): not on the floor")
        if floor is not None:
            fp = cal.to_floor(poly)
            off = ~points_in_polygon(fp, floor.outline) & (_outline_distance(fp, floor.outline) > OUTLINE_MARGIN_M)
            for i in np.flatnonzero(off):
                raise fields.error(field_path(zf, int(i)), poly[i].tolist(),
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


_VISITS_POSITIVE = {"timeout_s", "max_speed_mps", "decide_every_s"}  # the rest may be 0


def parse_visits(fields: Fields, raw: Any) -> VisitSettings | None:
    """``visits:`` -> the linker's settings (``{}``: the defaults); None when the section is absent."""
    if raw is None:
        return None
    keys = [k for k in VisitSettings.__dataclass_fields__ if k != "appearance"]
    vraw = fields.section(fields.mapping(raw, "visits", optional=False), "visits", set(keys) | {"appearance"})
    vd = VisitSettings()
    nums = {k: (_positive(fields, vraw, k, "visits", getattr(vd, k)) if k in _VISITS_POSITIVE
                else fields.number(vraw, k, "visits", getattr(vd, k), lo=0.0)) for k in keys}
    return VisitSettings(**nums, appearance=_appearance(fields, vraw.get("appearance")))
