"""ONNX validation against a model's Triton configs: reads only, never writes the repository.

    info = validate_onnx(Path("best.onnx"), repo, "yolov8n", update_labels=False)   # OnnxInfo
    info = read_onnx(Path("best.onnx"))      # load + onnx.checker + signature + metadata, no config
    parse_class_names("{0: 'person', 1: 'cart'}")   # Ultralytics metadata -> ['person', 'cart']

``validate_onnx`` checks, and raises ``ValidationError`` listing every problem found: the
file loads and passes ``onnx.checker`` (one file, no external data); its input/output
names, dtypes and dims match every config of the model (``config.pbtxt`` and
``configs/*.pbtxt``, read with ``modelops.pbtxt``), with a dynamic batch axis wherever a
config has ``max_batch_size > 0``; ONNX Runtime runs it on zeros at batch 2 and gives
outputs of the configured shapes, finite (``run_check=False`` skips this); a detector's
class names (metadata ``names``) match ``labels.txt`` unless ``update_labels``, and its
output has 4 + C channels. Problems that several configs share are reported once, naming
all of them. ``OnnxInfo`` carries what ``add_version`` writes into the manifest.

Imports: numpy, onnx, onnxruntime (lazily), ``modelops.layout``.
"""
from __future__ import annotations

import ast
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from modelops.layout import LABELS, ModelRepoError, model_dir, read_configs, read_labels, sha256_file
from serving.preprocess import YOLO_SIZE

__all__ = ["ValidationError", "TensorSig", "OnnxInfo", "parse_class_names", "read_onnx", "validate_onnx"]

# ONNX TensorProto element type -> Triton data type (without the TYPE_ prefix).
_ONNX_TO_TRITON = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                   8: "STRING", 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16"}
_TRITON_TO_NUMPY = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "UINT8": "uint8", "INT8": "int8",
                    "UINT16": "uint16", "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT32": "uint32",
                    "UINT64": "uint64", "BOOL": "bool"}


class ValidationError(ModelRepoError):
    """The ONNX does not fit the model's configs; ``problems`` lists every mismatch found."""

    def __init__(self, onnx_path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{onnx_path}: rejected, repository unchanged:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class TensorSig:
    """One input/output: dims are ints, or strings for symbolic/unknown ONNX dims."""

    name: str
    dtype: str  # Triton name without TYPE_, e.g. "FP32"
    shape: tuple[int | str, ...]


@dataclass(slots=True)
class OnnxInfo:
    path: Path
    sha256: str
    size_bytes: int
    opset: int
    ir_version: int
    producer: str
    inputs: list[TensorSig]
    outputs: list[TensorSig]
    metadata: dict[str, str]
    class_names: list[str] | None
    notes: list[str] = field(default_factory=list)


def parse_class_names(text: str) -> list[str]:
    """Ultralytics ``names`` metadata ("{0: 'person', 1: 'cart'}") -> ['person', 'cart']."""
    try:
        d = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"metadata 'names' is not a python dict literal: {text[:80]!r}") from e
    if isinstance(d, (list, tuple)):
        d = dict(enumerate(d))
    if not isinstance(d, dict) or not all(isinstance(k, int) and isinstance(v, str) for k, v in d.items()):
        raise ValueError(f"metadata 'names' must map int -> str, got {text[:80]!r}")
    if sorted(d) != list(range(len(d))):
        raise ValueError(f"metadata 'names' keys must be 0..{len(d) - 1}, got {sorted(d)[:10]}")
    return [d[i] for i in range(len(d))]


def _sig(value_info) -> TensorSig:
    tt = value_info.type.tensor_type
    dims: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return TensorSig(value_info.name, _ONNX_TO_TRITON.get(tt.elem_type, f"ONNX_ELEM_{tt.elem_type}"), tuple(dims))


