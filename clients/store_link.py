"""Store visits in the live clients: one ``visits.linker.VisitLinker`` per store, fed by every
camera of the store that runs in this process.

    link = StoreLink(VisitLinker(store))          # clients.app.CameraFactory, when store.visits is set
    link.register("cam-a"); link.register("cam-b")   # TrackedCamera does it
    out = link.feed("cam-a", records, t)          # every frame of a camera: its analytics' records
    out = link.finish("cam-a", records, t)        # a camera's end of stream (its flush records)

``feed`` takes one camera's records of one frame (time ``t``): the ``Tracklet`` objects leading
them (``analytics.pipeline.CameraAnalytics`` emits its tracklets first, and a caller that joins
two cameras' or two analytics' lists feeds them one by one) go to the linker, everything else
passes straight on, and the linker's output due by then (``CameraJourneyRecord``,
``VisitRecord``, ``StoreKpiRecord``, ``FloorHeatmapRecord``) comes out with it. Tracklets never
leave this object.

Time order across cameras: the cameras of a store run side by side in one event loop, each
with its frames in time order, but one may be ahead of another (files read as fast as
possible, a camera waiting for inference). The linker wants tracklets in time order over all
cameras (a head is linked ``decision_delay_s`` after it, by when a track that ended on
another camera must have reported its end), so tracklets wait here until every running
camera of the store has passed their time (the slowest camera's last frame), or until they
are ``max_lag_s`` older than the newest frame of any camera (a stalled or dead camera does
not hold the store back; its late tracklets then link as they can).

End of run: ``finish`` takes a camera out of the store (its flush records are released like
a frame's); once every registered camera has finished, the linker flushes (every open visit
closes, the last KPI window is reported) and those records come out of that last ``finish``.
A camera that registers or feeds again after that (not the runner's order) starts a new round.

Errors: a linker exception is logged (the first with its traceback, then every 100th) and
the run goes on; the tracklets it was given are not lost to the camera files: final ones
come out as their ``CameraJourneyRecord``. Per-camera records never depend on the linker.

All calls come from the event loop's thread (the cameras' ``process``/``flush``).
May import: analytics.records, analytics.tracklets, the standard library.
"""
from __future__ import annotations

import heapq
import logging
import math
from typing import Any, Iterable

from analytics.records import CameraJourneyRecord
from analytics.tracklets import Tracklet

log = logging.getLogger("clients.store_link")

DEFAULT_MAX_LAG_S = 30.0
TICK_S = 4.0  # how often tracklets go to a linker that names no pace of its own (``step_s``), and it takes its
# step (decisions due, closing visits, KPI windows). Each step runs code the cameras' analytics have pushed out
# of the CPU's caches since the last, so fewer, larger steps cost less; ``VisitLinker`` steps at its decision
# pace (``VisitSettings.decide_every_s``, 8 s: 200 people, 4 -> 8 s ~3 us/frame less). What the linker decides
# does not depend on it: tracklets reach it in time order up to the cameras' common time, whenever that is
# (0.5 -> 2 s: the same score on 14 recorded demo windows; 4 -> 8 s: the same visits on the benchmark)


def without_tracklets(records: list[Any]) -> list[Any]:
    """Records with the tracklets taken out; a final tracklet leaves its camera journey (a plain
    ``JourneyRecord``): what a camera writes when no linker runs for its store."""
    if not any(isinstance(r, Tracklet) for r in records):
        return records
    out = []
    for r in records:
        if isinstance(r, Tracklet):
            if r.final and r.journey is not None:
                out.append(r.journey)
        else:
            out.append(r)
    return out


