# One-shot TensorRT engine builder: model_repository/*/<version>/model.onnx -> model.plan,
# on the GPU that will serve them (engines are specific to GPU and TensorRT version, so
# they are built on the deployment machine, never committed). Same TensorRT release as
# the Triton image (NGC 24.10 <-> TensorRT 10.5).
ARG TRT_VERSION=24.10
FROM nvcr.io/nvidia/tensorrt:${TRT_VERSION}-py3

WORKDIR /app
RUN python3 -m pip install --no-cache-dir "numpy==1.26.4" "opencv-python-headless==4.10.0.84" "onnx==1.17.0" \
    "pyyaml==6.0.2"
COPY serving/ /app/serving/
COPY core/ /app/core/
COPY modelops/ /app/modelops/
COPY docker/build_engines.sh /app/docker/build_engines.sh
ENTRYPOINT ["bash", "/app/docker/build_engines.sh"]
