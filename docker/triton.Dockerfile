# Triton Inference Server (GPU) for the retail_pipeline ensemble.
# The TensorRT models (yolov8n, osnet_x0_25) run as model.plan built on the target GPU by
# the `engines` service; preprocess/postprocess are python-backend models that import
# serving/ (letterbox, YOLO decode + NMS, crops), which need numpy < 2 (Triton's python
# backend breaks with numpy 2) and an OpenCV of the 4.10 line (4.12+ requires numpy 2).
ARG TRITON_VERSION=24.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

RUN python3 -m pip install --no-cache-dir "numpy==1.26.4" "opencv-python-headless==4.10.0.84" \
 && python3 -c "import numpy, cv2; assert numpy.__version__.startswith('1.'), numpy.__version__"

# The python-backend models import `serving` (code shared with the clients and the CPU path).
COPY serving/ /opt/retail/serving/
ENV PYTHONPATH=/opt/retail

# curl for the compose health check (ready = every loaded model ready)
RUN (command -v curl >/dev/null || (apt-get update && apt-get install -y --no-install-recommends curl \
     && rm -rf /var/lib/apt/lists/*))

EXPOSE 8000 8001 8002
# No ENTRYPOINT here: the image's own (/opt/nvidia/nvidia_entrypoint.sh) checks the driver and
# enables CUDA forward compatibility on older data-centre drivers, then runs this CMD.
# The default config.pbtxt files are the TensorRT ones (no config-name flag: not the CPU variants).
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--load-model=retail_pipeline", "--load-model=osnet_x0_25", "--strict-readiness=true"]
