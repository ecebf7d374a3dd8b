"""Field parsers the store config's sections share: an [x, y] pair, an image point inside the
frame, and the four plan/image directions (``in:`` of counting lines and doors).

    is_xy([3, 4.5])                                  # True: two finite numbers (not bools)
    image_point(fields, [320, 300], "cameras.cam-1.zones.z.polygon[0]", (640, 360))   # float64[2]
    DIRECTIONS["up"]                                 # (0.0, -1.0): toward smaller y

Inputs: a ``core.config.Fields`` bound to the store file, the raw value and its dotted field
path; outputs: numpy arrays, or ``ConfigError`` naming file, field and value. Used by
``analytics.config`` (zones, lines) and ``analytics.floor_config`` (doors, ``floor_points``).
May import: core.config, numpy, the standard library.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.config import Fields

DIRECTIONS = {"up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


def is_xy(v: Any) -> bool:
    """[x, y] of two finite numbers."""
    return (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v))


def image_point(fields: Fields, v: Any, fld: str, size: tuple[int, int]) -> np.ndarray:
    """[x, y] in pixels inside the ``size`` (width, height) frame, edges included -> float64[2]."""
    if not is_xy(v):
        raise fields.error(fld, v, "must be a point [x, y]")
    w, h = size
    if not (0 <= v[0] <= w and 0 <= v[1] <= h):
        raise fields.error(fld, v, f"lies outside the {w}x{h} frame")
    return np.array(v, dtype=np.float64)
