"""Frame decoding and letterboxing for YOLOv8 (the same steps in Triton and in-process).

``letterbox`` keeps the aspect ratio, pads with grey (114) to a square of ``size``,
converts BGR -> RGB, HWC -> CHW and scales to [0, 1] float32, as Ultralytics does.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

YOLO_SIZE = 640
PAD_VALUE = 114


class ImageDecodeError(ValueError):
    """The bytes are not an image OpenCV can decode (corrupt, truncated, empty)."""


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an original image maps into the model input: ``model = orig * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    orig_w: int
    orig_h: int

    def as_array(self) -> np.ndarray:
        """float32[6]: scale, pad_x, pad_y, orig_w, orig_h, 0 (the wire form between models)."""
        return np.array([self.scale, self.pad_x, self.pad_y, self.orig_w, self.orig_h, 0], np.float32)

    @staticmethod
    def from_array(a: np.ndarray) -> "Letterbox":
        a = np.asarray(a, np.float32).reshape(-1)
        return Letterbox(float(a[0]), float(a[1]), float(a[2]), int(a[3]), int(a[4]))


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Encoded bytes (JPEG/PNG/...) -> BGR uint8[H, W, 3]. Raises ImageDecodeError."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8).reshape(-1)
    if buf.size == 0:
        raise ImageDecodeError("empty image: 0 bytes received")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageDecodeError(f"cannot decode image ({buf.size} bytes, starts with {bytes(buf[:4]).hex()})")
    return img


def letterbox(image_bgr: np.ndarray, size: int = YOLO_SIZE, out: np.ndarray | None = None) -> tuple[np.ndarray, Letterbox]:
    """BGR uint8[H, W, 3] -> (float32[3, size, size] RGB in [0, 1], Letterbox).

    ``out`` may be a preallocated float32[3, size, size] to avoid an allocation per frame.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    scale = min(size / h, size / w)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    resized = image_bgr if (nw, nh) == (w, h) else cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    if out is None:
        out = np.empty((3, size, size), np.float32)
    # BGR -> RGB channel flip folded into the transpose; one pass to float.
    np.multiply(canvas[:, :, ::-1].transpose(2, 0, 1), np.float32(1 / 255), out=out, casting="unsafe")
    return out, Letterbox(scale, float(pad_x), float(pad_y), w, h)
