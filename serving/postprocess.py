"""YOLOv8 decoding, class-aware NMS, box rescaling and re-id crops (vectorised NumPy).

The same functions run inside Triton (``model_repository/postprocess``) and in-process
(benchmarks), so the two paths cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from serving.preprocess import Letterbox

REID_SIZE = (128, 256)  # (width, height) OSNet input
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
_NORM_SCALE = (1 / _IMAGENET_STD).astype(np.float32)[None, :, None, None]  # (x - mean) / std = x * scale - offset
_NORM_OFFSET = (_IMAGENET_MEAN / _IMAGENET_STD).astype(np.float32)[None, :, None, None]


@dataclass(frozen=True, slots=True)
class NmsConfig:
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    max_candidates: int = 3000  # top-scoring boxes fed to NMS
    min_box_size: float = 2.0  # pixels (model input scale)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Greedy NMS; returns kept indices, best first. Class-aware when ``class_ids`` is given.

    Boxes of different classes never suppress each other: they are shifted apart by a
    per-class offset larger than any coordinate, so one pass serves all classes.
    """
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    boxes = xyxy.astype(np.float32, copy=True)
    if class_ids is not None:
        boxes += (class_ids.astype(np.float32) * (float(boxes.max()) + 1.0))[:, None]
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def decode_yolov8(pred: np.ndarray, cfg: NmsConfig = NmsConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output float32[4 + C, A] -> (xyxy float32[K,4], scores float32[K], class_ids int32[K]).

    Boxes are in model-input (letterboxed) pixels. Rows 0-3 are cx, cy, w, h; rows 4.. are
    per-class probabilities (already sigmoid), as exported by Ultralytics.
    """
    if pred.ndim != 2 or pred.shape[0] < 5:
        raise ValueError(f"expected YOLOv8 output [4+classes, anchors], got shape {pred.shape}")
    cls = pred[4:]
    class_ids = cls.argmax(0)
    scores = cls[class_ids, np.arange(cls.shape[1])]
    cand = np.flatnonzero(scores > cfg.conf_threshold)
    if cand.size > cfg.max_candidates:
        cand = cand[np.argpartition(-scores[cand], cfg.max_candidates)[: cfg.max_candidates]]
    cx, cy, w, h = pred[:4, cand]
    ok = (w >= cfg.min_box_size) & (h >= cfg.min_box_size)
    cand, cx, cy, w, h = cand[ok], cx[ok], cy[ok], w[ok], h[ok]
    xyxy = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 1).astype(np.float32)
    keep = nms(xyxy, scores[cand], cfg.iou_threshold, class_ids[cand])[: cfg.max_detections]
    return xyxy[keep], scores[cand][keep].astype(np.float32), class_ids[cand][keep].astype(np.int32)


def to_original(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Letterboxed model-input pixels -> original image pixels, clipped to the image."""
    out = (xyxy - np.array([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y], np.float32)) / np.float32(lb.scale)
    np.clip(out[:, 0::2], 0, lb.orig_w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, lb.orig_h, out=out[:, 1::2])
    return out.astype(np.float32, copy=False)


def reid_crops(image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Person crops for OSNet: float32[K, 3, 256, 128], RGB, ImageNet-normalised.

    ``xyxy`` in the image's pixels. Degenerate boxes (after clipping) give a 1-pixel crop
    rather than an error: the embedding is then meaningless but the row stays aligned.
    """
    k = len(xyxy)
    h, w = image_bgr.shape[:2]
    boxes = np.round(xyxy).astype(np.int64)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w - 1)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h - 1)
    # resize in uint8 (C-level, one per crop), then one pass to normalised float: every frame
    # of every stream comes here, and float temporaries of K x 256 x 128 x 3 cost 6x the time
    crops = np.empty((k, REID_SIZE[1], REID_SIZE[0], 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cv2.resize(image_bgr[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)], REID_SIZE, dst=crops[i],
                   interpolation=cv2.INTER_LINEAR)
    out = np.empty((k, 3, REID_SIZE[1], REID_SIZE[0]), np.float32)
    np.multiply(crops[..., ::-1].transpose(0, 3, 1, 2), _NORM_SCALE, out=out, casting="unsafe")  # BGR -> RGB CHW
    out -= _NORM_OFFSET
    return out


def l2_normalise(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(n, 1e-12)).astype(np.float32)
