"""How much INT8 changes OSNet's embeddings against FP32: a CPU proxy for TensorRT INT8.

    python -m benchmarks.int8_reid [--calib-seconds 60] [--holdout-seconds 60] [--json out.json]

TensorRT is not available here, so ONNX Runtime's static INT8 quantisation stands in for it,
set up as close to TensorRT's implicit INT8 as ONNX Runtime allows: symmetric int8 activations
with entropy-calibrated per-tensor scales, per-channel symmetric int8 weights (QDQ format,
``onnxruntime.quantization.quantize_static``). Two calibration sets are compared:

- ``person crops``: what serving feeds OSNet, cut by the repository's detector from rendered
  store frames (``modelops.calibration_crops``; the fixed calibration of issue 23, fix 6);
- ``whole frames``: the same frames squeezed to 256x128 (what the converter used before).

Held-out crops come from other cameras and another hour than the calibration frames. Per
held-out crop: cosine similarity of the L2-normalised FP32 and INT8 embeddings. The model is
the one ``make models`` installs (``model_repository/osnet_x0_25/<newest>/model.onnx``). Writes
nothing unless ``--json``; docs/gpu.md quotes its output.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from launchers.triton import MODEL_REPOSITORY
from modelops.calibration_crops import newest_version_onnx, plan_reid_calibration
from serving.postprocess import l2_normalise, reid_crops

CALIB = [("cam-checkout-1", "2024-01-15T18:30:00Z"), ("cam-aisles-1", "2024-01-15T17:30:00Z")]
HOLDOUT = [("cam-checkout-2", "2024-01-15T12:15:00Z"), ("cam-entrance-1", "2024-01-15T18:00:00Z")]


def render_frames(views, seconds: float, out: Path) -> list[Path]:
    from simulator.render import render_camera

    paths = []
    for cam, start in views:
        for k, (img, *_rest) in enumerate(render_camera(cam, seconds=seconds, fps=1.0, start=start, seed=11)):
            p = out / f"{cam}_{k:03d}.jpg"
            cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            paths.append(p)
    return paths


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def quantise(fp32: Path, out: Path, batches: list[np.ndarray]) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"images": b} for b in batches])

        def get_next(self):
            return next(self.it, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, calibrate_method=CalibrationMethod.Entropy,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return out


def embed(sess, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return l2_normalise(np.concatenate([sess.run(None, {name: crops[i:i + batch]})[0]
                                        for i in range(0, len(crops), batch)]))


def stats(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, axis=1)
    return {"crops": int(len(cos)), "mean": round(float(cos.mean()), 4), "p5": round(float(np.percentile(cos, 5)), 4),
            "min": round(float(cos.min()), 4), "share_ge_0.95": round(float(np.mean(cos >= 0.95)), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calib-seconds", type=float, default=130.0, help="per calibration camera, 1 frame/s")
    ap.add_argument("--holdout-seconds", type=float, default=60.0, help="per held-out camera, 1 frame/s")
    ap.add_argument("--batches", type=int, default=8, help="calibration batches of 32")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    fp32 = newest_version_onnx(MODEL_REPOSITORY, "osnet_x0_25")
    if fp32 is None:
        raise SystemExit("no model_repository/osnet_x0_25/<version>/model.onnx: run `make models`")
    with tempfile.TemporaryDirectory(prefix="int8-reid-") as tmp:
        tmp = Path(tmp)
        (tmp / "calib").mkdir()
        (tmp / "holdout").mkdir()
        frames = render_frames(CALIB, a.calib_seconds, tmp / "calib")
        render_frames(HOLDOUT, a.holdout_seconds, tmp / "holdout")
        crops_plan = plan_reid_calibration(tmp / "calib", 32, a.batches, MODEL_REPOSITORY)
        crop_batches = list(crops_plan.iter_batches())
        whole = []
        for p in frames[: len(crop_batches) * 32]:
            img = cv2.imread(str(p))
            whole.append(reid_crops(img, np.array([[0, 0, img.shape[1], img.shape[0]]], np.float32))[0])
        whole_batches = [np.stack(whole[i:i + 32]) for i in range(0, len(whole) - 31, 32)]
        n = min(len(crop_batches), len(whole_batches))  # the same number of samples for both
        crop_batches, whole_batches = crop_batches[:n], whole_batches[:n]
        hold = plan_reid_calibration(tmp / "holdout", 1, None, MODEL_REPOSITORY)
        held = np.concatenate(list(hold.iter_batches()))
        ref = embed(_session(fp32), held)
        results = {"model": str(fp32.relative_to(MODEL_REPOSITORY.parent)), "heldout_crops": int(len(held)),
                   "heldout_frames": len(hold.files), "calibration": {}}
        for name, batches in (("person crops", crop_batches), ("whole frames", whole_batches)):
            q = quantise(fp32, tmp / f"int8-{name.replace(' ', '-')}.onnx", batches)
            results["calibration"][name] = {"calibration_samples": int(sum(len(b) for b in batches)),
                                            **stats(ref, embed(_session(q), held))}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(results, indent=2))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
