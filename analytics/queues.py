"""Checkout lanes: queue length, waits, service rate and abandonment per lane.

A person joins the queue when their feet enter the lane's queue zone and is served when
they enter its service zone: wait = service entry - queue entry (timestamps). Someone who
leaves the queue zone for ``abandon_after_s`` without reaching the service zone abandoned.
Tracker hiccups are handled where they would bias the numbers:
- a track missing for a frame or two still counts in the queue (``hold_s``);
- a track that vanishes inside the queue zone and a new track that appears nearby shortly
  after are the same customer: the new track inherits the join time (otherwise a lost
  track would read as an abandonment plus a customer with a short wait);
- the reported length is the median over the last ``smooth_s`` (one-frame flicker).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from analytics.records import QueueMetricsRecord
from analytics.slots import SlotMap, grow


@dataclass(frozen=True)
class QueueSettings:
    hold_s: float = 1.0
    smooth_s: float = 4.0
    abandon_after_s: float = 3.0
    lost_after_s: float = 10.0
    inherit_within_s: float = 8.0
    inherit_px: float = 80.0


class LaneQueue:
    def __init__(self, stream_id: str, lane_id: str, queue_zone: int, service_zone: int,
                 settings: QueueSettings = QueueSettings()) -> None:
        self.stream_id, self.lane_id = stream_id, lane_id
        self.qz, self.sz = queue_zone, service_zone
        self.s = settings
        self.slots = SlotMap(32)
        c = self.slots.capacity
        self.join_t = np.full(c, np.nan)
        self.served = np.zeros(c, bool)
        self.in_q = np.zeros(c, bool)
        self.last_t = np.zeros(c)
        self.left_q_t = np.full(c, np.nan)  # when a waiting person was last seen leaving the zone
        self.pos = np.zeros((c, 2))
        self.slots.on_grow(self._grow)
        self._hist: deque[tuple[float, int]] = deque()
        self._waits: list[float] = []
        self._abandoned = 0
        self.length_now = 0
        self.total_served = 0
        self.total_abandoned = 0

    def _grow(self, cap: int) -> None:
        self.join_t, self.served = grow(self.join_t, cap, np.nan), grow(self.served, cap, False)
        self.in_q, self.last_t = grow(self.in_q, cap, False), grow(self.last_t, cap, 0.0)
        self.left_q_t, self.pos = grow(self.left_q_t, cap, np.nan), grow(self.pos, cap, 0.0)

    def update(self, t: float, track_ids: np.ndarray, feet_xy: np.ndarray, inside: np.ndarray) -> None:
        """One frame's person tracks (ids int64[M], feet float[M, 2], zone membership bool[M, Z])."""
        in_q, in_s = inside[:, self.qz], inside[:, self.sz]
        rows, new = self.slots.lookup(track_ids)
        if len(rows):
            self.join_t[rows[new]] = np.nan
            self.served[rows[new]] = False
            self.left_q_t[rows[new]] = np.nan
            waiting = ~np.isnan(self.join_t[rows]) & ~self.served[rows]
            joins = in_q & ~waiting & ~self.served[rows] & ~in_s
            if joins.any():
                self.join_t[rows[joins]] = t
            start = in_s & ~self.served[rows]
            if start.any():
                jt = self.join_t[rows[start]]
                w = np.where(np.isnan(jt), 0.0, t - jt)  # straight to the till: served without waiting
                self._waits.extend(w.tolist())
                self.served[rows[start]] = True
                self.total_served += int(start.sum())
            # leaving the queue zone without service: abandonment once it lasts
            waiting = ~np.isnan(self.join_t[rows]) & ~self.served[rows]
            out = waiting & ~in_q & ~in_s
            lt = self.left_q_t[rows]
            self.left_q_t[rows[out & np.isnan(lt)]] = t
            self.left_q_t[rows[~out]] = np.nan
            gone = out & ~np.isnan(lt) & (t - lt >= self.s.abandon_after_s)
            if gone.any():
                self._abandoned += int(gone.sum())
                self.total_abandoned += int(gone.sum())
                self.join_t[rows[gone]] = np.nan
            self.in_q[rows] = in_q
            self.last_t[rows] = t
            self.pos[rows] = feet_xy
            for i in np.nonzero(joins & new)[0]:  # a fresh track inside the queue: a lost one reborn?
                self._inherit(int(rows[i]), feet_xy[i], t)
        all_rows = self.slots.rows()
        if len(all_rows):
            old = self.last_t[all_rows] < t - self.s.lost_after_s
            if old.any():
                self.slots.release(self.slots.ids()[old])
                all_rows = all_rows[~old]
        counted = self.in_q[all_rows] & (self.last_t[all_rows] >= t - self.s.hold_s) & ~self.served[all_rows]
        counted &= ~np.isnan(self.join_t[all_rows])
        self._hist.append((t, int(counted.sum())))
        while self._hist and self._hist[0][0] < t - self.s.smooth_s:
            self._hist.popleft()
        self.length_now = int(np.median([n for _, n in self._hist]) + 0.5) if self._hist else 0

    def _inherit(self, row: int, xy: np.ndarray, t: float) -> None:
        rows = self.slots.rows()
        cand = (~np.isnan(self.join_t[rows]) & ~self.served[rows] & self.in_q[rows]
                & (self.last_t[rows] < t) & (self.last_t[rows] >= t - self.s.inherit_within_s))
        cand &= rows != row
        if not cand.any():
            return
        r = rows[cand]
        d = np.hypot(*(self.pos[r] - xy).T)
        k = int(np.argmin(d))
        if d[k] <= self.s.inherit_px:
            self.join_t[row] = self.join_t[r[k]]
            self.join_t[r[k]] = np.nan  # the old track is this customer: neither abandoned nor counted
            self.in_q[r[k]] = False

    def longest_wait(self, t: float) -> float:
        rows = self.slots.rows()
        w = ~np.isnan(self.join_t[rows]) & ~self.served[rows] & (self.last_t[rows] >= t - self.s.hold_s)
        return float(t - self.join_t[rows[w]].min()) if w.any() else 0.0

    def report(self, t: float, window_s: float) -> QueueMetricsRecord:
        waits = self._waits
        avg = float(np.mean(waits)) if waits else 0.0
        mx = max(max(waits) if waits else 0.0, self.longest_wait(t))
        rec = QueueMetricsRecord(self.lane_id, self.stream_id, t, self.length_now, avg, mx,
                                 len(waits) / (window_s / 60.0), self._abandoned)
        self._waits = []
        self._abandoned = 0
        return rec
