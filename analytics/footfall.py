"""Footfall: counting-line crossings (in/out) and occupancy.

A track's side of the line only changes once its feet are ``band_px`` past the line (a
hysteresis band), so box jitter around the line never counts; the crossing must happen
within the segment's ends (not the infinite line); and a track's first sighting sets its
side without counting, so one-frame (unconfirmed) tracks never count.
"""
from __future__ import annotations

import numpy as np

from analytics.config import CountingLine
from analytics.geometry import line_normal, projection_on_segment
from analytics.records import FootfallRecord
from analytics.slots import TrackTable, grow


class LineCounter:
    def __init__(self, stream_id: str, line: CountingLine, table: TrackTable) -> None:
        self.stream_id = stream_id
        self.line = line
        self.normal = line_normal(line.a, line.b)
        self.in_sign = 1 if float(self.normal @ line.in_direction) > 0 else -1
        self.side = np.zeros(table.capacity, np.int8)
        table.on_grow(self._grow)
        self.count_in = self.count_out = 0  # since the last report
        self.total_in = self.total_out = 0

    def _grow(self, cap: int) -> None:
        self.side = grow(self.side, cap, 0)

    def update(self, rows: np.ndarray, new: np.ndarray, feet_xy: np.ndarray) -> tuple[int, int]:
        """Crossings (in, out) on this frame (rows/new from ``TrackTable.observe``)."""
        if len(rows) == 0:
            return 0, 0
        self.side[rows[new]] = 0
        d = (feet_xy - self.line.a) @ self.normal
        now = np.where(d > self.line.band_px, 1, np.where(d < -self.line.band_px, -1, 0)).astype(np.int8)
        prev = self.side[rows]
        u = projection_on_segment(feet_xy, self.line.a, self.line.b)
        beyond = (u < 0.0) | (u > 1.0)
        crossed = (prev != 0) & (now != 0) & (now != prev) & ~beyond
        n_in = int((crossed & (now == self.in_sign)).sum())
        n_out = int(crossed.sum()) - n_in
        # a definite side sticks; beyond the segment's ends the side is forgotten, so walking
        # around the end of the line and back is not a crossing
        self.side[rows] = np.where(beyond, 0, np.where(now != 0, now, prev))
        self.count_in += n_in
        self.count_out += n_out
        self.total_in += n_in
        self.total_out += n_out
        return n_in, n_out

    @property
    def occupancy(self) -> int:
        """People inside by this line's count since the start (never negative)."""
        return max(0, self.total_in - self.total_out)

    def report(self, t: float) -> FootfallRecord:
        rec = FootfallRecord(self.stream_id, t, self.line.name, self.count_in, self.count_out, self.occupancy)
        self.count_in = self.count_out = 0
        return rec
