"""ONNX -> TensorRT engine (a serialized plan for Triton's ``platform: "tensorrt_plan"`` configs).

    python -m modelops.tensorrt_engine convert --input X.onnx --output Y.engine --precision fp16 \\
        [--model yolov8n] [--min-batch 1 --opt-batch 8 --max-batch 16] [--input-shape 3,640,640] \\
        [--timing-cache PATH | --no-timing-cache] [--workspace-gb 4]
    python -m modelops.tensorrt_engine convert --input X.onnx --output Y.engine --precision int8 \\
        --calibration-dir data/calibration [--calibration-batches 32] [--calibration-cache Y.calib]
    python -m modelops.tensorrt_engine inspect --input X.onnx [--model yolov8n] [--opt-batch 4 ...] [--calibration-dir DIR]

What it does (TensorRT 10 Python API): parse the ONNX into a network, one optimisation
profile over the batch axis of every input (min/opt/max), a workspace limit, a timing
cache loaded before and saved after the build (rebuilds take seconds instead of minutes),
FP16 and/or INT8 builder flags, then ``build_serialized_network``.

The Triton model config decides what the engine must accept. It is
``<repo>/<model>/config.pbtxt``, found from ``--model NAME`` (with ``--repo``, default
``$MODEL_REPOSITORY`` or ``model_repository/``) or from the repository layout when
``--input`` is ``<repo>/<model>/<version>/model.onnx``. From it:

- ``--max-batch`` defaults to its ``max_batch_size`` (8 without a config); a smaller
  explicit value is an error, since Triton refuses an engine whose profile stops below it.
  ``--opt-batch`` defaults to half of max (at least 4, at most max): 8 for yolov8n's 16,
  32 for osnet_x0_25's 64, 4 for 8.
- dynamic non-batch dims of the ONNX (Ultralytics ``dynamic=True`` exports have
  ``['batch', 3, 'height', 'width']``) are filled from the config input's ``dims``.
  ``--input-shape [NAME:]C,H,W`` gives them explicitly (it must agree with the config);
  a dim that is still unknown is an error naming the input and what to pass.

The timing cache defaults to ``<output>.timing`` (``model.plan.timing`` beside the engine);
a cache from another TensorRT version or GPU is ignored and rewritten. INT8 uses an
entropy calibrator (``IInt8EntropyCalibrator2``) fed with real images from
``--calibration-dir`` through the *same* preprocessing as serving:
``serving.preprocess.letterbox`` for square detector inputs ([N,3,640,640]) and
``serving.postprocess.reid_crops`` (resize + ImageNet normalisation) for OSNet inputs
([N,3,256,128]) of *person crops* (``<dir>/crops/``, or cut from the frames by the repository's
detector: ``modelops/calibration_crops.py``); its scales are kept in a calibration cache
(default ``<output>.calib``)
so later builds skip it. Beside the engine a ``<output>.json`` records what was built
from what.

Exit codes: 0 built; 2 bad arguments or inputs (named in the message); 3 TensorRT or a
CUDA device is missing. Everything except the build itself (argument checks, model config,
ONNX input shapes -> profile, calibration batches) runs without TensorRT or a GPU and is tested.

Layout: this module is the build (``build_engine``, GPU) and the command line;
``modelops.engine_spec`` holds the spec, the Triton config / ONNX checks and the profile
(no TensorRT), ``modelops.calibration`` the INT8 calibration data and calibrator. Their
public names are re-exported here. Engine, timing cache, calibration cache and report are
each written whole (``core.files.atomic_write_bytes``).

NOT RUN HERE: the GPU path (``build_engine`` and the calibrator) was written to the
documented TensorRT 10 Python API on machines without TensorRT or an NVIDIA GPU; its test
(tests/test_tensorrt_engine.py) skips unless ``tensorrt`` imports and a device is present.
TensorRT 10.1+ marks implicit INT8 calibration deprecated (explicit Q/DQ quantisation is
the successor) but still supports it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes
from modelops.calibration import (  # noqa: F401
    IMAGE_EXTS,
    REID_SHAPE,
    calibration_batches,
    calibration_images,
    calibration_plan,
    make_calibrator,
    preprocess_file,
    preprocess_kind,
)
from modelops.calibration_crops import CropPlan, plan_for_spec
from modelops.engine_sidecar import gpu_identity  # the GPU a plan is for, recorded in <output>.json
from modelops.engine_spec import (  # noqa: F401
    DEFAULT_MAX_BATCH,
    PRECISIONS,
    REPO_ROOT,
    TRT_MISSING,
    BuildSpec,
    CalibrationError,
    EngineError,
    InputSpec,
    ModelConfigInfo,
    TensorRTUnavailable,
    cuda_runtime,
    default_opt_batch,
    default_repo,
    default_timing_cache,
    known_input_dims,
    onnx_inputs,
    parse_input_shape,
    plan_profile,
    profile_shapes,
    read_model_config,
    resolve_model_config,
    validate_spec,
)
from modelops.layout import sha256_file
from serving.nms_graph import OUTPUTS as NMS_OUTPUTS
from serving.nms_graph import NmsSpec, append_efficient_nms

# ----------------------------------------------------------------------------- TensorRT (GPU)


def require_tensorrt():
    """(tensorrt module, cudart module) or TensorRTUnavailable with what to install."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable(TRT_MISSING) from e
    if int(trt.__version__.split(".")[0]) < 10:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} found, this converter needs 10.x: "
                                  f"pip install '.[gpu]'")
    cudart = cuda_runtime()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        raise TensorRTUnavailable(f"no CUDA device available ({err}, {count} devices): TensorRT builds engines "
                                  f"for the GPU it runs on")
    return trt, cudart


