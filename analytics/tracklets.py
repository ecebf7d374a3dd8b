"""Tracklets: what one camera track tells the store-level linker (``visits.linker``).

A camera's analytics (``analytics.pipeline.CameraAnalytics`` with ``tracklets=True``) emit a
``Tracklet`` for each person track twice: a *head* once the track has lasted
``JourneySettings.min_duration_s`` (where and when it began, how it looks so far), so the
linker can decide its link while it is still on camera; and the *final* one when the track
ends (``final=True``: exit point, the whole appearance, the camera journey with zones, dwell,
conversion and cart). No images: the appearance is one L2-normalised vector, a
quality-weighted mean of the track's re-id embeddings (small or overlapped boxes weigh
little), and it stays in memory.

Shapes: ``path`` float64[P, 3] rows (t, x, y) (float64: epoch seconds need it), one sample per ``PATH_STEP_S`` (and the first
and last sighting), in floor metres when the camera is calibrated, else in image pixels
(``on_floor`` False). ``embedding`` float32[D] or None (no re-id model, or no good crop).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analytics.records import JourneyRecord
from analytics.slots import grow

PATH_STEP_S = 1.0
EMBED_FULL_WEIGHT = 4.0  # crop quality summed: past this a track's mean is settled and sampled 10x less often
EMBED_YOUNG_CROPS = 10  # ... or past this many crops (a crowd's occluded crops weigh little each)
_VEL_ROWS = 6  # path rows read for a velocity at either end
PATH_CHUNK = 64  # path samples per row held in one array before they move to the row's chunk list


class _once:
    """``functools.cached_property`` without its lock (Python < 3.12 takes one per read until the
    value is cached): a tracklet is read by one thread, and the linker reads three of these per
    tracklet, thousands of times a minute in a crowd."""

    def __init__(self, f) -> None:
        self.f, self.name, self.__doc__ = f, f.__name__, f.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.f(obj)  # the instance's value shadows this from now on
        return v


@dataclass(frozen=True, eq=False)
class Tracklet:
    camera_id: str
    track_id: int
    start: float  # first sighting (epoch seconds)
    end: float  # last sighting so far (the head) or for good (final)
    final: bool
    path: np.ndarray  # float64[P, 3]: (t, x, y)
    on_floor: bool  # path in floor metres (calibrated camera), else image pixels
    embedding: np.ndarray | None = None  # float32[D], L2-normalised
    embedding_weight: float = 0.0  # sum of crop qualities behind the mean (0: no embedding)
    zone_visits: tuple[tuple[float, str], ...] = ()  # (entered at, zone), in time order (final only)
    journey: JourneyRecord | None = None  # the camera journey (final only; None when too short)

    @_once
    def key(self) -> tuple[str, int, float]:
        """One camera track: its head and final share it (a camera's analytics restarted by a
        live config edit, or a new tracker, may reuse a track id: the start tells them apart)."""
        return self.camera_id, int(self.track_id), round(self.start, 3)

    @_once
    def look_norm2(self) -> float:
        """The squared length of ``embedding``: what tells the linker a look can be compared (finite,
        not all zeros); nan without one, or when it is not one vector."""
        e = self.embedding
        return float(np.dot(e, e)) if e is not None and e.ndim == 1 else math.nan

    @property
    def label(self) -> str:
        return f"{self.camera_id}:{int(self.track_id)}"

    @_once
    def begin(self) -> tuple[float, float, float, float, float, float]:
        """(time, x, y, vx, vy, on floor) where the track began: the numbers the linker compares."""
        return self._ends(at_end=False)

    @_once
    def finish(self) -> tuple[float, float, float, float, float, float]:
        """(time, x, y, vx, vy, on floor) where the track was last seen."""
        return self._ends(at_end=True)

    def _ends(self, at_end: bool) -> tuple[float, float, float, float, float, float]:
        p = self.path[-1 if at_end else 0]
        vx, vy = self._velocity(at_end)
        return float(self.end if at_end else self.start), float(p[1]), float(p[2]), vx, vy, float(self.on_floor)

    @property
    def entry(self) -> np.ndarray:
        """float64[2]: where the track began."""
        return self.path[0, 1:3].astype(np.float64)

    @property
    def exit(self) -> np.ndarray:
        """float64[2]: where the track was last seen."""
        return self.path[-1, 1:3].astype(np.float64)

    def velocity(self, at_end: bool, span_s: float = 1.5) -> np.ndarray:
        """float64[2] units/s over the first (``at_end`` False) or last ``span_s`` of the path."""
        return np.array(self._velocity(at_end, span_s))

    def _velocity(self, at_end: bool, span_s: float = 1.5) -> tuple[float, float]:
        # plain floats on a few rows at the path's end: samples are ~1 s apart, so the span lies
        # within them (the whole path is searched when it does not)
        p = self.path
        if len(p) < 2:
            return 0.0, 0.0
        rows = (p[-_VEL_ROWS:] if at_end else p[:_VEL_ROWS]).tolist()
        if at_end:
            t_from = rows[-1][0] - span_s
            if len(p) > _VEL_ROWS and rows[0][0] >= t_from:
                rows = p.tolist()
            k = next(i for i, r in enumerate(rows) if r[0] >= t_from)
            a, b = rows[min(k, len(rows) - 2)], rows[-1]
        else:
            t_to = rows[0][0] + span_s
            if len(p) > _VEL_ROWS and rows[-1][0] <= t_to:
                rows = p.tolist()
            k = sum(1 for r in rows if r[0] <= t_to) - 1
            a, b = rows[0], rows[max(k, 1)]
        dt = b[0] - a[0]
        return ((b[1] - a[1]) / dt, (b[2] - a[2]) / dt) if dt > 1e-6 else (0.0, 0.0)


def crop_quality(boxes: np.ndarray, scores: np.ndarray, sel: np.ndarray, image_height: float) -> np.ndarray:
    """float64[len(sel)]: how much a re-id crop of boxes[sel] is worth, in (0, 1].

    The detector's confidence, times a size factor (a box under a quarter of the image height
    has fewer pixels than the re-id input wants), times an occlusion factor (a crop more than
    60 % covered by a nearer person, one whose feet are lower in the image, shows mostly that
    person: it weighs 5 %). ``boxes`` float[M, 4] are all of the frame's person boxes."""
    b = boxes[sel]
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    q = np.clip(scores[sel].astype(np.float64), 0.05, 1.0) * np.clip(h / (0.25 * image_height), 0.1, 1.0)
    if len(boxes) > 1:
        # overlap area of each pair, in float32 (pixels: plenty), counted only where the other
        # box's feet are lower (nearer): only those can hide these
        a, o = b.astype(np.float32), boxes.astype(np.float32)
        iw = np.minimum(a[:, None, 2], o[None, :, 2])
        iw -= np.maximum(a[:, None, 0], o[None, :, 0])
        ih = np.minimum(a[:, None, 3], o[None, :, 3])
        ih -= np.maximum(a[:, None, 1], o[None, :, 1])
        np.maximum(iw, 0.0, out=iw)
        np.maximum(ih, 0.0, out=ih)
        iw *= ih
        iw *= o[None, :, 3] > a[:, None, 3] + 1.0
        cover = iw.max(axis=1) / (h * np.maximum(b[:, 2] - b[:, 0], 1.0))
        q *= np.clip(1.0 - cover / 0.6, 0.05, 1.0)
    return q


