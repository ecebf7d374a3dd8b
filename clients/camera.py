"""One camera's per-frame processing: tracker, then the camera's store analytics.

``TrackedCamera`` is the ``clients.pipeline.Processor`` the application uses: detections
of one frame (in time order) in, records from ``analytics.records`` out. A stream that is
not a camera of the store config is tracked and written as ``DetectionRecord`` rows
(``detection_records``), without zone analytics.

Inputs: ``Frame`` + ``Detections`` (core.types), a tracker (``tracking.Tracker``-like:
``update(xyxy, scores, class_ids, embeddings, timestamp=)`` -> tracks with ``track_ids``,
``xyxy``, ``scores``, ``class_ids``), the camera's analytics (``update``/``flush``) or None.
Outputs: lists of records. May import: numpy, core, analytics.records.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from analytics.records import DetectionRecord
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


class TrackedCamera:
    """One camera's tracker + analytics. Frames must arrive in time order (the runner's
    reorder buffer guarantees it); a frame lost to inference is simply absent, and the
    tracker works on timestamps, so a gap is a gap, not a frame of nobody."""

    def __init__(self, stream_id: str, tracker: Any, analytics: Any | None) -> None:
        self.stream_id = stream_id
        self.tracker = tracker
        self.analytics = analytics
        self.class_names: dict[int, str] = {}  # class id -> label, as the model reports them
        self._size_checked = analytics is None

    def _check_size(self, frame: Frame) -> None:
        """Zones are in the configured image's pixels: a different frame size misplaces them."""
        self._size_checked = True
        want = tuple(getattr(self.analytics.camera, "image_size", ()) or ())
        got = (frame.width, frame.height)
        if want and all(got) and got != want:
            log.error("%s: frames are %dx%d but configs/store.yaml describes this camera at %dx%d: zones, "
                      "lines and heatmap cells will be misplaced", self.stream_id, *got, *want)

    def process(self, frame: Frame, dets: Detections) -> list[Any]:
        if not self._size_checked:
            self._check_size(frame)
        if dets.class_names:
            for cid, name in zip(dets.class_ids.tolist(), dets.class_names):
                self.class_names.setdefault(cid, name)
        tracks = self.tracker.update(dets.xyxy, dets.scores, dets.class_ids, dets.embeddings,
                                     timestamp=frame.timestamp)
        if self.analytics is not None:
            return list(self.analytics.update(frame, tracks, self.class_names) or [])
        names = [self.class_names.get(int(c), str(int(c))) for c in np.asarray(tracks.class_ids).tolist()]
        return detection_records(self.stream_id, frame, np.asarray(tracks.xyxy), np.asarray(tracks.scores),
                                 names, np.asarray(tracks.track_ids))

    def flush(self, timestamp: float) -> list[Any]:
        if self.analytics is None:
            return []
        return list(self.analytics.flush(timestamp) or [])
