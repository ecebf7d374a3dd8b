"""OSNet's INT8 calibration set is person crops, as serving feeds it (issue 23, fix 6).

``build_engine`` runs for real up to TensorRT, which is faked (tests/fake_tensorrt.py): the
fake drives the calibrator like TensorRT and keeps every batch it was given. Frames are the
simulator's checkout camera at the evening rush; the detector is the repository's (the
trained demo detector, ``make models``), so the crops can be held to the simulator's truth.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from modelops import calibration_crops as cc
from modelops import tensorrt_engine as te
from serving.postprocess import reid_crops
from serving.preprocess import letterbox
from tests import fake_tensorrt

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT / "model_repository"


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


@pytest.fixture(scope="module")
def store_frames(tmp_path_factory):
    """40 rendered checkout-camera frames (JPEG) and the true person boxes of each."""
    from modelops.build import ensure_models
    from simulator.render import render_camera

    ensure_models()
    d = tmp_path_factory.mktemp("calibration")
    truth = {}
    for k, (img, _t, boxes, cls, _ids) in enumerate(render_camera("cam-checkout-1", seconds=40, fps=1.0,
                                                                  start="2024-01-15T18:30:00Z")):
        path = d / f"frame_{k:03d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        truth[path] = boxes[cls == 0]
    return d, truth


def _build(monkeypatch, tmp_path, onnx: Path, calib: Path, batches: int = 1):
    trt, cudart = fake_tensorrt.make(gpu_name="NVIDIA L4")
    monkeypatch.setattr(te, "require_tensorrt", lambda: (trt, cudart))
    spec = te.BuildSpec(input=onnx, output=tmp_path / "model.plan", precision="int8", calibration_dir=calib,
                        calibration_batches=batches)
    report = te.build_engine(spec, log=lambda *_: None)
    return report, trt.state.calibration_batches


def test_osnet_is_calibrated_on_person_crops_cut_by_the_detector(monkeypatch, tmp_path, store_frames):
    frames, truth = store_frames
    onnx = cc.newest_version_onnx(REPO, "osnet_x0_25")
    report, fed = _build(monkeypatch, tmp_path, onnx, frames)
    assert len(fed) == 1 and fed[0].shape == (32, 3, 256, 128)
    plan = cc.plan_reid_calibration(frames, 32, 1, REPO)
    assert plan.source == "detector" and plan.detector == cc.newest_version_onnx(REPO, "yolov8n")
    # what TensorRT was fed is the serving crop at each detected box...
    for i, ref in enumerate(plan.crops[:32]):
        img = cv2.imread(str(ref.path))
        np.testing.assert_allclose(fed[0][i], reid_crops(img, np.array([ref.box], np.float32))[0], atol=1e-5)
    # ...and the boxes are the simulator's people (not whole frames squeezed to 256x128)
    hits = [_iou(np.array([r.box]), truth[r.path]).max(initial=0) >= 0.5 for r in plan.crops[:32]]
    assert np.mean(hits) >= 0.8, np.mean(hits)
    whole = reid_crops(img, np.array([[0, 0, img.shape[1], img.shape[0]]], np.float32))[0]
    assert not any(np.allclose(f, whole, atol=1e-3) for f in fed[0])
    side = json.loads((tmp_path / "model.plan.json").read_text())
    assert side["gpu"] == "NVIDIA L4" and side["compute_capability"] == "8.9" and side["precision"] == "int8"
    assert "person crops cut by" in side["calibration"]["source"] and report["calibration"]["batches_used"] == 1
    assert (tmp_path / "model.plan.calib").read_bytes() == b"calibration-table"


def test_a_crops_folder_is_used_as_is(monkeypatch, tmp_path, store_frames):
    frames, truth = store_frames
    calib = tmp_path / "calib"
    (calib / "crops").mkdir(parents=True)
    n = 0
    for path, boxes in truth.items():
        img = cv2.imread(str(path))
        for x1, y1, x2, y2 in np.round(boxes).astype(int):
            cv2.imwrite(str(calib / "crops" / f"p{n:04d}.png"), img[y1:y2, x1:x2])
            n += 1
    plan = cc.plan_reid_calibration(calib, 32, 2, repo=tmp_path / "no-repo")  # no detector needed
    assert plan.source == "crops-dir" and plan.batches == 2
    _, fed = _build(monkeypatch, tmp_path, cc.newest_version_onnx(REPO, "osnet_x0_25"), calib)
    first = cv2.imread(str(calib / "crops" / "p0000.png"))
    h, w = first.shape[:2]
    np.testing.assert_allclose(fed[0][0], reid_crops(first, np.array([[0, 0, w, h]], np.float32))[0], atol=1e-5)


def test_frames_without_people_name_the_directory_and_the_crops_folder(tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(40):
        cv2.imwrite(str(calib / f"empty_{i:02d}.jpg"), np.full((360, 640, 3), 200, np.uint8))
    with pytest.raises(te.CalibrationError, match=r"found 0 people in the 40 frames of .*crops/"):
        cc.plan_reid_calibration(calib, 32, None, REPO)
    with pytest.raises(te.CalibrationError, match="no detector"):
        cc.plan_reid_calibration(calib, 32, None, tmp_path / "empty-repo")


def test_detector_calibration_is_still_letterboxed_frames(monkeypatch, tmp_path, store_frames):
    frames, _ = store_frames
    _, fed = _build(monkeypatch, tmp_path, cc.newest_version_onnx(REPO, "yolov8n"), frames)
    first = sorted(frames.glob("*.jpg"))[0]
    # the engine's opt shape: the cameras' aspect from trt_profile_images (3x384x640), as preprocess sends it
    assert fed[0].shape == (8, 3, 384, 640)
    np.testing.assert_allclose(fed[0][0], letterbox(cv2.imread(str(first)), stride=32)[0], atol=1e-6)
