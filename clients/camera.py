"""One camera's per-frame processing: tracker, then the camera's store analytics.

``TrackedCamera`` is the ``clients.pipeline.Processor`` the application uses: detections
of one frame (in time order) in, records from ``analytics.records`` out. A stream that is
not a camera of the store config is tracked and written as ``DetectionRecord`` rows
(``detection_records``), without zone analytics.

Live configuration (``clients.store_watch``): ``stage(analytics, why)`` hands over new
analytics (None: none) for the camera; they take over at the next ``process`` call, before
that frame is looked at, so the swap falls between two frames of the stream, never inside
one. The old analytics are flushed then (open journeys close at their last frame, the last
partial window is reported, as at the end of a stream) and their records come out ahead of
the frame's. The tracker is kept: track ids continue, and the new analytics start a journey
for everyone in view. ``swaps`` records each swap (``Swap``). A swap still staged when the
stream ends is dropped: ``flush`` flushes the analytics that ran. All calls come from the
one event-loop thread; the per-frame cost of the feature is one ``is not None`` test.

Store visits (``clients.store_link``): when the store links visits across cameras, the
camera's analytics emit ``Tracklet`` objects (and take the detections' re-id ``embeddings``);
``link`` (the store's ``StoreLink``, shared by its cameras) takes them, so no tracklet reaches
a sink, and hands back the store-level records (visits, camera journeys, store KPIs) with the
frame's (a frame with no records before the link's next step, ``StoreLink.due``, is not fed:
most frames). The analytics a swap replaces are flushed into the link like any frame's records;
``flush`` finishes the camera in the link (the last camera of the store flushes the linker).
Without a link, tracklets are dropped and final ones leave their camera journey.

Inputs: ``Frame`` + ``Detections`` (core.types), a tracker (``tracking.Tracker``-like:
``update(xyxy, scores, class_ids, embeddings, timestamp=)`` -> tracks with ``track_ids``,
``xyxy``, ``scores``, ``class_ids``), the camera's analytics (``update``/``flush``) or None,
the store's ``StoreLink`` or None.
Outputs: lists of records. May import: numpy, core, analytics.records, analytics.tracklets,
clients.store_link.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.records import DetectionRecord, JourneyRecord
from analytics.tracklets import Tracklet
from clients.store_link import StoreLink, without_tracklets
from core.types import Detections, Frame

log = logging.getLogger("clients.camera")


def detection_records(stream_id: str, frame: Frame, xyxy: np.ndarray, scores: np.ndarray,
                      names: list[str], track_ids: np.ndarray | None) -> list[DetectionRecord]:
    """One ``DetectionRecord`` per box (x, y, width, height in pixels; track id if tracked)."""
    if len(xyxy) == 0:
        return []
    wh = xyxy[:, 2:4] - xyxy[:, 0:2]
    tids = [None] * len(xyxy) if track_ids is None else [int(t) for t in track_ids]
    return [DetectionRecord(stream_id, frame.frame_number, frame.timestamp, n, float(s),
                            float(b[0]), float(b[1]), float(w[0]), float(w[1]), t)
            for b, w, s, n, t in zip(xyxy.tolist(), wh.tolist(), scores.tolist(), names, tids)]


@dataclass(frozen=True)
class Swap:
    """One analytics swap of a camera (a live store config edit taking effect)."""
    frame_number: int  # the first frame the new analytics saw
    timestamp: float  # that frame's timestamp
    old_last_timestamp: float | None  # the last frame the old analytics saw (None: there were none)
    journeys_closed: int  # journey records the old analytics' flush wrote
    records_flushed: int
    why: str  # what changed, e.g. "zones, lanes", "added", "removed"
    had_analytics: bool
    has_analytics: bool


class TrackedCamera:
    """One camera's tracker + analytics. Frames must arrive in time order (the runner's
    reorder buffer guarantees it); a frame lost to inference is simply absent, and the
    tracker works on timestamps, so a gap is a gap, not a frame of nobody."""

    def __init__(self, stream_id: str, tracker: Any, analytics: Any | None, link: StoreLink | None = None) -> None:
        self.stream_id = stream_id
        self.tracker = tracker
        self.analytics = analytics
        self.link = link
        if link is not None:
            link.register(stream_id)
        self.class_names: dict[int, str] = {}  # class id -> label, as the model reports them
        self._size_checked = analytics is None
        self._staged: tuple[Any | None, str] | None = None  # (analytics, why) to take over at the next frame
        self.swaps: list[Swap] = []
        self._flushed: list[Any] = []  # the replaced analytics' last records, not yet returned

    @property
    def staged(self) -> bool:
        """A swap waits for the next frame."""
        return self._staged is not None

    def stage(self, analytics: Any | None, why: str = "") -> None:
        """``analytics`` (None: no zone analytics) take over before the next frame; a later
        ``stage`` before that frame replaces this one."""
        self._staged = (analytics, why)

    def _swap(self, frame: Frame) -> list[Any]:
        """At a frame boundary: flush the running analytics, put the staged ones in their place."""
        new, why = self._staged  # type: ignore[misc]
        self._staged = None
        old, out = self.analytics, []
        if old is not None:
            try:
                out = list(old.flush(None) or [])  # None: at the last frame the old analytics saw
            except Exception:  # noqa: BLE001 (the new analytics must still take over)
                log.exception("%s: flushing the replaced analytics failed", self.stream_id)
        self.analytics = new
        self._size_checked = new is None
        swap = Swap(frame.frame_number, frame.timestamp, getattr(old, "last_timestamp", None),
                    sum(isinstance(r, JourneyRecord) or (isinstance(r, Tracklet) and r.journey is not None)
                        for r in out), len(out), why, old is not None, new is not None)
        self.swaps.append(swap)
        log.info("%s: store config applied at frame %d (%s): %s; %d open journey(s) closed, %d record(s) flushed",
                 self.stream_id, frame.frame_number, why or "changed",
                 "fresh analytics" if new is not None else "analytics stopped (tracked only)",
                 swap.journeys_closed, swap.records_flushed)
        return out

    def _check_size(self, frame: Frame) -> None:
        """Zones are in the configured image's pixels: a different frame size misplaces them."""
        self._size_checked = True
        want = tuple(getattr(self.analytics.camera, "image_size", ()) or ())
        got = (frame.width, frame.height)
        if want and all(got) and got != want:
            log.error("%s: frames are %dx%d but configs/store.yaml describes this camera at %dx%d: zones, "
                      "lines and heatmap cells will be misplaced", self.stream_id, *got, *want)

    def process(self, frame: Frame, dets: Detections) -> list[Any]:
        if self._staged is not None:
            self._flushed += self._swap(frame)  # kept until a frame's records go out (the frame may fail)
        if not self._size_checked:
            self._check_size(frame)
        if dets.class_names:
            for cid, name in zip(dets.class_ids.tolist(), dets.class_names):
                self.class_names.setdefault(cid, name)
        tracks = self.tracker.update(dets.xyxy, dets.scores, dets.class_ids, dets.embeddings,
                                     timestamp=frame.timestamp)
        if self.analytics is not None:
            out = list(self.analytics.update(frame, tracks, self.class_names, dets.embeddings) or [])
        else:
            names = [self.class_names.get(int(c), str(int(c))) for c in np.asarray(tracks.class_ids).tolist()]
            out = detection_records(self.stream_id, frame, np.asarray(tracks.xyxy), np.asarray(tracks.scores),
                                    names, np.asarray(tracks.track_ids))
        if self.link is None:
            if self._flushed:
                out, self._flushed = self._flushed + out, []
            return without_tracklets(out)
        pre: list[Any] = []
        if self._flushed:  # the replaced analytics' last records: fed on their own (each list's tracklets lead it)
            pre, self._flushed = self.link.feed(self.stream_id, self._flushed, frame.timestamp), []
        if out or frame.timestamp >= self.link.due:  # (most frames: nothing for the store, no step due)
            out = self.link.feed(self.stream_id, out, frame.timestamp)
        return pre + out if pre else out

    def flush(self, timestamp: float) -> list[Any]:
        if self._staged is not None:
            log.info("%s: the stream ended before the reloaded store config took over: the running "
                     "analytics are flushed", self.stream_id)
            self._staged = None
        out, self._flushed = self._flushed, []
        if self.link is None:
            if self.analytics is None:
                return out
            return without_tracklets(out + list(self.analytics.flush(timestamp) or []))
        pre = self.link.feed(self.stream_id, out, timestamp) if out else []  # (on their own: their tracklets lead)
        out = []
        try:
            if self.analytics is not None:
                out = list(self.analytics.flush(timestamp) or [])
        except Exception:  # noqa: BLE001 (the store's linker must still learn this camera ended)
            log.exception("%s: analytics flush failed", self.stream_id)
        return pre + self.link.finish(self.stream_id, out, timestamp)
