"""Store visits: camera tracklets in, one visit per customer across the store's cameras out.

    linker = VisitLinker(store)                       # store.visits: VisitSettings
    out = linker.process(records, now)                # every frame of any camera, in time order
    out += linker.flush(last_timestamp)               # end of run: every open visit closes

``process`` takes a camera's records (``analytics.pipeline.CameraAnalytics`` with
``tracklets=True``), keeps the ``analytics.tracklets.Tracklet`` objects among them and passes
everything else through. Out come ``CameraJourneyRecord`` (each final tracklet's camera
journey), ``VisitRecord`` (a closed visit, the seed's journey at store level),
``StoreKpiRecord`` every ``metrics_interval_s`` and ``FloorHeatmapRecord`` every
``heatmap_interval_s`` (with a floor plan).

How a link is decided (online, one store, one process; docs/visits.md has the table):
- A tracklet's *head* arrives once its track has lasted ``head_after_s`` (a shorter track
  arrives final); its link waits ``decision_delay_s`` more, so a track that just ended on
  another camera, or is just ending where two views overlap, has reported its end by then.
  Heads are decided every ``decide_every_s``, all those due together: a minimum-cost
  assignment (each head's cheapest choice when no two want one visit, else scipy's
  ``linear_sum_assignment``) of heads to open visits, each head also free to open a new
  visit. A head that could continue the visit of a final head in the same batch (it began after
  that one ended, or on another camera, within walking reach of where it ended) waits for the
  next decision step, whose assignment has that visit (one assignment a step; at the end of a
  run, one right after).
- The cost of head h continuing visit v is minus the log likelihood ratio "same person" vs
  "someone else" from appearance, floor distance, heading and time unseen, or impossible
  (``visits.link_costs``); a visit with a track still on camera is no candidate.
- Opening a visit costs 0 for a head that enters through a door (begins outside the door
  line, or near it walking in) and ``NEW_VISIT_COST`` elsewhere: a customer met first in an
  aisle is someone already inside, whose earlier tracks were missed.
- A visit ends ``door_close_s`` after its last tracklet left through a door, or when no
  camera has seen it for ``timeout_s``; the customer coming back later is a new visit.
  Ended visits leave memory (the gallery holds open visits only; ``footprint()``).

Degraded modes (``mode``): a camera without ``floor_points`` gives tracklets in image pixels,
so links to or from it use appearance and time only; tracks without embeddings link by
space-time only. Both are logged once; per-camera analytics are never affected.
"""
from __future__ import annotations

import dataclasses
import heapq
import logging
import math
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from analytics.config import StoreConfig, VisitSettings
from analytics.journeys import counter_ids
from analytics.records import CameraJourneyRecord, StoreKpiRecord, VisitRecord
from analytics.tracklets import Tracklet
from visits.gallery import CAMERA, END, FULL_WEIGHT, START, TRACK, Gallery, OpenVisit
from visits.link_costs import MOVING_MPS, LinkCosts, waits

log = logging.getLogger("visits.linker")

NEW_VISIT_COST = 8.0  # -log odds that a track met away from a door is a new customer
_IMPOSSIBLE = 1e9  # the solver's stand-in for inf (it wants finite costs)


