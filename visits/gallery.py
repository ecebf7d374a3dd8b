"""The store linker's memory of open visits (``visits.linker``): one ``OpenVisit`` per visit not
closed yet, and the ``Gallery``, the same visits as arrays (one row each) that a link decision
reads without touching the objects.

    v = OpenVisit(vid); v.put(tracklet)     # a head, then its final; the look follows
    gallery.sync(v)                         # after every put; gallery.drop(v) when it closes
    rows = gallery.candidates()             # visits whose every tracklet is final

Shapes: ``Gallery.feat`` float64[C, NF], one row per visit, columns named below: the last
final tracklet's ``Tracklet.finish`` (t, x, y, vx, vy, on floor), its speed and unit heading,
the square root of the look's reliability (a pair's appearance weighs the product of theirs),
the camera's code, and whether it went out through a door. A decision gathers its candidates
with one index. ``Gallery.unit`` float32[C, D] once a look arrives; ``ready`` bool[C]. Rows
are reused; C doubles when full.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analytics.tracklets import Tracklet

FULL_WEIGHT = 2.0  # embedding weight (sum of crop qualities) for a fully trusted mean


@dataclass
class OpenVisit:
    """A visit not closed yet: its camera tracklets by key, which of them are still on camera,
    where and when it was last seen, and its look once every tracklet is final."""

    vid: int
    tracklets: dict[tuple[str, int, float], Tracklet] = field(default_factory=dict)
    open: set = field(default_factory=set)  # keys of tracklets without their final
    last: Tracklet | None = None  # the final tracklet seen last
    left_at: float | None = None  # its last tracklet went out through a door at this time

    last_seen: float = -math.inf
    unit: np.ndarray | None = None  # float32[D]: the normalised mean embedding, once every tracklet is final
    emb_w: float = 0.0  # the weight behind it (sum of crop qualities, each tracklet capped)
    tail: tuple = ()  # the last final tracklet's ``Tracklet.finish``: the link costs read these
    look_sum: np.ndarray | None = None  # float32[D]: the final tracklets' looks, weighted, summed (from the second)
    look_w: float = 0.0
    looks: list = field(default_factory=list)  # the final tracklets with a look

    def put(self, tl: Tracklet) -> None:
        """Add or update one of the visit's tracklets (a head, then its final)."""
        k = tl.key
        before = self.tracklets.get(k)
        self.tracklets[k] = tl
        self.last_seen = max(self.last_seen, tl.end)
        if tl.final:
            self.open.discard(k)
            if before is None or not before.final:
                self._add_look(tl)
            if self.last is None or tl.end >= self.last.end:
                self.last = tl
                self.tail = tl.finish
            if not self.open:
                self._look()
        else:
            self.open.add(k)

    def _add_look(self, tl: Tracklet) -> None:
        """A final tracklet's look joins the visit's running sum, weighted by its crop quality (a
        long track is not worth many short ones: capped). The sum starts with the second look: a
        visit of one look (most) uses that unit vector as it is."""
        if tl.embedding is None or not tl.embedding_weight > 0:
            return
        w = min(tl.embedding_weight, 4.0 * FULL_WEIGHT)
        if self.looks:
            if self.look_sum is None:
                first = self.looks[0]
                self.look_sum = first.embedding * np.float32(self.look_w)
            self.look_sum += tl.embedding * np.float32(w)
        self.look_w += w
        self.looks.append(tl)

    def _look(self) -> None:
        """The visit's look, made when its last open tracklet turns final: the only time it becomes a
        candidate (a visit with a track still on camera is none), so a head costs no vector work."""
        if len(self.looks) == 1:  # already a unit vector
            self.unit, self.emb_w = self.looks[0].embedding, self.look_w
            return
        n = math.sqrt(float(np.dot(self.look_sum, self.look_sum))) if self.look_sum is not None else 0.0
        self.unit = self.look_sum * np.float32(1.0 / n) if n > 0 else None
        self.emb_w = self.look_w if n > 0 else 0.0


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
        self.ready = np.zeros(capacity, bool)  # a candidate: every tracklet final
        self.free = list(range(capacity - 1, -1, -1))
        self.row: dict[int, int] = {}
        self.codes: dict[str, int] = {}  # camera id -> code
        self._dirty: dict[int, OpenVisit] = {}  # rows whose visit changed since the last ``candidates``

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
        rows, feats, looks, look_rows = [], [], [], []
        for r, v in dirty.items():
            if v.open or v.last is None:  # not a candidate: no decision reads the row until it is
                self.ready[r] = False
                continue
            t, x, y, vx, vy, on = v.tail
            speed = math.hypot(vx, vy)
            ux, uy = (vx / speed, vy / speed) if speed > 0.0 else (0.0, 0.0)
            rel = math.sqrt(min(v.emb_w / FULL_WEIGHT, 1.0)) if v.unit is not None else 0.0  # 0: no look, no term
            rows.append(r)
            feats.append((t, x, y, vx, vy, on, speed, ux, uy, rel, self.code(v.last.camera_id), v.left_at is not None))
            if v.unit is not None:
                look_rows.append(r)
                looks.append(v.unit)
        if rows:
            self.ready[rows] = True
            self.feat[rows] = feats
        if looks:
            if self.unit is None:
                self.unit = np.zeros((len(self.visit), len(looks[0])), np.float32)
            self.unit[look_rows] = looks

    def _grow(self) -> None:
        old = len(self.visit)
        self.visit += [None] * old
        self.feat = np.concatenate([self.feat, np.zeros_like(self.feat)])
        if self.unit is not None:
            self.unit = np.concatenate([self.unit, np.zeros_like(self.unit)])
        self.ready = np.concatenate([self.ready, np.zeros(old, bool)])
        self.free = list(range(2 * old - 1, old - 1, -1))
