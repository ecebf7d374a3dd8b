"""Journeys: one per person track, from first to last sighting on a camera.

Per track: zones visited in order, dwell per zone, duration, converted (dwelt in a
converting zone, e.g. a checkout service zone, long enough) and cart detected (a cart
track stayed near the person for a good part of the journey). State lives in arrays
indexed by the camera's ``TrackTable`` rows; Python loops run only over zone stays that
just ended and journeys that just closed.

Dwell integrates frame-time gaps (timestamps, not frame counts) while the track is
seen; a gap longer than ``lost_after_s`` adds nothing. A zone counts as visited when one
continuous stay lasts ``min_zone_dwell_s``: jitter across a zone edge makes no visit.
Zone entries and exits (for occupancy reports) are counted from the same stays.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from analytics.config import JourneySettings
from analytics.records import JourneyRecord
from analytics.slots import TrackTable, grow


def counter_ids(prefix: str = "journey-", width: int = 6, start: int = 1) -> Callable[[], str]:
    n = iter(range(start, 1 << 62))
    return lambda: f"{prefix}{next(n):0{width}d}"


class JourneyTracker:
    def __init__(self, stream_id: str, table: TrackTable, zone_names: list[str], settings: JourneySettings,
                 converting: list[bool] | None = None, next_id: Callable[[], str] | None = None) -> None:
        self.stream_id = stream_id
        self.table = table
        self.zone_names = list(zone_names)
        self.s = settings
        z = len(zone_names)
        self.converting = np.asarray(converting if converting is not None else [False] * z, bool)
        self.next_id = next_id or counter_ids()
        c = table.capacity
        self.dwell = np.zeros((c, z))
        self.stay_start = np.full((c, z), np.nan)
        self.inside = np.zeros((c, z), bool)
        self.frames = np.zeros(c, np.int64)
        self.cart_frames = np.zeros(c, np.int64)
        self.visits: dict[int, list[tuple[float, int]]] = {}
        self.entries = np.zeros(z, np.int64)  # since the last take_counts()
        self.exits = np.zeros(z, np.int64)
        table.on_grow(self._grow)

    def _grow(self, cap: int) -> None:
        self.dwell, self.stay_start = grow(self.dwell, cap, 0.0), grow(self.stay_start, cap, np.nan)
        self.inside = grow(self.inside, cap, False)
        self.frames, self.cart_frames = grow(self.frames, cap, 0), grow(self.cart_frames, cap, 0)

    def update(self, t: float, rows: np.ndarray, new: np.ndarray, dt: np.ndarray, inside: np.ndarray,
               cart_near: np.ndarray | None = None) -> None:
        """One frame's person tracks: rows/new/dt from ``TrackTable.observe``, ``inside`` bool[M, Z],
        ``cart_near`` bool[M]."""
        if len(rows) == 0:
            return
        if np.count_nonzero(new):
            nr = rows[new]
            self.dwell[nr] = 0.0
            self.stay_start[nr] = np.nan
            self.inside[nr] = False
            self.frames[nr] = 0
            self.cart_frames[nr] = 0
        dt = np.where(dt > self.s.lost_after_s, 0.0, dt)
        self.dwell[rows] += inside * dt[:, None]
        was = self.inside[rows]
        changed = was != inside
        if np.count_nonzero(changed):
            started, ended = inside & ~was, was & ~inside
            self.entries += started.sum(axis=0)
            self.exits += ended.sum(axis=0)
            r, zc = np.nonzero(started)
            self.stay_start[rows[r], zc] = t
            for r, zc in zip(*np.nonzero(ended)):
                self._close_stay(int(rows[r]), int(zc), t)
            self.inside[rows] = inside
        self.frames[rows] += 1
        if cart_near is not None:
            self.cart_frames[rows] += cart_near

    def occupancy(self, t: float, hold_s: float = 1.0) -> np.ndarray:
        """int64[Z]: tracks inside each zone, counting those missed for at most ``hold_s``."""
        _, rows = self.table.slots._keys, self.table.slots._vals
        if len(rows) == 0:
            return np.zeros(len(self.zone_names), np.int64)
        fresh = self.table.last_t[rows] >= t - hold_s
        return self.inside[rows[fresh]].sum(axis=0).astype(np.int64)

    def take_counts(self) -> tuple[np.ndarray, np.ndarray]:
        e, x = self.entries.copy(), self.exits.copy()
        self.entries[:] = 0
        self.exits[:] = 0
        return e, x

    def current_stays(self, t: float) -> np.ndarray:
        """float[Z]: the longest ongoing continuous stay in each zone (seconds; 0 if nobody)."""
        rows = self.table.slots._vals
        if len(rows) == 0:
            return np.zeros(len(self.zone_names))
        ss = self.stay_start[rows]
        fresh = self.table.last_t[rows] >= t - self.s.lost_after_s
        ss = np.where(fresh[:, None] & ~np.isnan(ss), ss, np.inf)
        first = ss.min(axis=0)
        return np.where(np.isfinite(first), t - first, 0.0)

    def _close_stay(self, row: int, z: int, t_end: float) -> None:
        start = self.stay_start[row, z]
        self.stay_start[row, z] = np.nan
        if t_end - start >= self.s.min_zone_dwell_s:
            self.visits.setdefault(row, []).append((float(start), z))

    def finish(self, ids: np.ndarray, rows: np.ndarray) -> Iterator[JourneyRecord]:
        """End the journeys of these tracks (lost, or end of stream). The caller releases the rows."""
        for tid, row in zip(ids.tolist(), rows.tolist()):
            end = float(self.table.last_t[row])
            for z in np.nonzero(self.inside[row])[0]:
                self._close_stay(row, int(z), end)
                self.exits[z] += 1
            self.inside[row] = False
            visits = sorted(self.visits.pop(row, []))
            start = float(self.table.first_t[row])
            if end - start < self.s.min_duration_s:
                continue
            order: list[int] = []
            for _, z in visits:
                if not order or order[-1] != z:
                    order.append(z)
            seen = list(dict.fromkeys(order))
            dwell = {self.zone_names[z]: float(self.dwell[row, z]) for z in seen}
            converted = bool(np.any(self.converting & (self.dwell[row] >= self.s.min_conversion_dwell_s)))
            cart = bool(self.frames[row] > 0 and self.cart_frames[row] >= self.s.cart_min_fraction * self.frames[row])
            yield JourneyRecord(self.next_id(), int(tid), self.stream_id, start, end,
                                tuple(self.zone_names[z] for z in order), dwell, converted, cart)

    def reset(self) -> None:
        self.visits.clear()
        self.inside[:] = False
        self.entries[:] = 0
        self.exits[:] = 0