class VisitLinker:
    def __init__(self, store: StoreConfig, settings: VisitSettings | None = None,
                 next_visit_id: Callable[[], str] | None = None) -> None:
        self.store = store
        self.s = settings or store.visits or VisitSettings()
        self.store_id = store.store_id
        self.next_visit_id = next_visit_id or counter_ids("visit-")
        self._vnum = 0
        self.visits: dict[int, OpenVisit] = {}
        self.gallery = Gallery()
        self.visit_of: dict[tuple[str, int, float], int] = {}  # tracklet key -> visit (open visits only)
        self.track_visit: dict[tuple[str, int], int] = {}  # (camera, track id) -> the open visit it was last in
        self.pending: dict[tuple[str, int, float], tuple[float, Tracklet]] = {}  # undecided heads: (decide at, head)
        self._closing: list[tuple[float, int]] = []  # heap: (when the visit closes unless seen again, visit)
        self.now = -math.inf
        self._next_advance = -math.inf
        self._next_decision = -math.inf
        self._started: float | None = None  # the first sighting this linker was given
        self._kpi_every = float(store.metrics_interval_s)
        self._next_kpi: float | None = None
        self._window: list[VisitRecord] = []
        self._heat_every = float(store.heatmap_interval_s)
        self._next_heat: float | None = None
        self.heatmap = None
        if store.floor is not None:
            from visits.floor_heatmap import FloorHeatmap

            self.heatmap = FloorHeatmap(store.floor, self.store_id)
        self.doors = list(store.floor.doors.values()) if store.floor is not None else []
        self._door_geo = [_door_geometry(d) for d in self.doors]
        self.costs = LinkCosts(self.s)
        self.stats = Counter()  # links, new_at_door, new_inside, closed_door, closed_timeout, closed_end
        uncal = sorted(c for c, cam in store.cameras.items() if cam.floor is None)
        self._warned_emb = False
        self._dim: int | None = None  # the length of the looks, from the first
        self._bad_looks: set[str] = set()  # the kinds of unusable look already logged
        if uncal:
            log.warning("%s: cameras without floor_points (%s): their tracks link by appearance and time only",
                        self.store_id, ", ".join(uncal))
        if not self.doors:
            log.warning("%s: no doors on the floor plan: visits open wherever a customer is first seen and "
                        "close after %.0f s unseen", self.store_id, self.s.timeout_s)

    @property
    def step_s(self) -> float:
        """How often the linker wants its step (``advance``) at most: its decision pace; a caller that
        batches (``clients.store_link.StoreLink``) steps it this often."""
        return self.s.decide_every_s

    @property
    def mode(self) -> str:
        cal = all(c.floor is not None for c in self.store.cameras.values())
        return ("appearance + floor space-time" if cal else "appearance + time (some cameras uncalibrated)") + \
            ("" if not self._warned_emb else "; some tracks without embeddings: space-time only for those")

    def footprint(self) -> dict:
        """What the linker holds now: open visits, their camera tracks, pending heads, and the bytes
        of the arrays it keeps (each visit's last track's path, looks not yet in the gallery,
        the pending heads', the gallery's, which grows to the most visits open at once and stays) --
        bounded by the customers in the store, not by the run."""
        tls = [t for _, t in self.pending.values()]
        nbytes = sum(t.path.nbytes + (t.embedding.nbytes if t.embedding is not None else 0) for t in tls)
        nbytes += sum(v.last_path.nbytes for v in self.visits.values() if v.last_path is not None)
        nbytes += sum(e.nbytes for v in self.visits.values() for e, _ in v.new_looks)
        g = self.gallery
        nbytes += g.feat.nbytes + (g.unit.nbytes + g.sums.nbytes if g.unit is not None else 0)
        return {"open_visits": len(self.visits), "tracklets": sum(len(v.parts) for v in self.visits.values()),
                "pending": len(self.pending), "array_bytes": int(nbytes)}

    # ------------------------------------------------------------------ input
    def process(self, records: Iterable[Any], now: float) -> list[Any]:
        """A camera's records of one frame (time ``now``): tracklets are taken, the rest passed on."""
        out: list[Any] = []
        for r in records:
            if isinstance(r, Tracklet):
                self._add(r, out)
            else:
                out.append(r)
        out += self.advance(now)
        return out

    def add(self, tl: Tracklet) -> list[Any]:
        """One tracklet (a head or a final); returns the camera journey of a final."""
        out: list[Any] = []
        self._add(tl, out)
        return out

    def _add(self, tl: Tracklet, out: list[Any]) -> None:
        if self._started is None:
            self._started = tl.start
        e = tl.embedding
        if e is not None:
            sq = tl.look_norm2
            if not (0.0 < sq < math.inf and len(e) == self._dim):  # (every tracklet: the common case inline)
                tl = self._checked_look(tl)
        if tl.embedding is None and not self._warned_emb:
            self._warned_emb = True
            log.warning("%s: %s has no re-id embedding: it links by floor space-time only", self.store_id, tl.label)
        k, final = tl.key, tl.final
        if final:
            if tl.journey is not None:
                out.append(CameraJourneyRecord(tl.journey))
            if self.heatmap is not None and tl.on_floor:
                self.heatmap.add_path(tl.path)
        vid = self.visit_of.get(k)
        if vid is not None:
            v = self.visits[vid]
            v.put(tl)
            if final:
                v.left_at = tl.end if self._leaves(tl) else None
            self._touched(v)
            return
        was = self.pending.get(k)
        # a track too short for a head arrives final; it waits like a head would
        self.pending[k] = (was[0] if was is not None else tl.start + self.s.head_after_s + self.s.decision_delay_s, tl)

    def _checked_look(self, tl: Tracklet) -> Tracklet:
        """The tracklet, without its look when that cannot be compared with the others: not a finite
        vector, all zeros, or of another length than the first look this linker took (a re-id model of
        another output size; the comparison would fail every decision it took part in)."""
        e, sq = tl.embedding, tl.look_norm2
        usable = math.isfinite(sq) and sq > 0.0
        if self._dim is None and usable:
            self._dim = len(e)
        if usable and len(e) == self._dim:
            return tl
        why = ("is not a finite vector" if not math.isfinite(sq) else "is all zeros" if sq == 0.0
               else f"has {len(e)} values, not {self._dim}")
        if why not in self._bad_looks:
            self._bad_looks.add(why)
            log.warning("%s: %s: its re-id embedding %s: it and any other such link by floor space-time only",
                        self.store_id, tl.label, why)
        return dataclasses.replace(tl, embedding=None, embedding_weight=0.0)

    # ------------------------------------------------------------------ time
    def advance(self, now: float) -> list[Any]:
        """Decide the heads due, close the visits that ended, report KPIs (cheap between steps)."""
        if now > self.now:
            self.now = now
        if self.now < self._next_advance:
            return []
        self._next_advance = self.now + 0.5
        now = self.now
        if now >= self._next_decision:
            self._next_decision = now + self.s.decide_every_s
            due = [(tl.start, k) for k, (at, tl) in self.pending.items() if at <= now]
            if due:
                due.sort()
                self._decide_in_order([self.pending.pop(k)[1] for _, k in due])
        out = self._close(now, final=False)
        return out + self._reports(now)

    def flush(self, now: float | None = None) -> list[Any]:
        """End of run: decide every pending head, close every visit, report the last window."""
        now = self.now if now is None else max(float(now), self.now)
        if self.pending:
            heads = sorted(self.pending.values(), key=lambda p: p[1].start)
            self.pending.clear()
            self._decide_in_order([tl for _, tl in heads], wait=False)
        out = self._close(now, final=True)
        if math.isfinite(now):
            out += self._reports(now, force=True)
        return out

    # ------------------------------------------------------------------ linking
    def _decide_in_order(self, heads: list[Tracklet], wait: bool = True) -> None:
        """Heads due (by start) decided together, except that a head that could continue the visit of
        a final one among them (it began after the final one ended, or on another camera: views that
        overlap; within walking reach of where it ended) is left for an assignment that has that visit
        as a candidate: the next decision step (``wait``: it stays pending), else (the end of a run)
        one right after."""
        s = self.s
        H = self._head_rows(heads)
        later = waits(H, s.overlap_s, s.max_speed_mps, 2.0 * s.position_slack_m).tolist()
        now = [h for h, w in zip(heads, later) if not w]
        if now:
            self._decide(now, H[np.logical_not(later)])
        if len(now) == len(heads):
            return
        if wait:
            for h, w in zip(heads, later):
                if w:
                    self.pending[h.key] = (self.now, h)
        else:
            self._decide_in_order([h for h, w in zip(heads, later) if w], wait=False)

    def _decide(self, heads: list[Tracklet], H: np.ndarray) -> None:
        """Heads linked together (``H``: their ``_head_row``s): each to an open visit or a new one."""
        rows = self.gallery.candidates()
        n, m = len(heads), len(rows)
        new = np.array([self._new_cost(h) for h in heads], np.float64)  # each head's own new-visit column
        cost = np.full((n, m + n), np.inf)
        cost[np.arange(n), m + np.arange(n)] = new
        if m:
            self._link_costs(heads, H, rows, cost, new)
        best = cost.argmin(axis=1).tolist()
        if len(set(best)) < n:
            # heads contest a visit: the minimum-cost assignment decides (each head's own new-visit
            # column is finite, so every head gets a finite choice; scipy's solver on a few rows
            # against hundreds of columns takes ~10 us where lapjv's padding to square takes ~200)
            np.minimum(cost, _IMPOSSIBLE, out=cost)  # (in place: the matrix is not read again)
            hr, hc = linear_sum_assignment(cost)
            best = hc[np.argsort(hr)].tolist()
        for i, h in enumerate(heads):
            j = best[i]
            if j < m:
                v = self.gallery.visit[rows[j]]
                self.stats["links"] += 1
            else:
                self._vnum += 1
                v = self.visits[self._vnum] = OpenVisit(self._vnum)
                self.stats["new_at_door" if self._enters(h) else "new_inside"] += 1
            v.put(h)
            v.left_at = h.end if h.final and self._leaves(h) else None
            self._touched(v)
            self.visit_of[h.key] = v.vid
            self.track_visit[h.key[:2]] = v.vid

    def _link_costs(self, heads: list[Tracklet], H: np.ndarray, rows: np.ndarray, out: np.ndarray,
                    new: np.ndarray) -> None:
        """out[i, j] (j < len(rows)) = the cost of head i continuing the visit in the gallery's row rows[j]
        (``visits.link_costs``), inf where impossible or where it cannot beat ``new[i]``."""
        # the camera's tracker kept the track id across a gap the analytics split it at
        same = [self.gallery.row.get(self.track_visit.get(h.key[:2], -1)) for h in heads]
        self.costs.fill(self.gallery, heads, H, rows, out, new, same)

    def _head_rows(self, heads: list[Tracklet]) -> np.ndarray:
        """float64[n, HEAD_COLS]: the heads' ``_head_row``s (the layout the kernels were compiled for)."""
        return np.array([self._head_row(h) for h in heads], np.float64)

    def _head_row(self, h: Tracklet) -> tuple:
        """A head's numbers in ``Gallery.feat``'s columns (its beginning where the visit's are its
        end), then whether it came in from the street, when it was last seen, whether it is final and
        where it ended if so (else began): plain floats, one per column (``visits.link_costs``)."""
        t, x, y, vx, vy, on = b = h.begin
        speed = math.hypot(vx, vy)
        ux, uy = (vx / speed, vy / speed) if speed > MOVING_MPS else (0.0, 0.0)
        rel = math.sqrt(min(h.embedding_weight / FULL_WEIGHT, 1.0)) if h.embedding is not None else 0.0
        street = bool(self.doors) and h.on_floor and self._at_door(b, 0.0)
        final = h.final
        fx, fy = (h.finish if final else b)[1:3]
        return (t, x, y, vx, vy, on, speed, ux, uy, rel, self.gallery.code(h.camera_id), 0.0, street, h.end, final,
                fx, fy)

    def _new_cost(self, h: Tracklet) -> float:
        if not self.doors or not h.on_floor:
            return NEW_VISIT_COST / 2.0  # no door to tell entering from reappearing
        if self._enters(h):
            return 0.0
        # until the linker has run for timeout_s, someone first met inside may have come in before
        # it started (a store open when the clients start): a new visit is cheap then, as likely as
        # not, and reaches the full odds when no one from before the start can still be unseen
        if self._started is None:
            self._started = h.start
        return NEW_VISIT_COST * min(max((h.start - self._started) / self.s.timeout_s, 0.0), 1.0)

    def _enters(self, tl: Tracklet) -> bool:
        """Began outside a door line (within twice the door radius), or near a door walking in."""
        return tl.on_floor and self._at_door(tl.begin, 1.0)

    def _leaves(self, tl: Tracklet) -> bool:
        """Last seen outside a door line (within twice the door radius), or near a door walking out."""
        return tl.on_floor and self._at_door(tl.finish, -1.0)

    def _at_door(self, end: tuple, inward: float) -> bool:
        """``end`` (t, x, y, vx, vy, _) outside a door line within twice the door radius, or within
        the radius walking across it (inward 1: into the store, -1: out; 0: outside only). Plain
        floats: one point."""
        _, x, y, vx, vy, _ = end
        r = self.s.door_radius_m
        for ax, ay, dx, dy, dd, nx, ny, ix, iy in self._door_geo:
            px, py = x - ax, y - ay
            u = min(max((px * dx + py * dy) / dd, 0.0), 1.0)
            dist = math.hypot(px - u * dx, py - u * dy)
            if (px * nx + py * ny < 0.0 and dist <= 2.0 * r) or \
                    (inward != 0.0 and dist <= r and inward * (vx * ix + vy * iy) > 0.2):
                return True
        return False

    # ------------------------------------------------------------------ closing
    def _touched(self, v: OpenVisit) -> None:
        """A visit took a tracklet: the gallery follows, and a visit off camera gets its closing time."""
        self.gallery.sync(v)
        if not v.open:
            heapq.heappush(self._closing, (self._close_at(v), v.vid))

    def _close_at(self, v: OpenVisit) -> float:
        door = v.left_at + self.s.door_close_s if v.left_at is not None else math.inf
        return min(door, v.last_seen + self.s.timeout_s)

    def _ended(self, v: OpenVisit, now: float) -> str | None:
        if v.open:
            return None
        if v.left_at is not None and now >= v.left_at + self.s.door_close_s:
            return "door"
        if now - v.last_seen > self.s.timeout_s:
            return "timeout"
        return None

    def _close(self, now: float, final: bool) -> list[Any]:
        # a heap of (closing time, visit): every tracklet a visit takes off camera pushes its new
        # time, so entries of closed visits or older times are stale and skipped when they come up
        ended: dict[int, str] = {}
        if final:
            ended = dict.fromkeys(self.visits, "end")
            self._closing.clear()
        heap = self._closing
        while heap and heap[0][0] <= now:
            _, vid = heapq.heappop(heap)
            v = self.visits.get(vid)
            if v is None or vid in ended:
                continue
            why = self._ended(v, now)
            if why is not None:
                ended[vid] = why
            elif not v.open and self._close_at(v) <= now:  # not past it yet (the timeout is strict)
                heapq.heappush(heap, (math.nextafter(now, math.inf), vid))
        out = []
        for vid in sorted(ended):  # in the order the visits opened, whatever their closing times
            why = ended[vid]
            v = self.visits.pop(vid)
            self.gallery.drop(v)
            for k in v.parts:
                self.visit_of.pop(k, None)
                if self.track_visit.get(k[:2]) == vid:
                    del self.track_visit[k[:2]]
            self.stats[f"closed_{why}"] += 1
            rec = self._record(v, why)
            if rec is not None:
                out.append(rec)
                self._window.append(rec)
        return out

    def _record(self, v: OpenVisit, why: str) -> VisitRecord | None:
        # (every visit that closes comes here, at 200 people ~2 a second: its sums were made as its
        # tracks arrived)
        if not v.journeys:
            return None
        parts = sorted(v.parts.values(), key=_start)
        order: list[str] = []
        for _, z in sorted(zip(v.zone_times, v.zone_names)):  # zones in the order entered, across cameras
            if not order or order[-1] != z:
                order.append(z)
        dwell = {z: v.dwell[z] for z in order if z in v.dwell}  # (a zone entered again keeps its first place)
        first = parts[0]
        return VisitRecord(self.next_visit_id(), v.vid, first[CAMERA], first[START], max([p[END] for p in parts]),
                           tuple(order), dwell, v.converted, v.seen_s > 0 and v.cart_s >= 0.5 * v.seen_s,
                           tuple(dict.fromkeys([p[CAMERA] for p in parts])),
                           tuple([f"{p[CAMERA]}:{int(p[TRACK])}" for p in parts]), why,
                           tuple([(p[START], p[END]) for p in parts]))

    # ------------------------------------------------------------------ reports
    def _reports(self, now: float, force: bool = False) -> list[Any]:
        out: list[Any] = []
        if self._next_kpi is None:
            self._next_kpi = (math.floor(now / self._kpi_every) + 1) * self._kpi_every
            self._next_heat = (math.floor(now / self._heat_every) + 1) * self._heat_every
            self._kpi_start = now
        while now >= self._next_kpi:
            out.append(self._kpi(self._next_kpi))
            self._next_kpi += self._kpi_every
        while self.heatmap is not None and now >= self._next_heat:
            out.append(self.heatmap.report(self._next_heat))
            self._next_heat += self._heat_every
        if force:
            out.append(self._kpi(now))
            if self.heatmap is not None:
                out.append(self.heatmap.report(now))
            self._next_kpi = None
        return out

    def _kpi(self, t: float) -> StoreKpiRecord:
        done, self._window = self._window, []
        window = max(t - max(self._kpi_start, t - self._kpi_every), 1e-3)
        self._kpi_start = t
        paths = Counter(">".join(r.zones_visited) for r in done if r.zones_visited)
        dur = sum(r.duration_seconds for r in done) / len(done) if done else 0.0
        return StoreKpiRecord(self.store_id, t, window, len(done), sum(r.converted for r in done), dur,
                              len(self.visits), tuple(paths.most_common(5)))


def _start(part: tuple) -> float:
    return part[START]


def _door_geometry(d) -> tuple[float, ...]:
    """(a, b - a, |b - a|^2, unit normal into the store, in direction) of a door, as floats."""
    ax, ay = (float(v) for v in d.a)
    dx, dy = float(d.b[0]) - ax, float(d.b[1]) - ay
    ln = max(math.hypot(dx, dy), 1e-9)
    nx, ny = -dy / ln, dx / ln
    ix, iy = (float(v) for v in d.in_direction)
    if nx * ix + ny * iy < 0:
        nx, ny = -nx, -ny
    return ax, ay, dx, dy, max(dx * dx + dy * dy, 1e-12), nx, ny, ix, iy
