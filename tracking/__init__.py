"""Multi-object tracking: ByteTrack-style association, Kalman motion, appearance re-id.

    from tracking import Tracker, TrackerConfig
    tracker = Tracker(TrackerConfig(frame_rate=25))
    out = tracker.update(xyxy, scores, class_ids=None, embeddings=None, timestamp=None)
    out.track_ids, out.xyxy, out.scores, out.class_ids, out.det_index, out.coasting
``out`` is a ``core.types.Tracks`` (re-exported here).
"""
from core.types import Tracks
from tracking.config import TrackerConfig
from tracking.tracker import Tracker

__all__ = ["Tracker", "TrackerConfig", "Tracks"]
