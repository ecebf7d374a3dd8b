"""Frame decoding and letterboxing for YOLOv8 (the same steps in Triton and in-process).

``letterbox`` keeps the aspect ratio, scales the long side to ``size``, pads with grey (114)
and converts BGR -> RGB, HWC -> CHW, [0, 1] float32, as Ultralytics does. With ``stride``
(the served default, 32 for YOLOv8) the padding only rounds each side up to a multiple of
the stride, so a 16:9 camera frame becomes 640x384 instead of 640x640 (40 % fewer pixels
for the detector, no object changes size); without it (``stride=0``) the input is a
``size`` x ``size`` square, the export shape of a fixed-size engine.

``decode_image`` rejects frames whose size cannot be served (``ImageSizeError``, a kind of
``ImageDecodeError``): a side under ``MIN_SIDE`` px or an aspect ratio over ``MAX_ASPECT``
(a 1x3000 strip would letterbox to a 0-pixel-high image), a side over ``MAX_SIDE`` or more
than ``MAX_PIXELS`` pixels (decoding would take hundreds of MB per request). PNG and JPEG
sizes are read from the header, so a huge one is refused before it is decoded.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

YOLO_SIZE = 640
YOLO_STRIDE = 32  # YOLOv8's largest feature stride: input sides must be multiples of it
PAD_VALUE = 114
MIN_SIDE = 16  # px; smaller is not a camera frame
MAX_ASPECT = 32.0  # long side / short side; at 640 the short side still gets >= 20 px
MAX_SIDE = 16384  # px
MAX_PIXELS = 50_000_000  # 8K UHD (7680x4320) is 33.2 M; decoded BGR at the limit is 150 MB


class ImageDecodeError(ValueError):
    """The bytes are not an image OpenCV can decode (corrupt, truncated, empty)."""


class ImageSizeError(ImageDecodeError):
    """The image decodes (or its header parses) but its size cannot be served: degenerate or huge."""


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


def check_image_size(height: int, width: int, where: str = "") -> None:
    """Raise ImageSizeError naming the shape and the limit it breaks."""
    h, w = int(height), int(width)
    shape = f"image of {w}x{h} px (width x height{where})"
    if min(h, w) < MIN_SIDE:
        raise ImageSizeError(f"{shape}: degenerate, each side must be >= {MIN_SIDE} px")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise ImageSizeError(f"{shape}: degenerate, aspect ratio {max(h, w) / min(h, w):.0f}:1 exceeds "
                             f"{MAX_ASPECT:.0f}:1")
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise ImageSizeError(f"{shape}: too large, limits are {MAX_SIDE} px a side and {MAX_PIXELS / 1e6:.0f} "
                             f"megapixels ({h * w / 1e6:.1f} MP sent); downscale on the client")


def header_size(buf: np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header without decoding; None for other formats / no header."""
    b = bytes(buf[:32]) if buf.size >= 24 else b""
    if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
        return int.from_bytes(b[20:24], "big"), int.from_bytes(b[16:20], "big")
    if buf.size < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    data = memoryview(buf)
    i, n = 2, buf.size
    while i + 9 < n:  # walk the JPEG segments up to the frame header (SOFn)
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        seg = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
        if marker == 0xDA or seg < 2:  # scan data before any frame header: not a JPEG we can size
            return None
        i += 2 + seg
    return None


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Encoded bytes (JPEG/PNG/...) -> BGR uint8[H, W, 3].

    Raises ImageDecodeError (not an image) or its subclass ImageSizeError (degenerate or huge).
    """
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else np.asarray(data, np.uint8).reshape(-1)
    if buf.size == 0:
        raise ImageDecodeError("empty image: 0 bytes received")
    size = header_size(buf)
    if size is not None:
        check_image_size(*size, where=", from its header")  # before decoding: no memory spent on a huge one
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # e.g. over OpenCV's own CV_IO_MAX_IMAGE_PIXELS
        raise ImageDecodeError(f"cannot decode image ({buf.size} bytes): {str(e).strip().splitlines()[-1]}") from e
    if img is None or img.size == 0:
        raise ImageDecodeError(f"cannot decode image ({buf.size} bytes, starts with {bytes(buf[:4]).hex()})")
    check_image_size(*img.shape[:2])
    return img


def input_shape(height: int, width: int, size: int = YOLO_SIZE, stride: int = 0) -> tuple[int, int]:
    """The detector input (height, width) for a frame: ``size`` square, or with ``stride`` the
    frame's aspect with each side rounded up to a multiple of it (640x360 -> (384, 640))."""
    if stride <= 0:
        return size, size
    scale = min(size / height, size / width)
    nh, nw = int(round(height * scale)), int(round(width * scale))
    return -(-nh // stride) * stride, -(-nw // stride) * stride


def letterbox(image_bgr: np.ndarray, size: int = YOLO_SIZE, out: np.ndarray | None = None,
              stride: int = 0) -> tuple[np.ndarray, Letterbox]:
    """BGR uint8[H, W, 3] -> (float32[3, H', W'] RGB in [0, 1], Letterbox).

    (H', W') = ``input_shape(H, W, size, stride)``: ``size`` x ``size`` when ``stride`` is 0,
    else the frame's aspect rounded up to the stride. ``out`` may be a preallocated
    float32[3, H', W'] to avoid an allocation per frame.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 image, got shape {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    scale = min(size / h, size / w)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    out_h, out_w = input_shape(h, w, size, stride)
    pad_x, pad_y = (out_w - nw) // 2, (out_h - nh) // 2
    canvas = np.full((out_h, out_w, 3), PAD_VALUE, np.uint8)
    resized = image_bgr if (nw, nh) == (w, h) else cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    if out is None:
        out = np.empty((3, out_h, out_w), np.float32)
    # BGR -> RGB channel flip folded into the transpose; one pass to float.
    np.multiply(canvas[:, :, ::-1].transpose(2, 0, 1), np.float32(1 / 255), out=out, casting="unsafe")
    return out, Letterbox(scale, float(pad_x), float(pad_y), w, h)
