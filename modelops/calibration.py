"""INT8 calibration for the TensorRT converter: real images through the serving preprocessing.

    files, n = calibration_plan(Path("data/calibration"), batch_size=8, max_batches=32)
    for batch in calibration_batches(Path("data/calibration"), (3, 640, 640), 8):  # float32[8, 3, 640, 640]
        ...
    kind = preprocess_kind((3, 256, 128))    # "yolo" | "reid"
    calib = make_calibrator(trt, cudart, batches, 8, sample_nbytes, "images", cache_path)  # GPU only

Images are the files directly in the directory (``IMAGE_EXTS``), sorted by name so builds
are repeatable; a last partial batch is dropped. Each is decoded and preprocessed exactly
as serving feeds the model: ``serving.preprocess.letterbox`` for square detector inputs
([3, S, S], "yolo") and ``serving.postprocess.reid_crops`` (resize + ImageNet
normalisation, the whole image as the crop) for OSNet inputs ([3, 256, 128], "reid").
Batches are decoded lazily, one at a time. Problems raise ``CalibrationError`` naming the
directory or file.

``make_calibrator`` builds a TensorRT ``IInt8EntropyCalibrator2`` that copies each batch
into one device buffer, reads/writes the calibration cache (written whole, through
``core.files``), and keeps an exception raised while feeding in ``.error`` (TensorRT
swallows it; the builder re-raises it after the build). NOT RUN HERE: it needs TensorRT
and a GPU.

Imports: numpy, ``serving`` (lazily), ``core.files``, ``modelops.engine_spec`` (errors).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes
from modelops.engine_spec import CalibrationError, EngineError, TensorRTUnavailable
from serving.preprocess import PAD_VALUE

__all__ = ["IMAGE_EXTS", "REID_SHAPE", "calibration_images", "preprocess_kind", "preprocess_file",
           "calibration_plan", "calibration_batches", "cuda_check", "make_calibrator"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
REID_SHAPE = (3, 256, 128)


def calibration_images(directory: Path) -> list[Path]:
    """Image files directly in ``directory``, sorted by name (a fixed order makes builds repeatable)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CalibrationError(f"calibration directory {directory} does not exist")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise CalibrationError(f"calibration directory {directory} has no images ({', '.join(IMAGE_EXTS)}); "
                               f"put a few hundred frames from the store cameras there")
    return files


def preprocess_kind(chw: Sequence[int], requested: str = "auto") -> str:
    """'yolo' (letterbox, [0, 1]) for detector inputs [3, H, W] (square, or sides multiples of 32:
    the camera's aspect), 'reid' (resize + ImageNet) for [3, 256, 128]."""
    chw = tuple(int(d) for d in chw)
    if requested == "auto":
        if chw != REID_SHAPE and _detector_shape(chw):
            return "yolo"
        if chw == REID_SHAPE:
            return "reid"
        raise CalibrationError(f"no serving preprocessing for input shape {list(chw)}: expected [3, S, S] or "
                               f"[3, H, W] with sides multiples of 32 (detector) or {list(REID_SHAPE)} (re-id); "
                               f"pass --preprocess")
    if requested == "yolo" and not _detector_shape(chw):
        raise CalibrationError(f"--preprocess yolo needs a [3, S, S] input or [3, H, W] with sides multiples of 32, "
                               f"the model has {list(chw)}")
    if requested == "reid" and chw != REID_SHAPE:
        raise CalibrationError(f"--preprocess reid needs a {list(REID_SHAPE)} input, the model has {list(chw)}")
    return requested


def _detector_shape(chw: tuple[int, ...]) -> bool:
    return len(chw) == 3 and chw[0] == 3 and (chw[1] == chw[2] or (chw[1] % 32 == 0 and chw[2] % 32 == 0))


