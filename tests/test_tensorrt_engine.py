"""TensorRT converter (modelops/tensorrt_engine.py): the GPU-free parts, and the build where possible.

Argument checks, the Triton model config (max batch, dims for dynamic ONNX dims), ONNX
input shapes -> optimisation profile, the default timing cache, calibration batches
through the serving preprocessing, docker/build_engines.sh (with the build stubbed), the
clear exit when TensorRT/CUDA is missing, and ``make clean-all`` (it removes the built
versions and engines) run everywhere. ``test_build_on_gpu`` runs only where ``tensorrt``
imports and a CUDA device exists (not on these CPU machines).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from modelops import tensorrt_engine as te
from serving.postprocess import reid_crops
from serving.preprocess import letterbox
from tests.test_model_repo import make_detector, make_reid

ROOT = Path(__file__).resolve().parents[1]
REAL_REPO = ROOT / "model_repository"
DEMO_DETECTOR = ROOT / "data" / "models" / "demo" / "yolov8n_demo.onnx"  # committed: ['batch', 3, 'height', 'width']


def make_dynamic_hw(path: Path) -> Path:
    """A YOLOv8-shaped detector exported like Ultralytics ``dynamic=True``: images ['batch', 3, 'height', 'width']."""
    make_detector(path, names=["person", "cart"])
    m = onnx.load(str(path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, name in ((dims[2], "height"), (dims[3], "width")):
        d.ClearField("dim_value")
        d.dim_param = name
    onnx.save(m, str(path))
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    """A model repository with the real TensorRT configs: yolov8n/3 (dynamic H/W detector), osnet_x0_25/1."""
    r = tmp_path / "repo"
    for model in ("yolov8n", "osnet_x0_25"):
        (r / model).mkdir(parents=True)
        shutil.copy(REAL_REPO / model / "config.pbtxt", r / model / "config.pbtxt")
    (r / "yolov8n" / "3").mkdir()
    make_dynamic_hw(r / "yolov8n" / "3" / "model.onnx")
    (r / "osnet_x0_25" / "1").mkdir()
    make_reid(r / "osnet_x0_25" / "1" / "model.onnx")
    return r


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
    with pytest.raises(te.EngineError, match=r"dims 2 \('h'\), 3 \('w'\) are dynamic and no model config gives "
                                             r"them: pass --input-shape images:3,N,N"):
        te.profile_shapes(dyn_hw, 1, 4, 8)
    # known dims fill the dynamic ones; fixed ONNX dims must agree with them
    assert te.profile_shapes(dyn_hw, 1, 4, 8, {"images": ((3, 320, 480), "--input-shape")})["images"] == (
        (1, 3, 320, 480), (4, 3, 320, 480), (8, 3, 320, 480))
    with pytest.raises(te.EngineError, match=r"input 'images' dim 1 is 3 in the ONNX .*, cfg says 1"):
        te.profile_shapes(dyn_hw, 1, 4, 8, {"images": ((1, 320, 480), "cfg")})
    with pytest.raises(te.EngineError, match=r"dims 3 \('w'\) are dynamic and neither cfg nor --input-shape"):
        te.profile_shapes(dyn_hw, 1, 4, 8, {"images": ((3, 320, None), "cfg")})


def test_unreadable_onnx_named(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x00garbage")
    with pytest.raises(te.EngineError, match=r"--input .*bad.onnx: not a readable ONNX file"):
        te.onnx_inputs(p)


# ----------------------------------------------------------------------------- model config: dims, batch range


def test_reads_the_repository_configs_without_tritonclient(tmp_path):
    y = te.read_model_config(REAL_REPO / "yolov8n" / "config.pbtxt")
    assert (y.name, y.max_batch_size, y.inputs, y.preferred_batch_sizes) == (
        "yolov8n", 16, {"images": (3, -1, -1)}, (4, 8, 16))
    # height/width vary with the cameras' aspect: the profile's range comes from the config
    assert y.ranges == {"images": ((3, 32, 32), (3, 384, 640), (3, 640, 640))}
    o = te.read_model_config(REAL_REPO / "osnet_x0_25" / "config.pbtxt")
    assert (o.max_batch_size, o.inputs) == (64, {"images": (3, 256, 128)})
    # comments (also after values, with brackets in them), `input {}` repeated-field syntax, reshape
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text('# a [comment] { with brackets\nname: "m"  # trailing ]\nmax_batch_size: 4\n'
                   'input { name: "a" data_type: TYPE_FP32 dims: [ 1, 3, 32, 32 ] reshape: { shape: [ 3, 32, 32 ] } }\n'
                   'input { name: "b" data_type: TYPE_FP32 dims: [ -1, 7 ] }\n'
                   'parameters { key: "k" value { string_value: "x#y]" } }\n')
    m = te.read_model_config(cfg)
    assert m.max_batch_size == 4 and m.inputs == {"a": (3, 32, 32), "b": (-1, 7)}
    cfg.write_text('max_batch_size: 4\ninput [ { name: "a" dims: [ 3, 32 ')
    with pytest.raises(te.EngineError, match=r"config.pbtxt: cannot parse model config"):
        te.read_model_config(cfg)


def test_dynamic_image_dims_are_filled_from_the_config_in_the_repository_layout(repo):
    onnx_path = repo / "yolov8n" / "3" / "model.onnx"
    assert te.onnx_inputs(onnx_path)[0].shape == ("batch", 3, "height", "width")
    s = te.validate_spec(te.BuildSpec(input=onnx_path, output=onnx_path.with_name("model.plan")))
    assert s.model_config == repo / "yolov8n" / "config.pbtxt"
    # batch range from the config's max_batch_size (16), opt half of it
    assert (s.min_batch, s.opt_batch, s.max_batch) == (1, 8, 16)
    _, shapes = te.plan_profile(s)
    assert shapes == {"images": ((1, 3, 32, 32), (8, 3, 384, 640), (16, 3, 640, 640))}
    reid = repo / "osnet_x0_25" / "1" / "model.onnx"
    s = te.validate_spec(te.BuildSpec(input=reid, output=reid.with_name("model.plan")))
    assert (s.opt_batch, s.max_batch) == (32, 64)
    assert te.plan_profile(s)[1]["images"][2] == (64, 3, 256, 128)


def test_model_flag_gives_the_config_for_an_onnx_outside_the_repository(repo, tmp_path):
    loose = make_dynamic_hw(tmp_path / "exported.onnx")
    with pytest.raises(te.EngineError, match=r"dims 2 \('height'\), 3 \('width'\) are dynamic"):
        te.plan_profile(te.validate_spec(spec(loose, tmp_path)))
    s = te.validate_spec(spec(loose, tmp_path, model="yolov8n", repo=repo))
    assert s.max_batch == 16 and te.plan_profile(s)[1]["images"][1] == (8, 3, 384, 640)
    with pytest.raises(te.EngineError, match=r"--model yolov9: no .*yolov9/config.pbtxt .*models there: "
                                             r"\['osnet_x0_25', 'yolov8n'\]"):
        te.validate_spec(spec(loose, tmp_path, model="yolov9", repo=repo))


def test_input_shape_flag(repo, tmp_path):
    loose = make_dynamic_hw(tmp_path / "exported.onnx")
    s = te.validate_spec(spec(loose, tmp_path, input_shapes=(te.parse_input_shape("3,384,640"),)))
    assert te.plan_profile(s)[1]["images"] == ((1, 3, 384, 640), (4, 3, 384, 640), (8, 3, 384, 640))
    assert te.parse_input_shape("images:3,640,640") == ("images", (3, 640, 640))
    for bad in ("3,h,640", "", "images:", "3,0,640"):
        with pytest.raises(te.EngineError, match="--input-shape .*expected positive integers"):
            te.parse_input_shape(bad)
    cases = [((("other", (3, 640, 640)),), r"no input 'other' in the ONNX"),
             (((None, (640, 640)),), r"input 'images' has shape \['batch', 3, 'height', 'width'\], so 3 dims"),
             (((None, (3, 800, 800)),), r"--input-shape images:3,800,800 is outside .*yolov8n/config.pbtxt "
                                        r"trt_profile_images 3x32x32..3x640x640: Triton would send shapes")]
    for shapes, message in cases:
        with pytest.raises(te.EngineError, match=message):
            te.plan_profile(te.validate_spec(spec(loose, tmp_path, model="yolov8n", repo=repo, input_shapes=shapes)))
    pinned = te.validate_spec(spec(loose, tmp_path, model="yolov8n", repo=repo, input_shapes=((None, (3, 320, 320)),)))
    assert te.plan_profile(pinned)[1]["images"] == ((1, 3, 320, 320), (8, 3, 320, 320), (16, 3, 320, 320))


def test_batch_range_defaults_and_limits(repo, tmp_path, reid_onnx):
    s = te.validate_spec(spec(reid_onnx, tmp_path))  # no config: the old default range
    assert (s.min_batch, s.opt_batch, s.max_batch, s.model_config) == (1, 4, 8, None)
    assert [te.default_opt_batch(1, m) for m in (1, 2, 8, 16, 64)] == [1, 2, 4, 8, 32]
    assert te.default_opt_batch(12, 16) == 12
    reid = repo / "osnet_x0_25" / "1" / "model.onnx"
    with pytest.raises(te.EngineError, match=r"--max-batch 8 is below max_batch_size 64 in .*osnet_x0_25/config.pbtxt"
                                             r": Triton refuses"):
        te.validate_spec(te.BuildSpec(input=reid, output=tmp_path / "o.plan", max_batch=8))
    s = te.validate_spec(te.BuildSpec(input=reid, output=tmp_path / "o.plan", opt_batch=16, max_batch=128))
    assert (s.opt_batch, s.max_batch) == (16, 128)


def test_timing_cache_defaults_to_output_dot_timing(reid_onnx, tmp_path):
    s = te.validate_spec(te.BuildSpec(input=reid_onnx, output=tmp_path / "model.plan"))
    assert s.timing_cache == tmp_path / "model.plan.timing" == te.default_timing_cache(tmp_path / "model.plan")
    s = te.validate_spec(te.BuildSpec(input=reid_onnx, output=tmp_path / "model.plan", timing_cache=tmp_path / "t.c"))
    assert s.timing_cache == tmp_path / "t.c"
    assert te.validate_spec(te.BuildSpec(input=reid_onnx, output=tmp_path / "m.plan", use_timing_cache=False)
                            ).timing_cache is None
    with pytest.raises(te.EngineError, match=r"--timing-cache .*nodir/t.c: directory .* does not exist"):
        te.validate_spec(te.BuildSpec(input=reid_onnx, output=tmp_path / "m.plan", timing_cache=tmp_path / "nodir/t.c"))


@pytest.mark.skipif(not DEMO_DETECTOR.is_file(), reason="the shipped demo detector is missing")
def test_cli_inspect_the_shipped_demo_detector(capsys):
    assert te.onnx_inputs(DEMO_DETECTOR)[0].shape == ("batch", 3, "height", "width")
    assert te.main(["inspect", "--input", str(DEMO_DETECTOR)]) == 2
    err = capsys.readouterr().err
    assert "are dynamic and no model config gives them: pass --input-shape images:3,N,N" in err
    assert te.main(["inspect", "--input", str(DEMO_DETECTOR), "--model", "yolov8n", "--repo", str(REAL_REPO)]) == 0
    out = capsys.readouterr().out
    assert f"config: {REAL_REPO / 'yolov8n' / 'config.pbtxt'} (max_batch_size 16)" in out
    assert "profile images: min [1, 3, 32, 32] opt [8, 3, 384, 640] max [16, 3, 640, 640]" in out
    assert te.main(["inspect", "--input", str(DEMO_DETECTOR), "--input-shape", "3,480,640"]) == 0
    assert "max [8, 3, 480, 640]" in capsys.readouterr().out


def test_build_engines_script_passes_model_and_caches(repo, tmp_path):
    """docker/build_engines.sh end to end, with the TensorRT build replaced by a stub that
    records the validated spec and profile (everything before the build is the real code;
    tests/engine_stub.py). Rebuild rules: tests/test_build_engines.py."""
    from tests.engine_stub import write_stub

    stub = write_stub(tmp_path / "python3")
    (tmp_path / "env.json").write_text(json.dumps({"tensorrt": "10.5.0", "gpu": "NVIDIA L4", "compute_capability": "8.9"}))
    env = {**os.environ, "MODEL_REPOSITORY": str(repo), "PYTHON": str(stub), "PYTHONPATH": str(ROOT),
           "FAKE_TRT_ENV": str(tmp_path / "env.json"), "FAKE_TRT_LOG": str(tmp_path / "builds.log")}
    r = subprocess.run(["bash", str(ROOT / "docker" / "build_engines.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "engines: 2 built" in r.stdout
    det = json.loads((repo / "yolov8n" / "3" / "model.plan").read_text())
    assert det["profile"]["images"] == {"min": [1, 3, 32, 32], "opt": [8, 3, 384, 640], "max": [16, 3, 640, 640]}
    assert det["timing_cache"] == str(repo / "yolov8n" / "3" / "model.plan.timing")
    assert det["config"] == str(repo / "yolov8n" / "config.pbtxt")
    reid = json.loads((repo / "osnet_x0_25" / "1" / "model.plan").read_text())
    assert reid["profile"]["images"]["max"] == [64, 3, 256, 128]
    assert (repo / "yolov8n" / "3" / "model.plan.json").is_file() and not list(repo.rglob("*.tmp*"))
    r = subprocess.run(["bash", str(ROOT / "docker" / "build_engines.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "engines: 0 built" in r.stdout  # idempotent


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


# ----------------------------------------------------------------------------- make clean-all


def _git_ls(path: str) -> list[str]:
    return subprocess.run(["git", "ls-files", path], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_all_is_idempotent_and_removes_built_versions(tmp_path):
    """The real Makefile in a scratch tree: committed model files stay, built versions go, twice over."""
    committed = _git_ls("model_repository") + _git_ls("data")
    assert "model_repository/yolov8n/config.pbtxt" in committed
    work = tmp_path / "tree"
    work.mkdir()
    shutil.copy(ROOT / "Makefile", work / "Makefile")
    for rel in committed:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("committed")
    built = ["model_repository/yolov8n/1/model.onnx", "model_repository/yolov8n/1/manifest.json",
             "model_repository/yolov8n/2/model.plan", "model_repository/yolov8n/2/model.plan.timing",
             "model_repository/yolov8n/12/manifest.json", "model_repository/osnet_x0_25/1/manifest.json",
             "model_repository/osnet_x0_25/.tmp-2-abc/model.onnx", "model_repository/yolov8n/.retired-3-x/model.onnx",
             "model_repository/preprocess/1/__pycache__/model.cpython-311.pyc",
             "data/models/yolov8n.onnx", "data/sample/visits.csv", ".run/triton.log"]
    for rel in built:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("built")
    (work / ".venv" / "bin").mkdir(parents=True)
    # two local servers on different ports (pid files per gRPC port): both are stopped, and only processes
    # that really are tritonserver (a stale pid file pointing at something else is left alone)
    fake = tmp_path / "tritonserver"
    os.symlink(shutil.which("sleep"), fake)
    servers = [subprocess.Popen([str(fake), "60"]) for _ in range(2)]
    other = subprocess.Popen(["sleep", "60"])
    for port, proc in zip((8001, 9101, 9201), (*servers, other)):
        (work / ".run" / f"triton-{port}.pid").write_text(str(proc.pid))
    for attempt in (1, 2):  # the second run has no .venv any more
        r = subprocess.run(["make", "-s", "clean-all"], cwd=work, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"run {attempt}: {r.stdout}{r.stderr}"
        left = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        assert left == sorted(["Makefile", *committed]), f"run {attempt}"
        assert not [p for p in (work / "model_repository").rglob("*") if p.is_dir() and p.name.isdigit()
                    and not any(c.startswith(str(p.relative_to(work)) + "/") for c in committed)]
        assert not (work / ".venv").exists()
    assert [p.wait(timeout=5) for p in servers] == [-15, -15]  # SIGTERM, waited for by make
    assert other.poll() is None
    other.kill()


# ----------------------------------------------------------------------------- GPU (skipped here)


@pytest.mark.skipif(not _have_trt_and_gpu(), reason="needs tensorrt 10 and a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_on_gpu(reid_onnx, tmp_path, calib_dir, precision):
    out = tmp_path / f"reid_{precision}.engine"
    cache = tmp_path / "timing.cache"
    (calib_dir / "crops").mkdir()  # OSNet calibrates on person crops (modelops/calibration_crops.py)
    for f in calib_dir.glob("frame_*"):
        shutil.copy(f, calib_dir / "crops" / f.name)
    report = te.build_engine(te.BuildSpec(input=reid_onnx, output=out, precision=precision, min_batch=1,
                                          opt_batch=2, max_batch=8, timing_cache=cache, workspace_gb=1,
                                          calibration_dir=calib_dir if precision == "int8" else None))
    assert out.stat().st_size > 0 and cache.stat().st_size > 0
    assert json.loads(out.with_suffix(".engine.json").read_text())["output_sha256"] == report["output_sha256"]
    assert list(report["profile"]["images"]["max"]) == [8, 3, 256, 128]
    if precision == "int8":
        assert report["calibration"]["batches_used"] == 4 and (tmp_path / f"reid_{precision}.engine.calib").exists()


@pytest.mark.skipif(not _have_trt_and_gpu(), reason="needs tensorrt 10 and a CUDA device")
def test_build_dynamic_hw_detector_in_repository_layout_on_gpu(repo):
    """The Ultralytics dynamic=True case: dims from config.pbtxt, batch up to its 16, default timing cache."""
    onnx_path = repo / "yolov8n" / "3" / "model.onnx"
    plan = onnx_path.with_name("model.plan")
    assert te.main(["convert", "--input", str(onnx_path), "--output", str(plan), "--precision", "fp16",
                    "--workspace-gb", "1"]) == 0
    report = json.loads(plan.with_suffix(".plan.json").read_text())
    assert report["profile"]["images"]["max"] == [16, 3, 640, 640]
    assert plan.with_suffix(".plan.timing").stat().st_size > 0


@pytest.mark.parametrize("value, message", [
    ("3x32x32:3x384x640", r"expected MIN:OPT:MAX of 3 positive dims each"),
    ("3x640x640:3x384x640:3x640x640", r"dim 2 needs min <= opt <= max, got 640, 384, 640"),
    ("1x32x32:1x384x640:1x640x640", r"dim 1 is 3 in the config, the range says 1:1:1"),
])
def test_a_bad_profile_range_names_the_config_and_parameter(tmp_path, value, message):
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text('name: "yolov8n"\nmax_batch_size: 8\ninput [ { name: "images" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]\n'
                   f'parameters {{ key: "trt_profile_images" value {{ string_value: "{value}" }} }}\n')
    with pytest.raises(te.EngineError, match=rf"config.pbtxt: parameter trt_profile_images '{value}': {message}"):
        te.read_model_config(cfg)
