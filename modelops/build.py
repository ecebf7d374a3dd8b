"""Build the offline models and install them into the model repository (``make models``).

No model hub is reachable offline, so YOLOv8n and OSNet x0_25 are built from their
architectures (modelops/architectures.py) with deterministic, untrained weights and
exported to ONNX with a dynamic batch axis. They have the real shapes and compute cost
(what serving, batching and perf work need) but **detect nothing**: the manifest's
source says ``deterministic-placeholder`` and every log says so. Real weights:
``scripts/download_models.sh``.

Where ``data/models/demo/yolov8n_demo.onnx`` exists (the detector trained on the store
simulator's frames, ``scripts/train_demo_detector.py``; classes person and cart), it is
installed as the newest ``yolov8n`` version through the versioning command
(``modelops.versions.add_version``, labels.txt rewritten to its class names), so the
offline demo sees real detections. Likewise ``data/models/demo/osnet_x0_25_demo.onnx`` (OSNet
x0_25 trained on the simulator's rendered person crops, ``scripts/train_demo_reid.py``;
OSNET_MODEL_CARD.md) becomes the newest ``osnet_x0_25`` version, so the ensemble's re-id
embeddings tell the demo's people apart across cameras. Installing either again is a
no-op (matched by sha256).

    python -m scripts.build_models [--force]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "data" / "models"
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
PLACEHOLDER_SOURCE = "deterministic-placeholder (untrained architecture, seed 0; detects nothing)"
# Python-backend adapter written into each ONNX version directory (configs/cpu.pbtxt).
ADAPTER = '"""CPU variant: ONNX Runtime in the python backend (see serving/onnx_model.py)."""\n' \
          "from serving.onnx_model import TritonPythonModel  # noqa: F401\n"
NETWORKS = ("yolov8n", "osnet_x0_25")
DEMO_DETECTOR = MODELS_DIR / "demo" / "yolov8n_demo.onnx"
DEMO_SOURCE = ("demo detector: YOLOv8n trained on the store simulator's rendered frames, classes person/cart "
               "(data/models/demo/MODEL_CARD.md)")
DEMO_REID = MODELS_DIR / "demo" / "osnet_x0_25_demo.onnx"
DEMO_REID_SOURCE = ("demo re-id: OSNet x0_25 trained on the store simulator's rendered person crops "
                    "(data/models/demo/OSNET_MODEL_CARD.md)")

log = logging.getLogger("build_models")
INT8_FILE = "model.int8.onnx"  # yolov8n/configs/cpu.pbtxt onnx_file


def _gflops(model, x) -> float:
    """Multiply-adds of Conv2d/Linear layers x 2, counted with forward hooks."""
    import torch

    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return 2 * total / x.shape[0] / 1e9


def export_yolov8n(path: Path, names: list[str]) -> dict:
    import torch

    from modelops.architectures import YOLOv8, count_params

    torch.manual_seed(0)
    model = YOLOv8(nc=len(names)).eval()
    x = torch.zeros(1, 3, 640, 640)
    info = {"params": count_params(model), "gflops": _gflops(model, x)}
    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["images"],
                      output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}})
    _set_metadata(path, {"names": str(dict(enumerate(names))), "imgsz": "[640, 640]", "task": "detect",
                         "stride": "32", "description": PLACEHOLDER_SOURCE})
    return info


def _synthetic_crops(n: int, seed: int = 0):
    """Deterministic person-crop-sized images: colour blocks over gradients, ImageNet-normalised."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:128].astype(np.float32)
    out = np.empty((n, 3, 256, 128), np.float32)
    for i in range(n):
        img = rng.uniform(0, 1, 3)[:, None, None] * (0.5 + 0.5 * np.sin(xx / rng.uniform(5, 40) + yy / rng.uniform(5, 80)))
        for _ in range(rng.integers(2, 6)):
            y0, x0 = rng.integers(0, 200), rng.integers(0, 100)
            img[:, y0:y0 + rng.integers(20, 120), x0:x0 + rng.integers(10, 60)] = rng.uniform(0, 1, 3)[:, None, None]
        out[i] = (img - np.array([0.485, 0.456, 0.406])[:, None, None]) / np.array([0.229, 0.224, 0.225])[:, None, None]
    return torch.from_numpy(out)


def _calibrate_batchnorm(model, batch) -> None:
    """Set BatchNorm statistics from real activations (data-dependent init).

    With default statistics the untrained OSNet maps every crop to nearly the same
    vector (cosine > 0.9999); with calibrated statistics its random features already
    separate different crops (cosine ~0.3-0.6), so re-id code paths see real variation.
    """
    import torch

    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()


def export_osnet(path: Path) -> dict:
    import torch

    from modelops.architectures import OSNet, count_params

    torch.manual_seed(0)
    model = OSNet()
    _calibrate_batchnorm(model, _synthetic_crops(128))
    x = torch.zeros(1, 3, 256, 128)
    info = {"params": count_params(model), "gflops": _gflops(model, x)}
    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["images"],
                      output_names=["features"], dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
    _set_metadata(path, {"description": PLACEHOLDER_SOURCE, "feature_dim": "512"})
    return info


def _set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


def installed_versions(model: str, repo: Path = MODEL_REPOSITORY) -> list[Path]:
    d = repo / model
    return sorted((p for p in d.iterdir() if p.name.isdigit() and (p / "model.onnx").exists()),
                  key=lambda p: int(p.name)) if d.exists() else []


