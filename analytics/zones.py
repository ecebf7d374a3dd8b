"""Zone membership of points (occupancy and entries/exits are counted by ``analytics.journeys``).

Membership is a lookup in a per-camera raster (one uint32 per pixel, bit z set when the
pixel centre lies in zone z), built once from the polygons with
``analytics.geometry.points_in_polygon``. A frame's membership test is then a single
fancy-index whatever the number of zones or polygon vertices: that is what keeps the
per-frame cost flat.
"""
from __future__ import annotations

import numpy as np

from analytics.config import Zone
from analytics.geometry import points_in_polygon


class ZoneSet:
    """The zones of one camera. ``contains(points) -> bool[N, Z]`` in ``names`` order."""

    def __init__(self, zones: dict[str, Zone] | list[Zone], image_size: tuple[int, int]) -> None:
        zl = list(zones.values()) if isinstance(zones, dict) else list(zones)
        if len(zl) > 32:
            raise ValueError(f"at most 32 zones per camera (got {len(zl)})")
        self.names: list[str] = [z.name for z in zl]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.zones = zl
        w, h = image_size
        self.size = (int(w), int(h))
        self.raster = np.zeros((h, w), np.uint32)
        if zl:
            ys, xs = np.mgrid[0:h, 0:w]
            centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
            for i, z in enumerate(zl):
                x0, y0 = np.floor(z.polygon.min(axis=0)).astype(int)
                x1, y1 = np.ceil(z.polygon.max(axis=0)).astype(int)
                box = (centres[:, 0] >= x0) & (centres[:, 0] <= x1) & (centres[:, 1] >= y0) & (centres[:, 1] <= y1)
                inside = np.zeros(len(centres), bool)
                inside[box] = points_in_polygon(centres[box], z.polygon)
                self.raster.ravel()[inside] |= np.uint32(1 << i)
        self._padded = np.zeros((h + 2, w + 2), np.uint32)
        self._padded[1:-1, 1:-1] = self.raster
        self._hi = np.array([w + 1.0, h + 1.0])
        self._bits = (np.uint32(1) << np.arange(len(zl), dtype=np.uint32))

    def __len__(self) -> int:
        return len(self.names)

    def bits(self, points: np.ndarray) -> np.ndarray:
        """uint32[N]: zone bit set of each point (0 outside every zone or outside the frame)."""
        # the padded raster has a zero border: anything outside the frame lands on it
        q = np.asarray(points, np.float64).reshape(-1, 2) + 1.0
        np.clip(q, 0.0, self._hi, out=q)
        qi = q.astype(np.intp)
        return self._padded[qi[:, 1], qi[:, 0]]

    def contains(self, points: np.ndarray) -> np.ndarray:
        """bool[N, Z]."""
        return (self.bits(points)[:, None] & self._bits[None, :]) != 0
