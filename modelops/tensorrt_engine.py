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
detector: ``modelops/calibration_crops.py``); its scales are kept in a calibration cache (default ``<output>.calib``)
so later builds skip it. Beside the engine a ``<output>.json`` records what was built
from what.

Exit codes: 0 built; 2 bad arguments or inputs (named in the message); 3 TensorRT or a
CUDA device is missing. Everything except the build itself (argument checks, model config,
ONNX input shapes -> profile, calibration batches) runs without TensorRT or a GPU and is tested.

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
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from modelops.engine_sidecar import gpu_identity  # the GPU a plan is for, recorded in <output>.json

PRECISIONS = ("fp32", "fp16", "int8")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
REID_SHAPE = (3, 256, 128)
DEFAULT_MAX_BATCH = 8  # without a model config
REPO_ROOT = Path(__file__).resolve().parents[1]
TRT_MISSING = "TensorRT is not installed: pip install '.[gpu]' on a machine with an NVIDIA GPU"


class EngineError(ValueError):
    """Bad arguments or inputs; the message names the argument, file or tensor."""


class CalibrationError(EngineError):
    """The calibration images cannot be used (empty dir, unreadable file...)."""


class TensorRTUnavailable(RuntimeError):
    """TensorRT, cuda-python or a CUDA device is missing."""


@dataclass(frozen=True, slots=True)
class BuildSpec:
    """What to build. ``validate_spec`` fills the ``None`` defaults (from the model config when known)."""

    input: Path
    output: Path
    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int | None = None  # None: default_opt_batch(min, max)
    max_batch: int | None = None  # None: the config's max_batch_size, else DEFAULT_MAX_BATCH
    workspace_gb: float = 4.0
    timing_cache: Path | None = None  # None: <output>.timing unless use_timing_cache is False
    use_timing_cache: bool = True
    calibration_dir: Path | None = None
    calibration_batches: int | None = None  # None: every full batch the directory gives
    calibration_cache: Path | None = None
    preprocess: str = "auto"  # auto | yolo | reid
    model: str | None = None  # Triton model name: its config is <repo>/<model>/config.pbtxt
    repo: Path | None = None  # None: $MODEL_REPOSITORY or model_repository/ of this checkout
    model_config: Path | None = None  # filled by validate_spec (from model/repo or the input's layout)
    # --input-shape: ((input name or None for "the only input"), non-batch dims), ...
    input_shapes: tuple[tuple[str | None, tuple[int, ...]], ...] = ()

    @property
    def calibration_batch(self) -> int:
        return self.opt_batch


@dataclass(frozen=True, slots=True)
class ModelConfigInfo:
    """What the engine must satisfy, read from a Triton ``config.pbtxt``."""

    path: Path
    name: str | None
    max_batch_size: int
    inputs: dict[str, tuple[int, ...]]  # the dims the model sees (after ``reshape``), batch axis excluded
    preferred_batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]  # str: a symbolic / unknown ONNX dim
    dtype: str


def default_repo() -> Path:
    return Path(os.environ.get("MODEL_REPOSITORY") or REPO_ROOT / "model_repository")


