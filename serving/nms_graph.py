"""Box decoding and NMS appended to a YOLOv8 ONNX graph, so the detector returns detections.

A raw YOLOv8 export ends in ``output0`` float32[B, 4 + C, A]: per anchor cx, cy, w, h (input
pixels) then C class probabilities. ``append_nms`` adds, in standard ONNX ops (opset >= 13,
``NonMaxSuppression`` among them, which ONNX Runtime and OpenVINO run on the CPU), the
same decoding as ``serving.postprocess.decode_yolov8``:

- each anchor keeps only its best class (Ultralytics' single-label NMS), boxes under
  ``min_box_size`` pixels a side are dropped, class-aware NMS at ``iou_threshold`` over
  scores above ``score_threshold``;
- the kept boxes, best first, padded per image to ``max_detections`` rows.

Outputs are those of TensorRT's EfficientNMS plugin (the GPU path, ``append_efficient_nms``),
so the Python step after the detector reads one interface on both targets:

    num_dets     int32[B, 1]      boxes kept in each image (0 is normal: nobody in view)
    det_boxes    float32[B, M, 4] x1, y1, x2, y2 in input pixels; rows >= num_dets are 0
    det_scores   float32[B, M]
    det_classes  int32[B, M]

Example::

    model = append_nms(onnx.load("yolov8n.onnx"), NmsSpec(score_threshold=0.25, max_detections=100))
    num, boxes, scores, classes = ort.InferenceSession(model.SerializeToString()).run(None, {"images": x})
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes")
_PREFIX = "nms/"


@dataclass(frozen=True, slots=True)
class NmsSpec:
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    min_box_size: float = 2.0  # input pixels; smaller boxes are noise

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"score_threshold {self.score_threshold}: expected 0 <= value < 1")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold {self.iou_threshold}: expected 0 < value <= 1")
        if self.max_detections < 1:
            raise ValueError(f"max_detections {self.max_detections}: expected >= 1")

    @staticmethod
    def from_params(params: dict[str, str], where: str) -> "NmsSpec":
        """From a model config's ``nms_score_threshold``, ``nms_iou_threshold``, ``nms_max_detections``
        (defaults: the fields'); a bad value is a ValueError naming ``where`` and the parameter."""
        d = NmsSpec()
        try:
            return NmsSpec(score_threshold=float(params.get("nms_score_threshold", d.score_threshold)),
                           iou_threshold=float(params.get("nms_iou_threshold", d.iou_threshold)),
                           max_detections=int(params.get("nms_max_detections", d.max_detections)))
        except ValueError as e:
            raise ValueError(f"{where}: parameters nms_*: {e}") from None


class _Graph:
    """Appends named nodes and constants to a graph (names prefixed so they cannot collide)."""

    def __init__(self, graph: onnx.GraphProto, opset: int):
        self.graph = graph
        self.opset = opset
        self.n = 0

    def leading_dim(self, x: str) -> str:
        """int64[1]: the size of ``x``'s first axis (Shape + Slice: Shape's start/end need opset 15)."""
        i64 = np.int64
        return self.op("Slice", [self.op("Shape", [x]), self.const([0], i64), self.const([1], i64)])

    def reduce(self, op_type: str, x: str, axis: int, keepdims: int) -> str:
        """ReduceMax / ReduceMin over one axis: an attribute before opset 18, an input from 18."""
        if self.opset >= 18:
            return self.op(op_type, [x, self.const([axis], np.int64)], keepdims=keepdims)
        return self.op(op_type, [x], axes=[axis], keepdims=keepdims)

    def const(self, value, dtype) -> str:
        name = f"{_PREFIX}c{self.n}"
        self.n += 1
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        outs = [f"{_PREFIX}{op_type}{self.n}_{i}" for i in range(n_out)]
        self.n += 1
        self.graph.node.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs


def _raw_output(model: onnx.ModelProto, name: str | None) -> str:
    outs = [o.name for o in model.graph.output]
    if name is None:
        if len(outs) != 1:
            raise ValueError(f"detector has outputs {outs}: name the raw YOLOv8 output to decode")
        name = outs[0]
    if name not in outs:
        raise ValueError(f"detector has no output {name!r} (outputs: {outs})")
    out = next(o for o in model.graph.output if o.name == name)
    rank = len(out.type.tensor_type.shape.dim)
    if rank != 3:
        raise ValueError(f"output {name!r} has rank {rank}: a raw YOLOv8 output is [batch, 4 + classes, anchors] "
                         f"(outputs: {outs})")
    return name


def _check_appendable(model: onnx.ModelProto) -> None:
    names = {o.name for o in model.graph.output}
    if names & set(OUTPUTS):
        raise ValueError(f"detector already has NMS outputs {sorted(names & set(OUTPUTS))}")
    opset = _opset(model)
    if opset < 13:
        raise ValueError(f"detector opset {opset}: appending NMS needs opset >= 13 (re-export with opset 17)")


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def append_nms(model: onnx.ModelProto, spec: NmsSpec = NmsSpec(), raw_output: str | None = None,
               keep_raw: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are ``OUTPUTS`` (see the module docstring).

    ``raw_output`` names the [B, 4 + C, A] output (default: the only output). With
    ``keep_raw`` it stays an output too (for comparisons); otherwise it is dropped.
    """
    _check_appendable(model)
    raw = _raw_output(model, raw_output)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _Graph(out.graph, _opset(model))
    i64, f32 = np.int64, np.float32

    # [B, A, 4] cx cy w h, and class scores [B, C, A] (NonMaxSuppression's layout as exported)
    boxes = g.op("Transpose", [g.op("Slice", [raw, g.const([0], i64), g.const([4], i64), g.const([1], i64)])],
                 perm=[0, 2, 1])
    cls = g.op("Slice", [raw, g.const([4], i64), g.const([2**31 - 1], i64), g.const([1], i64)])
    # single label: an anchor scores only for its best class; tiny boxes score 0
    best = g.reduce("ReduceMax", cls, 1, keepdims=1)
    is_best = g.op("Cast", [g.op("Equal", [cls, best])], to=TensorProto.FLOAT)
    wh = g.op("Slice", [boxes, g.const([2], i64), g.const([4], i64), g.const([2], i64)])
    big = g.op("GreaterOrEqual", [g.reduce("ReduceMin", wh, 2, keepdims=0), g.const(spec.min_box_size, f32)])
    big = g.op("Cast", [g.op("Unsqueeze", [big, g.const([1], i64)])], to=TensorProto.FLOAT)
    scores = g.op("Mul", [g.op("Mul", [cls, is_best]), big])

    sel = g.op("NonMaxSuppression", [boxes, scores, g.const([spec.max_detections], i64),
                                     g.const([spec.iou_threshold], f32), g.const([spec.score_threshold], f32)],
               center_point_box=1)  # [K, 3]: image, class, anchor
    b = g.op("Gather", [sel, g.const(0, i64)], axis=1)
    c = g.op("Gather", [sel, g.const(1, i64)], axis=1)
    k_scores = g.op("GatherND", [scores, sel])
    image_anchor = g.op("Gather", [sel, g.const([0, 2], i64)], axis=1)
    k_boxes = g.op("MatMul", [g.op("GatherND", [boxes, image_anchor]),
                              g.const([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], f32)])

    # order by image, then score (best first): key = image * 2 - score, scores in [0, 1]
    key = g.op("Sub", [g.op("Mul", [g.op("Cast", [b], to=TensorProto.FLOAT), g.const(2.0, f32)]), k_scores])
    k = g.leading_dim(sel)
    _, order = g.op("TopK", [key, k], n_out=2, largest=0, sorted=1)
    b, c, k_scores, k_boxes = (g.op("Gather", [t, order], axis=0) for t in (b, c, k_scores, k_boxes))

    # rank of each box within its image, to scatter the first M per image into [B, M] slots
    batch = g.leading_dim(raw)
    one_hot = g.op("Cast", [g.op("Equal", [g.op("Unsqueeze", [b, g.const([1], i64)]),
                                           g.op("Range", [g.const(0, i64), g.op("Squeeze", [batch]),
                                                          g.const(1, i64)])])], to=TensorProto.INT64)
    rank = g.op("Sub", [g.op("ReduceSum", [g.op("Mul", [g.op("CumSum", [one_hot, g.const(0, i64)]), one_hot]),
                                           g.const([1], i64)], keepdims=0), g.const(1, i64)])
    m = g.const([spec.max_detections], i64)
    kept = g.op("Less", [rank, m])
    slot = g.op("Concat", [g.op("Unsqueeze", [g.op("Compress", [t, kept], axis=0), g.const([1], i64)])
                           for t in (b, rank)], axis=1)
    bm = g.op("Concat", [batch, m], axis=0)
    det_boxes = g.op("ScatterND", [g.op("ConstantOfShape", [g.op("Concat", [bm, g.const([4], i64)], axis=0)],
                                        value=numpy_helper.from_array(np.zeros(1, f32))),
                                   slot, g.op("Compress", [k_boxes, kept], axis=0)])
    det_scores = g.op("ScatterND", [g.op("ConstantOfShape", [bm], value=numpy_helper.from_array(np.zeros(1, f32))),
                                    slot, g.op("Compress", [k_scores, kept], axis=0)])
    det_classes = g.op("ScatterND", [g.op("ConstantOfShape", [bm], value=numpy_helper.from_array(np.zeros(1, np.int32))),
                                     slot, g.op("Cast", [g.op("Compress", [c, kept], axis=0)], to=TensorProto.INT32)])
    per_image = g.op("ReduceSum", [one_hot, g.const([0], i64)], keepdims=0)
    num_dets = g.op("Cast", [g.op("Unsqueeze", [g.op("Min", [per_image, m]), g.const([1], i64)])],
                    to=TensorProto.INT32)

    for src, name in zip((num_dets, det_boxes, det_scores, det_classes), OUTPUTS):
        g.graph.node.append(helper.make_node("Identity", [src], [name]))
    _set_outputs(out, raw, keep_raw, spec.max_detections)
    onnx.checker.check_model(out)
    return out


def _set_outputs(model: onnx.ModelProto, raw: str, keep_raw: bool, max_detections: int) -> None:
    """Declare ``OUTPUTS`` as the graph's outputs (after the raw one when it is kept)."""
    if not keep_raw:
        others = [o for o in model.graph.output if o.name != raw]
        del model.graph.output[:]
        model.graph.output.extend(others)
    m = max_detections
    dims = (["batch", 1], ["batch", m, 4], ["batch", m], ["batch", m])
    types = (TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.INT32)
    model.graph.output.extend(helper.make_tensor_value_info(n, t, d) for n, t, d in zip(OUTPUTS, types, dims))


def append_efficient_nms(model: onnx.ModelProto, spec: NmsSpec = NmsSpec(), raw_output: str | None = None,
                         plugin_version: str = "1") -> onnx.ModelProto:
    """The GPU form: the same outputs from TensorRT's ``EfficientNMS_TRT`` plugin node.

    TensorRT's ONNX parser maps a node whose op type names a registered plugin to that plugin,
    with the node's attributes as the plugin's fields (TensorRT ``efficientNMSPlugin`` README:
    inputs boxes [B, A, 4] and scores [B, A, C]; ``box_coding`` 1 = centre/size boxes;
    ``score_activation`` 0 since YOLOv8's class scores are already sigmoid; ``class_agnostic``
    0 = per-class NMS). ONNX Runtime cannot run this node: the graph is for the engine
    builder (``modelops.tensorrt_engine``) only, and is checked here by structure alone, as no
    TensorRT is on the CPU machines. Unlike ``append_nms`` the plugin does not restrict an
    anchor to its best class; YOLOv8's two classes here are rarely both above threshold.
    """
    _check_appendable(model)
    raw = _raw_output(model, raw_output)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _Graph(out.graph, _opset(model))
    i64 = np.int64
    t = g.op("Transpose", [raw], perm=[0, 2, 1])  # [B, A, 4 + C]
    boxes = g.op("Slice", [t, g.const([0], i64), g.const([4], i64), g.const([2], i64)])
    scores = g.op("Slice", [t, g.const([4], i64), g.const([2**31 - 1], i64), g.const([2], i64)])
    g.graph.node.append(helper.make_node(
        "EfficientNMS_TRT", [boxes, scores], list(OUTPUTS), domain="", plugin_version=plugin_version,
        background_class=-1, box_coding=1, iou_threshold=float(spec.iou_threshold),
        max_output_boxes=int(spec.max_detections), score_activation=0, class_agnostic=0,
        score_threshold=float(spec.score_threshold)))
    _set_outputs(out, raw, False, spec.max_detections)
    return out


def detections(num_dets: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray, det_classes: np.ndarray,
               image: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's rows of the padded outputs: (xyxy float32[K, 4], scores float32[K], class_ids int32[K])."""
    n = int(num_dets[image].reshape(-1)[0])
    return (det_boxes[image, :n].astype(np.float32, copy=False), det_scores[image, :n].astype(np.float32, copy=False),
            det_classes[image, :n].astype(np.int32, copy=False))
