"""Tracklets: what one camera track tells the store-level linker (``visits.linker``).

A camera's analytics (``analytics.pipeline.CameraAnalytics`` with ``tracklets=True``) emit a
``Tracklet`` for each person track twice: a *head* once the track has lasted
``JourneySettings.min_duration_s`` (where and when it began, how it looks so far), so the
linker can decide its link while it is still on camera; and the *final* one when the track
ends (``final=True``: exit point, the whole appearance, the camera journey with zones, dwell,
conversion and cart). No images: the appearance is one L2-normalised vector, a
quality-weighted mean of the track's re-id embeddings (small or overlapped boxes weigh
little), and it stays in memory.

Shapes: ``path`` float32[P, 3] rows (t, x, y), one sample per ``PATH_STEP_S`` (and the first
and last sighting), in floor metres when the camera is calibrated, else in image pixels
(``on_floor`` False). ``embedding`` float32[D] or None (no re-id model, or no good crop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.records import JourneyRecord

PATH_STEP_S = 0.5


@dataclass(frozen=True, eq=False)
class Tracklet:
    camera_id: str
    track_id: int
    start: float  # first sighting (epoch seconds)
    end: float  # last sighting so far (the head) or for good (final)
    final: bool
    path: np.ndarray  # float32[P, 3]: (t, x, y)
    on_floor: bool  # path in floor metres (calibrated camera), else image pixels
    embedding: np.ndarray | None = None  # float32[D], L2-normalised
    embedding_weight: float = 0.0  # sum of crop qualities behind the mean (0: no embedding)
    zone_visits: tuple[tuple[float, str], ...] = ()  # (entered at, zone), in time order (final only)
    journey: JourneyRecord | None = None  # the camera journey (final only; None when too short)

    @property
    def key(self) -> tuple[str, int]:
        return self.camera_id, int(self.track_id)

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

    def position_at(self, t: float) -> np.ndarray:
        """float64[2]: the path interpolated at time ``t`` (clamped to its ends)."""
        p = self.path
        return np.array([np.interp(t, p[:, 0], p[:, 1]), np.interp(t, p[:, 0], p[:, 2])])
