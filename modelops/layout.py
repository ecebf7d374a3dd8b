"""The model repository's layout, shared by the model-versioning modules (no ONNX, no server).

    mdir = model_dir(repo, "yolov8n")          # <repo>/yolov8n, or ModelRepoError listing the models there
    read_configs(repo, "yolov8n")              # {config path: modelops.pbtxt.ModelConfig}, every config
    numeric_versions(mdir)                     # [1, 2, 3]: version directories as Triton sees them
    retired_versions(mdir)                     # numbers of .retired-<n>-<time> directories
    read_labels(mdir / LABELS)                 # class names, one a line (None: no file)
    sha256_file(path)

Layout: ``<repo>/<model>/config.pbtxt`` (+ ``configs/*.pbtxt``), ``labels.txt`` for a
detector, version directories ``<n>/`` holding ``model.onnx`` (+ ``model.py``,
``model.plan``) and ``manifest.json``; ``.tmp-*`` directories are adds in progress and
``.retired-<n>-<utc time>`` versions taken out of service (Triton skips both: not integers).

``ModelRepoError`` is the error of every repository or server operation of
``modelops.model_repo``; its message says what and where.

Imports: the standard library and ``modelops.pbtxt``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from modelops.pbtxt import ModelConfig, PbtxtError, read_model_config

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
MANIFEST = "manifest.json"
LABELS = "labels.txt"
TMP_PREFIX = ".tmp-"  # never an integer: Triton skips it as a version directory
RETIRED_PREFIX = ".retired-"  # a version taken out of service (kept for audit / roll forward)


class ModelRepoError(Exception):
    """A repository or server operation failed; the message says what and where."""


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


def read_configs(repo: Path, model: str) -> dict[Path, ModelConfig]:
    """Every config of the model: ``config.pbtxt`` and ``configs/*.pbtxt`` -> ModelConfig (``modelops.pbtxt``)."""
    d = model_dir(repo, model)
    out = {}
    for path in [d / "config.pbtxt", *sorted((d / "configs").glob("*.pbtxt"))]:
        try:
            out[path] = read_model_config(path)
        except PbtxtError as e:
            raise ModelRepoError(str(e)) from e
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


def read_labels(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
