"""Journeys: one per person track, from first to last sighting on a camera.

Per track: zones visited in order, dwell per zone, duration, converted (dwelt in a
converting zone, e.g. a checkout service zone, long enough) and cart detected (a cart
track was the person's own, see ``CartOwners``, for a good part of the journey). State lives in arrays
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
from analytics.slots import SlotMap, TrackTable, grow
from tracking.matching import assign


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
        ``cart_near`` int[M] (or bool[M]): frames to add to each person's cart frames (``CartOwners.update``)."""
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
        for _, _, rec, _ in self.finish_detailed(ids, rows):
            if rec is not None:
                yield rec

    def finish_detailed(self, ids: np.ndarray, rows: np.ndarray
                        ) -> Iterator[tuple[int, int, JourneyRecord | None, tuple[tuple[float, str], ...]]]:
        """``finish`` with each track's (id, row, journey or None when too short, zone visits as
        (entered at, zone) in time order): what a tracklet carries to the store-level linker."""
        for tid, row in zip(ids.tolist(), rows.tolist()):
            end = float(self.table.last_t[row])
            for z in np.nonzero(self.inside[row])[0]:
                self._close_stay(row, int(z), end)
                self.exits[z] += 1
            self.inside[row] = False
            visits = sorted(self.visits.pop(row, []))
            start = float(self.table.first_t[row])
            zone_visits = tuple((t, self.zone_names[z]) for t, z in visits)
            if end - start < self.s.min_duration_s:
                yield tid, row, None, zone_visits
                continue
            order: list[int] = []
            for _, z in visits:
                if not order or order[-1] != z:
                    order.append(z)
            seen = list(dict.fromkeys(order))
            dwell = {self.zone_names[z]: float(self.dwell[row, z]) for z in seen}
            converted = bool(np.any(self.converting & (self.dwell[row] >= self.s.min_conversion_dwell_s)))
            cart = bool(self.frames[row] > 0 and self.cart_frames[row] >= self.s.cart_min_fraction * self.frames[row])
            yield tid, row, JourneyRecord(self.next_id(), int(tid), self.stream_id, start, end,
                                          tuple(self.zone_names[z] for z in order), dwell, converted, cart), zone_visits

    def reset(self) -> None:
        self.visits.clear()
        self.inside[:] = False
        self.entries[:] = 0
        self.exits[:] = 0


