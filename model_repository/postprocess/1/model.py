"""Triton python backend: detections -> boxes in original pixels + OSNet embeddings.

The detector's graph already decoded and suppressed its boxes (``num_dets``, ``det_boxes``,
``det_scores``, ``det_classes``: serving/nms_graph.py), so this step maps them to original
pixels, cuts person crops and calls the re-id model. Given a raw YOLOv8 ``predictions`` input
instead (the saved pre-issue-18 variant, benchmarks/baseline_repo), it decodes and runs NMS in
NumPy (serving/postprocess.py) with the ``conf_threshold``/``iou_threshold``/``max_detections``
parameters. Person crops (classes listed in
the ``reid_classes`` parameter) are embedded by ``osnet_x0_25`` through BLS, so only real
boxes are computed (no padding) and crops of concurrent frames batch inside Triton.
Class names come from ``model_repository/<labels_model>/labels.txt``.

BLS output memory: on a GPU server ``osnet_x0_25`` is a TensorRT engine whose outputs live in
GPU memory, and ``Tensor.as_numpy()`` raises for a GPU tensor. The request therefore asks
for CPU output (``preferred_memory=PreferredMemory(TRITONSERVER_MEMORY_CPU, 0)``): Triton
copies the [K, 512] features (K <= reid_max_batch, 64 KB at most) into the stub's shared
memory. DLPack was not chosen: NumPy cannot import a GPU DLPack capsule, so it would need
PyTorch or CuPy in the Triton image for what follows (L2 norm, row scatter) which runs on
the CPU anyway. If Triton still returns a GPU tensor, the error names the model and why.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from serving.nms_graph import detections
from serving.postprocess import NmsConfig, decode_yolov8, l2_normalise, reid_crops, to_original
from serving.preprocess import Letterbox


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        p = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.nms = NmsConfig(conf_threshold=float(p.get("conf_threshold", 0.25)),
                             iou_threshold=float(p.get("iou_threshold", 0.45)),
                             max_detections=int(p.get("max_detections", 300)))
        labels_file = os.path.join(os.path.dirname(args["model_repository"]), p.get("labels_model", "yolov8n"), "labels.txt")
        with open(labels_file, encoding="utf-8") as f:
            self.labels = [line.strip() for line in f if line.strip()]
        wanted = {c.strip() for c in p.get("reid_classes", "person").split(",") if c.strip()}
        self.reid_ids = np.array([i for i, n in enumerate(self.labels) if n in wanted], np.int32)
        self.reid_model = p.get("reid_model", "osnet_x0_25")
        self.reid_batch = int(p.get("reid_max_batch", 32))
        # BLS outputs of a GPU model (TensorRT osnet_x0_25) may stay on the GPU: ask for CPU memory
        self.cpu_output = pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)
        self.embedding_dim = next(o["dims"][-1] for o in cfg["output"] if o["name"] == "embeddings")
        self.raw = any(i["name"] == "predictions" for i in cfg.get("input", []))

    def _detections(self, request):
        """(xyxy in model-input pixels, scores, class ids) of the one image in ``request``."""
        if self.raw:
            pred = pb_utils.get_input_tensor_by_name(request, "predictions").as_numpy()
            return decode_yolov8(pred[0], self.nms)
        return detections(*(pb_utils.get_input_tensor_by_name(request, n).as_numpy()
                            for n in ("num_dets", "det_boxes", "det_scores", "det_classes")))

    def _name(self, i: int) -> str:
        return self.labels[i] if 0 <= i < len(self.labels) else f"class_{i}"

    def _embed(self, crops: np.ndarray) -> np.ndarray:
        parts = []
        for s in range(0, len(crops), self.reid_batch):
            req = pb_utils.InferenceRequest(model_name=self.reid_model, requested_output_names=["features"],
                                            inputs=[pb_utils.Tensor("images", crops[s:s + self.reid_batch])],
                                            preferred_memory=self.cpu_output)
            resp = req.exec()
            if resp.has_error():
                raise RuntimeError(f"{self.reid_model}: {resp.error().message()}")
            out = pb_utils.get_output_tensor_by_name(resp, "features")
            if not out.is_cpu():
                raise RuntimeError(f"{self.reid_model}: 'features' came back in GPU memory although CPU memory was "
                                   f"requested (preferred_memory); as_numpy() cannot read it")
            parts.append(out.as_numpy())
        return l2_normalise(np.concatenate(parts, 0))

    def execute(self, requests):
        responses = []
        for request in requests:
            lb = Letterbox.from_array(pb_utils.get_input_tensor_by_name(request, "letterbox").as_numpy())
            image = pb_utils.get_input_tensor_by_name(request, "original").as_numpy()
            try:
                xyxy, scores, class_ids = self._detections(request)
                xyxy = to_original(xyxy, lb)
                emb = np.zeros((len(xyxy), self.embedding_dim), np.float32)
                rows = np.flatnonzero(np.isin(class_ids, self.reid_ids))
                if rows.size:
                    emb[rows] = self._embed(reid_crops(image, xyxy[rows]))
            except Exception as e:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"postprocess: {e}")))
                continue
            names = np.array([self._name(int(i)).encode() for i in class_ids], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("boxes", xyxy.reshape(-1, 4)),
                pb_utils.Tensor("scores", scores),
                pb_utils.Tensor("class_ids", class_ids),
                pb_utils.Tensor("class_names", names),
                pb_utils.Tensor("embeddings", emb),
            ]))
        return responses