def install(model: str, onnx_path: Path, source: str, repo: Path = MODEL_REPOSITORY, update_labels: bool = False) -> Path:
    """Add ``onnx_path`` as the next version of ``model`` through the versioning command's API.

    The first version gets the python-backend adapter; later ones copy their predecessor's.
    """
    from modelops.layout import numeric_versions
    from modelops.versions import add_version

    first = not numeric_versions(repo / model)
    return add_version(repo, model, onnx_path, source=source, precision="fp32", update_labels=update_labels,
                       extra_files={"model.py": ADAPTER.encode()} if first else None)


def build(force: bool = False) -> None:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    names = (Path(__file__).with_name("coco80.names")).read_text().split("\n")
    names = [n for n in names if n]
    targets = {"yolov8n": (MODELS_DIR / "yolov8n.onnx", lambda p: export_yolov8n(p, names)),
               "osnet_x0_25": (MODELS_DIR / "osnet_x0_25.onnx", export_osnet)}
    for model, (path, export) in targets.items():
        if force or not path.exists():
            t0 = time.perf_counter()
            info = export(path)
            log.warning("%s: built %s in %.1fs (%.2f M params, %.2f GFLOPs per image) with PLACEHOLDER weights: "
                        "it has the real topology and cost but detects/identifies nothing",
                        model, path.relative_to(REPO_ROOT), time.perf_counter() - t0, info["params"] / 1e6, info["gflops"])
        if force or not installed_versions(model):
            vdir = install(model, path, PLACEHOLDER_SOURCE, update_labels=True)
            log.info("%s: installed as %s", model, vdir.relative_to(REPO_ROOT))
    install_demo_detector(force=force)
    install_demo_reid(force=force)


def installed_sha256(model: str, repo: Path = MODEL_REPOSITORY) -> set[str]:

    return {s for v in installed_versions(model, repo) if (s := _manifest_sha(v)) is not None}


def _demo_missing(model: str, onnx_path: Path, repo: Path) -> bool:
    if not onnx_path.exists():
        return False
    from modelops.layout import sha256_file

    return sha256_file(onnx_path) not in installed_sha256(model, repo)


def _install_demo(model: str, onnx_path: Path, source: str, repo: Path, force: bool, update_labels: bool) -> Path | None:
    """Add a trained demo model as the newest version of ``model`` unless some version already
    is it (``force``: add it again, e.g. after ``--force`` rebuilt the placeholder on top)."""
    if not onnx_path.exists() or not (force or _demo_missing(model, onnx_path, repo)):
        return None
    from modelops.layout import numeric_versions
    from modelops.versions import add_version

    first = not numeric_versions(repo / model)
    extra = {"model.py": ADAPTER.encode()} if first else {}
    if model == "yolov8n":
        extra[INT8_FILE] = _int8_detector(onnx_path)
    vdir = add_version(repo, model, onnx_path, source=source, precision="fp16", update_labels=update_labels,
                       extra_files=extra or None)
    try:
        shown = onnx_path.relative_to(REPO_ROOT)
    except ValueError:
        shown = onnx_path
    log.info("%s: installed the trained demo model %s as %s", model, shown, vdir)
    return vdir


def _int8_detector(onnx_path: Path) -> bytes:
    """The CPU variant's int8 QDQ twin of a detector (modelops/quantize.py), calibrated on rendered frames."""
    import onnx

    from modelops.quantize import calibration_inputs, quantise_detector

    t0 = time.perf_counter()
    data = quantise_detector(onnx.load(str(onnx_path)), calibration_inputs()).SerializeToString()
    log.info("yolov8n: int8 QDQ twin %s (%.1f MB) in %.1fs", INT8_FILE, len(data) / 1e6, time.perf_counter() - t0)
    return data


def demo_detector_missing(repo: Path = MODEL_REPOSITORY) -> bool:
    """The demo detector is not installed, or its version lacks the int8 twin (installed before it existed)."""
    if _demo_missing("yolov8n", DEMO_DETECTOR, repo):
        return True
    if not DEMO_DETECTOR.exists():
        return False
    from modelops.layout import sha256_file

    sha = sha256_file(DEMO_DETECTOR)
    holding = [v for v in installed_versions("yolov8n", repo) if _manifest_sha(v) == sha]
    return not any((v / INT8_FILE).exists() for v in holding)


def _manifest_sha(version_dir: Path) -> str | None:
    import json

    try:
        return json.loads((version_dir / "manifest.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        return None


def install_demo_detector(repo: Path = MODEL_REPOSITORY, force: bool = False) -> Path | None:
    """Add the trained demo detector as the newest yolov8n version (labels.txt rewritten to its
    class names) unless some version already is it."""
    return _install_demo("yolov8n", DEMO_DETECTOR, DEMO_SOURCE, repo, force or demo_detector_missing(repo),
                         update_labels=True)


def demo_reid_missing(repo: Path = MODEL_REPOSITORY) -> bool:
    return _demo_missing("osnet_x0_25", DEMO_REID, repo)


def install_demo_reid(repo: Path = MODEL_REPOSITORY, force: bool = False) -> Path | None:
    """Add the trained demo re-id model as the newest osnet_x0_25 version unless some version
    already is it."""
    return _install_demo("osnet_x0_25", DEMO_REID, DEMO_REID_SOURCE, repo, force, update_labels=False)


def ensure_models() -> None:
    """Build and install whatever is missing (idempotent; used by fixtures and the demo)."""
    if (all(installed_versions(m) for m in NETWORKS) and (MODEL_REPOSITORY / "yolov8n" / "labels.txt").exists()
            and not demo_detector_missing() and not demo_reid_missing()):
        return
    build()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild the ONNX files and add new versions")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    build(force=a.force)
    for m in NETWORKS:
        v = installed_versions(m)
        log.info("%s: versions %s", m, [p.name for p in v])
    log.info("models ready in %.1fs", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
