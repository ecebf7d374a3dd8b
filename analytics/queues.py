"""Checkout lanes: queue length, waits, service rate and abandonment per lane.

A person joins the queue when their feet enter the lane's queue zone and is served once
they have stayed ``min_service_s`` in its service zone: wait = service-zone entry - queue
entry (timestamps); the average wait covers the people seen joining the queue. Someone who
leaves the queue zone for ``abandon_after_s`` without reaching the service zone abandoned.
Tracker hiccups are handled where they would bias the numbers:
- a track missing for a frame or two still counts in the queue (``hold_s``);
- a track that vanishes inside the queue zone (or at the till before being served) and a new
  track that appears nearby in the queue or service zone shortly after are the same customer:
  the new track inherits the join time (and the service-zone entry), otherwise a lost track
  would read as an abandonment plus a customer with a short (or unknown) wait;
- a waiting track that vanishes for good (lost, not taken over within ``inherit_within_s``)
  abandoned, as does one lost while walking out of the queue: both left the queue unserved,
  which is what the simulator's truth calls abandonment. Not counted: tracks that waited less
  than ``vanish_min_wait_s`` (false positives, flicker) and ones lost in the service zone (they
  reached the till, where a hidden customer is being served, not leaving). Abandoned waits
  stay out of the average wait, which covers served customers (as the truth's waits do);
- the reported length is the median over the last ``smooth_s`` (one-frame flicker).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.records import QueueMetricsRecord
from analytics.slots import TrackTable, grow


@dataclass(frozen=True)
class QueueSettings:
    hold_s: float = 1.0
    smooth_s: float = 4.0
    min_service_s: float = 2.0  # in the service zone this long to count as served (not passing, not a flicker)
    abandon_after_s: float = 3.0
    inherit_within_s: float = 8.0
    inherit_px: float = 80.0
    vanish_min_wait_s: float = 3.0  # a vanished track that waited less is no abandonment (false positive)


class CheckoutQueues:
    """All checkout lanes of one camera, updated together: per-track state is [rows, lanes]."""

    def __init__(self, stream_id: str, lanes: list[tuple[str, int, int]], table: TrackTable,
                 settings: QueueSettings = QueueSettings()) -> None:
        """``lanes``: (lane id, queue zone index, service zone index) per lane."""
        self.stream_id = stream_id
        self.lane_ids = [l[0] for l in lanes]
        self.qz = np.array([l[1] for l in lanes], np.int64)
        self.sz = np.array([l[2] for l in lanes], np.int64)
        self.table = table
        self.s = settings
        c, n = table.capacity, len(lanes)
        self.join_t = np.full((c, n), np.nan)
        self.served = np.zeros((c, n), bool)
        self.in_q = np.zeros((c, n), bool)
        self.left_t = np.full((c, n), np.nan)  # when a waiting person was first seen out of both zones
        self.svc_t = np.full((c, n), np.nan)  # when the person entered the service zone (not yet served)
        self.pos = np.zeros((c, 2))
        table.on_grow(self._grow)
        # lost waiting tracks: (last seen, x, y, join, lane, service-zone entry or nan)
        self._vanished: list[tuple[float, float, float, float, int, float]] = []
        self._vanish_oldest = np.inf  # earliest last-seen time in _vanished: nothing expires before it
        self._hist_t = np.full(256, -np.inf)  # ring buffer: frame time, queue length per lane
        self._hist_n = np.zeros((256, n))
        self._hist_i = 0
        self._waits: list[list[float]] = [[] for _ in lanes]
        self._served = np.zeros(len(lanes), np.int64)
        self._abandoned = np.zeros(n, np.int64)
        self._n_waiting = 0
        self.total_served = np.zeros(n, np.int64)
        self.total_abandoned = np.zeros(n, np.int64)
        self.lanes = [LaneView(self, i) for i in range(n)]

    def _grow(self, cap: int) -> None:
        self.join_t, self.served = grow(self.join_t, cap, np.nan), grow(self.served, cap, False)
        self.in_q, self.left_t = grow(self.in_q, cap, False), grow(self.left_t, cap, np.nan)
        self.svc_t, self.pos = grow(self.svc_t, cap, np.nan), grow(self.pos, cap, 0.0)

    def _push(self, t: float, n) -> None:
        size = len(self._hist_t)
        i = self._hist_i % size
        if self._hist_t[i] >= t - self.s.smooth_s:  # buffer too short for this frame rate: double it
            self._hist_t = np.concatenate([self._hist_t[i:], self._hist_t[:i], np.full(size, -np.inf)])
            self._hist_n = np.concatenate([self._hist_n[i:], self._hist_n[:i], np.zeros_like(self._hist_n)])
            i = self._hist_i = size
        self._hist_t[i] = t
        self._hist_n[i] = n
        self._hist_i += 1

    def update(self, t: float, rows: np.ndarray, new: np.ndarray, feet_xy: np.ndarray, inside: np.ndarray) -> None:
        """One frame's person tracks (rows/new from ``TrackTable.observe``), feet float[M, 2] and
        zone membership bool[M, Z]."""
        if self._vanished:
            self._expire_vanished(t)
        in_q, in_s = inside[:, self.qz], inside[:, self.sz]
        if self._n_waiting == 0 and not (np.count_nonzero(in_q) or np.count_nonzero(in_s)):
            self._push(t, 0)  # nobody at any lane: the common case, kept cheap
            return
        any_new = bool(np.count_nonzero(new))
        if any_new:
            nr = rows[new]
            self.join_t[nr] = np.nan
            self.served[nr] = False
            self.left_t[nr] = np.nan
            self.svc_t[nr] = np.nan
            self.in_q[nr] = False
        jt, sv, st = self.join_t[rows], self.served[rows], self.svc_t[rows]
        open_ = ~sv
        joined = ~np.isnan(jt)
        joins = in_q & ~in_s & open_ & ~joined
        if np.count_nonzero(joins):
            jt[joins] = t
            joined |= joins
        # service: entered the service zone and stayed min_service_s; the wait ends at the entry
        svc = in_s & open_
        st[~svc] = np.nan
        st[svc & np.isnan(st)] = t
        start = svc & (t - st >= self.s.min_service_s)
        if np.count_nonzero(start):
            for r, lane in zip(*np.nonzero(start)):
                j = jt[r, lane]
                self._served[lane] += 1
                if not np.isnan(j):  # a wait is known only for people seen joining the queue
                    self._waits[lane].append(st[r, lane] - j)
            sv |= start
            open_ &= ~start
            st[start] = np.nan
            self.total_served += start.sum(axis=0)
        # out of both zones while waiting: abandonment once it lasts
        out = joined & open_ & ~in_q & ~in_s
        lt = self.left_t[rows]
        if np.count_nonzero(out):
            lt[~out] = np.nan
            lt[out & np.isnan(lt)] = t
            gone = out & (t - lt >= self.s.abandon_after_s)
            if np.count_nonzero(gone):
                g = gone.sum(axis=0)
                self._abandoned += g
                self.total_abandoned += g
                jt[gone] = np.nan
        else:
            lt[:] = np.nan
        self.join_t[rows], self.served[rows], self.left_t[rows], self.in_q[rows] = jt, sv, lt, in_q
        self.svc_t[rows] = st
        self.pos[rows] = feet_xy
        if any_new:  # a fresh track in a queue or at a till: a lost one reborn?
            for i, lane in zip(*np.nonzero(joins & new[:, None])):
                self._inherit(int(rows[i]), int(lane), feet_xy[i], t, False)
            for i, lane in zip(*np.nonzero(in_s & ~joined & ~sv & new[:, None])):
                self._inherit(int(rows[i]), int(lane), feet_xy[i], t, True)
        a = self.table.slots._vals
        w = ~(np.isnan(self.join_t[a]) | self.served[a])
        self._n_waiting = int(np.count_nonzero(w)) + int(np.count_nonzero(~np.isnan(self.svc_t[a])))
        w &= self.in_q[a]
        w &= (self.table.last_t[a] >= t - self.s.hold_s)[:, None]
        self._push(t, w.sum(axis=0))

    def _inherit(self, row: int, lane: int, xy: np.ndarray, t: float, at_till: bool) -> None:
        """The new track ``row`` (in the lane's queue zone, or its service zone if ``at_till``) takes
        over the nearest waiting track missed or lost within ``inherit_within_s``, if any: join time
        and, at the till, the lost one's service-zone entry. Only a track appearing at the till may
        take over one lost at the till."""
        rows = self.table.slots._vals
        last = self.table.last_t[rows]
        held = self.in_q[rows, lane] | (~np.isnan(self.svc_t[rows, lane]) if at_till else False)
        cand = (~np.isnan(self.join_t[rows, lane]) & ~self.served[rows, lane] & held
                & (last < t) & (last >= t - self.s.inherit_within_s) & (rows != row))
        best, best_d, best_row, vi, best_svc = None, self.s.inherit_px, -1, -1, np.nan
        for r in rows[cand].tolist():
            d = float(np.hypot(*(self.pos[r] - xy)))
            if d <= best_d:
                best, best_d, best_row, best_svc = float(self.join_t[r, lane]), d, r, float(self.svc_t[r, lane])
        for i, (_, x, y, jt, ln, svc) in enumerate(self._vanished):
            d = float(np.hypot(x - xy[0], y - xy[1]))
            if ln == lane and d <= best_d and (at_till or np.isnan(svc)):
                best, best_d, best_row, vi, best_svc = jt, d, -1, i, svc
        if best is None:
            return
        self.join_t[row, lane] = best
        if at_till and not np.isnan(best_svc):
            self.svc_t[row, lane] = min(best_svc, self.svc_t[row, lane])
        if vi >= 0:
            del self._vanished[vi]
        else:  # the old track is this customer: neither abandoned nor counted twice
            self.join_t[best_row, lane] = np.nan
            self.svc_t[best_row, lane] = np.nan
            self.in_q[best_row, lane] = False

    def _abandon(self, lane: int) -> None:
        self._abandoned[lane] += 1
        self.total_abandoned[lane] += 1

    def _expire_vanished(self, t: float) -> None:
        """Lost waiting tracks nobody took over within ``inherit_within_s``: gone for good. One lost
        in the queue abandoned (if it waited ``vanish_min_wait_s``); one lost at the till did not."""
        if t - self._vanish_oldest <= self.s.inherit_within_s:
            return  # the per-frame call while someone is pending: nothing due yet
        keep = []
        for v in self._vanished:
            last, _, _, jt, lane, svc = v
            if last >= t - self.s.inherit_within_s:
                keep.append(v)
            elif np.isnan(svc) and last - jt >= self.s.vanish_min_wait_s:
                self._abandon(lane)
        self._vanished = keep
        self._vanish_oldest = min((v[0] for v in keep), default=np.inf)

    def release(self, rows: np.ndarray, t: float) -> None:
        """Tracks the pipeline forgets. Waiting ones (in the queue, or at the till not yet served)
        may come back under a new id (see ``_inherit``), else they count when they expire
        (``_expire_vanished``); one lost while out of both zones was walking away: abandoned now."""
        if len(rows) == 0:
            return
        jt, sv, last = self.join_t[rows], self.served[rows], self.table.last_t[rows]
        open_ = ~np.isnan(jt) & ~sv
        at_till = ~np.isnan(self.svc_t[rows])
        w = open_ & (self.in_q[rows] | at_till)
        for i, lane in zip(*np.nonzero(w)):
            r = int(rows[i])
            self._vanished.append((float(last[i]), float(self.pos[r, 0]), float(self.pos[r, 1]),
                                   float(jt[i, lane]), int(lane), float(self.svc_t[r, lane])))
            self._vanish_oldest = min(self._vanish_oldest, float(last[i]))
        leaving = open_ & ~w & ~np.isnan(self.left_t[rows]) & (last[:, None] - jt >= self.s.vanish_min_wait_s)
        for _, lane in zip(*np.nonzero(leaving)):
            self._abandon(int(lane))
        self.join_t[rows] = np.nan
        self.svc_t[rows] = np.nan
        self.left_t[rows] = np.nan
        self.in_q[rows] = False
        self.served[rows] = False

    def length_now(self, lane: int) -> int:
        """Median queue length over the last ``smooth_s`` (one-frame flicker does not count)."""
        if self._hist_i == 0:
            return 0
        last = self._hist_t[(self._hist_i - 1) % len(self._hist_t)]
        m = self._hist_t >= last - self.s.smooth_s
        return int(np.median(self._hist_n[m, lane]) + 0.5)

    def longest_wait(self, lane: int, t: float) -> float:
        rows = self.table.slots._vals
        j = self.join_t[rows, lane]
        w = ~np.isnan(j) & ~self.served[rows, lane] & self.in_q[rows, lane] & (self.table.last_t[rows] >= t - self.s.hold_s)
        return float(t - j[w].min()) if w.any() else 0.0

    def report(self, t: float, window_s: float) -> list[QueueMetricsRecord]:
        if self._vanished:
            self._expire_vanished(t)
        out = []
        for i, lid in enumerate(self.lane_ids):
            waits = self._waits[i]
            avg = float(np.mean(waits)) if waits else 0.0
            mx = max(max(waits) if waits else 0.0, self.longest_wait(i, t))
            out.append(QueueMetricsRecord(lid, self.stream_id, t, self.length_now(i), avg, mx,
                                          int(self._served[i]) / (window_s / 60.0), int(self._abandoned[i])))
            self._waits[i] = []
        self._abandoned[:] = 0
        self._served[:] = 0
        return out


class LaneView:
    """One lane of a ``CheckoutQueues`` (for alerts, tests and callers that think per lane)."""

    def __init__(self, parent: CheckoutQueues, index: int) -> None:
        self.parent, self.index = parent, index
        self.lane_id = parent.lane_ids[index]

    @property
    def length_now(self) -> int:
        return self.parent.length_now(self.index)

    def longest_wait(self, t: float) -> float:
        return self.parent.longest_wait(self.index, t)

    @property
    def total_served(self) -> int:
        return int(self.parent.total_served[self.index])

    @property
    def total_abandoned(self) -> int:
        return int(self.parent.total_abandoned[self.index])