def nms_spec_from_config(config: Path) -> NmsSpec:
    """The EfficientNMS fields from the model config's ``nms_*`` parameters (defaults: NmsSpec's)."""
    from modelops import pbtxt

    try:
        return NmsSpec.from_params(pbtxt.read_model_config(config).parameters, str(config))
    except ValueError as e:
        raise EngineError(str(e)) from None


def detector_graph(spec: BuildSpec) -> bytes | None:
    """The ONNX with EfficientNMS appended when the model config asks for detections (``num_dets``,
    ``det_boxes``, ...) and the ONNX is a raw YOLOv8 export; None when it is to be parsed as it is."""
    if spec.model_config is None:
        return None
    from modelops import pbtxt

    outputs = {o.name for o in pbtxt.read_model_config(spec.model_config).outputs}
    if not set(NMS_OUTPUTS) <= outputs:
        return None
    import onnx

    model = onnx.load(str(spec.input))
    if set(NMS_OUTPUTS) <= {o.name for o in model.graph.output}:
        return None
    try:
        return append_efficient_nms(model, nms_spec_from_config(spec.model_config)).SerializeToString()
    except ValueError as e:
        raise EngineError(f"--input {spec.input}: {spec.model_config} asks for detections, but EfficientNMS cannot "
                          f"be appended: {e}") from None


def _parse_network(trt, builder, logger, spec: BuildSpec, shapes: dict):
    """(network, parser) from the ONNX; the parser must outlive the build (it owns the weights)."""
    network = builder.create_network(0)  # TensorRT 10: every network is explicit-batch
    parser = trt.OnnxParser(network, logger)
    detector = detector_graph(spec)
    if detector is not None:
        trt.init_libnvinfer_plugins(logger, "")  # EfficientNMS_TRT must be registered before parsing
        ok = parser.parse(detector, str(spec.input.parent))
    else:
        ok = parser.parse_from_file(str(spec.input))
    if not ok:
        errs = [parser.get_error(i) for i in range(parser.num_errors)]
        errors = "; ".join(e.desc() if hasattr(e, "desc") else str(e) for e in errs)
        raise EngineError(f"--input {spec.input}: TensorRT's ONNX parser failed: {errors}")
    trt_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(trt_inputs) != sorted(shapes):
        raise EngineError(f"TensorRT sees inputs {trt_inputs}, the ONNX graph declares {sorted(shapes)}")
    return network, parser