class CartOwners:
    """Which person each cart track belongs to, one frame at a time, so a cart counts for one person.

    Per frame a cart whose owner is in the frame and within ``max_distance`` (cart bottom centre
    to feet, in person heights) stays with the owner, so a cart parked between two people, or
    pushed past someone, stays with whoever had it; the other carts are assigned one-to-one to the
    other persons (minimum total squared distance, gated at ``max_distance``; a recent owner costs
    ``sticky`` times its squared distance). A pair counts only once it has lasted ``confirm_s`` (a cart rolling
    past a person for a moment is nobody's); then the frames of that wait are credited at once, so
    an owner's fraction of cart frames is not cut by the wait. A cart unassigned for more than
    ``hold_s`` (its owner missed, or it was left) starts again with no owner. Vectorised: one
    distance matrix per frame, an assignment only for carts changing hands; cart state lives in arrays by ``SlotMap`` rows.
    """

    def __init__(self, max_distance: float, confirm_s: float = 2.0, hold_s: float = 1.0, sticky: float = 0.5) -> None:
        self.max_distance, self.confirm_s, self.hold_s, self.sticky = float(max_distance), confirm_s, hold_s, sticky
        self.slots = SlotMap(16)
        c = self.slots.capacity
        self.owner = np.full(c, -1, np.int64)  # person track id, -1: nobody
        self.since = np.zeros(c)  # start of the current pairing
        self.last_with = np.full(c, -np.inf)  # last frame the cart was assigned to its owner
        self.last_seen = np.zeros(c)
        self.pending = np.zeros(c, np.int64)  # frames paired while not yet confirmed
        self.confirmed = np.zeros(c, bool)
        self.slots.on_grow(self._grow)

    def _grow(self, cap: int) -> None:
        self.owner, self.since = grow(self.owner, cap, -1), grow(self.since, cap, 0.0)
        self.last_with, self.last_seen = grow(self.last_with, cap, -np.inf), grow(self.last_seen, cap, 0.0)
        self.pending, self.confirmed = grow(self.pending, cap, 0), grow(self.confirmed, cap, False)

    def update(self, t: float, p_ids: np.ndarray, p_box: np.ndarray, p_feet: np.ndarray, c_ids: np.ndarray,
               c_box: np.ndarray) -> np.ndarray:
        """int64[P]: cart frames to credit to each of this frame's persons (0 or 1, more on confirmation)."""
        credit = np.zeros(len(p_ids), np.int64)
        rows, new = self.slots.lookup(c_ids)
        if len(rows) == 0:
            return credit
        if np.count_nonzero(new):
            nr = rows[new]
            self.owner[nr], self.last_with[nr], self.pending[nr], self.confirmed[nr] = -1, -np.inf, 0, False
        self.last_seen[rows] = t
        if len(p_ids) == 0:
            return credit
        # cost: squared distance in person heights (favours pairing everyone: two carts each beside
        # its owner beat one cart at the feet of the wrong person)
        h = np.maximum(p_box[:, 3] - p_box[:, 1], 1.0)
        dx = p_feet[:, 0:1] - (c_box[:, 0] + c_box[:, 2]) * 0.5
        dy = p_feet[:, 1:2] - c_box[:, 3]
        cost = (dx * dx + dy * dy) / (h * h)[:, None]
        gate = self.max_distance * self.max_distance
        cost[cost > gate] = np.inf
        own = p_ids[:, None] == self.owner[rows]
        kp, kc = self._kept(own, cost)
        if len(kc) < len(rows):  # carts without their owner in reach: solve for those alone
            free_p = np.ones(len(p_ids), bool)
            free_p[kp] = False
            free_c = np.ones(len(rows), bool)
            free_c[kc] = False
            fp, fc = free_p.nonzero()[0], free_c.nonzero()[0]
            sub = cost[fp][:, fc]
            o = own[fp][:, fc]
            if o.any():
                sub[o] *= self.sticky
            si, sj = assign(sub, gate)
            pi, ci = np.concatenate([kp, fp[si]]), np.concatenate([kc, fc[sj]])
        else:
            pi, ci = kp, kc
        if len(pi) == 0:
            return credit
        r, pid = rows[ci], p_ids[pi]
        keep = (self.owner[r] == pid) & (t - self.last_with[r] <= self.hold_s)
        if not keep.all():  # a new pairing (another person, or after a long break)
            sw = r[~keep]
            self.owner[sw], self.since[sw], self.pending[sw], self.confirmed[sw] = pid[~keep], t, 0, False
        self.last_with[r] = t
        conf = self.confirmed[r]
        if conf.all():  # the usual case: carts with their confirmed owners
            credit[pi] = 1
            return credit
        u = r[~conf]
        self.pending[u] += 1
        newly = t - self.since[u] >= self.confirm_s
        c = conf.astype(np.int64)
        c[~conf] = np.where(newly, self.pending[u], 0)
        credit[pi] = c
        self.confirmed[u[newly]] = True
        return credit

    @staticmethod
    def _kept(own: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(person, cart) indices of carts whose owner is in this frame and within reach: they stay
        paired without solving (in a steady store nearly every cart, so the solver sees only the
        few carts that changed hands). Two carts claiming one owner both go to the solver."""
        ok = own & np.isfinite(cost)
        kc = ok.any(axis=0).nonzero()[0]
        if len(kc) == 0:
            return kc, kc
        kp = ok[:, kc].argmax(axis=0)
        if len(kp) > 1:
            n = np.bincount(kp)
            if n.max() > 1:
                single = n[kp] == 1
                kp, kc = kp[single], kc[single]
        return kp, kc

    def expire(self, t: float, after_s: float) -> None:
        """Forget cart tracks unseen for more than ``after_s``."""
        rows = self.slots._vals
        if len(rows):
            old = self.last_seen[rows] < t - after_s
            if np.count_nonzero(old):
                self.slots.release(self.slots._keys[old])

    def reset(self) -> None:
        self.slots.release(self.slots.ids())
