"""Typed arrays passed between stages (detector -> tracker -> analytics).

Shapes are documented per field; N may be 0 (an empty frame is normal).
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
    def empty(embedding_dim: int | None = None) -> "Detections":
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
