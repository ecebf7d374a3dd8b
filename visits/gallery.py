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


@dataclass(slots=True)  # (attributes in the object: a visit is read cold, once a tracklet of it arrives)
class OpenVisit:
    """A visit not closed yet: its camera tracklets by key, which of them are still on camera,
    where and when it was last seen, and the final tracklets whose looks make its look."""

    vid: int
    tracklets: dict[tuple[str, int, float], Tracklet] = field(default_factory=dict)
    open: set = field(default_factory=set)  # keys of tracklets without their final
    last: Tracklet | None = None  # the final tracklet seen last
    left_at: float | None = None  # its last tracklet went out through a door at this time

    last_seen: float = -math.inf
    tail: tuple = ()  # the last final tracklet's ``Tracklet.finish``: the link costs read these
    looks: list = field(default_factory=list)  # the final tracklets with a look, in arrival order
    look_w: float = 0.0  # the weight behind the look: their crop qualities, each capped

    def put(self, tl: Tracklet) -> None:
        """Add or update one of the visit's tracklets (a head, then its final)."""
        k = tl.key
        before = self.tracklets.get(k)
        self.tracklets[k] = tl
        self.last_seen = max(self.last_seen, tl.end)
        if tl.final:
            self.open.discard(k)
            if (before is None or not before.final) and tl.embedding is not None and tl.embedding_weight > 0:
                self.looks.append(tl)
                self.look_w += look_weight(tl)
            if self.last is None or tl.end >= self.last.end:
                self.last = tl
                self.tail = tl.finish
        else:
            self.open.add(k)


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
        self._n_looks: dict[int, int] = {}  # rows -> how many looks their ``sums`` row holds
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
            self._n_looks.pop(r, None)
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
            n = len(v.looks)
            had = self._n_looks.get(r, 0)
            if n != had:  # looks the row does not have yet
                self._n_looks[r] = n
                self._no_look.discard(r)
                owner += [len(look_rows)] * (n - had)
                look_rows.append(r)
                fresh.append(had == 0)
                total.append(n)
                looks += v.looks[had:]
            rel = math.sqrt(min(v.look_w / FULL_WEIGHT, 1.0)) if n else 0.0  # 0: no look, no term
            rows.append(r)
            feats.append((t, x, y, vx, vy, on, speed, ux, uy, rel, self.code(v.last.camera_id), v.left_at is not None))
        if rows:
            self.ready[rows] = True
            self.feat[rows] = feats
        if looks:
            e = np.array([tl.embedding for tl in looks], np.float32)
            if self.unit is None:
                self.unit = np.zeros((len(self.visit), e.shape[1]), np.float32)
                self.sums = np.zeros_like(self.unit)
            cancel = _add_looks(self.sums, self.unit, np.array(look_rows), np.array(fresh), np.array(total), e,
                                np.array([look_weight(tl) for tl in looks], np.float32), np.array(owner))
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
