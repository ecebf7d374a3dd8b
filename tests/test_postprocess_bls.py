"""model_repository/postprocess/1/model.py with a fake ``triton_python_backend_utils`` that
behaves like the python backend on a GPU server (issue 23, fix 1).

The fake's BLS response keeps ``features`` in GPU memory, as Triton may for a TensorRT
``osnet_x0_25``, unless the request asked for CPU memory through ``preferred_memory``; a
GPU tensor's ``as_numpy()`` raises, as the real one does. The real local Triton run of the
same model is in tests/test_serving.py (CPU only, where both variants pass).
"""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_PY = ROOT / "model_repository" / "postprocess" / "1" / "model.py"


def fake_pb_utils(calls: list) -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")
    pb.TRITONSERVER_MEMORY_GPU, pb.TRITONSERVER_MEMORY_CPU, pb.TRITONSERVER_MEMORY_CPU_PINNED = 0, 1, 2

    class PreferredMemory:
        def __init__(self, preferred_memory_type, preferred_device_id=0):
            self.preferred_memory_type = preferred_memory_type
            self.preferred_device_id = preferred_device_id

    class Tensor:
        def __init__(self, name, array, on_gpu=False):
            self._name, self._array, self._gpu = name, np.asarray(array), on_gpu

        def name(self):
            return self._name

        def is_cpu(self):
            return not self._gpu

        def as_numpy(self):
            if self._gpu:  # the python backend's message for a GPU tensor
                raise pb.TritonModelException("Tensor is stored in GPU and cannot be converted to NumPy.")
            return self._array

    class TritonError:
        def __init__(self, msg):
            self._msg = msg

        def message(self):
            return self._msg

    class TritonModelException(Exception):
        pass

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.output_tensors, self._error = list(output_tensors), error

        def has_error(self):
            return self._error is not None

        def error(self):
            return self._error

    class InferenceRequest:
        def __init__(self, model_name, inputs, requested_output_names, preferred_memory=None, **kw):
            self.model_name, self.inputs, self.preferred_memory = model_name, inputs, preferred_memory
            self.requested_output_names = requested_output_names

        def exec(self):
            calls.append(self)
            crops = self.inputs[0].as_numpy()
            feats = crops.reshape(len(crops), -1)[:, :512].astype(np.float32) + 1.0
            cpu = (self.preferred_memory is not None
                   and self.preferred_memory.preferred_memory_type == pb.TRITONSERVER_MEMORY_CPU)
            return InferenceResponse([Tensor("features", feats, on_gpu=not cpu)])

    class Request:
        def __init__(self, tensors):
            self.tensors = tensors

    def get_input_tensor_by_name(request, name):
        return request.tensors.get(name)

    def get_output_tensor_by_name(response, name):
        return next((t for t in response.output_tensors if t.name() == name), None)

    for k, v in dict(PreferredMemory=PreferredMemory, Tensor=Tensor, TritonError=TritonError,
                     TritonModelException=TritonModelException, InferenceResponse=InferenceResponse,
                     InferenceRequest=InferenceRequest, Request=Request,
                     get_input_tensor_by_name=get_input_tensor_by_name,
                     get_output_tensor_by_name=get_output_tensor_by_name).items():
        setattr(pb, k, v)
    return pb


def _load_model(monkeypatch, pb):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb)
    monkeypatch.syspath_prepend(str(ROOT))
    spec = importlib.util.spec_from_file_location("postprocess_model_under_test", MODEL_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.TritonPythonModel()
    cfg = {"parameters": {"reid_classes": {"string_value": "person"}, "labels_model": {"string_value": "yolov8n"},
                          "reid_max_batch": {"string_value": "2"}},
           # raw YOLOv8 predictions in (the pre-issue-18 form, decoded here), as _request sends them
           "input": [{"name": n} for n in ("predictions", "letterbox", "original")],
           "output": [{"name": "embeddings", "dims": [-1, 512]}]}
    model.initialize({"model_config": json.dumps(cfg), "model_repository": str(ROOT / "model_repository" / "postprocess"),
                      "model_version": "1"})
    return model


def _request(pb):
    """Three people and a cart in a 640x640 frame (no letterbox padding)."""
    pred = np.zeros((1, 6, 8400), np.float32)
    for a, (cx, cy, cls) in enumerate([(100, 300, 0), (300, 300, 0), (500, 300, 0), (320, 550, 1)]):
        pred[0, :4, a] = (cx, cy, 80, 160)
        pred[0, 4 + cls, a] = 0.9
    lb = np.array([1.0, 0, 0, 640, 640, 0], np.float32)
    img = np.random.default_rng(0).integers(0, 255, (640, 640, 3), dtype=np.uint8)
    return pb.Request({"predictions": pb.Tensor("predictions", pred), "letterbox": pb.Tensor("letterbox", lb),
                       "original": pb.Tensor("original", img)})


def test_bls_features_are_read_from_cpu_memory_on_a_gpu_server(monkeypatch):
    calls: list = []
    pb = fake_pb_utils(calls)
    model = _load_model(monkeypatch, pb)
    [resp] = model.execute([_request(pb)])
    assert not resp.has_error(), resp.error().message()
    out = {t.name(): t.as_numpy() for t in resp.output_tensors}
    assert list(out["class_ids"]).count(0) == 3 and list(out["class_ids"]).count(1) == 1
    norms = np.linalg.norm(out["embeddings"], axis=1)
    person = out["class_ids"] == 0
    assert np.allclose(norms[person], 1.0, atol=1e-5) and np.all(norms[~person] == 0)
    assert len(calls) == 2  # 3 crops in BLS batches of reid_max_batch=2
    for c in calls:
        assert c.model_name == "osnet_x0_25"
        assert c.preferred_memory.preferred_memory_type == pb.TRITONSERVER_MEMORY_CPU


def test_a_gpu_tensor_that_still_comes_back_is_named(monkeypatch):
    calls: list = []
    pb = fake_pb_utils(calls)
    model = _load_model(monkeypatch, pb)
    model.cpu_output = pb.PreferredMemory(pb.TRITONSERVER_MEMORY_GPU, 0)  # as if Triton ignored the preference
    [resp] = model.execute([_request(pb)])
    assert resp.has_error()
    assert "osnet_x0_25: 'features' came back in GPU memory" in resp.error().message()
