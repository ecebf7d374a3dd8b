"""Triton python backend: encoded image bytes -> letterboxed YOLOv8 input (serving/preprocess.py).

Input  image     UINT8[-1]            JPEG/PNG bytes
Output images    FP32[1, 3, H, W]     RGB in [0, 1], letterboxed: the frame's aspect rounded up to
                                      the ``stride`` parameter (640x360 -> 384x640), or 640x640
                                      with stride 0
       letterbox FP32[6]              scale, pad_x, pad_y, orig_w, orig_h, 0
       original  UINT8[H, W, 3]       decoded BGR frame, for full-resolution re-id crops

A bad image is an error response for that request only (the others in the batch and the
server carry on): not an image / corrupt / empty (ImageDecodeError), a degenerate or huge
size (ImageSizeError: the message names the size and the limits, serving/preprocess.py),
both with status INVALID_ARGUMENT (the client must not retry them), or anything else that
fails while preparing it (INTERNAL).
"""
import json

import triton_python_backend_utils as pb_utils

from serving.preprocess import YOLO_STRIDE, ImageDecodeError, decode_image, letterbox


class TritonPythonModel:
    def initialize(self, args):
        params = {k: v["string_value"] for k, v in json.loads(args["model_config"]).get("parameters", {}).items()}
        try:
            self.stride = int(params.get("stride", YOLO_STRIDE))
            if self.stride < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"preprocess: parameter stride {params.get('stride')!r}: expected an integer >= 0 "
                             f"(32 for YOLOv8; 0 = square 640x640)") from None

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                data = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
                image = decode_image(data)
                x, lb = letterbox(image, stride=self.stride)
            except ImageDecodeError as e:  # the client's frame is bad: INVALID_ARGUMENT, not worth a retry
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"preprocess: {e}", pb_utils.TritonError.INVALID_ARG)))
                continue
            except Exception as e:  # never let one request's image fail the whole batch or the instance
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"preprocess: cannot prepare image ({type(e).__name__}: {e})")))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("images", x[None]),
                pb_utils.Tensor("letterbox", lb.as_array()),
                pb_utils.Tensor("original", image),
            ]))
        return responses
