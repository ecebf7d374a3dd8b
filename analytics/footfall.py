"""Footfall: counting-line crossings (in/out) and occupancy.

A track's side of the line only changes once its feet are ``band_px`` past the line (a
hysteresis band), so box jitter around the line never counts; the crossing must happen
within the segment's ends (not the infinite line); and a track's first sighting sets its
side without counting, so one-frame (unconfirmed) tracks never count.
"""
from __future__ import annotations

import numpy as np

from analytics.config import CountingLine
from analytics.geometry import line_normal
from analytics.records import FootfallRecord
from analytics.slots import TrackTable, grow


class LineCounter:
    def __init__(self, stream_id: str, line: CountingLine, table: TrackTable) -> None:
        self.stream_id = stream_id
        self.line = line
        self.normal = line_normal(line.a, line.b)
        self.in_sign = 1 if float(self.normal @ line.in_direction) > 0 else -1
        # one matmul gives both the signed distance from the line and the position along it
        d = np.asarray(line.b, np.float64) - np.asarray(line.a, np.float64)
        self._proj = np.stack([self.normal, d / float(d @ d)], axis=1)  # [2, 2]
        self._off = np.asarray(line.a, np.float64) @ self._proj
        self._band = float(line.band_px)
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
        du = feet_xy @ self._proj - self._off
        d, u = du[:, 0], du[:, 1]
        now = (d > self._band).view(np.int8) - (d < -self._band).view(np.int8)  # -1, 0 (in the band), 1
        inseg = (u >= 0.0) & (u <= 1.0)
        prev = self.side[rows]
        if np.count_nonzero(new):
            prev[new] = 0  # a track's first sighting only sets its side
        crossed = (prev * now < 0) & inseg  # definite sides, opposite, within the segment's ends
        n_in = n_out = 0
        if np.count_nonzero(crossed):
            n_in = int((crossed & (now == self.in_sign)).sum())
            n_out = int(crossed.sum()) - n_in
            self.count_in += n_in
            self.count_out += n_out
            self.total_in += n_in
            self.total_out += n_out
        # a definite side sticks; beyond the segment's ends the side is forgotten, so walking
        # around the end of the line and back is not a crossing
        self.side[rows] = (now + prev * (now == 0)) * inseg
        return n_in, n_out

    @property
    def occupancy(self) -> int:
        """People inside by this line's count since the start (never negative)."""
        return max(0, self.total_in - self.total_out)

    def report(self, t: float) -> FootfallRecord:
        rec = FootfallRecord(self.stream_id, t, self.line.name, self.count_in, self.count_out, self.occupancy)
        self.count_in = self.count_out = 0
        return rec
