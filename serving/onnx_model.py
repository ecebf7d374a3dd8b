"""Triton python-backend model that runs a network's ONNX file on the CPU (ONNX Runtime or OpenVINO).

This is what ``configs/cpu.pbtxt`` of ``yolov8n`` and ``osnet_x0_25`` serves; on GPU the
default ``config.pbtxt`` serves the TensorRT plan of the same network instead. A version
directory holds ``model.onnx`` plus a two-line ``model.py`` that imports this class.

Dynamic batching: Triton hands ``execute`` several requests at once; their inputs are
concatenated along the batch axis, run in one call, and split back (requests of different
image sizes run one call each). A model exported with a fixed batch of 1 is run one item at
a time.

Config parameters (all optional):
- ``runtime`` (onnxruntime | openvino), ``intra_op_threads`` (0 = the runtime's choice),
  ``precision`` (OpenVINO: f32 | bf16), ``opt_level`` (ONNX Runtime): ``serving/runtimes.py``;
- ``onnx_file``: which file of the version to run (default ``model.onnx``), e.g. the int8 QDQ
  ``model.int8.onnx`` that ``make models`` writes beside the demo detector; a version
  without it runs ``model.onnx`` and says so in the log;
- in-graph NMS: when the config's outputs are ``num_dets``/``det_boxes``/... and the ONNX is a
  raw YOLOv8 export, decode + NMS are appended at load (``serving/nms_graph.py``) with
  ``nms_score_threshold``, ``nms_iou_threshold``, ``nms_max_detections``.
"""
from __future__ import annotations

import json
import os

import numpy as np

from serving.nms_graph import OUTPUTS as NMS_OUTPUTS
from serving.nms_graph import NmsSpec, append_nms
from serving.runtimes import Runtime, load_runner

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (docs, linters)
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        self.name = cfg["name"]
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        runtime = Runtime.from_params(params, self.name)
        path = os.path.join(version_dir, params.get("onnx_file", "model.onnx"))
        if not os.path.exists(path) and os.path.basename(path) != "model.onnx":
            log(f"{self.name}: no {os.path.basename(path)} in {version_dir} (onnx_file); running model.onnx")
            path = os.path.join(version_dir, "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.name}: no model.onnx in {version_dir}")
        self.input_names = [i["name"] for i in cfg["input"]]
        self.output_names = [o["name"] for o in cfg["output"]]
        model: str | bytes = path
        if set(NMS_OUTPUTS) <= set(self.output_names):
            import onnx

            proto = onnx.load(path)
            if not set(NMS_OUTPUTS) <= {o.name for o in proto.graph.output}:
                spec = NmsSpec.from_params(params, self.name)
                model = append_nms(proto, spec).SerializeToString()
        self.runner = load_runner(model, runtime)
        self.fixed_batch_one = self.runner.inputs[0][1][:1] == (1,)
        log(f"{self.name}: {os.path.basename(path)} on {runtime.label()}"
            + (" with decode + NMS appended" if isinstance(model, bytes) else ""))

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.fixed_batch_one:
            out = self.runner.run(feeds)
            return [out[n] for n in self.output_names]
        n = next(iter(feeds.values())).shape[0]
        parts = [self.runner.run({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
        return [np.concatenate([p[name] for p in parts], 0) for name in self.output_names]

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names] for r in requests]
        # requests batch together only when their shapes agree (frames of one camera aspect)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(tuple(x.shape[1:] for x in a), []).append(i)
        responses = [None] * len(requests)
        for members in groups.values():
            sizes = [arrays[i][0].shape[0] for i in members]
            feeds = {n: np.concatenate([arrays[i][k] for i in members], 0) if len(members) > 1 else arrays[members[0]][k]
                     for k, n in enumerate(self.input_names)}
            try:
                outputs = self._run(feeds)
            except Exception as e:  # a bad batch fails its requests, not the server
                err = pb_utils.TritonError(f"{self.name}: inference failed: {e}")
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=err)
                continue
            start = 0
            for i, n in zip(members, sizes):
                tensors = [pb_utils.Tensor(name, out[start:start + n]) for name, out in zip(self.output_names, outputs)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses


def log(message: str) -> None:
    if pb_utils is not None:
        pb_utils.Logger.log_info(message)
