"""Hand-made track sequences for the analytics tests (the tracker's output shape)."""
from __future__ import annotations

import numpy as np

from analytics.config import parse_store_config
from core.types import Tracks

NAMES = {0: "person", 1: "cart"}


def tracks(*items) -> Tracks:
    """items: (track_id, feet_x, feet_y[, class_id[, height]]) -> boxes standing on those feet."""
    ids, boxes, cls = [], [], []
    for it in items:
        tid, x, y = it[:3]
        c = it[3] if len(it) > 3 else 0
        h = it[4] if len(it) > 4 else 60.0
        w = h * 0.4
        ids.append(tid)
        boxes.append([x - w / 2, y - h, x + w / 2, y])
        cls.append(c)
    return Tracks.detected(np.array(ids, np.int64), np.array(boxes, np.float32).reshape(-1, 4),
                           np.full(len(ids), 0.9, np.float32), np.array(cls, np.int32))


def square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def store(**camera) -> object:
    """A one-camera store ("cam") with the given camera fields, plus top-level extras in ``_top``."""
    top = camera.pop("_top", {})
    raw = {"cameras": {"cam": {"image_size": [640, 360], **camera}}, **top}
    return parse_store_config(raw, "test.yaml")