class TrackletBuilder:
    """Per-track path samples and appearance, in arrays by ``TrackTable`` rows (``analytics.slots``).

    Work happens on ticks of a camera-wide clock, not per track: every ``step_s`` of stream
    time every track in view gets a path sample (projected to the floor there, all tracks in
    one call) and is checked for its head; on embedding ticks (every ``embed_step_s``) a
    detected track adds its crop's embedding if it has not for ``embed_step_s`` (10x that once
    its crops' quality sums to ``EMBED_FULL_WEIGHT`` or it has ``EMBED_YOUNG_CROPS`` crops:
    consecutive crops of one person are near duplicates, so more would cost without telling
    more). Between ticks a frame costs one array write (the last feet) and, for new tracks,
    their first sample. Path samples sit in a ``PATH_CHUNK``-sample buffer per row; a full
    buffer moves to the row's list of chunks, so a tick is a few array operations whatever
    the number of tracks.
    ``update`` returns the heads due; ``finals`` builds the final tracklets of ended tracks."""

    def __init__(self, camera_id: str, table, floor=None, head_s: float = 2.0, image_height: float = 360.0,
                 step_s: float = PATH_STEP_S, embed_step_s: float = 1.0) -> None:
        self.camera_id, self.table, self.floor = camera_id, table, floor
        self.head_s, self.image_height, self.step_s, self.embed_step_s = head_s, image_height, step_s, embed_step_s
        c = table.capacity
        self.next_embed = np.full(c, -np.inf)
        self.head_done = np.zeros(c, bool)
        self.last_xy = np.zeros((c, 2))
        self.emb: np.ndarray | None = None  # float32[C, D], allocated at the first embedding
        self.emb_w = np.zeros(c)
        self.emb_n = np.zeros(c, np.int64)  # crops taken
        self.buf = np.zeros((c, PATH_CHUNK, 3))  # the newest path samples (t, x, y) per row, floor units
        self.n = np.zeros(c, np.int64)  # samples in buf per row
        self.chunks: dict[int, list[np.ndarray]] = {}  # a row's older samples, PATH_CHUNK at a time
        self._next_tick = -np.inf
        self._next_embed = -np.inf
        table.on_grow(self._grow)

    def _grow(self, cap: int) -> None:
        g = grow
        self.next_embed = g(self.next_embed, cap, -np.inf)
        self.head_done, self.last_xy, self.emb_w = g(self.head_done, cap, False), g(self.last_xy, cap, 0.0), \
            g(self.emb_w, cap, 0.0)
        self.emb_n, self.buf, self.n = g(self.emb_n, cap, 0), g(self.buf, cap, 0.0), g(self.n, cap, 0)
        if self.emb is not None:
            self.emb = g(self.emb, cap, 0.0)

    def _to_floor(self, xy: np.ndarray) -> np.ndarray:
        return self.floor.to_floor(xy) if self.floor is not None else xy

    def embeds_at(self, t: float) -> bool:
        """Whether a frame at stream time ``t`` takes embeddings (a producer without pixels can
        make them for these frames only)."""
        return t >= self._next_embed

    def update(self, t: float, ids: np.ndarray, rows: np.ndarray, new: np.ndarray, feet: np.ndarray,
               boxes: np.ndarray, scores: np.ndarray | None, embeddings: np.ndarray | None = None,
               emb_index: np.ndarray | None = None) -> list[Tracklet]:
        """One frame's person tracks (ids int64[M]; rows/new from ``TrackTable.observe``; feet float[M, 2] and
        boxes float[M, 4] in pixels; scores float[M], needed with embeddings only). ``embeddings``
        float32[N, D] are the frame's detections' re-id vectors and ``emb_index`` int64[M] each
        track's row in them (-1: coasting, no crop this frame); a caller may pass them on
        ``embeds_at`` frames only. Returns the heads of tracks that reached ``head_s``."""
        if len(rows) == 0:
            return []
        if np.count_nonzero(new):
            nr = rows[new]
            self.head_done[nr] = False
            self.next_embed[nr] = -np.inf
            self.emb_w[nr] = 0.0
            self.emb_n[nr] = 0
            if self.emb is not None:
                self.emb[nr] = 0.0
            for r in nr.tolist():
                self.chunks.pop(r, None)
            self.buf[nr, 0, 0] = t
            self.buf[nr, 0, 1:] = self._to_floor(feet[new])
            self.n[nr] = 1
        self.last_xy[rows] = feet
        if embeddings is not None and emb_index is not None and scores is not None and t >= self._next_embed:
            self._next_embed = t + self.embed_step_s
            self._embed(t, rows, boxes, scores, embeddings, emb_index)
        if t < self._next_tick:
            return []
        self._next_tick = t + self.step_s
        self._sample(t, rows, feet)
        pend = ~self.head_done[rows]
        if not np.count_nonzero(pend):
            return []
        ready = pend & (t - self.table.first_t[rows] >= self.head_s)
        if not np.count_nonzero(ready):
            return []
        hr = rows[ready]
        self.head_done[hr] = True
        return [self._tracklet(i, r, t, False) for i, r in zip(ids[ready].tolist(), hr.tolist())]

    def _sample(self, t: float, rows: np.ndarray, feet: np.ndarray) -> None:
        """A path sample at ``t`` for every track without one at ``t`` yet (a new track has its first)."""
        n = self.n[rows]
        due = self.buf[rows, n - 1, 0] < t  # n - 1 = -1 after a chunk moved out: its newest sample
        if not np.count_nonzero(due):
            return
        r, k = rows[due], n[due]
        self.buf[r, k, 0] = t
        self.buf[r, k, 1:] = self._to_floor(feet[due])
        k += 1
        self.n[r] = k
        full = k == PATH_CHUNK
        if np.count_nonzero(full):
            for row in r[full].tolist():
                self.chunks.setdefault(row, []).append(self.buf[row].copy())
            self.n[r[full]] = 0

    def _embed(self, t, rows, boxes, scores, embeddings, emb_index) -> None:
        has = (emb_index >= 0) & (t >= self.next_embed[rows])
        if not np.count_nonzero(has) or len(embeddings) == 0:
            return
        hr = rows[has]
        self.emb_n[hr] += 1
        young = (self.emb_w[hr] < EMBED_FULL_WEIGHT) & (self.emb_n[hr] < EMBED_YOUNG_CROPS)
        self.next_embed[hr] = t + np.where(young, 1.0, 10.0) * self.embed_step_s
        if self.emb is None:
            self.emb = np.zeros((self.table.capacity, embeddings.shape[1]), np.float32)
        q = crop_quality(boxes, scores, has, self.image_height)
        e = embeddings[emb_index[has]]
        sq = np.einsum("ij,ij->i", e, e)
        ok = np.isfinite(sq) & (sq > 0)  # zero rows: no crop (not a person); NaN/inf: a broken one
        if not ok.all():
            hr, q, e = hr[ok], q[ok], e[ok]
        self.emb[hr] += q.astype(np.float32)[:, None] * e
        self.emb_w[hr] += q

    def _tracklet(self, track_id: int, row: int, end: float, final: bool, zone_visits=(), journey=None) -> Tracklet:
        parts = self.chunks.get(row, [])
        p = self.buf[row, : self.n[row]]
        p = np.concatenate(parts + [p]) if parts else p.copy()
        if not len(p) or p[-1, 0] < end:
            last = np.empty((1, 3))
            last[0, 0] = end
            last[0, 1:] = self._to_floor(self.last_xy[row : row + 1])
            p = np.concatenate([p, last])
        w = float(self.emb_w[row])
        emb = None
        if self.emb is not None and w > 0:
            v = self.emb[row]
            n = math.sqrt(float(np.dot(v, v)))
            if n > 0:
                emb = v / np.float32(n)
        tl = Tracklet(self.camera_id, int(track_id), float(self.table.first_t[row]), float(end), final,
                      p, self.floor is not None, emb, w, tuple(zone_visits), journey)
        # what the linker reads first (the key; a head's beginning, a final's last sighting; the look's
        # length) is worked out now, while the path and the look are in cache: read later, cold, it
        # cost the linker ~5x as much
        tl.key, tl.finish if final else tl.begin, tl.look_norm2  # noqa: B018 (cached on the tracklet)
        return tl

    def finals(self, detailed) -> list[Tracklet]:
        """Final tracklets from ``JourneyTracker.finish_detailed`` output (tracks shorter than the
        head time, which never had a head, are dropped like their journeys)."""
        out = []
        for tid, row, journey, zone_visits in detailed:
            if self.head_done[row] or journey is not None:
                out.append(self._tracklet(tid, row, float(self.table.last_t[row]), True, zone_visits, journey))
            self.chunks.pop(row, None)
            self.n[row] = 0
            self.head_done[row] = False
        return out
