"""Triton python-backend model that runs a network's ONNX file with ONNX Runtime (CPU).

This is what ``configs/cpu.pbtxt`` of ``yolov8n`` and ``osnet_x0_25`` serves; on GPU the
default ``config.pbtxt`` serves the TensorRT plan of the same network instead. A version
directory holds ``model.onnx`` plus a two-line ``model.py`` that imports this class.

Dynamic batching: Triton hands ``execute`` several requests at once; their inputs are
concatenated along the batch axis, run in one ONNX Runtime call, and split back.
Config parameters (optional): ``intra_op_threads`` (default 0 = ONNX Runtime's choice).
A model exported with a fixed batch of 1 is run one item at a time.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (docs, linters)
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(version_dir, "model.onnx")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{cfg['name']}: no model.onnx in {version_dir}")
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(params.get("intra_op_threads", 0))
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in cfg["input"]]
        self.output_names = [o["name"] for o in cfg["output"]]
        onnx_in = self.session.get_inputs()[0]
        self.fixed_batch_one = onnx_in.shape[0] == 1
        self.name = cfg["name"]

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.fixed_batch_one:
            return self.session.run(self.output_names, feeds)
        n = next(iter(feeds.values())).shape[0]
        parts = [self.session.run(self.output_names, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
        return [np.concatenate(p, 0) for p in zip(*parts)]

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names] for r in requests]
        sizes = [a[0].shape[0] for a in arrays]
        feeds = {n: np.concatenate([a[i] for a in arrays], 0) if len(arrays) > 1 else arrays[0][i]
                 for i, n in enumerate(self.input_names)}
        try:
            outputs = self._run(feeds)
        except Exception as e:  # a bad batch fails its requests, not the server
            err = pb_utils.TritonError(f"{self.name}: ONNX Runtime failed: {e}")
            return [pb_utils.InferenceResponse(error=err) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor(name, out[start:start + n]) for name, out in zip(self.output_names, outputs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