def default_opt_batch(min_batch: int, max_batch: int) -> int:
    """Half of max, at least 4 (and within [min, max]): 16 -> 8, 64 -> 32, 8 -> 4, 2 -> 2."""
    return max(min_batch, min(max_batch, max(4, max_batch // 2)))


def resolve_model_config(spec: BuildSpec) -> Path | None:
    """The Triton config the engine is for: ``--model`` in ``--repo``, else the input's repository layout."""
    if spec.model_config is not None:
        if not Path(spec.model_config).is_file():
            raise EngineError(f"model config {spec.model_config}: file not found")
        return Path(spec.model_config)
    if spec.model:
        repo = Path(spec.repo) if spec.repo is not None else default_repo()
        cfg = repo / spec.model / "config.pbtxt"
        if not cfg.is_file():
            known = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file()) if repo.is_dir() else []
            raise EngineError(f"--model {spec.model}: no {cfg} (--repo {repo}; models there: {known})")
        return cfg
    # <repo>/<model>/<version>/model.onnx, as in a Triton model repository
    parent = Path(spec.input).resolve().parent
    if parent.name.isdigit() and (parent.parent / "config.pbtxt").is_file():
        return parent.parent / "config.pbtxt"
    return None


def validate_spec(spec: BuildSpec, *, for_build: bool = True) -> BuildSpec:
    """Raise EngineError naming the argument; fill in defaults (model config, batch range,
    timing and calibration cache paths)."""
    if spec.precision not in PRECISIONS:
        raise EngineError(f"--precision must be one of {', '.join(PRECISIONS)}, got {spec.precision!r}")
    if not spec.input.is_file():
        raise EngineError(f"--input {spec.input}: file not found")
    cfg_path = resolve_model_config(spec)
    cfg = read_model_config(cfg_path) if cfg_path is not None else None
    max_batch = spec.max_batch
    if max_batch is None:
        max_batch = cfg.max_batch_size if cfg is not None and cfg.max_batch_size > 0 else DEFAULT_MAX_BATCH
    opt_batch = spec.opt_batch if spec.opt_batch is not None else default_opt_batch(spec.min_batch, max_batch)
    if not 1 <= spec.min_batch <= opt_batch <= max_batch:
        raise EngineError(f"batch sizes must satisfy 1 <= min <= opt <= max, got --min-batch {spec.min_batch} "
                          f"--opt-batch {opt_batch} --max-batch {max_batch}")
    if cfg is not None and max_batch < cfg.max_batch_size:
        raise EngineError(f"--max-batch {max_batch} is below max_batch_size {cfg.max_batch_size} in {cfg.path}: "
                          f"Triton refuses an engine whose profile stops below it (omit --max-batch, or lower "
                          f"max_batch_size in the config first)")
    if spec.workspace_gb <= 0:
        raise EngineError(f"--workspace-gb must be > 0, got {spec.workspace_gb}")
    if spec.calibration_batches is not None and spec.calibration_batches < 1:
        raise EngineError(f"--calibration-batches must be >= 1, got {spec.calibration_batches}")
    if spec.preprocess not in ("auto", "yolo", "reid"):
        raise EngineError(f"--preprocess must be auto, yolo or reid, got {spec.preprocess!r}")
    if for_build:
        if spec.output.resolve() == spec.input.resolve():
            raise EngineError(f"--output {spec.output} would overwrite the input")
        if not spec.output.parent.is_dir():
            raise EngineError(f"--output {spec.output}: directory {spec.output.parent} does not exist")
    if spec.calibration_dir is not None and not spec.calibration_dir.is_dir():
        raise EngineError(f"--calibration-dir {spec.calibration_dir}: not a directory")
    cache = spec.calibration_cache
    if spec.precision == "int8":
        if cache is None and for_build:
            cache = spec.output.with_suffix(spec.output.suffix + ".calib")
        if spec.calibration_dir is None and not (cache is not None and cache.is_file()):
            raise EngineError("--precision int8 needs --calibration-dir DIR (images like the cameras see) "
                              "or an existing --calibration-cache")
    timing = spec.timing_cache if spec.use_timing_cache else None
    if timing is None and spec.use_timing_cache and for_build:
        timing = default_timing_cache(spec.output)
    if timing is not None and for_build and not Path(timing).parent.is_dir():
        raise EngineError(f"--timing-cache {timing}: directory {Path(timing).parent} does not exist")
    for name, dims in spec.input_shapes:
        if not dims or any(int(d) <= 0 for d in dims):
            raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)}: every dim must be a positive integer")
    return BuildSpec(**{**asdict(spec), "calibration_cache": cache, "timing_cache": timing, "max_batch": max_batch,
                        "opt_batch": opt_batch, "model_config": cfg_path})


def default_timing_cache(output: Path) -> Path:
    """``<output>.timing``: beside the engine, e.g. ``model.plan.timing``."""
    return Path(output).with_suffix(Path(output).suffix + ".timing")


