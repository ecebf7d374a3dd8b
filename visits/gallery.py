"""The store linker's memory of open visits (``visits.linker``): one ``OpenVisit`` per visit not
closed yet, and the ``Gallery``, the same visits as arrays (one row each) that a link decision
reads without touching the objects.

    v = OpenVisit(vid); v.put(tracklet)     # a head, then its final (its look joins the visit's)
    gallery.sync(v)                         # after every put; gallery.drop(v) when it closes
    rows = gallery.candidates()             # visits whose every tracklet is final

Shapes: ``Gallery.feat`` float64[C, NF], one row per visit, columns named below: the last
final tracklet's ``Tracklet.finish`` (t, x, y, vx, vy, on floor), its speed and unit heading,
the square root of the look's reliability (a pair's appearance weighs the product of theirs),
the camera's code, and whether it went out through a door. A decision gathers its candidates
with one index. ``Gallery.sums`` float32[C, D] once a look arrives: each visit's final tracklets'
looks weighted by ``look_weight`` and summed (a new look is added when the row is written, for
all rows changed since the last decision together), and ``Gallery.unit`` the same normalised:
the visit's look; ``ready`` bool[C]. Rows are reused; C doubles when full.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analytics.tracklets import Tracklet
from core.jit import jit

FULL_WEIGHT = 2.0  # embedding weight (sum of crop qualities) for a fully trusted mean


# OpenVisit.parts values: each camera track's span and whether it ended (not its path or look)
START, END, CAMERA, TRACK, FINAL = range(5)


@dataclass(slots=True)  # (attributes in the object: a visit is read cold, once a tracklet of it arrives)
class OpenVisit:
    """A visit not closed yet: its camera tracks by key as compact parts (start, end, camera, track id,
    final), how many are still on camera, where and when it was last seen (the last final track's
    part, path and ``Tracklet.finish``), what its ``VisitRecord`` needs of its final tracks, summed
    as they arrive (zone visits, dwell per zone, camera journeys, their seconds, with a cart,
    converted), and its looks: the final tracklets' (embedding, ``look_weight``) not yet in the
    gallery's sum (``new_looks``: the gallery takes them) and how many it has had. No Tracklet or
    camera journey is kept: a visit is a dozen objects, not dozens (fewer for the collector to count)."""

    vid: int
    parts: dict[tuple[str, int, float], tuple] = field(default_factory=dict)
    open: int = 0  # tracks without their final tracklet yet
    last: tuple | None = None  # the part of the final tracklet seen last (its path: ``last_path``)
    last_path: np.ndarray | None = None
    left_at: float | None = None  # its last tracklet went out through a door at this time

    last_seen: float = -math.inf
    tail: tuple = ()  # the last final tracklet's ``Tracklet.finish``: the link costs read these
    new_looks: list = field(default_factory=list)  # (embedding, weight) of final tracklets, in arrival order
    n_looks: int = 0  # all the looks it has had (the gallery's sum holds n_looks - len(new_looks))
    look_w: float = 0.0  # the weight behind the look: their crop qualities, each capped

    zone_times: list = field(default_factory=list)  # its final tracks' zone visits: when entered ...
    zone_names: list = field(default_factory=list)  # ... which zone (flat lists: no tuple kept per visit)
    dwell: dict = field(default_factory=dict)  # zone -> seconds, summed over its camera journeys
    journeys: int = 0  # camera journeys (a visit with none has no record)
    seen_s: float = 0.0  # their seconds, summed
    cart_s: float = 0.0  # ... of those with a cart
    converted: bool = False

    def put(self, tl: Tracklet) -> None:
        """Add or update one of the visit's tracklets (a head, then its final)."""
        k, final = tl.key, tl.final
        before = self.parts.get(k)
        part = self.parts[k] = (tl.start, tl.end, tl.camera_id, tl.track_id, final)
        if tl.end > self.last_seen:
            self.last_seen = tl.end
        if not final:
            if before is None:
                self.open += 1
            return
        if before is None or not before[FINAL]:  # the track's final, once
            if before is not None:
                self.open -= 1
            if tl.embedding is not None and tl.embedding_weight > 0:
                w = look_weight(tl)
                self.new_looks.append((tl.embedding, w))
                self.n_looks += 1
                self.look_w += w
            for t, z in tl.zone_visits:
                self.zone_times.append(t)
                self.zone_names.append(z)
            j = tl.journey
            if j is not None:
                self.journeys += 1
                dwell = self.dwell
                for z, d in j.zone_dwell_times.items():
                    dwell[z] = dwell.get(z, 0.0) + d
                d = j.end_time - j.start_time
                self.seen_s += d
                if j.cart_detected:
                    self.cart_s += d
                self.converted = self.converted or j.converted
        if self.last is None or tl.end >= self.last[END]:
            self.last = part
            self.last_path = tl.path
            self.tail = tl.finish


def look_weight(tl: Tracklet) -> float:
    """What a final tracklet's look weighs in its visit's: its crop quality, capped (a long track
    is not worth many short ones)."""
    return min(tl.embedding_weight, 4.0 * FULL_WEIGHT)


# Gallery.feat columns
T, X, Y, VX, VY, ON, SPEED, DIR_X, DIR_Y, REL, CAM, LEFT = range(12)
NF = 12