def read_onnx(path: Path) -> OnnxInfo:
    """Load + ``onnx.checker``; raises ValidationError naming the file when it is not usable."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValidationError(path, [f"file not found: {path}"])
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, truncated file...
        raise ValidationError(path, [f"not a readable ONNX file ({type(e).__name__}: {e})"]) from e
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ValidationError(path, ["weights are stored as external data: save the model as one file"])
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ValidationError(path, [f"onnx.checker failed: {str(e).strip().splitlines()[0]}"]) from e
    init_names = {t.name for t in model.graph.initializer}
    meta = {p.key: p.value for p in model.metadata_props}
    names = None
    notes = []
    if "names" in meta:
        try:
            names = parse_class_names(meta["names"])
        except ValueError as e:
            raise ValidationError(path, [str(e)]) from e
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxInfo(path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size, opset=int(opset),
                    ir_version=int(model.ir_version), producer=f"{model.producer_name} {model.producer_version}".strip(),
                    inputs=[_sig(i) for i in model.graph.input if i.name not in init_names],
                    outputs=[_sig(o) for o in model.graph.output], metadata=meta, class_names=names, notes=notes)


# ----------------------------------------------------------------------------- validation


def _dtype_name(cfg_dtype: str) -> str:
    """"TYPE_FP32" (as a config writes it) -> "FP32" (as TensorSig holds it)."""
    return cfg_dtype.removeprefix("TYPE_")


def _expected_shape(cfg, io) -> list[int] | None:
    """Full ONNX shape a config tensor implies (batch axis first when batched); None = not checkable."""
    if io.reshape is not None:
        return None  # the ONNX sees the reshaped dims, not the config's
    dims = [int(d) for d in io.dims]
    return ([-1] + dims) if cfg.max_batch_size > 0 else dims


def _rel(cfg_path: Path) -> str:
    """<model>/config.pbtxt or <model>/configs/<name>.pbtxt: short, and names the file."""
    parts = cfg_path.parts
    return "/".join(parts[-3:] if cfg_path.parent.name == "configs" else parts[-2:])


def _check_signature(cfg_path: Path, cfg, onnx_sigs: list[TensorSig], kind: str, problems: list[str]) -> None:
    ios = cfg.inputs if kind == "input" else cfg.outputs
    by_name = {s.name: s for s in onnx_sigs}
    rel = _rel(cfg_path)
    for io in ios:
        sig = by_name.get(io.name)
        if sig is None:
            problems.append(f"{rel}: {kind} '{io.name}' is not in the ONNX (ONNX {kind}s: {sorted(by_name)})")
            continue
        want_dtype = _dtype_name(io.data_type)
        if sig.dtype != want_dtype:
            problems.append(f"{rel}: {kind} '{io.name}' dtype {sig.dtype} in the ONNX, {want_dtype} in the config")
        want = _expected_shape(cfg, io)
        if want is None:
            continue
        if len(sig.shape) != len(want):
            problems.append(f"{rel}: {kind} '{io.name}' has rank {len(sig.shape)} {list(sig.shape)} in the ONNX, "
                            f"config implies rank {len(want)} {want}"
                            + (" (batch axis first, max_batch_size > 0)" if cfg.max_batch_size > 0 else ""))
            continue
        for axis, (got, exp) in enumerate(zip(sig.shape, want)):
            if cfg.max_batch_size > 0 and axis == 0:
                if isinstance(got, int):
                    problems.append(f"{rel}: {kind} '{io.name}' has a fixed batch dimension {got} in the ONNX, but "
                                    f"max_batch_size is {cfg.max_batch_size}: export with a dynamic batch axis "
                                    f"(dynamic_axes={{'{io.name}': {{0: 'batch'}}}})")
            elif exp != -1 and isinstance(got, int) and got != exp:
                problems.append(f"{rel}: {kind} '{io.name}' dim {axis} is {got} in the ONNX, {exp} in the config "
                                f"(ONNX shape {list(sig.shape)}, config dims {list(io.dims)})")
            elif exp == -1 and kind == "input" and len(want) == 4 and axis >= 2 and isinstance(got, int) \
                    and got != YOLO_SIZE:
                # an image input the config leaves free is letterboxed to YOLO_SIZE on its long side
                # (serving/preprocess.py): a fixed export at another size can never be fed
                problems.append(f"{rel}: {kind} '{io.name}' dim {axis} is fixed at {got} in the ONNX, but preprocess "
                                f"letterboxes frames to {YOLO_SIZE} on the long side (config dims {list(io.dims)}): "
                                f"export with dynamic height/width (Ultralytics dynamic=True) or at "
                                f"{YOLO_SIZE}x{YOLO_SIZE} (then preprocess stride 0)")
    if kind == "input":
        extra = sorted(set(by_name) - {io.name for io in ios})
        if extra:
            problems.append(f"{rel}: the ONNX has inputs the config does not declare: {extra}")


def _config_input_dims(configs: dict, name: str) -> list[int] | None:
    """The full input shape a config declares (batch axis as -1 when it batches), or None."""
    for cfg in configs.values():
        for io in cfg.inputs:
            if io.name == name:
                dims = [int(d) for d in io.dims]
                return [-1] + dims if cfg.max_batch_size > 0 else dims
    return None


def _smoke_run(onnx_path: Path, configs: dict, info: OnnxInfo, problems: list[str]) -> dict[str, tuple[int, ...]]:
    """Run the ONNX in ONNX Runtime on zeros at batch 2 (1 if unbatched); check output shapes.

    Batch 2, because exports with a "dynamic" batch axis that still hard-code 1 inside
    (a Reshape to [1, ...]) pass every static check and fail only when Triton batches.
    """
    import numpy as np
    import onnxruntime as ort

    batched = any(c.max_batch_size > 0 for c in configs.values())
    batch = 2 if batched else None
    feeds = {}
    for sig in info.inputs:
        # dynamic axes other than the batch (Ultralytics' dynamic=True also frees H and W) get
        # the size the config says Triton will send
        sent = _config_input_dims(configs, sig.name)
        # a dim neither gives (an image's -1 height/width): 64, a multiple of any detector's stride
        fallback = [64 if len(sig.shape) == 4 and i >= 2 else 1 for i in range(len(sig.shape))]
        dims = [d if isinstance(d, int) and d > 0 else
                (sent[i] if sent is not None and i < len(sent) and sent[i] > 0 else fallback[i])
                for i, d in enumerate(sig.shape)]
        if batch is not None and dims:
            dims[0] = batch
        np_dtype = _TRITON_TO_NUMPY.get(sig.dtype)
        if np_dtype is None:
            return {}  # strings etc.: nothing sensible to feed
        feeds[sig.name] = np.zeros(dims, np_dtype)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        outs = sess.run(names, feeds)
    except Exception as e:
        problems.append(f"ONNX Runtime cannot run the model on zeros at batch {batch or 'as declared'}: "
                        f"{str(e).strip().splitlines()[0][:300]}")
        return {}
    shapes = {n: tuple(o.shape) for n, o in zip(names, outs)}
    for cfg_path, cfg in configs.items():
        rel = _rel(cfg_path)
        for io in cfg.outputs:
            got = shapes.get(io.name)
            want = _expected_shape(cfg, io)
            if got is None or want is None:
                continue
            if cfg.max_batch_size > 0:
                want = [batch] + want[1:]
            if cfg.max_batch_size > 0 and got and got[0] != batch:
                problems.append(f"{rel}: output '{io.name}' has batch {got[0]} for an input batch of {batch} in "
                                f"ONNX Runtime (shape {list(got)}): the batch size is hard-coded inside the model "
                                f"(a Reshape to [1, ...]?), so Triton's batching would mix up requests")
            elif len(got) != len(want) or any(w != -1 and g != w for g, w in zip(got, want)):
                problems.append(f"{rel}: output '{io.name}' came out of ONNX Runtime as {list(got)}, config implies "
                                f"{['N' if (cfg.max_batch_size > 0 and i == 0) else w for i, w in enumerate(want)]} "
                                f"(N = {batch})")
    for n, o in zip(names, outs):
        if o.dtype.kind == "f" and not np.isfinite(o).all():
            problems.append(f"output '{n}' has NaN/Inf for an all-zeros input")
    return shapes


def _check_classes(mdir: Path, info: OnnxInfo, runtime_shapes: dict, update_labels: bool,
                   problems: list[str]) -> list[str] | None:
    """Class names of a detector: ONNX ``names`` vs labels.txt, and the output's 4 + C channels."""
    labels_path = mdir / LABELS
    labels = read_labels(labels_path)
    names = info.class_names
    if names is not None and labels is not None and names != labels and not update_labels:
        diff = next((i for i, (a, b) in enumerate(zip(names, labels)) if a != b), min(len(names), len(labels)))
        at = (f"first difference at class {diff}: ONNX {names[diff]!r} vs labels.txt "
              f"{labels[diff]!r}") if diff < min(len(names), len(labels)) else "one list is a prefix of the other"
        problems.append(f"{labels_path}: {len(labels)} class names, the ONNX metadata 'names' has {len(names)}; {at}. "
                        f"Pass --update-labels to rewrite labels.txt from the ONNX")
    effective = names if names is not None else labels
    if effective is None or info.metadata.get("task", "detect") != "detect":
        return effective
    # YOLOv8 head: [N, 4 + C, anchors]. Check C where the channel count is known.
    for sig in info.outputs:
        ch = sig.shape[1] if len(sig.shape) == 3 else None
        if not isinstance(ch, int) and sig.name in runtime_shapes and len(runtime_shapes[sig.name]) == 3:
            ch = runtime_shapes[sig.name][1]
        if isinstance(ch, int) and ch != 4 + len(effective):
            src = "ONNX metadata 'names'" if names is not None else str(labels_path)
            problems.append(f"output '{sig.name}' has {ch} channels = 4 box + {ch - 4} classes, but {src} "
                            f"lists {len(effective)} classes")
        break
    return effective


