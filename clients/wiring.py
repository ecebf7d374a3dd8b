"""Connects the runner to the other parts: tracker, per-camera analytics, sinks.

Kept apart from ``clients.run`` so the runner itself depends only on two small protocols
(``Processor``: frames in order -> records; ``Sink``: records -> storage).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.types import Detections, Frame
from clients.config import AppConfig, StreamSpec
from clients.sources import FrameSource

log = logging.getLogger(__name__)


def make_sinks(config: AppConfig) -> list[Any]:
    from sinks import build_sinks

    return build_sinks(config.sinks)


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
        from clients.run import detection_records

        names = [self.class_names.get(int(c), str(int(c))) for c in np.asarray(tracks.class_ids).tolist()]
        return detection_records(self.stream_id, frame, np.asarray(tracks.xyxy), np.asarray(tracks.scores),
                                 names, np.asarray(tracks.track_ids))

    def flush(self, timestamp: float) -> list[Any]:
        if self.analytics is None:
            return []
        return list(self.analytics.flush(timestamp) or [])


def make_processor_factory(config: AppConfig):
    """Tracker per stream; analytics for streams that are cameras of the store config.
    Raises ImportError when the tracker is not installed (the runner falls back)."""
    from tracking import Tracker, TrackerConfig

    store = config.analytics
    store_analytics = None
    if store is not None:
        from analytics.pipeline import StoreAnalytics

        store_analytics = StoreAnalytics(store)
        missing = [s.id for s in config.streams if s.id not in store.cameras]
        if missing:
            log.warning("stream(s) %s are not cameras in %s: tracked, but no zone analytics",
                        ", ".join(missing), store.path)

    def factory(spec: StreamSpec, source: FrameSource) -> TrackedCamera:
        fps = getattr(source, "fps", None) or 25.0
        tracker = Tracker(TrackerConfig(frame_rate=fps))
        analytics = None
        if store_analytics is not None and spec.id in store.cameras:
            analytics = store_analytics.for_stream(spec.id)
        return TrackedCamera(spec.id, tracker, analytics)

    return factory
