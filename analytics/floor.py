"""The store's floor plan and each camera's image-to-floor calibration (metres).

A store that follows customers across cameras (``visits/``) needs one coordinate frame for
all of them: the floor, in metres, x to the right and y down the plan (as the plan image is
drawn). Each camera maps its image pixels to the floor with a homography fitted to four or
more point pairs (``floor_points`` in ``configs/store.yaml``); a person stands where the feet
are (box bottom centre), so ``to_floor(feet)`` is where they are in the store.

    cal = store.camera("cam-entrance-1").floor     # FloorCalibration | None
    cal.to_floor(np.array([[320.0, 300.0]]))        # float64[N, 2] metres
    store.floor.doors["main"].a                     # float64[2] metres

Loaded and validated by ``analytics.config`` (errors name camera, field and value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FloorCalibration:
    """Image pixels -> floor metres for one camera (a homography from point pairs)."""

    image_points: np.ndarray  # float64[K, 2], K >= 4, pixels
    floor_points: np.ndarray  # float64[K, 2], metres
    H: np.ndarray  # float64[3, 3]: image -> floor
    rms_error_m: float = 0.0  # fit residual over the pairs, metres

    def to_floor(self, xy: np.ndarray) -> np.ndarray:
        """float[N, 2] image pixels -> float64[N, 2] floor metres."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        q = p @ self.H[:2, :2].T + self.H[:2, 2]
        w = p @ self.H[2, :2] + self.H[2, 2]
        return q / w[:, None]


@dataclass(frozen=True)
class Door:
    """A doorway on the floor: customers enter and leave the store across the segment a-b."""

    name: str
    a: np.ndarray  # float64[2], metres
    b: np.ndarray  # float64[2], metres
    in_direction: np.ndarray  # unit float64[2]: crossing this way enters the store

    def side(self, xy: np.ndarray) -> np.ndarray:
        """float64[N]: signed distance (metres) past the door line into the store (< 0: outside)."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        d = self.b - self.a
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
        if float(n @ self.in_direction) < 0:
            n = -n
        return (p - self.a) @ n

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """float64[N]: distance (metres) from each point to the door segment."""
        p = np.asarray(xy, np.float64).reshape(-1, 2)
        d = self.b - self.a
        u = np.clip(((p - self.a) @ d) / max(float(d @ d), 1e-12), 0.0, 1.0)
        return np.hypot(*(p - (self.a + u[:, None] * d)).T)


@dataclass(frozen=True)
class FloorPlan:
    outline: np.ndarray  # float64[P, 2] metres: the store's floor polygon
    doors: dict[str, Door] = field(default_factory=dict)
    cell_m: float = 0.5  # floor heatmap cell side, metres
    plan_image: Path | None = None  # optional picture of the plan (floor heatmap PNG background)
    plan_px_per_m: float = 20.0  # the plan image's scale (pixels per metre), origin at its top-left

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the outline, metres."""
        lo, hi = self.outline.min(axis=0), self.outline.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
