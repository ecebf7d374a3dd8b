"""TensorRT converter (serving/tensorrt_engine.py): the GPU-free parts, and the build where possible.

Argument checks, ONNX input shapes -> optimisation profile, calibration batches through
the serving preprocessing, and the clear exit when TensorRT/CUDA is missing run
everywhere. ``test_build_on_gpu`` runs only where ``tensorrt`` imports and a CUDA
device exists (not on these CPU machines).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from serving import tensorrt_engine as te
from serving.postprocess import reid_crops
from serving.preprocess import letterbox
from tests.test_model_repo import make_detector, make_reid


@pytest.fixture
def reid_onnx(tmp_path) -> Path:
    return make_reid(tmp_path / "reid.onnx")


@pytest.fixture
def det_onnx(tmp_path) -> Path:
    return make_detector(tmp_path / "det.onnx", names=["person", "cart"])


@pytest.fixture
def calib_dir(tmp_path) -> Path:
    """Nine real-looking images of different sizes and formats, plus a file that is not an image."""
    d = tmp_path / "calib"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        h, w = (360 + 40 * i, 640 - 30 * i)
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(d / f"frame_{i:03d}.{'jpg' if i % 2 else 'png'}"), img)
    (d / "README.txt").write_text("not an image, ignored")
    return d


def spec(inp: Path, tmp_path: Path, **kw) -> te.BuildSpec:
    return te.BuildSpec(input=inp, output=tmp_path / "out.engine", **kw)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("kw, message", [
    ({"precision": "int4"}, "--precision must be one of fp32, fp16, int8, got 'int4'"),
    ({"min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max, got --min-batch 4 --opt-batch 2 --max-batch 8"),
    ({"opt_batch": 16, "max_batch": 8}, "--opt-batch 16 --max-batch 8"),
    ({"min_batch": 0}, "--min-batch 0"),
    ({"workspace_gb": 0}, "--workspace-gb must be > 0"),
    ({"precision": "int8"}, "--precision int8 needs --calibration-dir DIR"),
    ({"precision": "int8", "calibration_dir": Path("/nonexistent/calib")}, "--calibration-dir /nonexistent/calib: "
                                                                          "not a directory"),
    ({"calibration_batches": 0}, "--calibration-batches must be >= 1"),
])
def test_bad_arguments_are_named(reid_onnx, tmp_path, kw, message):
    with pytest.raises(te.EngineError) as ei:
        te.validate_spec(spec(reid_onnx, tmp_path, **kw))
    assert message in str(ei.value)


def test_missing_input_and_bad_output(tmp_path, reid_onnx):
    with pytest.raises(te.EngineError, match="--input .*nope.onnx: file not found"):
        te.validate_spec(spec(tmp_path / "nope.onnx", tmp_path))
    with pytest.raises(te.EngineError, match="would overwrite the input"):
        te.validate_spec(te.BuildSpec(input=reid_onnx, output=reid_onnx))
    with pytest.raises(te.EngineError, match="does not exist"):
        te.validate_spec(te.BuildSpec(input=reid_onnx, output=tmp_path / "no_dir" / "x.engine"))


def test_int8_defaults_cache_next_to_engine_and_accepts_cache_alone(reid_onnx, tmp_path, calib_dir):
    s = te.validate_spec(spec(reid_onnx, tmp_path, precision="int8", calibration_dir=calib_dir))
    assert s.calibration_cache == tmp_path / "out.engine.calib"
    (tmp_path / "scales.calib").write_bytes(b"cache")
    s = te.validate_spec(spec(reid_onnx, tmp_path, precision="int8", calibration_cache=tmp_path / "scales.calib"))
    assert s.calibration_dir is None


# ----------------------------------------------------------------------------- profile from ONNX


def test_profile_over_the_batch_axis(det_onnx, reid_onnx):
    det = te.onnx_inputs(det_onnx)
    assert det == [te.InputSpec("images", ("batch", 3, 640, 640), "FLOAT")]
    assert te.profile_shapes(det, 1, 4, 16) == {"images": ((1, 3, 640, 640), (4, 3, 640, 640), (16, 3, 640, 640))}
    assert te.profile_shapes(te.onnx_inputs(reid_onnx), 1, 32, 64)["images"][2] == (64, 3, 256, 128)


def test_profile_rejects_fixed_batch_and_dynamic_image_dims(tmp_path):
    fixed = te.onnx_inputs(make_detector(tmp_path / "f.onnx", batch=1))
    with pytest.raises(te.EngineError, match=r"input 'images' has a fixed batch of 1 in the ONNX, but the profile asks "
                                             r"for 1/4/8: re-export with a dynamic batch axis"):
        te.profile_shapes(fixed, 1, 4, 8)
    assert te.profile_shapes(fixed, 1, 1, 1)["images"][0] == (1, 3, 640, 640)
    dyn_hw = [te.InputSpec("images", ("batch", 3, "h", "w"), "FLOAT")]
    with pytest.raises(te.EngineError, match=r"dims 2 \('h'\), 3 \('w'\) are dynamic; only the batch axis"):
        te.profile_shapes(dyn_hw, 1, 4, 8)


def test_unreadable_onnx_named(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x00garbage")
    with pytest.raises(te.EngineError, match=r"--input .*bad.onnx: not a readable ONNX file"):
        te.onnx_inputs(p)


# ----------------------------------------------------------------------------- calibration batches


def test_detector_batches_are_the_serving_letterbox(calib_dir):
    batches = list(te.calibration_batches(calib_dir, (3, 640, 640), batch_size=4))
    assert len(batches) == 2  # 9 images -> two full batches of 4, the 9th is dropped
    for b in batches:
        assert b.shape == (4, 3, 640, 640) and b.dtype == np.float32
        assert b.min() >= 0.0 and b.max() <= 1.0
    files = sorted(p for p in calib_dir.iterdir() if p.suffix in (".jpg", ".png"))
    first, _ = letterbox(cv2.imread(str(files[0])), 640)
    fifth, _ = letterbox(cv2.imread(str(files[4])), 640)
    np.testing.assert_array_equal(batches[0][0], first)  # sorted by name, same preprocessing as serving
    np.testing.assert_array_equal(batches[1][0], fifth)
    # letterbox padding (114 grey) is present: these frames are wider than tall
    assert np.isclose(batches[0][0][:, 0, :], 114 / 255).all()


def test_reid_batches_are_the_serving_crops(calib_dir):
    (b,) = list(te.calibration_batches(calib_dir, (3, 256, 128), batch_size=8))
    assert b.shape == (8, 3, 256, 128) and b.dtype == np.float32
    img = cv2.imread(str(sorted(calib_dir.glob("frame_*"))[0]))
    h, w = img.shape[:2]
    np.testing.assert_allclose(b[0], reid_crops(img, np.array([[0, 0, w, h]], np.float32))[0], atol=1e-6)
    # ImageNet-normalised: values outside [0, 1] on both sides
    assert b.min() < -0.5 and b.max() > 1.0


def test_batches_are_deterministic_and_limited(calib_dir):
    a = list(te.calibration_batches(calib_dir, (3, 256, 128), 2, max_batches=3))
    b = list(te.calibration_batches(calib_dir, (3, 256, 128), 2, max_batches=3))
    assert len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])


def test_calibration_errors_name_the_dir_or_file(tmp_path, calib_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(te.CalibrationError, match=r"calibration directory .*empty has no images"):
        list(te.calibration_batches(empty, (3, 640, 640), 1))
    with pytest.raises(te.CalibrationError, match=r"has 9 images, fewer than one batch of 16"):
        list(te.calibration_batches(calib_dir, (3, 640, 640), 16))
    (calib_dir / "frame_000.png").write_bytes(b"this is not a png")
    with pytest.raises(te.CalibrationError) as ei:
        list(te.calibration_batches(calib_dir, (3, 640, 640), 4))
    assert "frame_000.png" in str(ei.value) and "cannot decode" in str(ei.value)


def test_preprocess_kind():
    assert te.preprocess_kind((3, 640, 640)) == "yolo"
    assert te.preprocess_kind((3, 256, 128)) == "reid"
    with pytest.raises(te.CalibrationError, match=r"no serving preprocessing for input shape \[1, 28, 28\]"):
        te.preprocess_kind((1, 28, 28))
    with pytest.raises(te.CalibrationError, match="--preprocess reid needs"):
        te.preprocess_kind((3, 640, 640), "reid")


# ----------------------------------------------------------------------------- CLI


def test_cli_inspect_without_gpu(det_onnx, calib_dir, capsys):
    assert te.main(["inspect", "--input", str(det_onnx), "--max-batch", "16", "--opt-batch", "4",
                    "--calibration-dir", str(calib_dir), "--calibration-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "profile images: min [1, 3, 640, 640] opt [4, 3, 640, 640] max [16, 3, 640, 640]" in out
    assert "calibration: 4 images in 1 batches of 4, yolo preprocessing" in out


def _have_trt_and_gpu() -> bool:
    try:
        te.require_tensorrt()
        return True
    except te.TensorRTUnavailable:
        return False


@pytest.mark.skipif(_have_trt_and_gpu(), reason="TensorRT and a GPU are present: the build test covers this")
def test_cli_without_tensorrt_exits_nonzero_with_install_hint(reid_onnx, tmp_path, capsys):
    rc = te.main(["convert", "--input", str(reid_onnx), "--output", str(tmp_path / "r.engine"), "--precision", "fp16"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "pip install '.[gpu]'" in err
    assert ("TensorRT is not installed" in err) or ("CUDA" in err) or ("cuda-python" in err)
    assert not (tmp_path / "r.engine").exists()


def test_cli_validates_before_looking_for_tensorrt(reid_onnx, tmp_path, capsys):
    rc = te.main(["convert", "--input", str(reid_onnx), "--output", str(tmp_path / "r.engine"),
                  "--precision", "int8"])
    assert rc == 2
    assert "--precision int8 needs --calibration-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        te.main(["convert", "--input", str(reid_onnx), "--output", "x", "--precision", "int4"])
    assert ei.value.code == 2


# ----------------------------------------------------------------------------- GPU (skipped here)


@pytest.mark.skipif(not _have_trt_and_gpu(), reason="needs tensorrt 10 and a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_on_gpu(reid_onnx, tmp_path, calib_dir, precision):
    out = tmp_path / f"reid_{precision}.engine"
    cache = tmp_path / "timing.cache"
    report = te.build_engine(te.BuildSpec(input=reid_onnx, output=out, precision=precision, min_batch=1,
                                          opt_batch=2, max_batch=8, timing_cache=cache, workspace_gb=1,
                                          calibration_dir=calib_dir if precision == "int8" else None))
    assert out.stat().st_size > 0 and cache.stat().st_size > 0
    assert json.loads(out.with_suffix(".engine.json").read_text())["output_sha256"] == report["output_sha256"]
    assert list(report["profile"]["images"]["max"]) == [8, 3, 256, 128]
    if precision == "int8":
        assert report["calibration"]["batches_used"] == 4 and (tmp_path / f"reid_{precision}.engine.calib").exists()