def _use_timing_cache(config, spec: BuildSpec, log) -> None:
    """Load ``spec.timing_cache`` into the builder config; a foreign or broken one is replaced by a new cache."""
    cache_bytes = spec.timing_cache.read_bytes() if spec.timing_cache.is_file() else b""
    try:
        timing_cache = config.create_timing_cache(cache_bytes) if cache_bytes else None
        loaded = timing_cache is not None and config.set_timing_cache(timing_cache, ignore_mismatch=False)
    except Exception:  # a truncated / foreign cache file: TensorRT may raise instead of returning False
        loaded = False
    if not loaded:
        if cache_bytes:
            log(f"timing cache {spec.timing_cache} does not fit this TensorRT/GPU: starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def _set_int8(trt, cudart, builder, config, spec: BuildSpec, inputs: list[InputSpec], shapes: dict,
              crops: CropPlan | None):
    """INT8 flag + entropy calibrator on the calibration batch (= opt); returns the calibrator."""
    config.set_flag(trt.BuilderFlag.INT8)
    name = inputs[0].name
    chw = shapes[name][1][1:]
    batches = (crops.iter_batches() if crops is not None else
               calibration_batches(spec.calibration_dir, chw, spec.calibration_batch, spec.calibration_batches,
                                   spec.preprocess) if spec.calibration_dir is not None else iter(()))
    calib = make_calibrator(trt, cudart, batches, spec.calibration_batch, int(np.prod(chw)) * 4, name,
                            spec.calibration_cache)
    config.int8_calibrator = calib
    # Calibration runs at the calibration batch (= opt). Without an explicit calibration
    # profile TensorRT uses profile 0's opt shape, which is the same; the setter is
    # deprecated in 10.x (implicit quantisation), hence the guard.
    if hasattr(config, "set_calibration_profile"):
        calib_profile = builder.create_optimization_profile()
        fixed = shapes[name][1]
        calib_profile.set_shape(name, fixed, fixed, fixed)
        config.set_calibration_profile(calib_profile)
    return calib


def _plan_int8(spec: BuildSpec, inputs: list[InputSpec], shapes: dict
               ) -> tuple[str, list[Path], int, CropPlan | None]:
    """(preprocessing kind, calibration images, batches, person-crop plan or None) planned before
    the GPU work: fails early on a bad directory. OSNet calibrates on person crops, as served."""
    if len(inputs) != 1:
        raise EngineError(f"INT8 calibration supports one-input models; {spec.input} has "
                          f"{[i.name for i in inputs]}")
    kind = preprocess_kind(shapes[inputs[0].name][1][1:], spec.preprocess)
    if kind == "reid":
        crops = plan_for_spec(spec)
        return kind, crops.files, crops.batches, crops
    files, n = calibration_plan(spec.calibration_dir, spec.calibration_batch, spec.calibration_batches)
    return kind, files, n, None