def validate_onnx(onnx_path: Path, repo: Path, model: str, *, update_labels: bool = False,
                  run_check: bool = True) -> OnnxInfo:
    """Check ``onnx_path`` against every config of ``model``; reads only. Raises ValidationError."""
    onnx_path = Path(onnx_path)
    configs = read_configs(repo, model)
    info = read_onnx(onnx_path)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        served = _as_served(onnx_path, configs, info, Path(tmp), problems)
        checked = info if served is None else read_onnx(served)
        if served is not None:
            info.notes.append("decode + NMS are appended to this raw detector at load (serving/nms_graph.py): "
                              "checked as served")
        shapes = _validate(served or onnx_path, configs, model, checked, run_check, problems)
    info.notes.extend(n for n in checked.notes if n not in info.notes)
    info.class_names = _check_classes(model_dir(repo, model), info, shapes, update_labels, problems)
    if problems:
        raise ValidationError(onnx_path, _merge_by_config(problems))
    return info


def _as_served(onnx_path: Path, configs: dict, info: OnnxInfo, tmp: Path, problems: list[str]) -> Path | None:
    """A config that asks for the detections of ``serving.nms_graph`` (``num_dets`` ...) of a raw
    YOLOv8 export is served with decode + NMS appended: that graph, written to ``tmp``, is what
    to check. None when no config asks for it or the ONNX already has those outputs."""
    from serving.nms_graph import OUTPUTS, append_nms

    wanted = [p for p, c in configs.items() if set(OUTPUTS) <= {o.name for o in c.outputs}]
    if not wanted or set(OUTPUTS) <= {o.name for o in info.outputs}:
        return None
    import onnx

    try:
        served = append_nms(onnx.load(str(onnx_path)), keep_raw=True)
    except ValueError as e:
        problems.append(f"{_rel(wanted[0])}: asks for detections ({', '.join(OUTPUTS)}), but decode + NMS cannot be "
                        f"appended to this ONNX: {e}")
        return None
    path = tmp / "served.onnx"
    onnx.save(served, str(path))
    return path