def _fmt_shape_arg(name: str | None, dims: Sequence[int]) -> str:
    return (f"{name}:" if name else "") + ",".join(str(d) for d in dims)


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``--input-shape`` value: ``C,H,W`` (the only input) or ``NAME:C,H,W``; the batch axis is not given."""
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in re.split(r"[,x]", dims.strip()) if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise EngineError(f"--input-shape {text!r}: expected positive integers like 3,640,640 (the dims after the "
                          f"batch axis), optionally prefixed by the input name: images:3,640,640")
    return (name.strip() or None) if sep else None, shape


# ----------------------------------------------------------------------------- Triton model config


_PBTXT_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\]<>:,;]|[^\s{}\[\]<>:,;#"\']+')


def _pbtxt_parse(text: str, where: Path) -> dict:
    """Protobuf text format -> {field: [values]} (messages are dicts, scalars strings).

    Enough of the format for Triton model configs, without tritonclient/protobuf (the
    engines image has neither).
    """
    toks = [t for t in _PBTXT_TOKEN.findall(text) if t.strip() and not t.startswith("#")]
    pos = 0

    def fail(msg: str):
        raise EngineError(f"{where}: cannot parse model config: {msg}")

    def scalar(t: str):
        return t[1:-1] if t[:1] in "\"'" else t

    def value():
        nonlocal pos
        if pos >= len(toks):
            fail("unexpected end")
        t = toks[pos]
        if t in "{<":
            pos += 1
            return message("}" if t == "{" else ">")
        pos += 1
        if t in "}>]:,;[":
            fail(f"unexpected {t!r}")
        return scalar(t)

    def message(end: str | None) -> dict:
        nonlocal pos
        out: dict[str, list] = {}
        while True:
            if pos >= len(toks):
                if end is None:
                    return out
                fail(f"missing {end!r}")
            t = toks[pos]
            if t == end:
                pos += 1
                return out
            if t in ",;":
                pos += 1
                continue
            if t in "{}[]<>:":
                fail(f"unexpected {t!r}")
            key = t
            pos += 1
            if pos < len(toks) and toks[pos] == ":":
                pos += 1
            if pos < len(toks) and toks[pos] == "[":
                pos += 1
                while pos < len(toks) and toks[pos] != "]":
                    if toks[pos] == ",":
                        pos += 1
                        continue
                    out.setdefault(key, []).append(value())
                if pos >= len(toks):
                    fail(f"missing ']' after {key}")
                pos += 1
                out.setdefault(key, [])
            else:
                out.setdefault(key, []).append(value())

    return message(None)


def read_model_config(path: Path) -> ModelConfigInfo:
    """``max_batch_size``, input dims (after ``reshape``) and preferred batch sizes of a Triton config."""
    path = Path(path)
    try:
        cfg = _pbtxt_parse(path.read_text(), path)
    except OSError as e:
        raise EngineError(f"model config {path}: {e}") from e

    def ints(values, what: str) -> tuple[int, ...]:
        try:
            return tuple(int(v) for v in values)
        except (TypeError, ValueError):
            raise EngineError(f"{path}: {what} must be integers, got {values}") from None

    mbs = ints(cfg.get("max_batch_size", ["0"])[:1], "max_batch_size")[0]
    inputs = {}
    for io in cfg.get("input", []):
        if not isinstance(io, dict) or not io.get("name"):
            raise EngineError(f"{path}: an input without a name")
        dims = ints(io.get("dims", []), f"input '{io['name'][0]}' dims")
        reshape = io.get("reshape")
        if reshape and isinstance(reshape[0], dict):
            dims = ints(reshape[0].get("shape", []), f"input '{io['name'][0]}' reshape")
        inputs[io["name"][0]] = dims if mbs > 0 else dims[1:]  # unbatched: dims include the first axis
    dyn = cfg.get("dynamic_batching", [])
    preferred = ()
    if dyn and isinstance(dyn[0], dict):
        preferred = ints(dyn[0].get("preferred_batch_size", []), "preferred_batch_size")
    name = cfg.get("name", [None])[0]
    return ModelConfigInfo(path, name, mbs, inputs, preferred)


def known_input_dims(spec: BuildSpec, inputs: Sequence[InputSpec]) -> dict[str, tuple[tuple[int | None, ...], str]]:
    """name -> (non-batch dims, None where unknown; where they come from), from the config and --input-shape.

    ``--input-shape`` must agree with the config where both give a dim (Triton checks the
    engine against the config).
    """
    by_name = {i.name: i for i in inputs}
    out: dict[str, tuple[tuple[int | None, ...], str]] = {}
    cfg = read_model_config(spec.model_config) if spec.model_config is not None else None
    if cfg is not None:
        for name, dims in cfg.inputs.items():
            if name in by_name:
                out[name] = (tuple(d if d > 0 else None for d in dims), f"{cfg.path} dims")
    for name, dims in spec.input_shapes:
        if name is None:
            if len(inputs) != 1:
                raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)}: the ONNX has inputs "
                                  f"{sorted(by_name)}; name one: --input-shape NAME:{_fmt_shape_arg(None, dims)}")
            name = inputs[0].name
        if name not in by_name:
            raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)}: no input '{name}' in the ONNX "
                              f"(inputs: {sorted(by_name)})")
        rank = len(by_name[name].shape) - 1
        if len(dims) != rank:
            raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)}: input '{name}' has shape "
                              f"{list(by_name[name].shape)}, so {rank} dims after the batch axis are needed")
        if name in out:
            cdims, src = out[name]
            if len(cdims) == len(dims):
                clash = [(i + 1, c, d) for i, (c, d) in enumerate(zip(cdims, dims)) if c is not None and c != d]
                if clash:
                    raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)} disagrees with {src} "
                                      f"{[c if c is not None else -1 for c in cdims]} (dim "
                                      f"{', '.join(f'{i}: {c} vs {d}' for i, c, d in clash)}): Triton would refuse "
                                      f"the engine; change the config first")
        out[name] = (tuple(dims), "--input-shape")
    return out


# ----------------------------------------------------------------------------- ONNX inputs -> profile


def onnx_inputs(path: Path) -> list[InputSpec]:
    """Graph inputs (initializers excluded) with their dims, read with ``onnx`` (no TensorRT)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise EngineError(f"--input {path}: not a readable ONNX file ({type(e).__name__}: {e})") from e
    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
        out.append(InputSpec(vi.name, dims, onnx.TensorProto.DataType.Name(tt.elem_type)))
    if not out:
        raise EngineError(f"--input {path}: the graph has no inputs")
    return out


