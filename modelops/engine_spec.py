"""What a TensorRT engine must be: the build spec, checked against the Triton config and the ONNX.

    spec = validate_spec(BuildSpec(input=Path("model.onnx"), output=Path("model.plan"), model="yolov8n"))
    inputs, shapes = plan_profile(spec)   # ONNX inputs; {name: (min, opt, max) shapes}
    read_model_config(path)               # ModelConfigInfo: max_batch_size, input dims, preferred sizes
    parse_input_shape("images:3,640,640") # --input-shape values

``validate_spec`` raises ``EngineError`` naming the argument, file or tensor, and fills in
the defaults: the model config (``--model`` in ``--repo``, or the input's
``<repo>/<model>/<version>/model.onnx`` layout), ``--max-batch`` (the config's
``max_batch_size``, else 8; never below it), ``--opt-batch`` (half of max, at least 4), the
timing cache (``<output>.timing``) and the INT8 calibration cache (``<output>.calib``).
``plan_profile`` reads the ONNX inputs (with ``onnx``) and makes one optimisation profile
over the batch axis, filling dynamic non-batch dims from the config's ``dims`` or
``--input-shape`` (which must agree with the config). A config whose input has -1 dims names
their range in a ``trt_profile_<input>`` parameter, ``MIN:OPT:MAX`` non-batch dims, e.g.
``3x32x32:3x384x640:3x640x640`` for a detector fed each camera's aspect; the profile then spans
it (``--input-shape`` still pins one shape).

Everything here runs without TensorRT or a GPU. The errors of the converter live here too:
``EngineError`` (exit 2), its subclass ``CalibrationError``, and ``TensorRTUnavailable``
(exit 3).

Imports: the standard library, ``onnx`` (lazily), ``modelops.pbtxt`` (the Triton config).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modelops import pbtxt

__all__ = ["PRECISIONS", "DEFAULT_MAX_BATCH", "TRT_MISSING", "EngineError", "CalibrationError", "TensorRTUnavailable",
           "BuildSpec", "ModelConfigInfo", "InputSpec", "default_repo", "default_opt_batch", "resolve_model_config",
           "validate_spec", "default_timing_cache", "parse_input_shape", "read_model_config", "known_input_dims",
           "onnx_inputs", "profile_shapes", "plan_profile"]

PRECISIONS = ("fp32", "fp16", "int8")
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
    # input -> (min, opt, max) non-batch dims from its ``trt_profile_<input>`` parameter
    ranges: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]  # str: a symbolic / unknown ONNX dim
    dtype: str


def cuda_runtime():
    """cuda-python's runtime module (imported only when a GPU step needs it), or TensorRTUnavailable."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as err:
            raise TensorRTUnavailable("cuda-python is not installed: pip install '.[gpu]' on a machine with an "
                                      "NVIDIA GPU") from err
    return cudart


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


def read_model_config(path: Path) -> ModelConfigInfo:
    """``max_batch_size``, input dims (after ``reshape``) and preferred batch sizes of a Triton config
    (read with ``modelops.pbtxt``, the reader the versioning command uses too)."""
    path = Path(path)
    try:
        cfg = pbtxt.read_model_config(path)
    except OSError as e:
        raise EngineError(f"model config {path}: {e}") from e
    except pbtxt.PbtxtError as e:
        raise EngineError(str(e)) from None
    inputs = {}
    for io in cfg.inputs:
        dims = io.reshape if io.reshape is not None else io.dims
        inputs[io.name] = dims if cfg.max_batch_size > 0 else dims[1:]  # unbatched: dims include the first axis
    params = cfg.parameters
    ranges = {name: _parse_range(path, name, params[f"{PROFILE_PARAM}{name}"], dims)
              for name, dims in inputs.items() if f"{PROFILE_PARAM}{name}" in params}
    return ModelConfigInfo(path, cfg.name, cfg.max_batch_size, inputs, cfg.preferred_batch_sizes, ranges)


PROFILE_PARAM = "trt_profile_"


def _parse_range(path: Path, name: str, text: str, dims: tuple[int, ...]):
    """``MIN:OPT:MAX`` (each ``AxBxC``) -> three dim tuples that agree with the config's fixed dims."""
    where = f"{path}: parameter {PROFILE_PARAM}{name} {text!r}"
    try:
        parts = tuple(tuple(int(d) for d in part.strip().split("x")) for part in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(len(p) != len(dims) or min(p) <= 0 for p in parts):
        raise EngineError(f"{where}: expected MIN:OPT:MAX of {len(dims)} positive dims each, e.g. "
                          f"{'x'.join('3' if d == 3 else '640' for d in dims)} three times joined by ':'")
    lo, opt, hi = parts
    for axis, (d, a, b, c) in enumerate(zip(dims, lo, opt, hi)):
        if not a <= b <= c:
            raise EngineError(f"{where}: dim {axis + 1} needs min <= opt <= max, got {a}, {b}, {c}")
        if d > 0 and not a == b == c == d:
            raise EngineError(f"{where}: dim {axis + 1} is {d} in the config, the range says {a}:{b}:{c}")
    return lo, opt, hi


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
                if name in cfg.ranges:
                    out[name] = (cfg.ranges[name][1], f"{cfg.path} {PROFILE_PARAM}{name} (opt)")
                else:
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
        if cfg is not None and name in cfg.ranges:
            lo, _, hi = cfg.ranges[name]
            if len(dims) != len(lo) or not all(a <= d <= b for a, d, b in zip(lo, dims, hi)):
                raise EngineError(f"--input-shape {_fmt_shape_arg(name, dims)} is outside {cfg.path} "
                                  f"{PROFILE_PARAM}{name} {'x'.join(map(str, lo))}..{'x'.join(map(str, hi))}: "
                                  f"Triton would send shapes the engine refuses; change the range first")
        elif name in out:
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
                   ranges: Mapping[str, tuple[Sequence[int], Sequence[int]]] | None = None,
                   ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """name -> (min, opt, max) shapes: the batch axis varies; other dims are fixed at the known
    (opt) dims, or span ``ranges[name]`` = (min, max) non-batch dims where the ONNX leaves them dynamic.

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
        lo, hi = (ranges or {}).get(spec.name, (rest, rest))
        # a dim the ONNX fixes cannot vary, whatever the range says
        lo = tuple(r if isinstance(d, int) and d > 0 else int(v) for d, r, v in zip(spec.shape[1:], rest, lo))
        hi = tuple(r if isinstance(d, int) and d > 0 else int(v) for d, r, v in zip(spec.shape[1:], rest, hi))
        shapes[spec.name] = ((min_batch, *lo), (opt_batch, *rest), (max_batch, *hi))
    return shapes


def plan_profile(spec: BuildSpec) -> tuple[list[InputSpec], dict]:
    """(ONNX inputs, profile shapes) of a validated spec: dynamic dims filled from the config / --input-shape."""
    inputs = onnx_inputs(spec.input)
    known = known_input_dims(spec, inputs)
    cfg = read_model_config(spec.model_config) if spec.model_config is not None else None
    pinned = {name for name, _ in spec.input_shapes} | ({inputs[0].name} if any(n is None for n, _ in
                                                                                spec.input_shapes) else set())
    ranges = {n: (r[0], r[2]) for n, r in (cfg.ranges if cfg else {}).items() if n not in pinned}
    return inputs, profile_shapes(inputs, spec.min_batch, spec.opt_batch, spec.max_batch, known, ranges)