def _report(spec: BuildSpec, trt, cudart, shapes: dict, engine_bytes: bytes, io: list[str], calib,
            calib_files: list[Path], calib_n: int, crops: CropPlan | None, t0: float) -> dict:
    return {
        "input": str(spec.input), "input_sha256": sha256_file(spec.input),
        "output": str(spec.output), "output_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "size_bytes": len(engine_bytes), "precision": spec.precision,
        "profile": {k: {"min": v[0], "opt": v[1], "max": v[2]} for k, v in shapes.items()},
        "io_tensors": io, "tensorrt": trt.__version__, **gpu_identity(cudart), "workspace_gb": spec.workspace_gb,
        "timing_cache": str(spec.timing_cache) if spec.timing_cache else None,
        "model_config": str(spec.model_config) if spec.model_config else None,
        "calibration": None if spec.precision != "int8" else {
            "dir": str(spec.calibration_dir) if spec.calibration_dir else None,
            "images": len(calib_files), "batches_planned": calib_n,
            "source": crops.describe() if crops else "frames",
            "batches_used": calib.batches_used if calib else 0,
            "cache": str(spec.calibration_cache) if spec.calibration_cache else None},
        "build_seconds": round(time.perf_counter() - t0, 1),
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def build_engine(spec: BuildSpec, log=print) -> dict:
    """Build and write the engine (GPU). Returns the report also written to ``<output>.json``."""
    spec = validate_spec(spec)
    inputs, shapes = plan_profile(spec)
    calib, calib_files, calib_n, crops = None, [], 0, None
    if spec.precision == "int8" and spec.calibration_dir is not None:
        _, calib_files, calib_n, crops = _plan_int8(spec, inputs, shapes)
    trt, cudart = require_tensorrt()
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser_keepalive = _parse_network(trt, builder, logger, spec, shapes)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    if spec.timing_cache is not None:
        _use_timing_cache(config, spec, log)
    if spec.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # with INT8: layers INT8 cannot take fall back to FP16, not FP32
    if spec.precision == "int8":
        calib = _set_int8(trt, cudart, builder, config, spec, inputs, shapes, crops)

    log(f"building {spec.precision} engine from {spec.input} (profile {shapes}, workspace {spec.workspace_gb} GB)")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calib is not None:
            calib.free()
    if calib is not None and calib.error is not None:
        raise calib.error
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {spec.input} (see the log above)")
    engine_bytes = bytes(serialized)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise EngineError("the built engine does not deserialize")
    io = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    atomic_write_bytes(spec.output, engine_bytes)
    if spec.timing_cache is not None:
        atomic_write_bytes(spec.timing_cache, bytes(config.get_timing_cache().serialize()))
    report = _report(spec, trt, cudart, shapes, engine_bytes, io, calib, calib_files, calib_n, crops, t0)
    atomic_write_bytes(spec.output.with_suffix(spec.output.suffix + ".json"),
                       (json.dumps(report, indent=2) + "\n").encode())
    log(f"wrote {spec.output} ({len(engine_bytes) / 1e6:.1f} MB) in {report['build_seconds']} s")
    return report


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m modelops.tensorrt_engine", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("convert", "inspect"):
        p = sub.add_parser(name, help="build an engine" if name == "convert" else
                           "show the profile and calibration plan without building (no GPU needed)")
        p.add_argument("--input", required=True, type=Path, help="ONNX file")
        if name == "convert":
            p.add_argument("--output", required=True, type=Path, help="engine file (Triton: model.plan)")
        p.add_argument("--precision", choices=PRECISIONS, default="fp16")
        p.add_argument("--model", default=None,
                       help="Triton model the engine is for: <repo>/<model>/config.pbtxt gives max batch and "
                            "dynamic dims (default: from --input's layout <repo>/<model>/<version>/model.onnx)")
        p.add_argument("--repo", type=Path, default=None,
                       help="model repository for --model (default: $MODEL_REPOSITORY or model_repository/)")
        p.add_argument("--min-batch", type=int, default=1)
        p.add_argument("--opt-batch", type=int, default=None,
                       help="default: max/2, at least 4; also the INT8 calibration batch size")
        p.add_argument("--max-batch", type=int, default=None,
                       help=f"default: the config's max_batch_size ({DEFAULT_MAX_BATCH} without a config)")
        p.add_argument("--input-shape", action="append", default=[], metavar="[NAME:]C,H,W",
                       help="dims after the batch axis for dynamic ONNX dims (repeat per input); must agree with "
                            "the config")
        p.add_argument("--workspace-gb", type=float, default=4.0)
        tc = p.add_mutually_exclusive_group()
        tc.add_argument("--timing-cache", type=Path, default=None, help="default: <output>.timing")
        tc.add_argument("--no-timing-cache", action="store_true", help="neither read nor write a timing cache")
        p.add_argument("--calibration-dir", type=Path, default=None)
        p.add_argument("--calibration-batches", type=int, default=None)
        p.add_argument("--calibration-cache", type=Path, default=None,
                       help="INT8 scales (default: <output>.calib); reused when present")
        p.add_argument("--preprocess", choices=("auto", "yolo", "reid"), default="auto")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        spec = BuildSpec(input=a.input, output=getattr(a, "output", None) or a.input.with_suffix(".engine"),
                         precision=a.precision, min_batch=a.min_batch, opt_batch=a.opt_batch, max_batch=a.max_batch,
                         workspace_gb=a.workspace_gb, timing_cache=a.timing_cache,
                         use_timing_cache=not a.no_timing_cache, calibration_dir=a.calibration_dir,
                         calibration_batches=a.calibration_batches, calibration_cache=a.calibration_cache,
                         preprocess=a.preprocess, model=a.model, repo=a.repo,
                         input_shapes=tuple(parse_input_shape(t) for t in a.input_shape))
        spec = validate_spec(spec, for_build=a.cmd == "convert")
        inputs, shapes = plan_profile(spec)
        plan = None
        if spec.calibration_dir is not None:
            kind, files, n, crops = _plan_int8(spec, inputs, shapes)
            plan = (f"{kind} ({crops.describe()})" if crops else kind, len(files), n)
        if a.cmd == "inspect":
            if spec.model_config is not None:
                cfg = read_model_config(spec.model_config)
                print(f"config: {spec.model_config} (max_batch_size {cfg.max_batch_size})")
            else:
                print("config: none (pass --model NAME, or an --input at <repo>/<model>/<version>/model.onnx, "
                      "to follow its max_batch_size and dims)")
            for name, (mn, opt, mx) in shapes.items():
                print(f"profile {name}: min {list(mn)} opt {list(opt)} max {list(mx)}")
            if plan:
                print(f"calibration: {plan[1]} images in {plan[2]} batches of {spec.calibration_batch}, "
                      f"{plan[0]} preprocessing, from {spec.calibration_dir}")
            return 0
        build_engine(spec)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