def _validate(onnx_path: Path, configs: dict, model: str, info: OnnxInfo, run_check: bool,
              problems: list[str]) -> dict[str, tuple[int, ...]]:
    """Signatures against every config, then the smoke run; returns the output shapes it saw."""
    for cfg_path, cfg in configs.items():
        if cfg.name and cfg.name != model:
            problems.append(f"{_rel(cfg_path)}: config name '{cfg.name}' is not the directory name '{model}'")
        _check_signature(cfg_path, cfg, info.inputs, "input", problems)
        _check_signature(cfg_path, cfg, info.outputs, "output", problems)
    shapes = _smoke_run(onnx_path, configs, info, problems) if run_check and not problems else {}
    if not run_check:
        info.notes.append("ONNX Runtime check skipped")
    return shapes


def _merge_by_config(problems: list[str]) -> list[str]:
    """'config.pbtxt: X' + 'configs/cpu.pbtxt: X' -> 'config.pbtxt, configs/cpu.pbtxt: X'."""
    merged: dict[str, list[str]] = {}
    for p in problems:
        head, sep, msg = p.partition(": ")
        if sep and head.endswith(".pbtxt") and " " not in head:
            merged.setdefault(msg, []).append(head)
        else:
            merged.setdefault(p, [])
    return [f"{', '.join(heads)}: {msg}" if heads else msg for msg, heads in merged.items()]
