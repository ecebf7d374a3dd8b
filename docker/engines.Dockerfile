# One-shot TensorRT engine builder: model_repository/*/<version>/model.onnx -> model.plan,
# on the GPU that will serve them (engines are specific to GPU and TensorRT version, so
# they are built on the deployment machine, never committed). Same TensorRT release as
# the Triton image (NGC 24.10 <-> TensorRT 10.5; modelops/gpu_stack.py).
ARG TRT_VERSION=24.10
FROM nvcr.io/nvidia/tensorrt:${TRT_VERSION}-py3

WORKDIR /app
# The image ships TensorRT's Python bindings but not cuda-python, which the converter needs for
# device buffers (INT8 calibration) and the device query; cuda-python stays on the image's
# CUDA 12.6 (13.x needs a CUDA 13 driver). onnxruntime (CPU) runs the detector that cuts the
# person crops OSNet is calibrated on (modelops/calibration_crops.py).
RUN python3 -m pip install --no-cache-dir "numpy==1.26.4" "opencv-python-headless==4.10.0.84" "onnx==1.17.0" \
    "pyyaml==6.0.2" "cuda-python==12.6.2.post1" "onnxruntime==1.20.1" \
 && python3 -c "import numpy; assert numpy.__version__.startswith('1.'), numpy.__version__" \
 && python3 -c "from cuda.bindings import runtime"
COPY serving/ /app/serving/
COPY core/ /app/core/
COPY modelops/ /app/modelops/
COPY docker/build_engines.sh /app/docker/build_engines.sh
# The image's ENTRYPOINT (/opt/nvidia/nvidia_entrypoint.sh: driver check, CUDA forward
# compatibility on older data-centre drivers) stays; the job is the CMD it runs.
CMD ["bash", "/app/docker/build_engines.sh"]
