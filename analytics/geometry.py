"""Plane geometry on NumPy arrays: point-in-polygon, segment crossings, polygon checks.

Points are float arrays of shape [N, 2] in image pixels (x right, y down). Everything is
vectorised over points (the per-frame hot path); loops run only over polygon edges,
which are few and fixed by the configuration.
"""
from __future__ import annotations

import numpy as np


def feet(xyxy: np.ndarray) -> np.ndarray:
    """Bottom centre of boxes: float32[N, 4] (x1, y1, x2, y2) -> float64[N, 2].

    A person stands where the feet are, not at the box centre (which floats above the
    floor by half a body and moves with perspective)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], axis=1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """bool[N]: which points lie inside ``polygon`` (float[V, 2], closed implicitly).

    Even-odd ray casting; a point exactly on an edge may fall either way (measure zero
    for real positions)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    inside = np.zeros(len(p), dtype=bool)
    x0, y0 = poly[-1]
    for x1, y1 in poly:
        if y0 != y1:  # horizontal edges never cross a horizontal ray
            straddles = (y0 > y) != (y1 > y)
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            inside ^= straddles & (x < x_cross)
        x0, y0 = x1, y1
    return inside


def line_normal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit normal (-dy, dx) of the direction a->b; on screen (y down), for a->b pointing
    right it points down."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return np.array([-d[1], d[0]]) / np.hypot(d[0], d[1])


def segments_intersect(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """bool[N]: whether segments p1[i]->p2[i] and q1[i]->q2[i] properly cross (arrays [N, 2],
    or [2] broadcast). Touching at an end point or collinear overlap counts as crossing."""
    p1, p2, q1, q2 = (np.asarray(v, np.float64) for v in (p1, p2, q1, q2))

    def orient(a, b, c):
        return np.sign((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
                       - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))

    def on_seg(a, b, c):  # c collinear with a-b: inside its bounding box?
        return ((np.minimum(a[..., 0], b[..., 0]) <= c[..., 0]) & (c[..., 0] <= np.maximum(a[..., 0], b[..., 0]))
                & (np.minimum(a[..., 1], b[..., 1]) <= c[..., 1]) & (c[..., 1] <= np.maximum(a[..., 1], b[..., 1])))

    o1, o2, o3, o4 = orient(p1, p2, q1), orient(p1, p2, q2), orient(q1, q2, p1), orient(q1, q2, p2)
    general = (o1 != o2) & (o3 != o4)
    special = (((o1 == 0) & on_seg(p1, p2, q1)) | ((o2 == 0) & on_seg(p1, p2, q2))
               | ((o3 == 0) & on_seg(q1, q2, p1)) | ((o4 == 0) & on_seg(q1, q2, p2)))
    return general | special


def polygon_self_intersects(polygon: np.ndarray) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (indices) that cross, or None for a simple polygon."""
    poly = np.asarray(polygon, dtype=np.float64)
    v = len(poly)
    a, b = poly, np.roll(poly, -1, axis=0)  # edge i: a[i] -> b[i]
    for i in range(v):
        j = np.arange(i + 2, v)
        if i == 0:
            j = j[j != v - 1]  # edge v-1 shares vertex 0 with edge 0
        if len(j) == 0:
            continue
        hit = segments_intersect(a[i], b[i], a[j], b[j])
        if hit.any():
            return i, int(j[np.argmax(hit)])
    return None


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned area (shoelace)."""
    p = np.asarray(polygon, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
