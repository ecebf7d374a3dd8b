"""Model versions in the repository: add (validated, atomic), retire, list. No server here.

    vdir = add_version(repo, "yolov8n", Path("best.onnx"), source="run 42", precision="fp16",
                       update_labels=False, extra_files={"model.plan": Path("best.plan")})
    retire_version(repo, "yolov8n", 3)        # -> <repo>/yolov8n/.retired-3-<utc time>
    list_versions(repo, "yolov8n", verify=True)   # [VersionInfo] with manifests (+ sha256 check)

``add_version`` validates first (``modelops.onnx_check.validate_onnx``; ValidationError
leaves the repository untouched), then, under an exclusive flock on the model directory,
writes the next version number (never reusing a retired one) into a ``.tmp-<n>-*``
directory: ``model.onnx``, the previous version's ``model.py`` (python-backend adapter) if
there is one, the extra files, and ``manifest.json`` (sha256, source, precision, date,
signature, class names, tool versions), each fsynced; then renames it to ``<n>`` in one
step. A new ``labels.txt`` (``update_labels``) is written beside it before the rename and
moved into place after. Any failure, an interrupt included, removes the temp directory, so
Triton never sees a half-written version; temp directories of crashed adds are purged by
the next add.

Raises ``ModelRepoError`` (``modelops.layout``) naming the model, version or file; OSError
from the disk passes through.

Imports: ``modelops.layout``, ``modelops.onnx_check``, ``core.files``; onnx and
onnxruntime lazily (their versions go into the manifest).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.files import fsync_path
from modelops.layout import (
    LABELS,
    MANIFEST,
    MODEL_REPOSITORY,
    RETIRED_PREFIX,
    TMP_PREFIX,
    ModelRepoError,
    model_dir,
    numeric_versions,
    read_labels,
    retired_versions,
    sha256_file,
)
from modelops.onnx_check import OnnxInfo, validate_onnx

__all__ = ["TOOL", "TOOL_VERSION", "PRECISIONS", "VersionInfo", "add_version", "retire_version", "list_versions"]

TOOL = "modelops.model_repo"  # the manifest's tool name: the command that writes versions
TOOL_VERSION = "1"
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(slots=True)
class VersionInfo:
    model: str
    version: int
    path: Path
    size_bytes: int
    manifest: dict | None
    sha256_ok: bool | None = None  # None: not verified
    state: str | None = None  # server state when a URL was given


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fsync_path(dst)


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
            fsync_path(tmp)
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
            fsync_path(mdir)
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
            fsync_path(mdir)
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
