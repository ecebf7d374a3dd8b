"""Input checks for ``Tracker.update``: bad detections fail loudly, naming the field and row."""
from __future__ import annotations

import math

import numpy as np


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0])


def check_detections(xyxy, scores, class_ids=None, embeddings=None):
    """Return (xyxy float64[N,4], scores float64[N], class_ids int64[N], embeddings float32[N,D] | None,
    has_embedding bool[N]). Raises ValueError naming the field and index of the first bad row.

    Zero-area boxes are legal input (a box clipped to the image edge) but cannot be tracked by
    overlap; callers drop them via ``keep``. Zero embedding rows mean "no embedding" (classes
    without re-id), as in ``core.types.Detections``.
    """
    boxes = np.asarray(xyxy if xyxy is not None else np.zeros((0, 4)), dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy: expected shape [N, 4], got {list(boxes.shape)}")
    n = boxes.shape[0]
    sc = np.asarray(scores if scores is not None else np.zeros(0), dtype=np.float64).reshape(-1)
    if sc.shape[0] != n:
        raise ValueError(f"scores: expected {n} values (one per box in xyxy), got {sc.shape[0]}")
    if class_ids is None:
        cls = np.zeros(n, np.int64)
    else:
        cls_in = np.asarray(class_ids).reshape(-1)
        if cls_in.shape[0] != n:
            raise ValueError(f"class_ids: expected {n} values (one per box in xyxy), got {cls_in.shape[0]}")
        if cls_in.dtype.kind == "f":
            bad = ~np.isfinite(cls_in) | (cls_in != np.round(cls_in))
            if bad.any():
                i = _first_bad(bad)
                raise ValueError(f"class_ids[{i}]: expected an integer class id, got {cls_in[i]!r}")
        elif cls_in.dtype.kind not in "iub" and n:
            raise ValueError(f"class_ids: expected integers, got dtype {cls_in.dtype}")
        cls = cls_in.astype(np.int64)
    # one cheap test for the common all-good case (a sum is finite exactly when every term is,
    # barring overflow); the row-by-row search, in the order of its messages, only on failure
    if n and not (math.isfinite(np.add.reduce(boxes, None) + np.add.reduce(sc))
                  and not (boxes[:, 2:] < boxes[:, :2]).any()):
        bad = ~np.isfinite(boxes)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"xyxy[{i}]: non-finite coordinate in {boxes[i].tolist()}")
        neg = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if neg.any():
            i = _first_bad(neg)
            raise ValueError(f"xyxy[{i}]: negative width or height (x1, y1, x2, y2) = {boxes[i].tolist()}")
        bad = ~np.isfinite(sc)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"scores[{i}]: non-finite score {sc[i]!r}")
    emb = None
    has_emb = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != n:
            raise ValueError(f"embeddings: expected shape [{n}, D] (one row per box in xyxy), "
                             f"got {list(emb.shape)}")
        if not math.isfinite(np.add.reduce(emb, None)):
            bad = ~np.isfinite(emb)
            if bad.any():
                i = _first_bad(bad)
                raise ValueError(f"embeddings[{i}]: non-finite value")
        norm = np.sqrt(np.add.reduce(emb * emb, axis=1))     # np.linalg.norm(emb, axis=1)
        has_emb = norm > 1e-6
        # renormalise defensively: cosine distance assumes unit rows
        if has_emb.all():
            emb = emb / norm[:, None]
        else:
            emb = np.divide(emb, norm[:, None], out=np.zeros_like(emb), where=has_emb[:, None])
    if has_emb is None:
        has_emb = np.zeros(n, bool)
    return boxes, sc, cls, emb, has_emb


def check_timestamp(timestamp, previous: float | None) -> float:
    try:
        t = float(timestamp)
    except (TypeError, ValueError):
        raise ValueError(f"timestamp: expected seconds as a number, got {timestamp!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"timestamp: non-finite value {timestamp!r}")
    if previous is not None and t < previous:
        raise ValueError(f"timestamp: {t!r} is earlier than the previous update's {previous!r}; "
                         f"frames must arrive in time order (call reset() to restart a stream)")
    return t
