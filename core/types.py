"""Typed arrays passed between stages (detector -> tracker -> analytics).

``Frame`` (camera) -> ``Detections`` (detector) -> ``Tracks`` (tracker) -> analytics.
Shapes are documented per field; N and M may be 0 (an empty frame is normal).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """One frame's detector output, boxes in original image pixels.

    xyxy:        float32[N, 4]  (x1, y1, x2, y2)
    scores:      float32[N]
    class_ids:   int32[N]
    class_names: tuple[str, ...] of length N (from the model's labels, not code)
    embeddings:  float32[N, D] L2-normalised re-id vectors, zero rows for classes
                 without re-id; None when the detector produced none.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = ()
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @staticmethod
    def empty(embedding_dim: int | None = None) -> Detections:
        emb = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                          np.zeros(0, np.int32), (), emb)


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded or encoded camera frame with its capture time.

    image:     uint8[H, W, 3] BGR, or None when only ``encoded`` is carried.
    encoded:   JPEG bytes as sent to Triton (None until encoded).
    timestamp: capture time, seconds since the epoch (float).
    """

    stream_id: str
    frame_number: int
    timestamp: float
    image: np.ndarray | None = None
    encoded: bytes | None = None
    width: int = 0
    height: int = 0
    meta: dict = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Tracks:
    """One frame's tracked objects: the tracker's output, the analytics' input (M may be 0).
    Not frozen: a consumer or test may swap a field (say, mark tracks coasting); the arrays
    are never copied, so replace an array rather than write into one you did not make.

    track_ids: int64[M]      stable per object, never reused within a tracker's life
    xyxy:      float32[M, 4] (x1, y1, x2, y2) box this frame, pixels
    scores:    float32[M]    score of the matched detection (the last one when coasting)
    class_ids: int32[M]      index into the detector's labels
    det_index: int64[M]      row of the input detection matched this frame, -1 when coasting
    coasting:  bool[M]       True: not detected this frame, xyxy is a motion prediction
    """

    track_ids: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    det_index: np.ndarray
    coasting: np.ndarray

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    @staticmethod
    def detected(track_ids, xyxy, scores, class_ids) -> Tracks:
        """Tracks that are all detected this frame, row i from detection i (nothing coasts):
        for sources of identities other than the tracker (ground truth, hand-made tests)."""
        m = len(track_ids)
        return Tracks(track_ids, xyxy, scores, class_ids, np.arange(m, dtype=np.int64), np.zeros(m, bool))

    @staticmethod
    def empty() -> Tracks:
        return Tracks(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                      np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, bool))