def profile_shapes(inputs: Sequence[InputSpec], min_batch: int, opt_batch: int, max_batch: int,
                   known_dims: Mapping[str, tuple[Sequence[int | None], str]] | None = None,
                   ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """name -> (min, opt, max) shapes: the batch axis varies, every other dim is fixed.

    ``known_dims`` (name -> (non-batch dims, None where unknown; their source), see
    ``known_input_dims``) fills dynamic non-batch dims of the ONNX; where the ONNX has a
    fixed dim it must agree.
    """
    shapes = {}
    known_dims = known_dims or {}
    for spec in inputs:
        if not spec.shape:
            raise EngineError(f"input '{spec.name}' is a scalar: no batch axis to build a profile over")
        rest = list(spec.shape[1:])
        known, source = known_dims.get(spec.name, ((), ""))
        if known and len(known) != len(rest):
            raise EngineError(f"input '{spec.name}' shape {list(spec.shape)} has {len(rest)} dims after the batch "
                              f"axis, {source} gives {len(known)}: {list(known)}")
        for i, k in enumerate(known):
            d = rest[i]
            if isinstance(d, int) and d > 0:
                if k is not None and k != d:
                    raise EngineError(f"input '{spec.name}' dim {i + 1} is {d} in the ONNX (shape {list(spec.shape)}), "
                                      f"{source} says {k}")
            elif k is not None:
                rest[i] = int(k)
        bad = [(i + 1, d) for i, d in enumerate(rest) if not isinstance(d, int) or d <= 0]
        if bad:
            dims = ", ".join(f"{i} ({spec.shape[i]!r})" for i, _ in bad)
            example = ",".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in rest)
            given = f"neither {source} nor --input-shape gives them" if source else "no model config gives them"
            raise EngineError(f"input '{spec.name}' shape {list(spec.shape)}: dims {dims} are dynamic and {given}"
                              f": pass --input-shape {spec.name}:{example} (the dims after the batch axis)"
                              + ("" if source else ", or --model NAME so its config.pbtxt dims fill them"))
        b = spec.shape[0]
        if isinstance(b, int) and b > 0 and not (min_batch == opt_batch == max_batch == b):
            raise EngineError(f"input '{spec.name}' has a fixed batch of {b} in the ONNX, but the profile asks for "
                              f"{min_batch}/{opt_batch}/{max_batch}: re-export with a dynamic batch axis "
                              f"(dynamic_axes={{'{spec.name}': {{0: 'batch'}}}}) or pass all three = {b}")
        rest = tuple(int(d) for d in rest)
        shapes[spec.name] = ((min_batch, *rest), (opt_batch, *rest), (max_batch, *rest))
    return shapes


