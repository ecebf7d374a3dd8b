"""Zone membership of points, and per-zone occupancy with enter/exit counts.

Membership is a lookup in a per-camera raster (one uint32 per pixel, bit z set when the
pixel centre lies in zone z), built once from the polygons with
``analytics.geometry.points_in_polygon``. A frame's membership test is then a single
fancy-index whatever the number of zones or polygon vertices: that is what keeps the
per-frame cost flat.
"""
from __future__ import annotations

from dataclasses import dataclass

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
        self._bits = (np.uint32(1) << np.arange(len(zl), dtype=np.uint32))

    def __len__(self) -> int:
        return len(self.names)

    def bits(self, points: np.ndarray) -> np.ndarray:
        """uint32[N]: zone bit set of each point (0 outside every zone or outside the frame)."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        w, h = self.size
        xi = np.floor(p[:, 0]).astype(np.int64)
        yi = np.floor(p[:, 1]).astype(np.int64)
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out = np.zeros(len(p), np.uint32)
        out[ok] = self.raster[yi[ok], xi[ok]]
        return out

    def contains(self, points: np.ndarray) -> np.ndarray:
        """bool[N, Z]."""
        return (self.bits(points)[:, None] & self._bits[None, :]) != 0


@dataclass(frozen=True, slots=True)
class ZoneCounts:
    occupancy: np.ndarray  # int64[Z]: people inside now
    entries: np.ndarray  # int64[Z]: entries since the last ``take_counts``
    exits: np.ndarray  # int64[Z]


class ZoneOccupancy:
    """People per zone now, and entries/exits between reports (by track, so a person
    standing still inside is one occupant, not one entry per frame)."""

    def __init__(self, n_zones: int) -> None:
        self.n = n_zones
        self._prev_ids = np.zeros(0, np.int64)
        self._prev_in = np.zeros((0, n_zones), bool)
        self.occupancy = np.zeros(n_zones, np.int64)
        self._entries = np.zeros(n_zones, np.int64)
        self._exits = np.zeros(n_zones, np.int64)

    def update(self, track_ids: np.ndarray, inside: np.ndarray, gone_ids: np.ndarray | None = None) -> None:
        """``inside`` bool[M, Z] for this frame's tracks. Tracks absent this frame keep their
        last membership until they are reported in ``gone_ids`` (a missed detection is not
        an exit); then they count as exits."""
        ids = np.asarray(track_ids, np.int64)
        order = np.argsort(ids)
        ids, inside = ids[order], inside[order]
        pos = np.searchsorted(self._prev_ids, ids)
        pos_c = np.minimum(pos, max(len(self._prev_ids) - 1, 0))
        seen = (self._prev_ids[pos_c] == ids) if len(self._prev_ids) else np.zeros(len(ids), bool)
        before = np.zeros_like(inside)
        before[seen] = self._prev_in[pos_c[seen]]
        self._entries += (inside & ~before).sum(axis=0)
        self._exits += (~inside & before).sum(axis=0)
        # carry over tracks not in this frame
        carry = np.ones(len(self._prev_ids), bool)
        carry[pos_c[seen]] = False
        keep_ids, keep_in = self._prev_ids[carry], self._prev_in[carry]
        if gone_ids is not None and len(gone_ids) and len(keep_ids):
            g = np.isin(keep_ids, gone_ids)
            self._exits += keep_in[g].sum(axis=0)
            keep_ids, keep_in = keep_ids[~g], keep_in[~g]
        all_ids = np.concatenate([keep_ids, ids])
        all_in = np.concatenate([keep_in, inside])
        o = np.argsort(all_ids)
        self._prev_ids, self._prev_in = all_ids[o], all_in[o]
        self.occupancy = inside.sum(axis=0).astype(np.int64)

    def take_counts(self) -> ZoneCounts:
        c = ZoneCounts(self.occupancy.copy(), self._entries.copy(), self._exits.copy())
        self._entries[:] = 0
        self._exits[:] = 0
        return c