class Gallery:
    """The open visits as arrays, one row each, kept in step with their ``put``s: each decision
    reads its candidates' last tracks and looks by row instead of rebuilding them from objects.
    ``sync`` only notes the visit; its row is written when a decision next asks for the
    candidates, all rows changed since together (a few array writes per decision instead of a
    few per tracklet)."""

    def __init__(self, capacity: int = 64) -> None:
        self.visit: list[OpenVisit | None] = [None] * capacity
        self.feat = np.zeros((capacity, NF))
        self.unit: np.ndarray | None = None  # float32[C, D] once a look arrives
        self.sums: np.ndarray | None = None  # float32[C, D]: each row's looks weighted, summed (not normalised)
        self.ready = np.zeros(capacity, bool)  # a candidate: every tracklet final
        self.free = list(range(capacity - 1, -1, -1))
        self.row: dict[int, int] = {}
        self.codes: dict[str, int] = {}  # camera id -> code
        self._dirty: dict[int, OpenVisit] = {}  # rows whose visit changed since the last ``candidates``
        self._no_look: set[int] = set()  # rows whose looks cancel out (no appearance term)

    def sync(self, v: OpenVisit) -> None:
        r = self.row.get(v.vid)
        if r is None:
            if not self.free:
                self._grow()
            r = self.row[v.vid] = self.free.pop()
            self.visit[r] = v
        self._dirty[r] = v

    def drop(self, v: OpenVisit) -> None:
        r = self.row.pop(v.vid, None)
        if r is not None:
            self.visit[r], self.ready[r] = None, False
            self._dirty.pop(r, None)
            self._no_look.discard(r)
            self.free.append(r)

    def candidates(self) -> np.ndarray:
        """Rows of the visits whose every tracklet is final (their rows up to date)."""
        if self._dirty:
            self._write()
        return np.nonzero(self.ready)[0]

    def code(self, camera_id: str) -> int:
        return self.codes.setdefault(camera_id, len(self.codes))

    def _write(self) -> None:
        dirty, self._dirty = self._dirty, {}
        rows, feats, look_rows, fresh, total, looks, owner = [], [], [], [], [], [], []
        for r, v in dirty.items():
            if v.open or v.last is None:  # not a candidate: no decision reads the row until it is
                self.ready[r] = False
                continue
            t, x, y, vx, vy, on = v.tail
            speed = math.hypot(vx, vy)
            ux, uy = (vx / speed, vy / speed) if speed > 0.0 else (0.0, 0.0)
            if v.new_looks:  # looks the row does not have yet: taken (the visit keeps no embedding)
                new, v.new_looks = v.new_looks, []
                self._no_look.discard(r)
                owner += [len(look_rows)] * len(new)
                look_rows.append(r)
                fresh.append(v.n_looks == len(new))
                total.append(v.n_looks)
                looks += new
            rel = math.sqrt(min(v.look_w / FULL_WEIGHT, 1.0)) if v.n_looks else 0.0  # 0: no look, no term
            rows.append(r)
            feats.append((t, x, y, vx, vy, on, speed, ux, uy, rel, self.code(v.last[CAMERA]), v.left_at is not None))
        if rows:
            self.ready[rows] = True
            self.feat[rows] = feats
        if looks:
            e = np.array([emb for emb, _ in looks], np.float32)
            if self.unit is None:
                self.unit = np.zeros((len(self.visit), e.shape[1]), np.float32)
                self.sums = np.zeros_like(self.unit)
            cancel = _add_looks(self.sums, self.unit, np.array(look_rows), np.array(fresh), np.array(total), e,
                                np.array([w for _, w in looks], np.float32), np.array(owner))
            if cancel.any():
                self._no_look.update(r for r, c in zip(look_rows, cancel.tolist()) if c)
        if self._no_look:
            self.feat[[r for r in rows if r in self._no_look], REL] = 0.0

    def _grow(self) -> None:
        old = len(self.visit)
        self.visit += [None] * old
        self.feat = np.concatenate([self.feat, np.zeros_like(self.feat)])
        if self.unit is not None:
            self.unit = np.concatenate([self.unit, np.zeros_like(self.unit)])
            self.sums = np.concatenate([self.sums, np.zeros_like(self.sums)])
        self.ready = np.concatenate([self.ready, np.zeros(old, bool)])
        self.free = list(range(2 * old - 1, old - 1, -1))


@jit
def _add_looks(sums, unit, rows, fresh, total, e, w, owner):  # pragma: no cover (compiled)
    """The looks of the visits in gallery rows ``rows`` (int[k]) that took new ones: each new look
    e[l] (float32[L, D]), weighted w[l], added to ``sums`` row rows[owner[l]] (from zero where
    ``fresh``), and ``unit`` the row's sum normalised; a visit's only look (``total`` 1) is copied as
    it is (already a unit vector). All of a decision's at once: one call where NumPy took a dozen
    on vectors long out of cache. Returns bool[k]: rows whose looks cancel out (no look: ``unit``
    zeros)."""
    k, dim = len(rows), e.shape[1]
    for i in range(k):
        if fresh[i]:
            sums[rows[i], :] = 0.0
    first = np.full(k, -1)
    for lk in range(len(e)):
        i = owner[lk]
        if first[i] < 0:
            first[i] = lk
        r = rows[i]
        for d in range(dim):
            sums[r, d] += w[lk] * e[lk, d]
    cancel = np.zeros(k, np.bool_)
    for i in range(k):
        r = rows[i]
        if total[i] == 1:
            unit[r, :] = e[first[i], :]
            continue
        sq = 0.0
        for d in range(dim):
            sq += float(sums[r, d]) * float(sums[r, d])
        if not sq > 0.0:
            cancel[i] = True
            unit[r, :] = 0.0
            continue
        inv = 1.0 / math.sqrt(sq)
        for d in range(dim):
            unit[r, d] = sums[r, d] * inv
    return cancel