# ----------------------------------------------------------------------------- calibration data


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
    """'yolo' (letterbox, [0, 1]) for square inputs, 'reid' (resize + ImageNet) for [3, 256, 128]."""
    chw = tuple(int(d) for d in chw)
    if requested == "auto":
        if len(chw) == 3 and chw[0] == 3 and chw[1] == chw[2]:
            return "yolo"
        if chw == REID_SHAPE:
            return "reid"
        raise CalibrationError(f"no serving preprocessing for input shape {list(chw)}: expected [3, S, S] "
                               f"(detector) or {list(REID_SHAPE)} (re-id); pass --preprocess")
    if requested == "yolo" and not (len(chw) == 3 and chw[0] == 3 and chw[1] == chw[2]):
        raise CalibrationError(f"--preprocess yolo needs a [3, S, S] input, the model has {list(chw)}")
    if requested == "reid" and chw != REID_SHAPE:
        raise CalibrationError(f"--preprocess reid needs a {list(REID_SHAPE)} input, the model has {list(chw)}")
    return requested


def preprocess_file(path: Path, kind: str, chw: Sequence[int]) -> np.ndarray:
    """One calibration image -> float32[C, H, W] exactly as serving feeds the model."""
    from serving.postprocess import reid_crops
    from serving.preprocess import ImageDecodeError, decode_image, letterbox

    try:
        img = decode_image(Path(path).read_bytes())
    except (ImageDecodeError, OSError) as e:
        raise CalibrationError(f"calibration image {path}: {e}") from e
    if kind == "yolo":
        x, _ = letterbox(img, size=int(chw[1]))
        return x
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


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as e:
            raise TensorRTUnavailable("cuda-python is not installed: pip install '.[gpu]' on a machine with an "
                                      "NVIDIA GPU") from e
    return cudart


def _cuda_check(result, what: str):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TensorRTUnavailable(f"CUDA error in {what}: {err}")
    return rest[0] if len(rest) == 1 else rest


