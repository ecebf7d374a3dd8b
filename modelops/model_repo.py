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

Exit codes: 0 done; 1 ``list --verify`` found a file whose sha256 differs from its
manifest; 2 the ONNX was rejected, or a repository/server error, or the disk refused
(permission, read-only, full); the message names the file, model or server.

This module is the command line. The library lives beside it, one job each:
``modelops.onnx_check`` (validation, reads only), ``modelops.versions`` (add / retire /
list in the repository), ``modelops.triton_control`` (load / unload on a live server),
``modelops.layout`` (paths, labels, configs via ``modelops.pbtxt``). Their public names are
re-exported here, so ``from modelops.model_repo import add_version, validate_onnx`` keeps
working.

Imports: the modules above.
"""
from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from modelops.layout import (  # noqa: F401
    LABELS,
    MANIFEST,
    MODEL_REPOSITORY,
    RETIRED_PREFIX,
    TMP_PREFIX,
    ModelRepoError,
    model_dir,
    numeric_versions,
    read_configs,
    read_labels,
    retired_versions,
    sha256_file,
)
from modelops.onnx_check import OnnxInfo, TensorSig, ValidationError, parse_class_names, read_onnx, validate_onnx  # noqa: F401
from modelops.triton_control import DEFAULT_URL, load, server_states, unload
from modelops.versions import PRECISIONS, TOOL, TOOL_VERSION, VersionInfo, add_version, list_versions, retire_version  # noqa: F401


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


def _parser() -> argparse.ArgumentParser:
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
    return ap


def _add(a: argparse.Namespace) -> None:
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


def _list(a: argparse.Namespace) -> int:
    rows = list_versions(a.repo, a.model, verify=a.verify)
    if a.url:
        states = server_states(a.url)
        for r in rows:
            r.state = states.get((r.model, r.version), "not loaded")
    if a.json:
        print(json.dumps([{**asdict(r), "path": str(r.path)} for r in rows], indent=2))
    else:
        _print_versions(rows, bool(a.url), a.verify)
    return 1 if a.verify and any(r.sha256_ok is False for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "add":
            _add(a)
        elif a.cmd == "list":
            if _list(a):
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
