"""Static int8 (QDQ) quantisation of a YOLOv8 detector for the CPU variant, calibrated on rendered frames.

``make models`` writes ``model.int8.onnx`` beside the demo detector's ``model.onnx`` (same
version: one trained network, two precisions); ``yolov8n/configs/cpu.pbtxt`` serves it
(``onnx_file``). TensorRT builds its engine from ``model.onnx``. Measured on the 2-core
machines (docs/benchmarks.md "CPU runtime for the detector"): 2.3x fp32 per call on one
thread, person mAP50 unchanged on the held-out rendered frames.

    int8 = quantise_detector(onnx.load("model.onnx"), calibration_inputs(64))   # onnx.ModelProto
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

CALIBRATION_SEED = 7  # rendered frames of another seed than training (0) and held-out (1000)


def rendered_frames(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(BGR frame after a JPEG q92 round trip, as the demo detector's model-card set; boxes xyxy
    float32[K, 4]; classes int64[K]) from the store simulator."""
    from simulator.render import training_frames

    out = []
    for frame, xyxy, cls in training_frames(count=count, seed=seed):
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append((cv2.imdecode(buf, cv2.IMREAD_COLOR), np.asarray(xyxy, np.float32).reshape(-1, 4),
                    np.asarray(cls, np.int64)))
    return out


def calibration_inputs(count: int = 32, seed: int = CALIBRATION_SEED, stride: int = 32) -> list[np.ndarray]:
    """float32[3, H, W] detector inputs from rendered store frames (served letterbox)."""
    from serving.preprocess import letterbox

    return [letterbox(frame, stride=stride)[0] for frame, _, _ in rendered_frames(count, seed)]


def fp32_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold ``Cast(fp16 initializer -> fp32)`` into fp32 initializers (the quantiser needs fp32 weights)."""
    inits = {i.name: i for i in model.graph.initializer}
    folded, keep = {}, []
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0] in inits and inits[node.input[0]].data_type == onnx.TensorProto.FLOAT16:
            folded[node.output[0]] = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        else:
            keep.append(node)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    used = {i for n in keep for i in n.input}
    kept_inits = [i for i in out.graph.initializer if i.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept_inits)
    out.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in folded.items())
    return out


def quantise_detector(model: onnx.ModelProto, calibration: list[np.ndarray]) -> onnx.ModelProto:
    """Static QDQ int8 (ONNX Runtime's quantiser): per-channel s8 weights, u8 activations, MinMax calibration."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"images": x[None]}

    fp32 = fp32_weights(model)
    with tempfile.TemporaryDirectory() as tmp:
        return _quantise(fp32, Reader(), Path(tmp))


def _quantise(fp32: onnx.ModelProto, reader, workdir: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    src, dst = workdir / "fp32.onnx", workdir / "int8.onnx"
    onnx.save(fp32, src)
    # The head's decode (DFL, anchors, the concat of pixel boxes with 0-1 scores) stays fp32: one
    # int8 scale for both ranges zeroes every class score. Its conv branches are quantised.
    # (Ultralytics names the head's nodes /model.<last>/...; its box and class conv branches cv2 / cv3)
    blocks = {n.name.split("/")[1] for n in fp32.graph.node if n.op_type == "Conv" and n.name.count("/") >= 2}
    numbered = [b for b in blocks if b.rsplit(".", 1)[-1].isdigit()]
    head = max(numbered, key=lambda b: int(b.rsplit(".", 1)[-1])) if numbered else None
    exclude = [n.name for n in fp32.graph.node if head is not None and n.name.startswith(f"/{head}/")
               and "/cv2." not in n.name and "/cv3." not in n.name]
    quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    return onnx.load(dst)
