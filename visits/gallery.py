"""The store linker's memory of open visits (``visits.linker``): one ``OpenVisit`` per visit not
closed yet, and the ``Gallery``, the same visits as arrays (one row each) that a link decision
reads without touching the objects.

    v = OpenVisit(vid); v.put(tracklet)     # a head, then its final; the look follows
    gallery.sync(v)                         # after every put; gallery.drop(v) when it closes
    rows = gallery.candidates()             # visits whose every tracklet is final

Shapes: ``Gallery.tail`` float64[C, 6] (each row a ``Tracklet.finish``: t, x, y, vx, vy, on
floor), ``Gallery.unit`` float32[C, D] once a look arrives, the rest [C]. Rows are reused; C
doubles when full.
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

    def put(self, tl: Tracklet) -> None:
        """Add or update one of the visit's tracklets (a head, then its final)."""
        k = tl.key
        self.tracklets[k] = tl
        self.last_seen = max(self.last_seen, tl.end)
        if tl.final:
            self.open.discard(k)
            if self.last is None or tl.end >= self.last.end:
                self.last = tl
                self.tail = tl.finish
            if not self.open:
                self._look()
        else:
            self.open.add(k)

    def _look(self) -> None:
        """The visit's look from its tracklets' means, weighted by their crop quality: made when its
        last open tracklet turns final, the only time it becomes a candidate (a visit with a track
        still on camera is none), so a head costs no vector work."""
        looks = [t for t in self.tracklets.values() if t.embedding is not None and t.embedding_weight > 0]
        w = [min(t.embedding_weight, 4.0 * FULL_WEIGHT) for t in looks]  # a long track is not worth many short ones
        if len(looks) == 1:  # already a unit vector
            self.unit, self.emb_w = looks[0].embedding, w[0]
            return
        acc = sum((wi * t.embedding for wi, t in zip(w, looks)), start=np.float32(0.0)) if looks else None
        n = math.sqrt(float(np.dot(acc, acc))) if acc is not None else 0.0
        self.unit = acc * np.float32(1.0 / n) if n > 0 else None
        self.emb_w = sum(w) if n > 0 else 0.0


class Gallery:
    """The open visits as arrays, one row each, kept in step with their ``put``s: each decision
    reads its candidates' last tracks and looks by row instead of rebuilding them from objects."""

    def __init__(self, capacity: int = 64) -> None:
        self.visit: list[OpenVisit | None] = [None] * capacity
        self.tail = np.zeros((capacity, 6))
        self.unit: np.ndarray | None = None  # float32[C, D] once a look arrives
        self.weight = np.zeros(capacity)
        self.has_unit = np.zeros(capacity, bool)
        self.ready = np.zeros(capacity, bool)  # a candidate: every tracklet final
        self.camera = np.full(capacity, -1, np.int64)  # the camera of the visit's last final tracklet (a code)
        self.left = np.zeros(capacity, bool)  # its last tracklet went out through a door
        self.free = list(range(capacity - 1, -1, -1))
        self.row: dict[int, int] = {}
        self.codes: dict[str, int] = {}  # camera id -> code

    def sync(self, v: OpenVisit) -> None:
        r = self.row.get(v.vid)
        if r is None:
            if not self.free:
                self._grow()
            r = self.row[v.vid] = self.free.pop()
            self.visit[r] = v
        self.ready[r] = not v.open and v.last is not None
        if v.tail:
            self.tail[r] = v.tail
            self.camera[r] = self.code(v.last.camera_id)
        self.has_unit[r] = v.unit is not None
        self.left[r] = v.left_at is not None
        self.weight[r] = v.emb_w
        if v.unit is not None:
            if self.unit is None:
                self.unit = np.zeros((len(self.visit), len(v.unit)), np.float32)
            self.unit[r] = v.unit

    def drop(self, v: OpenVisit) -> None:
        r = self.row.pop(v.vid, None)
        if r is not None:
            self.visit[r], self.ready[r], self.has_unit[r] = None, False, False
            self.free.append(r)

    def candidates(self) -> np.ndarray:
        return np.nonzero(self.ready)[0]

    def code(self, camera_id: str) -> int:
        return self.codes.setdefault(camera_id, len(self.codes))

    def _grow(self) -> None:
        old = len(self.visit)
        self.visit += [None] * old
        self.tail = np.concatenate([self.tail, np.zeros_like(self.tail)])
        if self.unit is not None:
            self.unit = np.concatenate([self.unit, np.zeros_like(self.unit)])
        self.weight = np.concatenate([self.weight, np.zeros(old)])
        self.has_unit = np.concatenate([self.has_unit, np.zeros(old, bool)])
        self.ready = np.concatenate([self.ready, np.zeros(old, bool)])
        self.camera = np.concatenate([self.camera, np.full(old, -1, np.int64)])
        self.left = np.concatenate([self.left, np.zeros(old, bool)])
        self.free = list(range(2 * old - 1, old - 1, -1))