class StoreLink:
    """See the module docstring. ``linker``: a ``VisitLinker``-like object (``process(records,
    now)``, ``advance(now)``, ``flush(now)``). ``step_s``: how often the linker takes its step; default
    the linker's own ``step_s`` where it has one, else ``TICK_S``."""

    def __init__(self, linker: Any, max_lag_s: float = DEFAULT_MAX_LAG_S, store_id: str | None = None,
                 step_s: float | None = None) -> None:
        self.linker = linker
        self.store_id = store_id or getattr(linker, "store_id", "store")
        self.max_lag_s = float(max_lag_s)
        self.step_s = float(step_s or getattr(linker, "step_s", None) or TICK_S)
        self.last_t: dict[str, float] = {}  # running cameras -> their last frame time (-inf: none yet)
        self.done: dict[str, float] = {}  # finished cameras -> their flush time
        self.newest = -math.inf
        self.released = -math.inf  # tracklets up to this time went to the linker
        self._heap: list[tuple[float, int, list[Tracklet]]] = []  # (time, arrival, a frame's tracklets)
        self._seq = 0
        self._waiting = 0
        self.due = -math.inf  # a frame without records before this time need not be fed (see ``feed``)
        self.flushes = 0
        self.errors = 0
        self.tracklets = 0
        self.on_tracklet = None  # optional callable(Tracklet): sees every tracklet taken (diagnostics, the demo)

    # ------------------------------------------------------------------ cameras
    def register(self, camera_id: str) -> None:
        """A camera of the store runs in this process (before its first frame)."""
        self.done.pop(camera_id, None)
        self.last_t.setdefault(camera_id, -math.inf)

    def feed(self, camera_id: str, records: Iterable[Any], t: float) -> list[Any]:
        """One frame's records of ``camera_id`` at time ``t``: the non-tracklet records, then the
        linker's output released by this frame. A frame with no records before ``due`` may be left
        out (the clients do: most frames have none, and a call into code the frame's analytics has
        pushed out of the CPU's caches costs ~4 us against ~0.7 warm); the camera's time then lags
        here by at most ``step_s``, which only holds the other cameras' tracklets back that long."""
        if type(records) is list and (not records or type(records[0]) is not Tracklet):  # noqa: E721
            out = records  # (most frames: no records; tracklets lead a frame's records, so none here)
        else:
            out = self._take(records, t)
        if camera_id in self.done:  # fed after its finish: running again
            self.register(camera_id)
        if t > self.last_t.get(camera_id, -math.inf):
            self.last_t[camera_id] = t
        if t > self.newest:
            self.newest = t
        if self.newest >= self.due:
            released = self._release(self._watermark())
            if released:
                out = out + released  # a new list: ``records`` may be the caller's own
        return out

    def finish(self, camera_id: str, records: Iterable[Any], t: float | None) -> list[Any]:
        """A camera's end of stream (``records``: its flush, at time ``t``); the last camera's
        finish also flushes the linker."""
        if t is None or not math.isfinite(t):
            t = self.last_t.get(camera_id, -math.inf)
            if not math.isfinite(t):
                t = self.newest
        out = self._take(records, t)
        if math.isfinite(t) and t > self.newest:
            self.newest = t
        self.last_t.pop(camera_id, None)
        self.done[camera_id] = t
        if self.last_t:
            return out + self._release(self._watermark())
        end = max([self.newest, *self.done.values()])
        out = out + self._release(math.inf)
        out += self._call("flush", end if math.isfinite(end) else None) or []
        self.flushes += 1
        log.info("%s: every camera finished: visits flushed (linker stats %s)", self.store_id,
                 dict(getattr(self.linker, "stats", {}) or {}))
        return out

    # ------------------------------------------------------------------ inside
    def _take(self, records: Iterable[Any], t: float) -> list[Any]:
        """The records without their tracklets (the list given, untouched, when it has none: most
        frames), the tracklets queued. The tracklets lead a camera's records (``CameraAnalytics``
        emits them first): what follows them is not read (a frame's detection records, hundreds in a
        crowd, cost more to scan than the linker's step)."""
        out = records if type(records) is list else list(records or ())
        k = 0
        for r in out:
            if type(r) is not Tracklet:  # noqa: E721 (exact type: a cheap test)
                break
            k += 1
        if not k:
            return out
        tls, out = out[:k], out[k:]
        heapq.heappush(self._heap, (t, self._seq, tls))  # one entry a frame: its tracklets stay in their order
        self._seq += 1
        if self.on_tracklet is not None:
            for r in tls:
                self.on_tracklet(r)
        self.tracklets += len(tls)
        self._waiting += len(tls)
        return out

    def _watermark(self) -> float:
        slowest = min(self.last_t.values(), default=self.newest)
        return max(slowest, self.newest - self.max_lag_s)

    def _release(self, upto: float) -> list[Any]:
        out: list[Any] = []
        heap, batch, t = self._heap, [], -math.inf
        while heap and heap[0][0] <= upto:
            t, _, tls = heapq.heappop(heap)
            batch += tls
        self._waiting -= len(batch)
        if batch:  # one call for all released (the linker's work per call is mostly per tracklet)
            got = self._call("process", batch, t)
            if got is None:  # the linker failed: the camera journeys still go out
                got = [CameraJourneyRecord(tl.journey) for tl in batch if tl.final and tl.journey is not None]
            out += got
        now = min(upto, self.newest)
        if math.isfinite(now):
            if now > self.released:
                self.released = now
            if now >= self.due:
                self.due = now + self.step_s
                out += self._call("advance", now) or []
        return out

    def _call(self, name: str, *args) -> list[Any] | None:
        """A linker method; None (logged) when it raises."""
        try:
            return list(getattr(self.linker, name)(*args) or [])
        except Exception:  # noqa: BLE001 (visits must never stop the cameras' analytics)
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.exception("%s: store visit linker %s failed (%d failure(s) so far); the cameras' analytics "
                              "go on", self.store_id, name, self.errors)
            return None

    def stats(self) -> dict:
        return {"store_id": self.store_id, "cameras_running": sorted(self.last_t), "cameras_done": sorted(self.done),
                "tracklets": self.tracklets, "waiting": self._waiting, "errors": self.errors,
                "flushes": self.flushes, "mode": getattr(self.linker, "mode", None)}
