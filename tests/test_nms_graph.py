"""Decode + NMS inside the detector graph (serving/nms_graph.py) vs the NumPy path it replaces,
the camera-aspect letterbox, and the CPU runtimes that serve it (serving/runtimes.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from serving.nms_graph import NmsSpec, append_efficient_nms, append_nms, detections
from serving.postprocess import NmsConfig, decode_yolov8
from serving.preprocess import input_shape, letterbox
from serving.runtimes import Runtime, load_runner


def raw_passthrough(batch, classes: int = 2, anchors: int = 400) -> onnx.ModelProto:
    """A 'detector' whose output0 [B, 4 + C, A] is its input: the test writes the raw predictions."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 4 + classes, anchors])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + classes, anchors])
    g = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "raw", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def random_predictions(rng, batch: int, classes: int = 2, anchors: int = 400) -> np.ndarray:
    """Clustered boxes (so NMS has work), scores spread over [0, 1], a few tiny boxes."""
    centres = rng.uniform(50, 590, (batch, 12, 2))
    pick = rng.integers(0, 12, (batch, anchors))
    cxcy = np.take_along_axis(centres, pick[..., None], 1) + rng.normal(0, 6, (batch, anchors, 2))
    wh = rng.uniform(20, 120, (batch, anchors, 2))
    wh[:, :5] = 1.0  # under min_box_size: dropped by both paths
    scores = rng.uniform(0, 1, (batch, anchors, classes)) ** 3
    return np.concatenate([cxcy, wh, scores], 2).transpose(0, 2, 1).astype(np.float32)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_graph_nms_equals_the_numpy_decode_per_image(runtime):
    rng = np.random.default_rng(0)
    spec = NmsSpec(score_threshold=0.2, iou_threshold=0.5, max_detections=15)
    runner = load_runner(append_nms(raw_passthrough("batch"), spec).SerializeToString(), Runtime(runtime, threads=1))
    pred = random_predictions(rng, 3)
    out = runner.run({"images": pred})
    assert out["det_boxes"].shape == (3, 15, 4) and out["num_dets"].dtype == np.int32
    cfg = NmsConfig(conf_threshold=0.2, iou_threshold=0.5, max_detections=15, max_candidates=10**6)
    for i in range(3):
        want = decode_yolov8(pred[i], cfg)
        got = detections(out["num_dets"], out["det_boxes"], out["det_scores"], out["det_classes"], i)
        assert len(got[0]) == len(want[0]) == 15  # capped at max_detections, best first
        np.testing.assert_allclose(got[0], want[0], atol=1e-3)
        np.testing.assert_allclose(got[1], want[1], atol=1e-6)
        np.testing.assert_array_equal(got[2], want[2])
        assert (out["det_scores"][i, int(out["num_dets"][i, 0]):] == 0).all()


def test_an_image_with_nobody_gives_zero_detections_next_to_one_with_people():
    rng = np.random.default_rng(1)
    runner = load_runner(append_nms(raw_passthrough("batch"), NmsSpec(score_threshold=0.25)).SerializeToString())
    pred = random_predictions(rng, 2)
    pred[0, 4:] = 0.0  # nobody in the first image
    out = runner.run({"images": pred})
    assert int(out["num_dets"][0, 0]) == 0 and int(out["num_dets"][1, 0]) > 0
    assert detections(out["num_dets"], out["det_boxes"], out["det_scores"], out["det_classes"], 0)[0].shape == (0, 4)


def test_only_raw_yolo_outputs_take_nms():
    feats = helper.make_graph([helper.make_node("Identity", ["x"], ["features"])], "reid",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 512])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", 512])])
    with pytest.raises(ValueError, match=r"output 'features' has rank 2: a raw YOLOv8 output"):
        append_nms(helper.make_model(feats, opset_imports=[helper.make_opsetid("", 17)]))
    old = raw_passthrough("batch")
    old.opset_import[0].version = 12
    with pytest.raises(ValueError, match="opset 12: appending NMS needs opset >= 13"):
        append_nms(old)
    with pytest.raises(ValueError, match="already has NMS outputs"):
        append_nms(append_nms(raw_passthrough("batch")))
    with pytest.raises(ValueError, match="iou_threshold 0"):
        NmsSpec(iou_threshold=0)


def test_efficient_nms_node_for_tensorrt_carries_the_spec():
    m = append_efficient_nms(raw_passthrough("batch"), NmsSpec(score_threshold=0.3, iou_threshold=0.6, max_detections=50))
    node = next(n for n in m.graph.node if n.op_type == "EfficientNMS_TRT")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["max_output_boxes"] == 50 and attrs["box_coding"] == 1 and attrs["score_activation"] == 0
    assert abs(attrs["score_threshold"] - 0.3) < 1e-6 and abs(attrs["iou_threshold"] - 0.6) < 1e-6
    assert [o.name for o in m.graph.output] == ["num_dets", "det_boxes", "det_scores", "det_classes"]


@pytest.mark.parametrize("hw, stride, want", [((360, 640), 32, (384, 640)), ((1080, 1920), 32, (384, 640)),
                                               ((480, 640), 32, (480, 640)), ((640, 360), 32, (640, 384)),
                                               ((360, 640), 0, (640, 640)), ((100, 3000), 32, (32, 640))])
def test_letterbox_at_the_camera_aspect(hw, stride, want):
    assert input_shape(*hw, stride=stride) == want
    img = np.full((*hw, 3), 200, np.uint8)
    x, lb = letterbox(img, stride=stride)
    assert x.shape == (3, *want)
    # the image sits centred: content where the letterbox says, grey padding elsewhere
    y0, x0 = int(lb.pad_y), int(lb.pad_x)
    assert np.isclose(x[0, y0, x0], 200 / 255) and (lb.pad_y == 0 or np.isclose(x[0, 0, 0], 114 / 255))


def test_runtime_parameters_are_checked():
    with pytest.raises(ValueError, match="yolov8n: parameters: runtime 'tensorrt'"):
        Runtime.from_params({"runtime": "tensorrt"}, "yolov8n")
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Runtime.from_params({"runtime": "openvino", "precision": "fp8"}, "m")
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for rt in (Runtime("onnxruntime", threads=1), Runtime("openvino", threads=1, precision="f32")):
        np.testing.assert_allclose(load_runner(model, rt).run({"x": x})["y"], x)
