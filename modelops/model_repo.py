"""Model versions in the Triton model repository, for MLOps teams.

    python -m modelops.model_repo add --model yolov8n --onnx best.onnx --source "run 42" [--update-labels]
    python -m modelops.model_repo list [--model yolov8n] [--url localhost:8001] [--verify]
    python -m modelops.model_repo load --model yolov8n [--version 3] [--url localhost:8001]
    python -m modelops.model_repo unload --model yolov8n [--url localhost:8001]
    python -m modelops.model_repo retire --model yolov8n --version 3    # persistent roll back

``add`` validates the ONNX *before* touching the repository: it must load and pass
``onnx.checker``; its input/output names, dtypes and dims must match every config of the
model (``config.pbtxt`` and ``configs/*.pbtxt``), with a dynamic batch axis wherever a
config has ``max_batch_size > 0``; ONNX Runtime must run it at batch 2 and give outputs of
the configured shapes; a detector's class names (Ultralytics metadata ``names``) must
match ``labels.txt`` unless ``--update-labels``. Only then is the next version written:
into a ``.tmp-*`` directory inside the model directory (Triton ignores version directories
whose names are not integers), fsynced, then renamed to ``<n>`` in one step. A failure at
any point removes the temp directory, so Triton never sees a half-written version. The
version holds ``model.onnx``, the previous version's ``model.py`` (python-backend adapter)
if there is one, and ``manifest.json`` (sha256, source, precision, date, signature...).

``load``/``unload`` use Triton's repository API (explicit model-control mode). With
``version_policy: { latest { num_versions: 1 } }`` a ``load`` after ``add`` brings up the
new version while the old one keeps serving, then retires the old one. ``load --version N``
pins version N through a config override (roll back without deleting anything).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
TOOL = "modelops.model_repo"
TOOL_VERSION = "1"
PRECISIONS = ("fp32", "fp16", "int8")
MANIFEST = "manifest.json"
LABELS = "labels.txt"
TMP_PREFIX = ".tmp-"  # never an integer: Triton skips it as a version directory
RETIRED_PREFIX = ".retired-"  # a version taken out of service (kept for audit / roll forward)
DEFAULT_URL = os.environ.get("TRITON_GRPC_URL", "localhost:8001")

# ONNX TensorProto element type -> Triton data type (without the TYPE_ prefix).
_ONNX_TO_TRITON = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                   8: "STRING", 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16"}
_TRITON_TO_NUMPY = {"FP32": "float32", "FP16": "float16", "FP64": "float64", "UINT8": "uint8", "INT8": "int8",
                    "UINT16": "uint16", "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT32": "uint32",
                    "UINT64": "uint64", "BOOL": "bool"}


class ModelRepoError(Exception):
    """A repository or server operation failed; the message says what and where."""


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


@dataclass(slots=True)
class VersionInfo:
    model: str
    version: int
    path: Path
    size_bytes: int
    manifest: dict | None
    sha256_ok: bool | None = None  # None: not verified
    state: str | None = None  # server state when a URL was given


# ----------------------------------------------------------------------------- reading


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def model_dir(repo: Path, model: str) -> Path:
    d = Path(repo) / model
    if not (d / "config.pbtxt").is_file():
        known = sorted(p.name for p in Path(repo).iterdir() if (p / "config.pbtxt").is_file()) if Path(repo).is_dir() else []
        raise ModelRepoError(f"no model '{model}' in {repo} (no {d / 'config.pbtxt'}); models there: {known}")
    return d


def read_configs(repo: Path, model: str) -> dict[Path, "object"]:
    """Every config of the model: ``config.pbtxt`` and ``configs/*.pbtxt`` -> ModelConfig."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    d = model_dir(repo, model)
    out = {}
    for path in [d / "config.pbtxt", *sorted((d / "configs").glob("*.pbtxt"))]:
        cfg = model_config_pb2.ModelConfig()
        try:
            text_format.Parse(path.read_text(), cfg)
        except text_format.ParseError as e:
            raise ModelRepoError(f"{path}: cannot parse model config: {e}") from e
        out[path] = cfg
    return out


def numeric_versions(mdir: Path) -> list[int]:
    """Version directories as Triton sees them: integer names without leading zeros."""
    if not mdir.is_dir():
        return []
    return sorted(int(p.name) for p in mdir.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p.name == "0" or not p.name.startswith("0")))


def retired_versions(mdir: Path) -> list[int]:
    """Versions moved aside by ``retire`` (``.retired-<n>``): Triton ignores them, numbering does not."""
    out = []
    for p in mdir.glob(f"{RETIRED_PREFIX}*") if mdir.is_dir() else []:
        num = p.name[len(RETIRED_PREFIX):].split("-")[0]
        if num.isdigit():
            out.append(int(num))
    return sorted(out)


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


def read_labels(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


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


def _dtype_name(cfg_dtype: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(cfg_dtype).removeprefix("TYPE_")


def _expected_shape(cfg, io) -> list[int] | None:
    """Full ONNX shape a config tensor implies (batch axis first when batched); None = not checkable."""
    if io.HasField("reshape"):
        return None  # the ONNX sees the reshaped dims, not the config's
    dims = [int(d) for d in io.dims]
    return ([-1] + dims) if cfg.max_batch_size > 0 else dims


def _rel(cfg_path: Path) -> str:
    """<model>/config.pbtxt or <model>/configs/<name>.pbtxt: short, and names the file."""
    parts = cfg_path.parts
    return "/".join(parts[-3:] if cfg_path.parent.name == "configs" else parts[-2:])


def _check_signature(cfg_path: Path, cfg, onnx_sigs: list[TensorSig], kind: str, problems: list[str]) -> None:
    ios = cfg.input if kind == "input" else cfg.output
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
    if kind == "input":
        extra = sorted(set(by_name) - {io.name for io in ios})
        if extra:
            problems.append(f"{rel}: the ONNX has inputs the config does not declare: {extra}")


def _config_input_dims(configs: dict, name: str) -> list[int] | None:
    """The full input shape a config declares (batch axis as -1 when it batches), or None."""
    for cfg in configs.values():
        for io in cfg.input:
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
        dims = [d if isinstance(d, int) and d > 0 else
                (sent[i] if sent is not None and i < len(sent) and sent[i] > 0 else 1) for i, d in enumerate(sig.shape)]
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
        for io in cfg.output:
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
    for cfg_path, cfg in configs.items():
        if cfg.name and cfg.name != model:
            problems.append(f"{_rel(cfg_path)}: config name '{cfg.name}' is not the directory name '{model}'")
        _check_signature(cfg_path, cfg, info.inputs, "input", problems)
        _check_signature(cfg_path, cfg, info.outputs, "output", problems)
    shapes = _smoke_run(onnx_path, configs, info, problems) if run_check and not problems else {}
    if not run_check:
        info.notes.append("ONNX Runtime check skipped")
    info.class_names = _check_classes(model_dir(repo, model), info, shapes, update_labels, problems)
    if problems:
        raise ValidationError(onnx_path, _merge_by_config(problems))
    return info


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


# ----------------------------------------------------------------------------- writing


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    _fsync_path(dst)


def _write_synced(dst: Path, data: bytes) -> None:
    with open(dst, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(mdir: Path) -> Iterator[None]:
    """Exclusive flock on the model directory itself (no lock file left behind)."""
    fd = os.open(mdir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _purge_stale_temps(mdir: Path) -> list[str]:
    """Remove temp dirs of crashed adds (safe: called under the lock, which a live add holds)."""
    removed = []
    for p in mdir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return removed


def _previous_adapter(mdir: Path) -> Path | None:
    for v in reversed(numeric_versions(mdir)):
        p = mdir / str(v) / "model.py"
        if p.is_file():
            return p
    return None


def _manifest(model: str, version: int, info: OnnxInfo, source: str, precision: str,
              files: dict[str, dict]) -> dict:
    import onnx
    import onnxruntime

    return {
        "model": model,
        "version": version,
        "sha256": info.sha256,
        "size_bytes": info.size_bytes,
        "source": source,
        "precision": precision,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "onnx": {"opset": info.opset, "ir_version": info.ir_version, "producer": info.producer,
                 "original_path": str(info.path.resolve())},
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in info.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in info.outputs],
        "class_names": info.class_names,
        "metadata": info.metadata,
        "files": files,
        "tool": {"name": TOOL, "version": TOOL_VERSION, "onnx": onnx.__version__,
                 "onnxruntime": onnxruntime.__version__},
    }


def add_version(repo: Path, model: str, onnx_path: Path, *, source: str, precision: str = "fp32",
                update_labels: bool = False, extra_files: Mapping[str, bytes | Path] | None = None,
                run_check: bool = True) -> Path:
    """Validate ``onnx_path``, then write it as the next version of ``model``; returns its directory.

    ``extra_files`` (name -> bytes or a file to copy) go into the same atomic version, e.g.
    ``{"model.py": adapter_source}`` for a first version or ``{"model.plan": engine_path}``.
    Nothing in the repository changes unless the whole version is in place.
    """
    repo = Path(repo)
    if precision not in PRECISIONS:
        raise ModelRepoError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not source or not source.strip():
        raise ModelRepoError("source must say where the model comes from (a run id, a URL, a file)")
    for name in extra_files or {}:
        if "/" in name or name in ("model.onnx", MANIFEST) or name.startswith("."):
            raise ModelRepoError(f"extra file name {name!r} not allowed")
    info = validate_onnx(onnx_path, repo, model, update_labels=update_labels, run_check=run_check)
    mdir = model_dir(repo, model)
    labels_path = mdir / LABELS
    new_labels = None
    if info.class_names is not None and read_labels(labels_path) != info.class_names:
        new_labels = ("\n".join(info.class_names) + "\n").encode()
    with _locked(mdir):
        _purge_stale_temps(mdir)
        version = max(numeric_versions(mdir) + retired_versions(mdir), default=0) + 1  # never reuse a number
        target = mdir / str(version)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{version}-", dir=mdir))
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700: a server running as another user could not read it
        labels_tmp = mdir / f"{TMP_PREFIX}labels-{os.getpid()}.txt"
        try:
            _copy_synced(info.path, tmp / "model.onnx")
            adapter = _previous_adapter(mdir)
            if adapter is not None and "model.py" not in (extra_files or {}):
                _copy_synced(adapter, tmp / "model.py")
            for name, content in (extra_files or {}).items():
                if isinstance(content, (bytes, bytearray)):
                    _write_synced(tmp / name, bytes(content))
                else:
                    _copy_synced(Path(content), tmp / name)
            files = {p.name: {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
                     for p in sorted(tmp.iterdir())}
            if files["model.onnx"]["sha256"] != info.sha256:
                raise ModelRepoError(f"{info.path} changed while it was being added (sha256 differs); try again")
            manifest = _manifest(model, version, info, source, precision, files)
            _write_synced(tmp / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
            _fsync_path(tmp)
            if new_labels is not None:
                _write_synced(labels_tmp, new_labels)
            if target.exists():  # cannot happen under the lock unless someone bypassed it
                raise ModelRepoError(f"{target} appeared while writing; nothing was changed")
            os.rename(tmp, target)  # the commit point: the version appears whole
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                labels_tmp.unlink()
            raise
        if new_labels is not None:
            os.replace(labels_tmp, labels_path)  # same directory: atomic
        with contextlib.suppress(OSError):  # durability of the rename; the version is already whole
            _fsync_path(mdir)
    return target


def retire_version(repo: Path, model: str, version: int) -> Path:
    """Take ``version`` out of the repository in one rename (to ``.retired-<n>-<utc time>``).

    Triton no longer sees it, so ``load`` serves the latest remaining version; the
    directory stays for audit and can be renamed back. Its number is never reused.
    """
    mdir = model_dir(Path(repo), model)
    with _locked(mdir):
        src = mdir / str(int(version))
        if int(version) not in numeric_versions(mdir):
            raise ModelRepoError(f"{model} has no version {version} in {mdir} (versions: {numeric_versions(mdir)})")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        dst = mdir / f"{RETIRED_PREFIX}{int(version)}-{stamp}"
        os.rename(src, dst)
        with contextlib.suppress(OSError):
            _fsync_path(mdir)
    return dst


# ----------------------------------------------------------------------------- listing


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def list_versions(repo: Path = MODEL_REPOSITORY, model: str | None = None, *, verify: bool = False) -> list[VersionInfo]:
    """Numeric version directories with their manifests (models with ONNX versions, or ``model``)."""
    repo = Path(repo)
    models = [model] if model else sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    out = []
    for m in models:
        mdir = model_dir(repo, m)
        for v in numeric_versions(mdir):
            vdir = mdir / str(v)
            manifest = None
            if (vdir / MANIFEST).is_file():
                try:
                    manifest = json.loads((vdir / MANIFEST).read_text())
                except json.JSONDecodeError:
                    manifest = {"error": f"unreadable {MANIFEST}"}
            ok = None
            if verify and manifest and "files" in manifest:
                ok = all((vdir / n).is_file() and sha256_file(vdir / n) == f["sha256"]
                         for n, f in manifest["files"].items())
            out.append(VersionInfo(m, v, vdir, _dir_size(vdir), manifest, ok))
    return out


# ----------------------------------------------------------------------------- server


def _client(url: str):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        client = grpcclient.InferenceServerClient(url)
        client.is_server_live(client_timeout=5)
    except InferenceServerException as e:
        raise ModelRepoError(f"Triton at {url} is unreachable ({e.message()}): start it (make triton-up) "
                             f"or pass --url HOST:GRPC_PORT") from e
    return client


def server_states(url: str) -> dict[tuple[str, int], str]:
    """(model, version) -> state ('READY', 'UNAVAILABLE', ...) from the repository index."""
    index = _client(url).get_model_repository_index(as_json=True).get("models", [])
    return {(m["name"], int(m["version"])): m.get("state", "") for m in index if m.get("version")}


def _control_error(e, action: str, model: str, url: str) -> ModelRepoError:
    msg = e.message() if hasattr(e, "message") else str(e)
    if "not allowed" in msg or "explicit" in msg.lower() or "polling" in msg.lower():
        return ModelRepoError(f"Triton at {url} refused to {action} '{model}': {msg}. The repository API needs the "
                              f"server started with --model-control-mode=explicit (launchers.triton does this)")
    return ModelRepoError(f"Triton at {url} failed to {action} '{model}': {msg}")


def load(url: str, model: str, version: int | None = None, timeout_s: float = 300.0) -> list[int]:
    """Load (or reload) ``model``; with ``version`` pin that one. Returns the READY versions.

    Triton loads the new version while the old keeps serving and swaps when it is ready.
    Pinning overrides the config's version_policy with ``specific: [version]`` using the
    config the server has now, so the rest of the config stays as deployed.
    """
    from tritonclient.utils import InferenceServerException

    client = _client(url)
    try:
        if version is None:
            client.load_model(model, client_timeout=timeout_s)
        else:
            try:
                cfg = client.get_model_config(model, as_json=True)["config"]
            except InferenceServerException as e:
                raise ModelRepoError(f"'{model}' is not loaded on {url}, so there is no deployed config to pin a "
                                     f"version in: load it first ({e.message()})") from e
            cfg["version_policy"] = {"specific": {"versions": [int(version)]}}
            client.load_model(model, config=json.dumps(cfg), client_timeout=timeout_s)
    except InferenceServerException as e:
        raise _control_error(e, "load", model, url) from e
    return sorted(v for (m, v), s in server_states(url).items() if m == model and s == "READY")


def unload(url: str, model: str, unload_dependents: bool = False) -> None:
    from tritonclient.utils import InferenceServerException

    client = _client(url)
    try:
        client.unload_model(model, unload_dependents=unload_dependents)
    except InferenceServerException as e:
        raise _control_error(e, "unload", model, url) from e


# ----------------------------------------------------------------------------- CLI


def _fmt_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _print_versions(rows: list[VersionInfo], with_state: bool, verify: bool) -> None:
    head = ["model", "ver", "sha256", "precision", "created", "size", "source"]
    if with_state:
        head.insert(2, "state")
    if verify:
        head.append("verified")
    table = [head]
    for r in rows:
        m = r.manifest or {}
        row = [r.model, str(r.version), (m.get("sha256") or "-")[:12], m.get("precision", "-"),
               m.get("created", "-"), _fmt_size(r.size_bytes), m.get("source", "(no manifest)")[:60]]
        if with_state:
            row.insert(2, r.state or "-")
        if verify:
            row.append({None: "-", True: "ok", False: "MISMATCH"}[r.sha256_ok])
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelops.model_repo", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_add = sub.add_parser("add", help="validate an ONNX and add it as the next version")
    p_add.add_argument("--model", required=True)
    p_add.add_argument("--onnx", required=True, type=Path)
    p_add.add_argument("--source", default=None, help="where it comes from (default: the ONNX path)")
    p_add.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p_add.add_argument("--update-labels", "--labels-from-onnx", dest="update_labels", action="store_true",
                       help="rewrite labels.txt from the ONNX metadata 'names' instead of rejecting a mismatch")
    p_add.add_argument("--plan", type=Path, default=None,
                       help="a TensorRT engine built from this ONNX, stored as model.plan in the same version")
    p_add.add_argument("--skip-run", action="store_true", help="skip the ONNX Runtime batch-2 check")
    p_list = sub.add_parser("list", help="versions with their manifests (and server state with --url)")
    p_list.add_argument("--model", default=None)
    p_list.add_argument("--url", default=None, help="Triton gRPC URL, e.g. localhost:8001")
    p_list.add_argument("--verify", action="store_true", help="recompute sha256 of every file")
    p_list.add_argument("--json", action="store_true")
    p_ret = sub.add_parser("retire", help="take a version out of the repository (rename to .retired-<n>-<time>)")
    p_ret.add_argument("--model", required=True)
    p_ret.add_argument("--version", required=True, type=int)
    for name, hlp in (("load", "load/reload a model (new version) via the repository API"),
                      ("unload", "unload a model via the repository API")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--model", required=True)
        p.add_argument("--url", default=DEFAULT_URL)
        if name == "load":
            p.add_argument("--version", type=int, default=None, help="pin this version (roll back / forward)")
    for p in sub.choices.values():
        p.add_argument("--repo", type=Path, default=MODEL_REPOSITORY, help="model repository (default: %(default)s)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "add":
            t0 = time.perf_counter()
            extra = {"model.plan": a.plan} if a.plan else None
            if a.plan and not a.plan.is_file():
                raise ModelRepoError(f"--plan {a.plan}: file not found")
            labels_before = read_labels(Path(a.repo) / a.model / LABELS)
            vdir = add_version(a.repo, a.model, a.onnx, source=a.source or str(a.onnx), precision=a.precision,
                               update_labels=a.update_labels, extra_files=extra, run_check=not a.skip_run)
            m = json.loads((vdir / MANIFEST).read_text())
            print(f"added {a.model} version {m['version']} at {vdir} (sha256 {m['sha256'][:12]}, "
                  f"{len(m['class_names'] or [])} classes, {time.perf_counter() - t0:.1f}s)")
            print(f"serve it: python -m modelops.model_repo load --model {a.model} --url HOST:8001")
            if read_labels(Path(a.repo) / a.model / LABELS) != labels_before:
                print(f"{LABELS} changed: postprocess reads it when it loads, so also run "
                      f"python -m modelops.model_repo load --model postprocess --url HOST:8001")
        elif a.cmd == "list":
            rows = list_versions(a.repo, a.model, verify=a.verify)
            if a.url:
                states = server_states(a.url)
                for r in rows:
                    r.state = states.get((r.model, r.version), "not loaded")
            if a.json:
                print(json.dumps([{**asdict(r), "path": str(r.path)} for r in rows], indent=2))
            else:
                _print_versions(rows, bool(a.url), a.verify)
            if a.verify and any(r.sha256_ok is False for r in rows):
                return 1
        elif a.cmd == "retire":
            dst = retire_version(a.repo, a.model, a.version)
            left = numeric_versions(dst.parent)
            print(f"retired {a.model} version {a.version} -> {dst}; versions left: {left or 'none'}")
            print(f"serve the latest of those: python -m modelops.model_repo load --model {a.model} --url HOST:8001")
        elif a.cmd == "load":
            ready = load(a.url, a.model, a.version)
            pinned = f" (pinned to version {a.version})" if a.version is not None else ""
            print(f"{a.model}: loaded{pinned}; READY versions on {a.url}: {ready or 'none'}")
        elif a.cmd == "unload":
            unload(a.url, a.model)
            print(f"{a.model}: unloaded from {a.url}")
    except ModelRepoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EROFS, errno.ENOSPC):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
