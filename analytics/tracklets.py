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

    @property
    def key(self) -> tuple[str, int, float]:
        """One camera track: its head and final share it (a camera's analytics restarted by a
        live config edit, or a new tracker, may reuse a track id: the start tells them apart)."""
        return self.camera_id, int(self.track_id), round(self.start, 3)

    @property
    def label(self) -> str:
        return f"{self.camera_id}:{int(self.track_id)}"

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
        p = self.path
        if len(p) < 2:
            return np.zeros(2)
        if at_end:
            k = max(int(np.searchsorted(p[:, 0], p[-1, 0] - span_s, side="left")), 0)
            a, b = p[min(k, len(p) - 2)], p[-1]
        else:
            k = int(np.searchsorted(p[:, 0], p[0, 0] + span_s, side="right")) - 1
            a, b = p[0], p[max(k, 1)]
        dt = float(b[0] - a[0])
        return (b[1:3] - a[1:3]).astype(np.float64) / dt if dt > 1e-6 else np.zeros(2)


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
        # only boxes whose feet are lower (nearer) can hide these; overlap area of each pair
        iw = np.minimum(b[:, None, 2], boxes[None, :, 2])
        iw -= np.maximum(b[:, None, 0], boxes[None, :, 0])
        ih = np.minimum(b[:, None, 3], boxes[None, :, 3])
        ih -= np.maximum(b[:, None, 1], boxes[None, :, 1])
        np.maximum(iw, 0.0, out=iw)
        np.maximum(ih, 0.0, out=ih)
        iw *= ih
        iw[boxes[None, :, 3] <= b[:, None, 3] + 1.0] = 0.0
        cover = iw.max(axis=1) / (h * np.maximum(b[:, 2] - b[:, 0], 1.0))
        q *= np.clip(1.0 - cover / 0.6, 0.05, 1.0)
    return q


class TrackletBuilder:
    """Per-track path samples and appearance, in arrays by ``TrackTable`` rows (``analytics.slots``).

    Work happens on ticks of a camera-wide clock, not per track: every ``step_s`` of stream
    time every track in view gets a path sample and is checked for its head; on embedding
    ticks (every ``embed_step_s``) a detected track adds its crop's embedding if it has
    not for ``embed_step_s`` (10x that once its crops' quality sums to ``EMBED_FULL_WEIGHT``:
    consecutive crops of one person are near duplicates, so more would cost without telling
    more). Between ticks a frame costs one array write (the last feet) and, for new tracks,
    their first sample.
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
        self.paths: dict[int, list[tuple[float, float, float]]] = {}
        self._next_tick = -np.inf
        self._next_embed = -np.inf
        table.on_grow(self._grow)

    def _grow(self, cap: int) -> None:
        g = grow
        self.next_embed = g(self.next_embed, cap, -np.inf)
        self.head_done, self.last_xy, self.emb_w = g(self.head_done, cap, False), g(self.last_xy, cap, 0.0), \
            g(self.emb_w, cap, 0.0)
        if self.emb is not None:
            self.emb = g(self.emb, cap, 0.0)

    def embeds_at(self, t: float) -> bool:
        """Whether a frame at stream time ``t`` takes embeddings (a producer without pixels can
        make them for these frames only)."""
        return t >= self._next_embed

    def update(self, t: float, ids: np.ndarray, rows: np.ndarray, new: np.ndarray, feet: np.ndarray,
               boxes: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None = None,
               emb_index: np.ndarray | None = None) -> list[Tracklet]:
        """One frame's person tracks (ids int64[M]; rows/new from ``TrackTable.observe``; feet float[M, 2] and
        boxes float[M, 4] in pixels; scores float[M]). ``embeddings`` float32[N, D] are the
        frame's detections' re-id vectors and ``emb_index`` int64[M] each track's row in them
        (-1: coasting, no crop this frame). Returns the heads of tracks that reached ``head_s``."""
        if len(rows) == 0:
            return []
        paths = self.paths
        if np.count_nonzero(new):
            nr = rows[new]
            self.head_done[nr] = False
            self.next_embed[nr] = -np.inf
            self.emb_w[nr] = 0.0
            if self.emb is not None:
                self.emb[nr] = 0.0
            for r, (x, y) in zip(nr.tolist(), feet[new].tolist()):
                paths[r] = [(t, x, y)]
        self.last_xy[rows] = feet
        if embeddings is not None and emb_index is not None and t >= self._next_embed:
            self._next_embed = t + self.embed_step_s
            self._embed(t, rows, boxes, scores, embeddings, emb_index)
        if t < self._next_tick:
            return []
        self._next_tick = t + self.step_s
        for r, (x, y) in zip(rows.tolist(), feet.tolist()):
            p = paths[r]
            if p[-1][0] < t:
                p.append((t, x, y))
        pend = ~self.head_done[rows]
        if not np.count_nonzero(pend):
            return []
        ready = pend & (t - self.table.first_t[rows] >= self.head_s)
        if not np.count_nonzero(ready):
            return []
        hr = rows[ready]
        self.head_done[hr] = True
        return [self._tracklet(i, r, t, False) for i, r in zip(ids[ready].tolist(), hr.tolist())]

    def _embed(self, t, rows, boxes, scores, embeddings, emb_index) -> None:
        has = (emb_index >= 0) & (t >= self.next_embed[rows])
        if not np.count_nonzero(has) or len(embeddings) == 0:
            return
        hr = rows[has]
        self.next_embed[hr] = t + np.where(self.emb_w[hr] < EMBED_FULL_WEIGHT, 1.0, 10.0) * self.embed_step_s
        if self.emb is None:
            self.emb = np.zeros((self.table.capacity, embeddings.shape[1]), np.float32)
        q = crop_quality(boxes, scores, has, self.image_height)
        e = embeddings[emb_index[has]]
        ok = np.isfinite(e).all(axis=1) & (np.abs(e).sum(axis=1) > 0)  # zero rows: no crop (not a person)
        er = rows[has][ok]
        self.emb[er] += (q[ok, None] * e[ok]).astype(np.float32)
        self.emb_w[er] += q[ok]

    def _tracklet(self, track_id: int, row: int, end: float, final: bool, zone_visits=(), journey=None) -> Tracklet:
        pts = self.paths.get(row) or []
        if not pts or pts[-1][0] < end:
            pts = pts + [(end, float(self.last_xy[row, 0]), float(self.last_xy[row, 1]))]
        p = np.array(pts, np.float64)
        on_floor = self.floor is not None
        if on_floor:
            p[:, 1:3] = self.floor.to_floor(p[:, 1:3])
        w = float(self.emb_w[row])
        emb = None
        if self.emb is not None and w > 0:
            v = self.emb[row]
            n = math.sqrt(float(np.dot(v, v)))
            if n > 0:
                emb = v / np.float32(n)
        return Tracklet(self.camera_id, int(track_id), float(self.table.first_t[row]), float(end), final,
                        p, on_floor, emb, w, tuple(zone_visits), journey)

    def finals(self, detailed) -> list[Tracklet]:
        """Final tracklets from ``JourneyTracker.finish_detailed`` output (tracks shorter than the
        head time, which never had a head, are dropped like their journeys)."""
        out = []
        for tid, row, journey, zone_visits in detailed:
            if self.head_done[row] or journey is not None:
                out.append(self._tracklet(tid, row, float(self.table.last_t[row]), True, zone_visits, journey))
            self.paths.pop(row, None)
            self.head_done[row] = False
        return out