def _fit(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """A letterboxed float32[3, h, w] centred on a [3, height, width] canvas of the pad grey (cropped if larger)."""
    out = np.full((3, height, width), PAD_VALUE / 255, np.float32)
    h, w = min(x.shape[1], height), min(x.shape[2], width)
    sy, sx = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    dy, dx = (height - h) // 2, (width - w) // 2
    out[:, dy:dy + h, dx:dx + w] = x[:, sy:sy + h, sx:sx + w]
    return out


def preprocess_file(path: Path, kind: str, chw: Sequence[int]) -> np.ndarray:
    """One calibration image -> float32[C, H, W] exactly as serving feeds the model."""
    from serving.postprocess import reid_crops
    from serving.preprocess import YOLO_STRIDE, ImageDecodeError, decode_image, letterbox

    try:
        img = decode_image(Path(path).read_bytes())
    except (ImageDecodeError, OSError) as e:
        raise CalibrationError(f"calibration image {path}: {e}") from e
    if kind == "yolo":
        height, width = int(chw[1]), int(chw[2])
        x, _ = letterbox(img, size=max(height, width), stride=0 if height == width else YOLO_STRIDE)
        # a frame of another aspect than the engine's: as served it would be refused; calibrate on its centre
        return x if x.shape[1:] == (height, width) else _fit(x, height, width)
    h, w = img.shape[:2]
    return reid_crops(img, np.array([[0, 0, w, h]], np.float32))[0]  # the whole image is the person crop


def calibration_plan(directory: Path, batch_size: int, max_batches: int | None = None) -> tuple[list[Path], int]:
    """(images that will be used, number of batches); a last partial batch is dropped."""
    files = calibration_images(directory)
    if len(files) < batch_size:
        raise CalibrationError(f"calibration directory {directory} has {len(files)} images, fewer than one batch "
                               f"of {batch_size} (the calibration batch is --opt-batch)")
    n = len(files) // batch_size
    if max_batches is not None:
        n = min(n, max_batches)
    return files[: n * batch_size], n


def calibration_batches(directory: Path, chw: Sequence[int], batch_size: int, max_batches: int | None = None,
                        kind: str = "auto") -> Iterator[np.ndarray]:
    """Yield float32[batch_size, C, H, W] batches, decoded lazily (memory: one batch at a time).

    Files are validated up front for existence and count; a file that does not decode
    raises CalibrationError naming it when its batch is built.
    """
    kind = preprocess_kind(chw, kind)
    files, n = calibration_plan(directory, batch_size, max_batches)
    buf = np.empty((batch_size, *[int(d) for d in chw]), np.float32)
    for b in range(n):
        for i, path in enumerate(files[b * batch_size:(b + 1) * batch_size]):
            buf[i] = preprocess_file(path, kind, chw)
        yield buf.copy()


# ----------------------------------------------------------------------------- TensorRT (GPU)


def cuda_check(result, what: str):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TensorRTUnavailable(f"CUDA error in {what}: {err}")
    return rest[0] if len(rest) == 1 else rest


def make_calibrator(trt, cudart, batches: Iterator[np.ndarray], batch_size: int, sample_nbytes: int,
                     input_name: str, cache_path: Path | None):
    """An IInt8EntropyCalibrator2 that copies each host batch into one device buffer."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # the bindings require the explicit base init
            self.batches_used = 0
            self.error: BaseException | None = None
            self._nbytes = batch_size * sample_nbytes
            self._device = cuda_check(cudart.cudaMalloc(self._nbytes), "cudaMalloc")

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            if list(names) != [input_name]:
                self.error = EngineError(f"calibrator feeds '{input_name}', TensorRT asked for {list(names)}")
                return None
            try:
                host = np.ascontiguousarray(next(batches), np.float32)
            except StopIteration:
                return None
            except BaseException as e:  # surfaced after the build: TensorRT swallows it here
                self.error = e
                return None
            cuda_check(cudart.cudaMemcpy(self._device, host.ctypes.data, host.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
            self.batches_used += 1
            return [int(self._device)]

        def read_calibration_cache(self):
            if cache_path is not None and cache_path.is_file():
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                atomic_write_bytes(cache_path, bytes(cache))

        def free(self) -> None:
            if self._device is not None:
                cudart.cudaFree(self._device)
                self._device = None

    return EntropyCalibrator()