def require_tensorrt():
    """(tensorrt module, cudart module) or TensorRTUnavailable with what to install."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable(TRT_MISSING) from e
    if int(trt.__version__.split(".")[0]) < 10:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} found, this converter needs 10.x: "
                                  f"pip install '.[gpu]'")
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        raise TensorRTUnavailable(f"no CUDA device available ({err}, {count} devices): TensorRT builds engines "
                                  f"for the GPU it runs on")
    return trt, cudart


def _make_calibrator(trt, cudart, batches: Iterator[np.ndarray], batch_size: int, sample_nbytes: int,
                     input_name: str, cache_path: Path | None):
    """An IInt8EntropyCalibrator2 that copies each host batch into one device buffer."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # the bindings require the explicit base init
            self.batches_used = 0
            self.error: BaseException | None = None
            self._nbytes = batch_size * sample_nbytes
            self._device = _cuda_check(cudart.cudaMalloc(self._nbytes), "cudaMalloc")

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
            _cuda_check(cudart.cudaMemcpy(self._device, host.ctypes.data, host.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy")
            self.batches_used += 1
            return [int(self._device)]

        def read_calibration_cache(self):
            if cache_path is not None and cache_path.is_file():
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                _atomic_write(cache_path, bytes(cache))

        def free(self) -> None:
            if self._device is not None:
                cudart.cudaFree(self._device)
                self._device = None

    return EntropyCalibrator()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()


def plan_profile(spec: BuildSpec) -> tuple[list[InputSpec], dict]:
    """(ONNX inputs, profile shapes) of a validated spec: dynamic dims filled from the config / --input-shape."""
    inputs = onnx_inputs(spec.input)
    known = known_input_dims(spec, inputs)
    return inputs, profile_shapes(inputs, spec.min_batch, spec.opt_batch, spec.max_batch, known)


def build_engine(spec: BuildSpec, log=print) -> dict:
    """Build and write the engine (GPU). Returns the report also written to ``<output>.json``."""
    from modelops import calibration_crops  # imports this module
    spec = validate_spec(spec)
    inputs, shapes = plan_profile(spec)
    calib, calib_files, calib_n, crops = None, [], 0, None
    if spec.precision == "int8" and spec.calibration_dir is not None:
        if len(inputs) != 1:
            raise EngineError(f"INT8 calibration supports one-input models; {spec.input} has "
                              f"{[i.name for i in inputs]}")
        if preprocess_kind(shapes[inputs[0].name][1][1:], spec.preprocess) == "reid":  # person crops, as served
            crops = calibration_crops.plan_for_spec(spec)
            calib_files, calib_n = crops.files, crops.batches
        else:
            calib_files, calib_n = calibration_plan(spec.calibration_dir, spec.calibration_batch,
                                                    spec.calibration_batches)
    trt, cudart = require_tensorrt()
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: every network is explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(spec.input)):
        errs = [parser.get_error(i) for i in range(parser.num_errors)]
        errors = "; ".join(e.desc() if hasattr(e, "desc") else str(e) for e in errs)
        raise EngineError(f"--input {spec.input}: TensorRT's ONNX parser failed: {errors}")
    trt_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(trt_inputs) != sorted(shapes):
        raise EngineError(f"TensorRT sees inputs {trt_inputs}, the ONNX graph declares {sorted(shapes)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)

    if spec.timing_cache is not None:
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

    if spec.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # with INT8: layers INT8 cannot take fall back to FP16, not FP32
    if spec.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        name = inputs[0].name
        chw = shapes[name][1][1:]
        batches = (crops.iter_batches() if crops is not None else
                   calibration_batches(spec.calibration_dir, chw, spec.calibration_batch, spec.calibration_batches,
                                       spec.preprocess) if spec.calibration_dir is not None else iter(()))
        calib = _make_calibrator(trt, cudart, batches, spec.calibration_batch, int(np.prod(chw)) * 4, name,
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
    _atomic_write(spec.output, engine_bytes)
    if spec.timing_cache is not None:
        _atomic_write(spec.timing_cache, bytes(config.get_timing_cache().serialize()))
    report = {
        "input": str(spec.input), "input_sha256": _sha256(spec.input),
        "output": str(spec.output), "output_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "size_bytes": len(engine_bytes), "precision": spec.precision,
        "profile": {k: {"min": v[0], "opt": v[1], "max": v[2]} for k, v in shapes.items()},
        "io_tensors": io, "tensorrt": trt.__version__, **gpu_identity(cudart), "workspace_gb": spec.workspace_gb,
        "timing_cache": str(spec.timing_cache) if spec.timing_cache else None,
        "model_config": str(spec.model_config) if spec.model_config else None,
        "calibration": None if spec.precision != "int8" else {
            "dir": str(spec.calibration_dir) if spec.calibration_dir else None,
            "images": len(calib_files), "batches_planned": calib_n, "source": crops.describe() if crops else "frames",
            "batches_used": calib.batches_used if calib else 0,
            "cache": str(spec.calibration_cache) if spec.calibration_cache else None},
        "build_seconds": round(time.perf_counter() - t0, 1),
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    _atomic_write(spec.output.with_suffix(spec.output.suffix + ".json"), (json.dumps(report, indent=2) + "\n").encode())
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
    from modelops import calibration_crops  # imports this module

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
            if len(inputs) != 1:
                raise EngineError(f"INT8 calibration supports one-input models; {spec.input} has "
                                  f"{[i.name for i in inputs]}")
            kind = preprocess_kind(shapes[inputs[0].name][1][1:], spec.preprocess)
            if kind == "reid":  # OSNet: person crops (modelops/calibration_crops.py)
                crops = calibration_crops.plan_for_spec(spec)
                kind, files, n = f"reid ({crops.describe()})", crops.files, crops.batches
            else:
                files, n = calibration_plan(spec.calibration_dir, spec.calibration_batch, spec.calibration_batches)
            plan = (kind, len(files), n)
        if a.cmd == "inspect":
            if spec.model_config is not None:
                cfg = read_model_config(spec.model_config)
                print(f"config: {spec.model_config} (max_batch_size {cfg.max_batch_size})")
            else:
                print(f"config: none (pass --model NAME, or an --input at <repo>/<model>/<version>/model.onnx, "
                      f"to follow its max_batch_size and dims)")
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
