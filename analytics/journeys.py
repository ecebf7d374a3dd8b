"""Journeys: one per person track, from first to last sighting on a camera.

Per track: zones visited in order, dwell per zone, duration, converted (dwelt in a
converting zone, e.g. a checkout service zone, long enough) and cart detected (a cart
track stayed near the person for a good part of the journey). State lives in arrays
indexed by ``SlotMap`` rows; Python loops run only over zone stays that just ended.

Dwell integrates frame-time gaps (timestamps, not frame counts) while the track is
seen; a gap longer than ``lost_after_s`` adds nothing. A zone counts as visited when one
continuous stay lasts ``min_zone_dwell_s``: jitter across a zone edge makes no visit.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from analytics.config import JourneySettings
from analytics.records import JourneyRecord
from analytics.slots import SlotMap, grow


def counter_ids(prefix: str = "journey-", width: int = 6, start: int = 1) -> Callable[[], str]:
    n = iter(range(start, 1 << 62))
    return lambda: f"{prefix}{next(n):0{width}d}"


class JourneyTracker:
    def __init__(self, stream_id: str, zone_names: list[str], settings: JourneySettings,
                 converting: list[bool] | None = None, next_id: Callable[[], str] | None = None) -> None:
        self.stream_id = stream_id
        self.zone_names = list(zone_names)
        self.s = settings
        z = len(zone_names)
        self.converting = np.asarray(converting if converting is not None else [False] * z, bool)
        self.next_id = next_id or counter_ids()
        self.slots = SlotMap(64)
        c = self.slots.capacity
        self.first_t = np.zeros(c)
        self.last_t = np.zeros(c)
        self.dwell = np.zeros((c, z))
        self.stay_start = np.full((c, z), np.nan)
        self.frames = np.zeros(c, np.int64)
        self.cart_frames = np.zeros(c, np.int64)
        self.visits: dict[int, list[tuple[float, int]]] = {}
        self.slots.on_grow(self._grow)
        self._next_check = -np.inf

    def _grow(self, cap: int) -> None:
        self.first_t, self.last_t = grow(self.first_t, cap, 0.0), grow(self.last_t, cap, 0.0)
        self.dwell, self.stay_start = grow(self.dwell, cap, 0.0), grow(self.stay_start, cap, np.nan)
        self.frames, self.cart_frames = grow(self.frames, cap, 0), grow(self.cart_frames, cap, 0)

    def update(self, t: float, track_ids: np.ndarray, inside: np.ndarray,
               cart_near: np.ndarray | None = None) -> list[JourneyRecord]:
        """One frame's person tracks: ids int64[M], ``inside`` bool[M, Z], ``cart_near`` bool[M].
        Returns the journeys that ended (tracks unseen for ``lost_after_s``)."""
        out: list[JourneyRecord] = []
        if t >= self._next_check:  # ended journeys need not be found on the very frame
            self._next_check = t + min(1.0, self.s.lost_after_s / 2)
            out = self._close_lost(t)
        rows, new = self.slots.lookup(track_ids)
        stale = ~new & (self.last_t[rows] < t - self.s.lost_after_s)
        if stale.any():  # back after a long gap: the old journey ended, a new one starts
            out += list(self._finish(np.asarray(track_ids, np.int64)[stale], rows[stale]))
            rows, new = self.slots.lookup(track_ids)
        if len(rows):
            nr = rows[new]
            self.first_t[nr] = t
            self.last_t[nr] = t
            self.dwell[nr] = 0.0
            self.stay_start[nr] = np.nan
            self.frames[nr] = 0
            self.cart_frames[nr] = 0
            dt = t - self.last_t[rows]
            dt[dt > self.s.lost_after_s] = 0.0
            self.dwell[rows] += inside * dt[:, None]
            was = ~np.isnan(self.stay_start[rows])
            started = inside & ~was
            ended = was & ~inside
            if started.any():
                r, zc = np.nonzero(started)
                self.stay_start[rows[r], zc] = t
            if ended.any():
                for r, zc in zip(*np.nonzero(ended)):
                    self._close_stay(int(rows[r]), int(zc), t)
            self.last_t[rows] = t
            self.frames[rows] += 1
            if cart_near is not None:
                self.cart_frames[rows] += np.asarray(cart_near, bool)
        return out

    def current_stays(self, t: float) -> np.ndarray:
        """float[Z]: the longest ongoing continuous stay in each zone (seconds; 0 if nobody)."""
        rows = self.slots.rows()
        if len(rows) == 0:
            return np.zeros(len(self.zone_names))
        ss = self.stay_start[rows]
        fresh = self.last_t[rows] >= t - self.s.lost_after_s
        ss = np.where(fresh[:, None], ss, np.nan)
        with np.errstate(invalid="ignore"):
            first = np.nanmin(np.where(np.isnan(ss), np.inf, ss), axis=0)
        return np.where(np.isfinite(first), t - first, 0.0)

    def _close_stay(self, row: int, z: int, t_end: float) -> None:
        start = self.stay_start[row, z]
        self.stay_start[row, z] = np.nan
        if t_end - start >= self.s.min_zone_dwell_s:
            self.visits.setdefault(row, []).append((float(start), z))

    def _close_lost(self, t: float) -> list[JourneyRecord]:
        ids, rows = self.slots.ids(), self.slots.rows()
        lost = self.last_t[rows] < t - self.s.lost_after_s
        return list(self._finish(ids[lost], rows[lost]))

    def flush(self) -> list[JourneyRecord]:
        """End every open journey (end of stream)."""
        return list(self._finish(self.slots.ids(), self.slots.rows()))

    def reset(self) -> None:
        self.slots.release(self.slots.ids())
        self.visits.clear()

    def _finish(self, ids: np.ndarray, rows: np.ndarray) -> Iterator[JourneyRecord]:
        for tid, row in zip(ids.tolist(), rows.tolist()):
            for z in np.nonzero(~np.isnan(self.stay_start[row]))[0]:
                self._close_stay(row, int(z), float(self.last_t[row]))
            visits = sorted(self.visits.pop(row, []))
            start, end = float(self.first_t[row]), float(self.last_t[row])
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
        self.slots.release(ids)
