"""INT8 calibration data for OSNet: person crops, as serving feeds it (not whole frames).

Contract: ``plan_reid_calibration(calibration_dir, batch_size, max_batches, repo)`` returns a
``CropPlan`` whose ``batches()`` yields float32[batch_size, 3, 256, 128] made by
``serving.postprocess.reid_crops`` (the crop + resize + ImageNet normalisation of the served
``postprocess`` model), from one of two sources, in this order:

1. ``<calibration_dir>/crops/``: images that each *are* one person crop (cut from your cameras
   by any means); each is taken whole.
2. the camera frames directly in ``<calibration_dir>``: the repository's detector (the newest
   ``<repo>/yolov8n/<version>/model.onnx``, ONNX Runtime on the CPU, classes named ``person`` in
   ``<repo>/yolov8n/labels.txt``) finds the people through the serving letterbox, decode and
   NMS, and the crops are cut at those boxes from the full-resolution frame, as in serving.

Frames are read in name order and only until ``max_batches`` full batches exist, so a build
is repeatable and does not scan more than it needs. Fewer crops than one batch, no
detector, or no ``person`` class raise ``CalibrationError`` naming the directory and what to
add. ``modelops.tensorrt_engine`` calls this for inputs of OSNet's shape ([3, 256, 128]);
detector calibration is unchanged (letterboxed frames).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelops.calibration import IMAGE_EXTS, calibration_images
from modelops.engine_spec import CalibrationError, default_repo
from serving.postprocess import NmsConfig, decode_yolov8, reid_crops, to_original
from serving.preprocess import ImageDecodeError, decode_image, letterbox

CROPS_SUBDIR = "crops"
DETECTOR_MODEL = "yolov8n"
REID_CLASS = "person"


@dataclass(frozen=True, slots=True)
class CropRef:
    path: Path
    box: tuple[float, float, float, float] | None  # None: the whole image is the crop


@dataclass
class CropPlan:
    source: str  # "crops-dir" | "detector"
    directory: Path
    batch_size: int
    crops: list[CropRef]
    batches: int
    files: list[Path] = field(default_factory=list)  # images read (frames or crops)
    detector: Path | None = None

    def describe(self) -> str:
        how = (f"person crops from {self.directory}" if self.source == "crops-dir" else
               f"{len(self.crops)} person crops cut by {self.detector} from {len(self.files)} frames in {self.directory}")
        return f"{how}: {self.batches} batches of {self.batch_size}"

    def iter_batches(self) -> Iterator[np.ndarray]:
        """float32[batch_size, 3, 256, 128] per batch; each frame is decoded once."""
        refs = self.crops[: self.batches * self.batch_size]
        buf = np.empty((self.batch_size, 3, 256, 128), np.float32)
        cached: tuple[Path | None, np.ndarray | None] = (None, None)
        for b in range(self.batches):
            for i, ref in enumerate(refs[b * self.batch_size:(b + 1) * self.batch_size]):
                if cached[0] != ref.path:
                    cached = (ref.path, _read(ref.path))
                img = cached[1]
                h, w = img.shape[:2]
                box = ref.box if ref.box is not None else (0.0, 0.0, float(w), float(h))
                buf[i] = reid_crops(img, np.array([box], np.float32))[0]
            yield buf.copy()


def _read(path: Path) -> np.ndarray:
    try:
        return decode_image(Path(path).read_bytes())
    except (ImageDecodeError, OSError) as e:
        raise CalibrationError(f"calibration image {path}: {e}") from e


def newest_version_onnx(repo: Path, model: str) -> Path | None:
    versions = sorted((int(p.name), p / "model.onnx") for p in (Path(repo) / model).glob("[0-9]*")
                      if p.name.isdigit() and (p / "model.onnx").is_file())
    return versions[-1][1] if versions else None


class PersonDetector:
    """The served detector on the CPU: frame BGR -> person boxes (xyxy, frame pixels)."""

    def __init__(self, onnx_path: Path, labels: list[str], nms: NmsConfig | None = None):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        self.person_ids = np.array([i for i, n in enumerate(labels) if n == REID_CLASS], np.int32)
        if not self.person_ids.size:
            raise CalibrationError(f"labels of {self.path} have no class '{REID_CLASS}' ({labels}): cannot cut person "
                                   f"crops for OSNet's calibration; put crops in <calibration dir>/{CROPS_SUBDIR}/")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = inp.shape[-1] if isinstance(inp.shape[-1], int) and inp.shape[-1] > 0 else 640
        self.nms = nms or NmsConfig()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        x, lb = letterbox(frame, size=self.size)
        pred = self.session.run(None, {self.input_name: x[None]})[0]
        xyxy, _scores, cls = decode_yolov8(pred[0], self.nms)
        return to_original(xyxy[np.isin(cls, self.person_ids)], lb)


def repo_detector(repo: Path, model: str = DETECTOR_MODEL) -> PersonDetector:
    onnx = newest_version_onnx(repo, model)
    labels_file = Path(repo) / model / "labels.txt"
    if onnx is None or not labels_file.is_file():
        raise CalibrationError(f"OSNet calibrates on person crops: no detector to cut them ({repo}/{model}/<version>/"
                               f"model.onnx and {labels_file} needed), or put crops in <calibration dir>/{CROPS_SUBDIR}/")
    labels = [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
    return PersonDetector(onnx, labels)


def _crops_dir(calibration_dir: Path) -> Path | None:
    d = Path(calibration_dir) / CROPS_SUBDIR
    if d.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in d.iterdir() if p.is_file()):
        return d
    return None


def plan_reid_calibration(calibration_dir: Path, batch_size: int, max_batches: int | None = None,
                          repo: Path | None = None, detector: PersonDetector | None = None) -> CropPlan:
    """The crops OSNet is calibrated on (see the module doc for the sources and errors)."""
    calibration_dir = Path(calibration_dir)
    want = None if max_batches is None else max_batches * batch_size
    if (crops_dir := _crops_dir(calibration_dir)) is not None:
        files = calibration_images(crops_dir)[:want]
        refs = [CropRef(p, None) for p in files]
        plan = CropPlan("crops-dir", crops_dir, batch_size, refs, len(refs) // batch_size, files)
    else:
        frames = calibration_images(calibration_dir)
        det = detector or repo_detector(repo if repo is not None else default_repo())
        refs, used = [], []
        for path in frames:
            if want is not None and len(refs) >= want:
                break
            used.append(path)
            refs += [CropRef(path, tuple(float(v) for v in box)) for box in det(_read(path))]
        plan = CropPlan("detector", calibration_dir, batch_size, refs[:want], len(refs[:want]) // batch_size, used,
                        det.path)
    if plan.batches < 1:
        where = (f"{plan.directory} has {len(plan.crops)} crop images" if plan.source == "crops-dir" else
                 f"the detector {plan.detector} found {len(plan.crops)} people in the {len(plan.files)} frames of "
                 f"{plan.directory}")
        raise CalibrationError(f"OSNet calibration: {where}, fewer than one batch of {batch_size} (the calibration "
                               f"batch is --opt-batch): add frames with people, or person crops in "
                               f"{calibration_dir / CROPS_SUBDIR}/")
    return plan


def plan_for_spec(spec) -> CropPlan:
    """``plan_reid_calibration`` for a validated ``tensorrt_engine.BuildSpec`` (its repository holds the detector)."""
    if spec.model_config is not None:
        repo = Path(spec.model_config).resolve().parents[1]
    else:
        repo = Path(spec.repo) if spec.repo is not None else default_repo()
    return plan_reid_calibration(spec.calibration_dir, spec.calibration_batch, spec.calibration_batches, repo)
